"""UR4RecCLI: LightningCLI wired for the UR4Rec module and DataModule, plus the user commands.

The user-facing commands are ``fit``/``validate``/``test``/``predict`` (LightningCLI) and ``generate``,
``features``, ``report`` (each a module with ``main(argv) -> int``). Analysis and benchmark tools live
outside the product, in ``benchmarks/`` (``python -m benchmarks --help``).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from ur4rec.callbacks.alternating import AdaptiveAlternating
from ur4rec.callbacks.checkpoints import ExceptionCheckpoint, LatestCheckpoint
from ur4rec.callbacks.predictions import RecommendationWriter
from ur4rec.callbacks.rng import RNGStateCheckpoint
from ur4rec.callbacks.run_summary import FitSummary
from ur4rec.callbacks.stages import TrainingStages
from ur4rec.checkpoint_io import load_checkpoint_file, upgrade_checkpoint
from ur4rec.cli_input import ShortErrorParser, check_config_file, check_max_epochs, check_seed, config_files
from ur4rec.datamodule import UR4RecDataModule
from ur4rec.models.configs import RetrieverConfig
from ur4rec.module import UR4RecModule
from ur4rec.run_folder import FitLock, best_checkpoint, checkpoint_dir, launched_rank, wandb_run_id

# Commands beside LightningCLI's fit/validate/test/predict: name -> module with ``main(argv) -> int``.
USER_COMMANDS = {
    "generate": "ur4rec.llm.generate",  # LLM user preferences and item descriptions
    "features": "ur4rec.features.provenance",  # per-source counts of texts and posters
    "report": "ur4rec.run_report",  # plots and a Markdown summary of a finished run
}


def shuffle_seed(seed_everything: int | bool | None) -> int:
    """The data order follows ``--seed_everything`` (an int); ``True``/``None`` fall back to 0."""
    return seed_everything if isinstance(seed_everything, int) and not isinstance(seed_everything, bool) else 0


def negatives_for_loss(loss: str) -> int:
    """Sampled-softmax losses need one negative per position; full cross-entropy needs none."""
    return 0 if loss == "ce" else 1


def uses_features(retriever, sasrec) -> bool:
    """The item features take part with a retriever, SASRec's content term or its new-item map."""
    return (retriever is not None or bool(getattr(sasrec, "content", False))
            or getattr(sasrec, "new_item_ridge", None) is not None)


def retriever_positions(retriever) -> int:
    """The retriever's training positions, which user texts leave out (the default when there is none)."""
    return getattr(retriever, "positions", RetrieverConfig.positions) if retriever is not None \
        else RetrieverConfig.positions


