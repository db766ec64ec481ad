"""Curriculum weighting of the auxiliary losses in the joint stages."""

from __future__ import annotations

import lightning as L

from ur4rec.callbacks.stages import current_stage
from ur4rec.errors import check
from ur4rec.vocabulary import END_TO_END, JOINT_FINETUNE


class CurriculumWeights(L.Callback):
    """Ramps the module's ``aux_loss_scale`` linearly from ``start`` to ``end`` over ``ramp_steps``
    training batches counted from the start of the joint stages; elsewhere it stays 1.

    The auxiliary losses are everything beside the fused loss (SASRec and retriever losses, router
    balance, contrastive, distillation), so the fused objective dominates early or late as chosen.
    """

    def __init__(self, start: float = 0.0, end: float = 1.0, ramp_steps: int = 200,
                 stages: tuple[str, ...] = (JOINT_FINETUNE, END_TO_END)):
        check(ramp_steps >= 1, "CurriculumWeights.ramp_steps", f"must be >= 1, got {ramp_steps}")
        self.start, self.end, self.ramp_steps, self.stages = start, end, ramp_steps, tuple(stages)
        self.steps = 0

    def scale(self) -> float:
        progress = min(1.0, self.steps / self.ramp_steps)
        return self.start + (self.end - self.start) * progress

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if current_stage(trainer) in self.stages:
            pl_module.aux_loss_scale = self.scale()
            self.steps += 1
        else:
            pl_module.aux_loss_scale = 1.0
        pl_module.log("train/aux_loss_scale", pl_module.aux_loss_scale, on_step=True, on_epoch=False)

    def state_dict(self) -> dict:
        return {"steps": self.steps}

    def load_state_dict(self, state_dict: dict) -> None:
        self.steps = state_dict["steps"]
