"""Checkpoints beside ModelCheckpoint's best: the latest epoch, and the state when training raised."""

from __future__ import annotations

from pathlib import Path

import lightning as L


class _FileCheckpoint(L.Callback):
    def __init__(self, dirpath: str = "checkpoints", filename: str = "last"):
        self.dirpath, self.filename = dirpath, filename

    @property
    def ckpt_path(self) -> Path:
        return Path(self.dirpath) / f"{self.filename}.ckpt"

    def _save(self, trainer: L.Trainer) -> None:
        trainer.save_checkpoint(str(self.ckpt_path), weights_only=False)


class LatestCheckpoint(_FileCheckpoint):
    """Writes ``<dirpath>/last.ckpt`` at the end of every training epoch (after its validation).

    Lightning 2.6's ``ModelCheckpoint(save_last=True)`` only refreshes ``last.ckpt`` when it also
    saves a best checkpoint, so ``--ckpt_path last`` could resume from an older epoch; this keeps
    ``last`` the latest. ``--ckpt_path last`` finds it through ModelCheckpoint's folder.
    """

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._save(trainer)


class ExceptionCheckpoint(_FileCheckpoint):
    """Writes ``<dirpath>/on_exception.ckpt`` when fit raises (resume with ``--ckpt_path`` on that file).

    Unlike Lightning's ``OnExceptionCheckpoint`` it does not make a plain ``fit`` resume by itself:
    a new fit starts fresh unless ``--ckpt_path`` says otherwise.
    """

    def __init__(self, dirpath: str = "checkpoints", filename: str = "on_exception"):
        super().__init__(dirpath, filename)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if trainer.state.fn == "fit":
            self._save(trainer)
