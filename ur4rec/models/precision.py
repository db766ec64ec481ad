"""Scores computed in float32 whatever the autocast around them: bf16 leaves a few hundred distinct
values over a catalog, and ties count against every tied target."""

from __future__ import annotations

import contextlib

import torch


def full_precision(device: torch.device):
    """A context with autocast off on ``device`` (a no-op where autocast does not exist, e.g. meta tensors)."""
    return torch.autocast(device.type, enabled=False) if torch.amp.is_autocast_available(device.type) \
        else contextlib.nullcontext()