class UR4RecCLI(LightningCLI):
    """``fit``/``validate``/``test``/``predict`` with a named run.

    ``--run_name NAME`` puts checkpoints in ``checkpoints/NAME/`` (``last.ckpt`` plus the best by
    ``val/ndcg@10``) and names the loggers' runs, so ``--ckpt_path last`` finds the run to resume and
    ``--ckpt_path best`` its best checkpoint. The training policy is two groups: ``--stages.*``
    (:class:`TrainingStages`) and ``--alternating.*`` (:class:`AdaptiveAlternating`).
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("parser_kwargs", {"description": "UR4Rec. More commands: "
                                            + ", ".join(f"'{name}'" for name in USER_COMMANDS)
                                            + " (e.g. 'python cli.py generate --help')."})
        kwargs.setdefault("seed_everything_default", 42)
        kwargs.setdefault("parser_class", ShortErrorParser)
        kwargs.setdefault("auto_configure_optimizers", False)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("trainer_defaults", {
            "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": "logs"}},
            "use_distributed_sampler": False,  # the DataModule shards users across ranks itself
            "max_epochs": -1,  # the stages decide the run's length
            # temp file + fsync + os.replace, with a checksum: a kill never leaves a truncated checkpoint
            "plugins": [{"class_path": "ur4rec.checkpoint_io.AtomicCheckpointIO"}],
        })
        self._lock: FitLock | None = None
        super().__init__(UR4RecModule, UR4RecDataModule, *args, **kwargs)

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--run_name", type=str, default="sasrec",
                            help="Names the run: checkpoints/<run_name>/ and the loggers' run name.")
        parser.add_lightning_class_args(TrainingStages, "stages")
        parser.add_lightning_class_args(AdaptiveAlternating, "alternating")
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
        parser.add_lightning_class_args(FitSummary, "summary")
        parser.add_lightning_class_args(RecommendationWriter, "predictions")  # used by `predict` only
        parser.link_arguments("seed_everything", "data.seed", compute_fn=shuffle_seed)
        parser.link_arguments("data.max_seq_len", "model.max_seq_len")
        parser.link_arguments("model.sasrec.loss", "data.train_negatives", compute_fn=negatives_for_loss)
        parser.link_arguments(("model.retriever", "model.sasrec"), "data.features", compute_fn=uses_features)
        parser.link_arguments("model.retriever", "data.retriever_positions", compute_fn=retriever_positions)
        parser.link_arguments("data.num_items", "model.num_items", apply_on="instantiate")
        parser.link_arguments("data.text_dim", "model.text_dim", apply_on="instantiate")
        parser.link_arguments("data.image_dim", "model.image_dim", apply_on="instantiate")

    def _parse_ckpt_path(self) -> None:
        """``--ckpt_path best`` names the run's best checkpoint; a checkpoint's hyperparameters (verified, and
        upgraded from the earlier flat layout) are applied over the config, as LightningCLI does."""
        config = self.config.get(self.config.get("subcommand") or "", None)
        if config is None or not config.get("ckpt_path"):
            return
        if config.ckpt_path == "best":
            config.ckpt_path = str(best_checkpoint(checkpoint_dir(config.run_name)))
        if not Path(config.ckpt_path).is_file():
            return  # "last" and missing files: Lightning's own handling
        hparams = upgrade_checkpoint(load_checkpoint_file(config.ckpt_path)).get("hyper_parameters", {})
        hparams.pop("_instantiator", None)
        if hparams:
            self.config = self.parser.parse_object({self.config.subcommand: {"model": hparams}}, self.config)

    def before_instantiate_classes(self) -> None:
        """Refuse a ``trainer.max_epochs`` that cannot work; name every logger's run after ``run_name`` unless
        the config names it, and give W&B runs an id kept in ``checkpoints/<run_name>/wandb_id`` so a resumed
        fit continues the same W&B run."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        check_max_epochs(config.trainer.max_epochs)
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

    def before_fit(self) -> None:
        """Refuse a second live fit on the same run folder; give the summary the fit's command line."""
        if not launched_rank():
            self._lock = FitLock(checkpoint_dir(self.config.fit.run_name))
            self._lock.acquire()
        for callback in self.trainer.callbacks:
            if isinstance(callback, FitSummary):
                callback.argv = list(self._argv) if self._argv is not None else None

    def _run_subcommand(self, subcommand: str) -> None:
        try:
            super()._run_subcommand(subcommand)
        finally:
            if self._lock is not None:
                self._lock.release()

    def parse_arguments(self, parser, args) -> None:
        self._argv = args
        super().parse_arguments(parser, args)
        config = self.config.get(self.config.get("subcommand") or "", None) or self.config
        check_seed(config.get("seed_everything"))  # before LightningCLI seeds with it (a traceback when out of range)


def main(args: list[str] | None = None) -> UR4RecCLI | int:
    """Run the CLI; ``args`` replaces ``sys.argv[1:]`` (tests call ``main([...])``).

    Returns the LightningCLI for Lightning's subcommands, or the exit code of a user command.
    """
    argv = sys.argv[1:] if args is None else list(args)
    if argv and argv[0] in USER_COMMANDS:
        return importlib.import_module(USER_COMMANDS[argv[0]]).main(argv[1:])
    for path in config_files(argv):
        check_config_file(path)
    return UR4RecCLI(args=args)
