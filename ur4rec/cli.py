"""UR4RecCLI: LightningCLI wired for the UR4Rec module and DataModule."""

from __future__ import annotations

import importlib
import os
import secrets
import sys
from pathlib import Path

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from ur4rec.callbacks.checkpoints import ExceptionCheckpoint, LatestCheckpoint
from ur4rec.callbacks.predictions import RecommendationWriter
from ur4rec.callbacks.rng import RNGStateCheckpoint
from ur4rec.data.datamodule import UR4RecDataModule
from ur4rec.module import UR4RecModule

CHECKPOINT_ROOT = "checkpoints"

# Commands beside LightningCLI's fit/validate/test/predict: name -> module with ``main(argv) -> int``.
EXTRA_COMMANDS = {
    "generate": "ur4rec.llm.generate",  # LLM user preferences and item descriptions
    "features": "ur4rec.features.report",  # per-source counts of texts and posters
    "report": "ur4rec.report",  # plots and a Markdown summary of a finished run
    "fusion_sweep": "ur4rec.fusion_sweep",  # validation metrics per fusion weight of a checkpoint
    "paired": "ur4rec.paired",  # checkpoints compared user by user, with a bootstrap interval
    "side_signal": "ur4rec.side_signal",  # each side input (texts, posters) as a ranker on its own
}


def checkpoint_dir(run_name: str) -> str:
    return f"{CHECKPOINT_ROOT}/{run_name}"


def shuffle_seed(seed_everything: int | bool | None) -> int:
    """The data order follows ``--seed_everything`` (an int); ``True``/``None`` fall back to 0."""
    return seed_everything if isinstance(seed_everything, int) and not isinstance(seed_everything, bool) else 0


def wandb_run_id(directory: Path, resuming: bool) -> str:
    """The W&B run id stored in ``directory/wandb_id`` when resuming, else a new one (then stored).

    DDP ranks other than 0 start after rank 0 and read the id it stored."""
    path = directory / "wandb_id"
    launched_rank = os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("NODE_RANK", "0") != "0"
    if (resuming or launched_rank) and path.exists():
        return path.read_text().strip()
    run_id = secrets.token_hex(4)
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(run_id + "\n")
    return run_id


def negatives_for_loss(loss: str) -> int:
    """Sampled-softmax losses need one negative per position; full cross-entropy needs none."""
    return 0 if loss == "ce" else 1


class UR4RecCLI(LightningCLI):
    """``fit``/``validate``/``test``/``predict`` with a named run.

    ``--run_name NAME`` puts checkpoints in ``checkpoints/NAME/`` (``last.ckpt`` plus the best by
    ``val/ndcg@10``) and names the loggers' runs, so ``--ckpt_path last`` finds the run to resume.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("parser_kwargs", {"description": "UR4Rec. Extra commands: "
                                            + ", ".join(f"'{name}'" for name in EXTRA_COMMANDS)
                                            + " (run 'python cli.py generate --help')."})
        kwargs.setdefault("seed_everything_default", 42)
        kwargs.setdefault("auto_configure_optimizers", False)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("trainer_defaults", {
            "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": "logs"}},
            "use_distributed_sampler": False,  # the DataModule shards users across ranks itself
            # temp file + fsync + os.replace: a kill never leaves a truncated last.ckpt/best checkpoint
            "plugins": [{"class_path": "ur4rec.checkpoint_io.AtomicCheckpointIO"}],
        })
        super().__init__(UR4RecModule, UR4RecDataModule, *args, **kwargs)

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--run_name", type=str, default="sasrec",
                            help="Names the run: checkpoints/<run_name>/ and the loggers' run name.")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({
            "checkpoint.monitor": "val/ndcg@10",
            "checkpoint.mode": "max",
            "checkpoint.save_last": False,  # LatestCheckpoint writes last.ckpt every epoch
            "checkpoint.filename": "best-epoch{epoch:03d}",
            "checkpoint.auto_insert_metric_name": False,
        })
        parser.link_arguments("run_name", "checkpoint.dirpath", compute_fn=checkpoint_dir)
        parser.add_lightning_class_args(LatestCheckpoint, "last_checkpoint")
        parser.link_arguments("run_name", "last_checkpoint.dirpath", compute_fn=checkpoint_dir)
        parser.add_lightning_class_args(ExceptionCheckpoint, "exception_checkpoint")
        parser.link_arguments("run_name", "exception_checkpoint.dirpath", compute_fn=checkpoint_dir)
        parser.add_lightning_class_args(RNGStateCheckpoint, "rng_state")
        parser.add_lightning_class_args(RecommendationWriter, "predictions")  # used by `predict` only
        parser.link_arguments("seed_everything", "data.seed", compute_fn=shuffle_seed)
        parser.link_arguments("data.max_seq_len", "model.max_seq_len")
        parser.link_arguments("model.loss", "data.train_negatives", compute_fn=negatives_for_loss)
        parser.link_arguments("model.experts", "data.features", compute_fn=bool)
        parser.link_arguments("model.retriever_positions", "data.user_text_holdout")
        parser.link_arguments("data.num_items", "model.num_items", apply_on="instantiate")
        parser.link_arguments("data.text_dim", "model.text_dim", apply_on="instantiate")
        parser.link_arguments("data.image_dim", "model.image_dim", apply_on="instantiate")

    def before_instantiate_classes(self) -> None:
        """Name every logger's run after ``run_name`` unless the config names it, and give W&B runs
        an id kept in ``checkpoints/<run_name>/wandb_id`` so a resumed fit continues the same W&B run."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        loggers = config.trainer.logger
        for logger in loggers if isinstance(loggers, list) else [loggers]:
            init_args = getattr(logger, "init_args", None)
            if init_args is None:
                continue
            if getattr(init_args, "name", None) in (None, "lightning_logs"):
                init_args.name = config.run_name
            if "Wandb" in str(getattr(logger, "class_path", "")) and getattr(init_args, "id", None) is None:
                init_args.id = wandb_run_id(Path(checkpoint_dir(config.run_name)),
                                            resuming=bool(getattr(config, "ckpt_path", None)))


def split_at_dashes(argv: list[str]) -> tuple[list[str], list[str]]:
    """(an extra command's own arguments, the LightningCLI configuration after ``--``)."""
    return (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])


def configured(cli_args: list[str]) -> UR4RecCLI:
    """The model, DataModule and trainer of a LightningCLI configuration, built without running anything
    (no logger, no progress bar, no saved config): for extra commands that score checkpoints."""
    return UR4RecCLI(args=[*cli_args, "--trainer.logger", "false", "--trainer.enable_progress_bar", "false"],
                     run=False, save_config_callback=None)


def main(args: list[str] | None = None) -> UR4RecCLI | int:
    """Run the CLI; ``args`` replaces ``sys.argv[1:]`` (tests call ``main([...])``).

    Returns the LightningCLI for Lightning's subcommands, or the exit code of an extra command.
    """
    argv = sys.argv[1:] if args is None else list(args)
    if argv and argv[0] in EXTRA_COMMANDS:
        return importlib.import_module(EXTRA_COMMANDS[argv[0]]).main(argv[1:])
    return UR4RecCLI(args=args)
