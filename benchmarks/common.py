"""What every tool shares: the configured model of a run, checkpoints loaded for scoring, Markdown tables."""

from __future__ import annotations

import glob
import statistics
from pathlib import Path
from typing import Callable, Sequence

import torch

from ur4rec.checkpoint_io import load_checkpoint_file, sasrec_weights, upgrade_checkpoint
from ur4rec.cli import UR4RecCLI
from ur4rec.module import UR4RecModule
from ur4rec.vocabulary import SCORE_SASREC, STAGE_POLICY


def split_at_dashes(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(a tool's own arguments, the LightningCLI configuration after ``--``)."""
    argv = list(argv)
    return (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])


def configured(cli_args: list[str]) -> UR4RecCLI:
    """The model, DataModule and trainer of a LightningCLI configuration, built without running anything
    (no logger, no progress bar, no saved config), with the item features in the model when it uses them."""
    cli = UR4RecCLI(args=[*cli_args, "--trainer.logger", "false", "--trainer.enable_progress_bar", "false"],
                    run=False, save_config_callback=None)
    cli.datamodule.setup("test")
    if cli.model.net.needs_features:
        cli.model.attach_item_features(cli.datamodule)
    return cli


def resolve(pattern: str) -> str:
    """The one checkpoint file that ``pattern`` (a path or a glob) names."""
    matches = sorted(glob.glob(pattern))
    if len(matches) != 1:
        raise FileNotFoundError(f"{pattern}: matches {len(matches)} files {matches[:3]}; give exactly one checkpoint")
    return matches[0]


def score_mode_of(path: str, checkpoint: dict) -> str | None:
    """The score mode a checkpoint is evaluated with: a ``best-<stage>.ckpt`` its stage's, else the one its
    validation used (recorded in it); None when neither is known."""
    stage = Path(path).stem.removeprefix("best-")
    return STAGE_POLICY[stage].score_mode if stage in STAGE_POLICY else checkpoint.get("score_mode")


def load_for_scoring(module: UR4RecModule, path: str) -> None:
    """Load ``path`` (verified) into ``module`` and set the score mode ``test`` would use; a SASRec-only
    checkpoint (no retriever weights) loads into SASRec and scores as SASRec."""
    checkpoint = upgrade_checkpoint(load_checkpoint_file(path))
    state = checkpoint["state_dict"]
    if any(k.startswith("net.retriever.") for k in state) or module.net.retriever is None:
        module.load_state_dict(state)
        module.score_mode = score_mode_of(path, checkpoint) or module.score_mode
    else:
        module.net.sasrec.load_state_dict(sasrec_weights(path))
        module.score_mode = SCORE_SASREC


def validation_rows(cli: UR4RecCLI, ckpt_path: str, setting: str, values: Sequence, apply: Callable,
                    columns: Sequence[str]) -> list[dict]:
    """Validation metrics (those of ``columns`` logged) of one checkpoint, once per value of a setting that
    ``apply(value)`` changes on the loaded model; one row per value, named ``setting``."""
    load_for_scoring(cli.model, ckpt_path)
    rows = []
    for value in values:
        apply(value)
        metrics = cli.trainer.validate(cli.model, cli.datamodule, verbose=False)[0]
        rows.append({setting: value, **{k: float(metrics[k]) for k in columns if k in metrics}})
    return rows


@torch.no_grad()
def evaluation_batches(cli: UR4RecCLI, split: str) -> list[dict[str, torch.Tensor]]:
    """Every batch of the ``val`` or ``test`` split of a configured run."""
    loader = cli.datamodule.test_dataloader() if split == "test" else cli.datamodule.val_dataloader()
    return list(loader)


def mean_std(values: Sequence[float]) -> str:
    """``mean ± std`` of ``values`` with 4 decimals (the sample standard deviation; 0 for one value)."""
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {spread:.4f}"


def markdown_table(columns: Sequence[str], rows: Sequence[dict], formats: dict[str, Callable] | None = None) -> str:
    """A Markdown table of ``rows`` (dicts) over ``columns``; floats as ``.4f`` unless ``formats`` says otherwise."""
    formats = formats or {}

    def cell(column: str, value) -> str:
        if column in formats:
            return formats[column](value)
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
    lines += ["| " + " | ".join(cell(c, row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)
