"""Evaluation slices: users grouped by whether their target is a new item, by the target's training
popularity and by their visible history length (LLM-ESR's groups, popularity counted on training data).

An evaluation batch carries ``target_new`` (B,) bool (only under the new-item protocol), ``target_count``
(B,) training interactions of the target item and ``history_length`` (B,) visible items.
"""

from __future__ import annotations

import torch

POPULARITY = {"pop_0-9": (0, 9), "pop_10-29": (10, 29), "pop_30-99": (30, 99), "pop_100+": (100, None)}
HISTORY = {"hist_0-10": (0, 10), "hist_11-30": (11, 30), "hist_31-100": (31, 100), "hist_101+": (101, None)}
COLD, WARM, COLD_NEW = "cold", "warm", "cold_new"  # COLD_NEW: the cold users ranked among new items only
NEW_ITEM_SLICES = (COLD, WARM, COLD_NEW)
SLICES = (*NEW_ITEM_SLICES, *POPULARITY, *HISTORY)


def _within(values: torch.Tensor, low: int, high: int | None) -> torch.Tensor:
    return (values >= low) & (values <= high) if high is not None else values >= low


def slice_masks(batch: dict[str, torch.Tensor], names: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """name -> (B,) bool: the users of the batch in each slice of ``names`` the batch can tell (the new-item
    slices only under the new-item protocol). Fixed shapes, no host synchronization."""
    masks = {}
    for name in names:
        if name in POPULARITY:
            masks[name] = _within(batch["target_count"], *POPULARITY[name])
        elif name in HISTORY:
            masks[name] = _within(batch["history_length"], *HISTORY[name])
        elif "target_new" in batch:
            masks[name] = ~batch["target_new"] if name == WARM else batch["target_new"]
    return masks
