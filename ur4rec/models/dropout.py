"""Dropout whose masks are cheap to draw on a CPU.

On a CPU, ``nn.Dropout`` draws its mask with ``bernoulli_``: one double from the generator per element,
about 5 ms for a (128, 50, 64) batch on two cores, and about half of a SASRec training step in all. Here
each element takes 16 bits of a 64-bit draw, and the mask costs a quarter of that. The distribution is the
same, except that the drop probability is rounded to a multiple of 2^-16 (0.2 becomes 0.199997), and the
kept values are scaled by the exact inverse of the rounded keep probability. Other devices keep
``F.dropout``, which is fused there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LEVELS = 2 ** 16  # the resolution of the drop probability


def keep_mask(shape: torch.Size, p: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Inverted-dropout mask (shape): 0 with probability ``round(p * 2^16) / 2^16``, else 1 / keep probability."""
    dropped_levels = round(p * LEVELS)
    if dropped_levels >= LEVELS:
        return torch.zeros(shape, dtype=dtype, device=device)
    numel = shape.numel()
    words = torch.randint(-2 ** 63, 2 ** 63 - 1, (-(-numel // 4),), dtype=torch.int64, device=device)
    draws = words.view(torch.int16)[:numel].view(shape)  # uniform over -2^15 .. 2^15 - 1
    keep = draws >= dropped_levels - LEVELS // 2
    return keep.to(dtype) * (LEVELS / (LEVELS - dropped_levels))


def draws_cheap_masks(x: torch.Tensor) -> bool:
    """Whether dropout on ``x`` uses :func:`keep_mask` (on a CPU) rather than the fused kernels."""
    return x.device.type == "cpu"


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """``F.dropout(x, p, training)``, with the mask from :func:`keep_mask` on a CPU."""
    if not training or p == 0:
        return x
    if not draws_cheap_masks(x):
        return F.dropout(x, p, True)
    return x * keep_mask(x.shape, p, x.dtype, x.device)


class Dropout(nn.Dropout):
    """``nn.Dropout`` with :func:`dropout`'s cheaper masks on a CPU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)
