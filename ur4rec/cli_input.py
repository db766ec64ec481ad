"""What the command line checks before LightningCLI uses a value: config files, the seed, max_epochs, and
parser errors in one line naming the key."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

import yaml
from lightning.pytorch.cli import LightningArgumentParser

from ur4rec.errors import ConfigError, check

MAX_SEED = 2**32 - 1  # numpy's (and so Lightning's) largest seed


def check_seed(seed: int | bool | None) -> None:
    """``seed_everything`` is true/false/null or an int numpy accepts (0 to 2**32 - 1)."""
    check(seed is None or isinstance(seed, bool) or 0 <= seed <= MAX_SEED, "seed_everything",
          f"must be an integer from 0 to {MAX_SEED} (or true for a random seed), got {seed}")


def check_max_epochs(max_epochs: int | None) -> None:
    """-1 or null (the stages decide the run's length) or at least one epoch: 0 would train nothing, and
    Lightning refuses values below -1 with a traceback."""
    check(max_epochs is None or max_epochs == -1 or max_epochs >= 1, "trainer.max_epochs",
          f"must be -1 (the stages decide the run's length) or >= 1, got {max_epochs}; shorten a run with its "
          "stages instead, e.g. --stages.pretrain_sasrec 2")


def config_files(argv: list[str]) -> list[Path]:
    """The existing files named by ``--config PATH`` / ``--config=PATH`` in ``argv``."""
    named = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "--config"]
    named += [arg.split("=", 1)[1] for arg in argv if arg.startswith("--config=")]
    return [Path(name) for name in named if Path(name).is_file()]


def check_config_file(path: Path) -> None:
    """A config file is YAML holding a mapping of settings; otherwise one error naming the file and the line
    (jsonargparse's message names neither)."""
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not a UTF-8 text file ({err.reason} at byte {err.start})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(err, 'problem', None) or err}") from None
    if content is not None and not isinstance(content, dict):
        raise ConfigError(f"{path}: a config file holds settings by name (e.g. 'data:' then '  batch_size: 64'), "
                          f"not a {type(content).__name__}")


class ShortErrorParser(LightningArgumentParser):
    """A parser whose errors end a run with two lines: where the options are listed, then the error (on one
    line, naming the key) with the closest valid option when one is near (not the whole usage, over a hundred
    lines)."""

    def error(self, message: str, ex: Exception | None = None):
        if not self.exit_on_error:
            return super().error(message, ex)
        parser = getattr(ex, "subcommand_parser", None) or self
        message = " ".join(part.strip() for part in message.splitlines() if part.strip())  # one line, key first
        options = [o for o in parser._option_string_actions if o.startswith("--")]
        typed = [t.split("=")[0] for t in message.split() if t.startswith("--")]
        near = [m for t in typed for m in difflib.get_close_matches(t, options, n=1, cutoff=0.8)]
        hint = f" (did you mean {', '.join(near)}?)" if near else ""
        sys.stderr.write(f"tip: {parser.prog.replace(' [options]', '')} --help lists every option\n"
                         f"error: {message}{hint}\n")
        self.exit(2)
