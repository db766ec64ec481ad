"""The four UR4Rec training stages as a callback: which loss trains, which optimizer steps, how to score."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch

STAGES = ("pretrain_sasrec", "pretrain_retriever", "joint_finetune", "end_to_end")
# stage -> (optimizers that step by default, scores used for validation)
STAGE_POLICY = {
    "pretrain_sasrec": (("sasrec",), "sasrec"),
    "pretrain_retriever": (("retriever",), "fused"),
    "joint_finetune": (("sasrec",), "fused"),  # AdaptiveAlternating chooses per step
    "end_to_end": (("sasrec", "retriever"), "fused"),
}


class TrainingStages(L.Callback):
    """Runs ``pretrain_sasrec -> pretrain_retriever -> joint_finetune -> end_to_end`` by epochs.

    Args:
        epochs: epochs per stage (a stage with 0 epochs is skipped).
        plateau_patience: if set, a stage also ends early after this many validation epochs without
            a new best ``monitor`` within the stage.
        monitor: the validation metric used for plateaus and per-stage best checkpoints.
        save_dir: where ``best-<stage>.ckpt`` is written (defaults to the ModelCheckpoint folder).
        restore_best: when a stage ends, reload the weights of its best validation epoch
            (``best-<stage>.ckpt``) so the next stage starts from them rather than from the last epoch.
            (The last stage's best weights stay in ``best-<stage>.ckpt``; the run ends on its last epoch.)
        finetune_sasrec_lr: SASRec's learning rate in the stages after ``pretrain_sasrec`` (None: the
            optimizer's own), so the joint stages refine the pretrained SASRec instead of moving it away.

    A fit whose SASRec comes pretrained (``model.sasrec_checkpoint``) skips ``pretrain_sasrec``.
    The module's ``stage``, ``stepping`` and ``score_mode`` attributes are set at each epoch start;
    ``requires_grad`` is never touched (DDP-safe). Stage, start step/epoch, the transition log and
    per-stage bests live in the checkpoint. Training stops when the last stage ends.
    """

    def __init__(self, pretrain_sasrec: int = 20, pretrain_retriever: int = 10, joint_finetune: int = 10,
                 end_to_end: int = 5, plateau_patience: int | None = None, monitor: str = "val/ndcg@10",
                 save_dir: str | None = None, restore_best: bool = False, finetune_sasrec_lr: float | None = None):
        self.epochs = {"pretrain_sasrec": pretrain_sasrec, "pretrain_retriever": pretrain_retriever,
                       "joint_finetune": joint_finetune, "end_to_end": end_to_end}
        if any(v < 0 for v in self.epochs.values()) or not any(self.epochs.values()):
            raise ValueError(f"stage epochs must be >= 0 and not all 0, got {self.epochs}")
        self.plateau_patience, self.monitor, self.save_dir = plateau_patience, monitor, save_dir
        self.restore_best = restore_best
        if finetune_sasrec_lr is not None and finetune_sasrec_lr <= 0:
            raise ValueError(f"finetune_sasrec_lr must be > 0, got {finetune_sasrec_lr}")
        self.finetune_sasrec_lr = finetune_sasrec_lr
        self.stage_index = self._next_stage(-1)
        self.stage_start_epoch, self.stage_start_step = 0, 0
        self.transitions: list[dict] = []
        self.best: dict[str, float] = {}
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
        pl_module.stage = self.stage
        pl_module.stepping, pl_module.score_mode = STAGE_POLICY[self.stage]
        if self.finetune_sasrec_lr is not None and self.stage != "pretrain_sasrec" and trainer.optimizers:
            for group in trainer.optimizers[0].param_groups:  # SASRec's optimizer comes first
                group["lr"] = self.finetune_sasrec_lr

    # --------------------------------------------------------------------------------- hooks

    def on_fit_start(self, trainer, pl_module) -> None:
        if self.finetune_sasrec_lr is not None and getattr(pl_module, "scheduler_factories", {}).get("sasrec"):
            raise ValueError("TrainingStages.finetune_sasrec_lr and model.sasrec_scheduler both set SASRec's learning "
                             "rate; configure one of them")
        if self.restore_best and self._best_path(trainer) is None:
            raise ValueError("TrainingStages(restore_best=True) needs save_dir or a ModelCheckpoint folder")
        if not self.transitions and getattr(pl_module.hparams, "sasrec_checkpoint", None) and any(
                self.epochs[stage] for stage in STAGES[1:]):
            self.epochs["pretrain_sasrec"] = 0  # SASRec comes pretrained (model.sasrec_checkpoint)
            self.stage_index = self._next_stage(-1)
        if trainer.max_epochs is None or trainer.max_epochs < 0 or trainer.max_epochs > self.total_epochs:
            trainer.fit_loop.max_epochs = self.total_epochs
        if not self.transitions:
            self.transitions.append({"stage": self.stage, "epoch": 0, "step": 0})
        if self.stage is not None:
            self._apply(trainer, pl_module)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if self.stage is not None and trainer.current_epoch - self.stage_start_epoch >= self.epochs[self.stage]:
            self._advance(trainer)
        if self.stage is None:
            trainer.should_stop = True
            return
        self._apply(trainer, pl_module)

    def _advance(self, trainer) -> None:
        if self.restore_best and self.stage in self.best:
            self._load_best_weights(trainer)
        self.stage_index = self._next_stage(self.stage_index)
        self.stage_start_epoch, self.stage_start_step = trainer.current_epoch, trainer.global_step
        self.epochs_without_improvement = 0
        if self.stage is not None:
            self.transitions.append({"stage": self.stage, "epoch": trainer.current_epoch, "step": trainer.global_step})

    def _best_path(self, trainer) -> Path | None:
        directory = self.save_dir or (trainer.checkpoint_callback.dirpath if trainer.checkpoint_callback else None)
        return Path(directory) / f"best-{self.stage}.ckpt" if directory else None

    def _load_best_weights(self, trainer) -> None:
        """Every rank reads the file rank 0 wrote (``save_checkpoint`` ends with a barrier)."""
        state = torch.load(self._best_path(trainer), map_location=trainer.lightning_module.device, weights_only=True)["state_dict"]
        trainer.lightning_module.load_state_dict(state)

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.state.fn != "fit" or trainer.sanity_checking or self.stage is None \
                or self.monitor not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.monitor])
        if value > self.best.get(self.stage, float("-inf")):
            self.best[self.stage] = value
            self.epochs_without_improvement = 0
            path = self._best_path(trainer)
            if path is not None:
                trainer.save_checkpoint(str(path), weights_only=False)
        else:
            self.epochs_without_improvement += 1
        if self.plateau_patience is not None and self.epochs_without_improvement >= self.plateau_patience:
            # end the stage at this epoch: the next epoch start advances
            self.epochs[self.stage] = trainer.current_epoch + 1 - self.stage_start_epoch

    # --------------------------------------------------------------------------------- checkpoint state

    def state_dict(self) -> dict:
        return {"stage_index": self.stage_index, "stage_start_epoch": self.stage_start_epoch,
                "stage_start_step": self.stage_start_step, "transitions": list(self.transitions),
                "best": dict(self.best), "epochs_without_improvement": self.epochs_without_improvement,
                "epochs": dict(self.epochs)}

    def load_state_dict(self, state_dict: dict) -> None:
        for key, value in state_dict.items():
            setattr(self, key, value)
