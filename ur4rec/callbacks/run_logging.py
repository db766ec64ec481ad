"""Run-level logging for dashboards: training throughput, and the resolved CLI config with secrets removed."""

from __future__ import annotations

import os
import re
import time
from typing import Any

import lightning as L
import yaml
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger

SECRET_NAME = re.compile(r"api[_-]?key|token|secret|passw(or)?d|credential", re.IGNORECASE)
REDACTED = "<redacted>"


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    """Values of environment variables named like secrets (``*_API_KEY``, ``*_TOKEN``...), 8+ characters."""
    environ = os.environ if environ is None else environ
    return [value for name, value in environ.items() if SECRET_NAME.search(name) and len(value) >= 8]


def redact(value: Any, secrets: list[str]) -> Any:
    """``value`` with every secret-named key's value and every occurrence of ``secrets`` replaced."""
    if isinstance(value, dict):
        return {k: REDACTED if SECRET_NAME.search(str(k)) and v not in (None, "") else redact(v, secrets)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, secrets) for v in value]
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
    return value


class LogResolvedConfig(L.Callback):
    """Adds the run's resolved CLI config (what ``--print_config`` shows) to W&B's run config under
    ``key``, secrets redacted, so runs can be filtered by any setting (trainer, callbacks, data, model).

    The config comes from LightningCLI's ``SaveConfigCallback``; without the CLI this does nothing.
    CSV loggers are left alone: the CLI already writes ``config.yaml`` beside their metrics.
    """

    def __init__(self, key: str = "cli"):
        self.key = key

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        saver = next((c for c in trainer.callbacks if isinstance(c, SaveConfigCallback)), None)
        loggers = [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]
        if saver is None or not loggers:
            return
        config = yaml.safe_load(saver.parser.dump(saver.config, skip_none=False))
        config = redact(config, secret_values())
        for logger in loggers:
            logger.log_hyperparams({self.key: config})


def batch_size(batch: Any) -> int:
    """Users in a UR4Rec batch (a dict holding ``input`` (B, L))."""
    return int(batch["input"].shape[0])


class Throughput(L.Callback):
    """Logs ``train/samples_per_sec`` and ``train/batches_per_sec`` once per epoch, over all ranks.

    The clock runs from the epoch start to its last training batch's end, so the validation that
    Lightning runs before ``on_train_epoch_end`` is not counted. (Lightning's ``ThroughputMonitor`` logs
    its validation numbers against the validation batch index as ``trainer/global_step``, which
    scrambles W&B's step axis, and it warns on every run without a FLOP count.)
    """

    def __init__(self):
        self._start = self._end = 0.0
        self._samples = self._batches = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start, self._end, self._samples, self._batches = time.perf_counter(), 0.0, 0, 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        self._samples += batch_size(batch)
        self._batches += 1
        self._end = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        elapsed = self._end - self._start
        if self._batches and elapsed > 0:  # every rank runs as many batches (the sampler pads)
            pl_module.log_dict({"train/samples_per_sec": self._samples * trainer.world_size / elapsed,
                                "train/batches_per_sec": self._batches / elapsed}, on_step=False, on_epoch=True)
