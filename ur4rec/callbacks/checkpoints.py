"""Checkpoints beside ModelCheckpoint's best: the latest epoch, and the state when training raised."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException


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

    Only a run that got as far as training writes it: a fit that failed while resuming or before its first
    batch never replaces a good file with an untrained model. Unlike Lightning's ``OnExceptionCheckpoint``
    it does not make a plain ``fit`` resume by itself.
    """

    def __init__(self, dirpath: str = "checkpoints", filename: str = "on_exception"):
        super().__init__(dirpath, filename)
        self.training_started = False

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.training_started = True  # after the checkpoint (if any) was restored

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if trainer.state.fn != "fit" or not self.training_started:
            return
        self._save(trainer)
        if isinstance(exception, SIGTERMException):
            rank_zero_info(f"terminated (SIGTERM) at epoch {trainer.current_epoch}; the state is in {self.ckpt_path}: "
                           f"resume with the same fit command plus --ckpt_path {self.ckpt_path}")
