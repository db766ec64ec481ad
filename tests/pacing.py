"""A callback for tests that run ``cli.py`` in a subprocess (``PYTHONPATH`` includes tests/)."""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L


class PacedBatches(L.Callback):
    """Sleeps ``seconds`` after every training batch and writes ``"<epoch> <batch_idx>"`` to ``progress_file``,
    so a test can wait for a given point of training and kill the process there. Touches no RNG."""

    def __init__(self, seconds: float = 0.1, progress_file: str = "progress.txt"):
        self.seconds, self.progress_file = seconds, progress_file

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        Path(self.progress_file).write_text(f"{trainer.current_epoch} {batch_idx}\n")
        time.sleep(self.seconds)
