"""Fusion of SASRec and retriever scores on a common scale (log-probabilities over the catalog)."""

from __future__ import annotations

import math

import torch
from torch import nn

MIN_LOG_PROB = -1e4


def _logit(p: float) -> float:
    """log(p / (1 - p)), with 0 and 1 mapped to -20 / 20 (sigmoid of those is 0 or 1 in float32)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"sasrec_weight must be in [0, 1], got {p}")
    return math.log(p / (1 - p)) if 0 < p < 1 else math.copysign(20, p - 0.5)


class ScoreFusion(nn.Module):
    """``w * log_softmax(sasrec) + (1 - w) * log_softmax(retriever)``, a weighted product of experts.

    Log-softmax puts both score sets on the same scale whatever their raw ranges. ``w`` is fixed
    (``learned=False``) or learned through a sigmoid starting at ``sasrec_weight``.
    """

    def __init__(self, sasrec_weight: float = 0.7, learned: bool = False):
        super().__init__()
        self.learned = learned
        logit = torch.tensor(_logit(sasrec_weight))
        if learned:
            self.weight_logit = nn.Parameter(logit)
        else:
            self.register_buffer("weight_logit", logit, persistent=False)

    @property
    def sasrec_weight(self) -> torch.Tensor:
        return torch.sigmoid(self.weight_logit)

    @torch.no_grad()
    def set_sasrec_weight(self, sasrec_weight: float) -> None:
        """Overwrite the SASRec share (e.g. to compare weights on validation, ``python -m benchmarks fusion_sweep``)."""
        self.weight_logit.fill_(_logit(sasrec_weight))

    def parts(self, sasrec_scores: torch.Tensor, retriever_scores: torch.Tensor,
              seen: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The SASRec and retriever terms of the fused score, each (..., N + 1) with column 0 = -inf.

        Only the real items (columns 1..N) enter the arithmetic, and log-probabilities are floored at
        ``MIN_LOG_PROB`` (an item no expert can score is -inf), so no -inf ever meets the weight. ``seen``
        (N + 1,) bool marks the items SASRec trained on; for any other item (a new one) the retriever's
        log-probability stands in for SASRec's, so an untrained ID embedding never decides its rank.
        """
        w = self.sasrec_weight
        retriever_log_prob = retriever_scores[..., 1:].log_softmax(-1).clamp(min=MIN_LOG_PROB)
        sasrec_log_prob = sasrec_scores[..., 1:].log_softmax(-1).clamp(min=MIN_LOG_PROB)
        if seen is not None:
            sasrec_log_prob = torch.where(seen[1:], sasrec_log_prob, retriever_log_prob)
        sasrec, retriever = w * sasrec_log_prob, (1 - w) * retriever_log_prob
        padding = sasrec.new_full((*sasrec.shape[:-1], 1), float("-inf"))
        return torch.cat([padding, sasrec], dim=-1), torch.cat([padding, retriever], dim=-1)

    def forward(self, sasrec_scores: torch.Tensor, retriever_scores: torch.Tensor,
                seen: torch.Tensor | None = None) -> torch.Tensor:
        """Both (..., N + 1), column 0 = padding -> fused log-scores (..., N + 1) with column 0 = -inf."""
        sasrec, retriever = self.parts(sasrec_scores, retriever_scores, seen)
        return sasrec + retriever
