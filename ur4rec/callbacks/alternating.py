"""Adaptive alternating: during joint finetuning, choose which module's optimizer steps."""

from __future__ import annotations

from collections import deque

import lightning as L

from ur4rec.callbacks.stages import current_stage
from ur4rec.errors import check
from ur4rec.vocabulary import JOINT_FINETUNE, MODULES, RETRIEVER, SASREC

MODES = ("adaptive", "fixed", "both")


def relative_change(window: list[float]) -> float:
    """|first - last| / |first| over a loss window (inf when the first loss is 0)."""
    first, last = window[0], window[-1]
    return abs(first - last) / abs(first) if first else float("inf")


class AdaptiveAlternating(L.Callback):
    """Steps one module at a time in the ``joint_finetune`` stage and switches when its loss stalls.

    ``adaptive``: after at least ``min_steps`` consecutive steps on the active module, switch when the
    relative change of its loss over the last ``window`` steps falls below ``switch_threshold``.
    ``fixed``: switch after every step. ``both``: both optimizers step every time (no alternation).

    A module's loss is its own next-item loss (SASRec's, or the retriever's) reduced over all ranks,
    so every rank takes the same decision. Statistics (active module, switch count, steps per module, switch log) are logged,
    exposed through :meth:`statistics` and restored on resume.
    """

    def __init__(self, mode: str = "adaptive", min_steps: int = 5, switch_threshold: float = 0.01,
                 window: int = 5, start_with: str = SASREC, stage: str = JOINT_FINETUNE):
        check(mode in MODES, "alternating.mode", f"must be one of {MODES}, got {mode!r}")
        check(start_with in MODULES, "alternating.start_with", f"must be one of {MODULES}, got {start_with!r}")
        check(window >= 2, "alternating.window", f"must be >= 2, got {window}")
        check(min_steps >= 1, "alternating.min_steps", f"must be >= 1, got {min_steps}")
        check(switch_threshold >= 0, "alternating.switch_threshold",  # False for NaN too
              f"must be >= 0 (a relative change of the loss), got {switch_threshold}")
        self.mode, self.min_steps, self.switch_threshold, self.window = mode, min_steps, switch_threshold, window
        self.stage = stage
        self.active = start_with
        self.steps_on_active = 0
        self.switches = 0
        self.steps = {m: 0 for m in MODULES}
        self.history = {m: deque(maxlen=window) for m in MODULES}
        self.switch_log: list[dict] = []  # {"step": global step, "from": module, "to": module}

    # --------------------------------------------------------------------------------- decision rule

    def record(self, losses: dict[str, float] | float, global_step: int = 0) -> None:
        """Account one step of the active module(s) with their own losses; switch if the rule says so.

        ``losses`` maps module -> loss (a single float stands for every module's loss)."""
        stepped = MODULES if self.mode == "both" else (self.active,)
        for module in stepped:
            self.steps[module] += 1
            self.history[module].append(losses if isinstance(losses, float | int) else losses[module])
        if self.mode == "both":
            return
        self.steps_on_active += 1
        if self.mode == "fixed":
            self._switch(global_step)
            return
        window = list(self.history[self.active])
        if self.steps_on_active >= self.min_steps and len(window) >= self.window \
                and relative_change(window) < self.switch_threshold:
            self._switch(global_step)

    def _switch(self, global_step: int) -> None:
        new = MODULES[1 - MODULES.index(self.active)]
        self.switch_log.append({"step": global_step, "from": self.active, "to": new})
        self.active, self.steps_on_active = new, 0
        self.switches += 1
        self.history[new].clear()  # its old losses predate the other module's updates

    def stepping(self) -> tuple[str, ...]:
        return MODULES if self.mode == "both" else (self.active,)

    def statistics(self) -> dict:
        return {"active": self.active, "switches": self.switches, "steps": dict(self.steps),
                "switch_log": list(self.switch_log)}

    # --------------------------------------------------------------------------------- Lightning hooks

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if current_stage(trainer) == self.stage:
            pl_module.stepping = self.stepping()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if current_stage(trainer) != self.stage or not pl_module.last_losses:
            return
        # reduced over ranks, so every rank takes the same decision
        losses = {m: float(trainer.strategy.reduce(v, reduce_op="mean")) for m, v in pl_module.last_losses.items()}
        self.record(losses, trainer.global_step)
        pl_module.log_dict({
            "alternating/active_is_sasrec": float(self.active == SASREC),
            "alternating/switches": float(self.switches),
            "alternating/steps_sasrec": float(self.steps[SASREC]),
            "alternating/steps_retriever": float(self.steps[RETRIEVER]),
        }, on_step=True, on_epoch=False)

    # --------------------------------------------------------------------------------- checkpoint state

    def state_dict(self) -> dict:
        return {"active": self.active, "steps_on_active": self.steps_on_active, "switches": self.switches,
                "steps": dict(self.steps), "history": {m: list(h) for m, h in self.history.items()},
                "switch_log": list(self.switch_log)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.active = state_dict["active"]
        self.steps_on_active = state_dict["steps_on_active"]
        self.switches = state_dict["switches"]
        self.steps = dict(state_dict["steps"])
        self.history = {m: deque(state_dict["history"][m], maxlen=self.window) for m in MODULES}
        self.switch_log = list(state_dict["switch_log"])
