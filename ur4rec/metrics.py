"""Ranking metrics as DDP-safe torchmetrics (sum and count states), fed with 0-based target ranks."""

from __future__ import annotations

import math

import torch
from torchmetrics import Metric


def full_ranking_ranks(scores: torch.Tensor, target: torch.Tensor, history: torch.Tensor,
                       among: torch.Tensor | None = None) -> torch.Tensor:
    """0-based rank of each target among all items (or the items ``among`` (N + 1,) bool marks), with the
    visible history masked.

    scores: (B, N + 1) with column 0 = padding; target: (B,); history: (B, H) item ids, 0-padded.
    Items scoring equal to the target count as ranked above it (ties never favour the target);
    the target itself is never masked, even if it also appears in the history. A NaN target score
    ranks last and NaN item scores rank above the target.
    """
    target_score = scores.gather(1, target[:, None]).nan_to_num(nan=float("-inf"))  # (B, 1)
    competing = torch.ones_like(scores, dtype=torch.bool).scatter_(1, history, False)  # (B, N + 1)
    competing[:, 0] = False
    if among is not None:
        competing &= among[None, :]
    competing.scatter_(1, target[:, None], True)
    return (((scores >= target_score) | scores.isnan()) & competing).sum(1) - 1  # (B,)


def sampled_ranks(scores: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """0-based rank of candidate 0 (the target) among ``candidates`` (B, 1 + S); ties count against it."""
    candidate_scores = scores.gather(1, candidates)  # (B, 1 + S)
    target_score = candidate_scores[:, :1].nan_to_num(nan=float("-inf"))
    others = candidate_scores[:, 1:]
    return ((others >= target_score) | others.isnan()).sum(1)  # (B,)


class _RankMetric(Metric):
    """Mean of a per-user gain computed from the target's 0-based rank; subclasses define ``gain``, and
    those with a cut-off read it from ``k``."""

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, k: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.k = k  # the cut-off of the metrics that have one
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, ranks: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Add the gains of ``ranks`` (B,), or of the users ``mask`` (B,) bool keeps (no host synchronization)."""
        if mask is None:
            self.total += self.gain(ranks).to(torch.float64).sum()
            self.count += ranks.numel()
        else:
            self.total += (self.gain(ranks).to(torch.float64) * mask).sum()
            self.count += mask.sum()

    def compute(self) -> torch.Tensor:
        return (self.total / self.count.clamp(min=1)).float()


class HitRate(_RankMetric):
    """Share of users whose target ranks in the top ``k``."""

    def gain(self, ranks: torch.Tensor) -> torch.Tensor:
        return (ranks < self.k).float()


class NDCG(_RankMetric):
    """Normalized DCG at ``k`` with one relevant item: 1 / log2(rank + 2) inside the top ``k``."""

    def gain(self, ranks: torch.Tensor) -> torch.Tensor:
        return torch.where(ranks < self.k, math.log(2) / torch.log(ranks.float() + 2), 0.0)


class MRR(_RankMetric):
    """Mean reciprocal rank over the whole ranking, or with ``k`` only inside the top ``k`` (MRR@K)."""

    def gain(self, ranks: torch.Tensor) -> torch.Tensor:
        reciprocal = 1.0 / (ranks.float() + 1)
        return reciprocal if self.k is None else torch.where(ranks < self.k, reciprocal, 0.0)


class Users(_RankMetric):
    """How many users were counted (the size of an evaluation slice)."""

    def gain(self, ranks: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(ranks, dtype=torch.float64)

    def compute(self) -> torch.Tensor:
        return self.count.float()


def ranking_metrics(ks: tuple[int, ...] = (5, 10, 20), suffix: str = "") -> dict[str, _RankMetric]:
    """``{"hit@5": HitRate(5), ..., "ndcg@20": NDCG(20), "mrr@20": MRR(20), "mrr": MRR()}`` with ``suffix`` on
    every name."""
    metrics: dict[str, _RankMetric] = {}
    for k in ks:
        metrics[f"hit@{k}{suffix}"] = HitRate(k)
        metrics[f"ndcg@{k}{suffix}"] = NDCG(k)
        metrics[f"mrr@{k}{suffix}"] = MRR(k)
    metrics[f"mrr{suffix}"] = MRR()
    return metrics
