"""The lines a finished ``fit`` ends with: best validation metrics, where the checkpoints and metrics are,
and the command that tests the best checkpoint."""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_info

SHOWN = ("val/ndcg@10", "val/hit@10", "val/ndcg@20", "val/hit@20", "val/mrr")


def test_command(argv: list[str]) -> str:
    """``argv`` of a ``cli.py fit`` run turned into the ``test`` of its best checkpoint."""
    args, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--ckpt_path":
            skip = True
            continue
        if not arg.startswith("--ckpt_path="):
            args.append(arg)
    if "fit" in args:
        args[args.index("fit")] = "test"
    return "python cli.py " + " ".join(shlex.quote(a) for a in args + ["--ckpt_path", "best"])


def shown(path: str | os.PathLike) -> str:
    """``path`` relative to the working folder when it lies inside it (what a user types), else as given."""
    absolute = Path(path).absolute()
    return str(absolute.relative_to(Path.cwd())) if absolute.is_relative_to(Path.cwd()) else str(path)


class FitSummary(L.Callback):
    """Keeps the validation metrics of the best epoch by ``monitor``, logs ``time/fit_seconds`` (wall-clock
    seconds of training so far, summed over resumed runs) at every validation, and prints the summary at
    the end of fit."""

    def __init__(self, monitor: str = "val/ndcg@10"):
        self.monitor = monitor
        self.best: dict[str, float] = {}
        self.argv: list[str] | None = None  # the fit's command line (set by the CLI; default sys.argv)
        self.seconds_before = 0.0  # training seconds of the runs this one resumed
        self._start = time.perf_counter()

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def elapsed(self) -> float:
        return self.seconds_before + time.perf_counter() - self._start

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking and trainer.state.fn == "fit":
            pl_module.log("time/fit_seconds", self.elapsed(), on_step=False, on_epoch=True)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = trainer.callback_metrics
        if trainer.sanity_checking or trainer.state.fn != "fit" or self.monitor not in metrics:
            return
        if float(metrics[self.monitor]) > self.best.get(self.monitor, float("-inf")):
            self.best = {k: float(v) for k, v in metrics.items() if k.startswith("val/")}
            self.best["epoch"] = trainer.current_epoch

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        lines = ["fit finished"]
        if self.best:
            values = ", ".join(f"{k} {self.best[k]:.4f}" for k in SHOWN if k in self.best)
            lines.append(f"  best validation (epoch {self.best['epoch']}): {values}")
        checkpoint = trainer.checkpoint_callback
        if checkpoint is not None and checkpoint.best_model_path:
            lines.append(f"  best checkpoint: {shown(checkpoint.best_model_path)}")
        if checkpoint is not None and checkpoint.dirpath:
            lines.append(f"  last checkpoint: {shown(Path(checkpoint.dirpath) / 'last.ckpt')}")
        csv = next((logger for logger in trainer.loggers if isinstance(logger, CSVLogger)), None)
        if csv is not None:
            lines.append(f"  metrics: {shown(Path(csv.log_dir) / 'metrics.csv')}")
        lines.append(f"  next: {test_command(self.argv if self.argv is not None else sys.argv[1:])}")
        rank_zero_info("\n".join(lines))

    def state_dict(self) -> dict:
        return {"best": dict(self.best), "seconds": self.elapsed()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.best, self.seconds_before = dict(state_dict["best"]), float(state_dict.get("seconds", 0.0))
