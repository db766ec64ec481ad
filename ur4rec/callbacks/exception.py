"""Save a checkpoint when training raises, so a crash leaves a resumable state behind."""

from __future__ import annotations

from pathlib import Path

import lightning as L


class ExceptionCheckpoint(L.Callback):
    """Writes ``<dirpath>/on_exception.ckpt`` when fit raises (resume with ``--ckpt_path`` on that file).

    Unlike Lightning's ``OnExceptionCheckpoint`` it does not make a plain ``fit`` resume by itself:
    a new fit starts fresh unless ``--ckpt_path`` says otherwise.
    """

    def __init__(self, dirpath: str = "checkpoints", filename: str = "on_exception"):
        self.dirpath, self.filename = dirpath, filename

    @property
    def ckpt_path(self) -> Path:
        return Path(self.dirpath) / f"{self.filename}.ckpt"

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if trainer.state.fn == "fit":
            trainer.save_checkpoint(str(self.ckpt_path), weights_only=False)
