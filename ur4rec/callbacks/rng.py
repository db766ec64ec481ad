"""Save the global RNG states with each checkpoint and restore them when training resumes."""

from __future__ import annotations

import random

import lightning as L
import numpy as np
import torch


class RNGStateCheckpoint(L.Callback):
    """Makes a resumed fit draw the same dropout masks and negatives as an uninterrupted one.

    The states are captured when a checkpoint is written and re-applied at ``on_train_start``, i.e.
    after the sanity check, so nothing run before training resumes can shift them.
    """

    def __init__(self):
        self._pending: dict | None = None

    def state_dict(self) -> dict:
        state = {
            "torch": torch.get_rng_state(),
            "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
            "numpy_pos": int(np.random.get_state()[2]),
            "python": [int(v) for v in random.getstate()[1]],
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        self._pending = state_dict

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._pending is None:
            return
        state, self._pending = self._pending, None
        torch.set_rng_state(state["torch"])
        np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
        random.setstate((3, tuple(state["python"]), None))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
