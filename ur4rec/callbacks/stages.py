"""The UR4Rec training stages as a callback: it owns the stage policy and its checkpointed state."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from ur4rec.callbacks.run_summary import shown
from ur4rec.checkpoint_io import load_checkpoint_file, upgrade_checkpoint
from ur4rec.errors import ConfigError, check
from ur4rec.vocabulary import PRETRAIN_SASREC, SASREC, STAGE_POLICY, STAGES


def current_stage(trainer: L.Trainer | None) -> str | None:
    """The stage the trainer's :class:`TrainingStages` is in (None without one, or once it is done)."""
    for callback in getattr(trainer, "callbacks", None) or ():
        if isinstance(callback, TrainingStages):
            return callback.stage
    return None


class TrainingStages(L.Callback):
    """Runs ``pretrain_sasrec -> pretrain_retriever -> joint_finetune -> end_to_end`` by epochs.

    Each stage sets the module's switches from ``vocabulary.STAGE_POLICY`` (objective, stepping
    optimizers, validation score mode). A model without a retriever runs ``pretrain_sasrec`` only, so
    SASRec alone is the same callback with one stage (``plateau_patience`` is its early stopping).

    Args:
        pretrain_sasrec, pretrain_retriever, joint_finetune, end_to_end: epochs per stage (0 skips it; with
            ``plateau_patience`` these are maxima).
        plateau_patience: a stage also ends after this many validation epochs without a new best ``monitor``.
        monitor: the validation metric for plateaus and per-stage best checkpoints.
        save_dir: where ``best-<stage>.ckpt`` is written (default: the ModelCheckpoint folder).
        restore_best: when a stage ends, reload its best validation weights so the next starts from them.
        finetune_sasrec_lr: SASRec's learning rate after ``pretrain_sasrec`` (None: the optimizer's own).

    ``requires_grad`` is never touched (DDP-safe). Stage, start epoch/step, transitions and per-stage bests
    live in the checkpoint; every checkpoint also records the score mode its validation used, which
    ``test`` applies unless ``model.score_mode`` is set.
    """

    def __init__(self, pretrain_sasrec: int = 200, pretrain_retriever: int = 20, joint_finetune: int = 10,
                 end_to_end: int = 5, plateau_patience: int | None = 30, monitor: str = "val/ndcg@10",
                 save_dir: str | None = None, restore_best: bool = True, finetune_sasrec_lr: float | None = 1e-4):
        self.epochs = {"pretrain_sasrec": pretrain_sasrec, "pretrain_retriever": pretrain_retriever,
                       "joint_finetune": joint_finetune, "end_to_end": end_to_end}
        for stage, epochs in self.epochs.items():
            check(epochs >= 0, f"stages.{stage}", f"must be >= 0 epochs, got {epochs}")
        check(any(self.epochs.values()), "stages", "every stage has 0 epochs: nothing would train")
        check(plateau_patience is None or plateau_patience > 0, "stages.plateau_patience",
              f"must be > 0 or null, got {plateau_patience}")
        check(finetune_sasrec_lr is None or finetune_sasrec_lr > 0, "stages.finetune_sasrec_lr",
              f"must be > 0 or null, got {finetune_sasrec_lr}")
        self.plateau_patience, self.monitor, self.save_dir = plateau_patience, monitor, save_dir
        self.restore_best, self.finetune_sasrec_lr = restore_best, finetune_sasrec_lr
        self.stage_index = self._next_stage(-1)
        self.stage_start_epoch, self.stage_start_step = 0, 0
        self.transitions: list[dict] = []
        self.best: dict[str, float] = {}
        self.best_epoch: dict[str, int] = {}
        self.epochs_without_improvement = 0

    @property
    def stage(self) -> str | None:
        return STAGES[self.stage_index] if self.stage_index < len(STAGES) else None

    @property
    def total_epochs(self) -> int:
        return sum(self.epochs.values())

    def _next_stage(self, index: int) -> int:
        index += 1
        while index < len(STAGES) and self.epochs[STAGES[index]] == 0:
            index += 1
        return index

    def _apply(self, trainer, pl_module) -> None:
        policy = STAGE_POLICY[self.stage]
        pl_module.objective, pl_module.stepping, pl_module.score_mode = policy.objective, policy.stepping, \
            policy.score_mode
        pl_module.curve_prefix = f"val_{self.stage}" if pl_module.net.retriever is not None else None
        if self.finetune_sasrec_lr is not None and self.stage != PRETRAIN_SASREC and trainer.optimizers:
            for group in pl_module.optimizer_of(SASREC).param_groups:
                group["lr"] = self.finetune_sasrec_lr

    def _announce_start(self, trainer) -> None:
        rank_zero_info(f"stage {self.stage} starts at epoch {trainer.current_epoch} (at most {self.epochs[self.stage]} "
                       f"epochs): {STAGE_POLICY[self.stage].summary}")

    # --------------------------------------------------------------------------------- hooks

    def on_fit_start(self, trainer, pl_module) -> None:
        if self.finetune_sasrec_lr is not None and pl_module.scheduler_factories.get(SASREC):
            raise ConfigError("stages.finetune_sasrec_lr and model.sasrec_scheduler both set SASRec's learning rate; "
                              "set one of them to null")
        if self.restore_best and self._best_path(trainer) is None:
            raise ConfigError("stages.restore_best needs stages.save_dir or a ModelCheckpoint folder")
        if not self.transitions:
            if pl_module.net.retriever is None:  # SASRec alone: the other stages need a retriever
                self.epochs.update({stage: 0 for stage in STAGES[1:]})
                check(self.epochs[PRETRAIN_SASREC] > 0, f"stages.{PRETRAIN_SASREC}",
                      "0 epochs, and SASRec alone (no model.retriever) runs no other stage: nothing would train")
            elif pl_module.hparams.sasrec_checkpoint and any(self.epochs[stage] for stage in STAGES[1:]):
                self.epochs[PRETRAIN_SASREC] = 0  # SASRec comes pretrained (model.sasrec_checkpoint)
            self.stage_index = self._next_stage(-1)
        self._check_max_epochs(trainer)
        if not self.transitions:
            self.transitions.append({"stage": self.stage, "epoch": 0, "step": 0})
        if self.stage is not None:
            self._apply(trainer, pl_module)
            self._announce_start(trainer)

    def _check_max_epochs(self, trainer) -> None:
        """Let the stages decide the run's length, and warn when ``trainer.max_epochs`` cuts stages off."""
        if trainer.max_epochs is None or trainer.max_epochs < 0 or trainer.max_epochs > self.total_epochs:
            trainer.fit_loop.max_epochs = self.total_epochs
            return
        start, cut = 0, []
        for stage in STAGES:
            if self.epochs[stage] and start >= trainer.max_epochs:
                cut.append(stage)
            start += self.epochs[stage]
        if cut:
            rank_zero_warn(f"trainer.max_epochs={trainer.max_epochs} ends training before stage(s) {', '.join(cut)} "
                           "run; shorten stages instead, e.g. --stages.pretrain_sasrec 2 (and leave max_epochs at -1)")

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if self.stage is not None and trainer.current_epoch - self.stage_start_epoch >= self.epochs[self.stage]:
            self._advance(trainer)
        if self.stage is None:
            trainer.should_stop = True
            return
        self._apply(trainer, pl_module)

    def _advance(self, trainer) -> None:
        self._announce_end(trainer)
        if self.restore_best and self.stage in self.best and self._has_several_stages():
            self._load_best_weights(trainer)
        self.stage_index = self._next_stage(self.stage_index)
        self.stage_start_epoch, self.stage_start_step = trainer.current_epoch, trainer.global_step
        self.epochs_without_improvement = 0
        if self.stage is not None:
            self.transitions.append({"stage": self.stage, "epoch": trainer.current_epoch, "step": trainer.global_step})
            self._announce_start(trainer)

    def on_fit_end(self, trainer, pl_module) -> None:
        if self.stage is not None and self.stage in self.best:
            self._announce_end(trainer)

    def _announce_end(self, trainer) -> None:
        if self.stage not in self.best:
            rank_zero_info(f"stage {self.stage} ends: no validation epoch")
            return
        path = self._best_path(trainer) if self._has_several_stages() else None
        rank_zero_info(f"stage {self.stage} ends: best {self.monitor} {self.best[self.stage]:.4f} at epoch "
                       f"{self.best_epoch.get(self.stage, '?')}" + (f", weights in {shown(path)}" if path else ""))

    def _has_several_stages(self) -> bool:
        return sum(1 for stage in STAGES if self.epochs[stage]) > 1

    def _best_path(self, trainer, stage: str | None = None) -> Path | None:
        directory = self.save_dir or (trainer.checkpoint_callback.dirpath if trainer.checkpoint_callback else None)
        return Path(directory) / f"best-{stage or self.stage}.ckpt" if directory else None

    def _load_best_weights(self, trainer) -> None:
        """Every rank reads the file rank 0 wrote (``save_checkpoint`` ends with a barrier)."""
        checkpoint = upgrade_checkpoint(load_checkpoint_file(self._best_path(trainer),
                                                             trainer.lightning_module.device))
        trainer.lightning_module.load_state_dict(checkpoint["state_dict"])

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.state.fn != "fit" or trainer.sanity_checking or self.stage is None \
                or self.monitor not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.monitor])
        if value > self.best.get(self.stage, float("-inf")):
            self.best[self.stage], self.best_epoch[self.stage] = value, trainer.current_epoch
            self.epochs_without_improvement = 0
            path = self._best_path(trainer)
            if path is not None and self._has_several_stages():  # alone, ModelCheckpoint's best is the stage's
                trainer.save_checkpoint(str(path), weights_only=False)
        else:
            self.epochs_without_improvement += 1
        if self.plateau_patience is not None and self.epochs_without_improvement >= self.plateau_patience:
            # end the stage at this epoch: the next epoch start advances
            self.epochs[self.stage] = trainer.current_epoch + 1 - self.stage_start_epoch

    # --------------------------------------------------------------------------------- checkpoint state

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        if self.stage is not None:
            checkpoint["score_mode"] = STAGE_POLICY[self.stage].score_mode  # what this checkpoint validated with

    def state_dict(self) -> dict:
        return {"stage_index": self.stage_index, "stage_start_epoch": self.stage_start_epoch,
                "stage_start_step": self.stage_start_step, "transitions": list(self.transitions),
                "best": dict(self.best), "best_epoch": dict(self.best_epoch),
                "epochs_without_improvement": self.epochs_without_improvement, "epochs": dict(self.epochs)}

    def load_state_dict(self, state_dict: dict) -> None:
        for key, value in state_dict.items():
            setattr(self, key, value)
