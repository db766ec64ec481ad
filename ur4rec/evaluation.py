"""Ranking evaluation of one split: all users (full and sampled protocols) and every slice of users.

:class:`SplitEvaluation` holds the DDP-safe metrics of a split and turns one batch of scores into their
updates; the LightningModule logs what it returns under ``<split>/<metric>`` and ``<split>_<slice>/<metric>``.
"""

from __future__ import annotations

import torch
from torch import nn

from ur4rec.metrics import Users, full_ranking_ranks, ranking_metrics, sampled_ranks
from ur4rec.slices import COLD_NEW, slice_masks


class SplitEvaluation(nn.Module):
    """Metrics of one split: ``overall`` (``hit@K``, ``ndcg@K``, ``mrr``, and ``..._sampled``) and, per slice in
    ``slices``, the full-ranking metrics plus ``users`` (how many users the slice held)."""

    def __init__(self, eval_ks: tuple[int, ...], slices: tuple[str, ...]):
        super().__init__()
        self.slices = slices
        self.overall = nn.ModuleDict({**ranking_metrics(eval_ks), **ranking_metrics(eval_ks, "_sampled")})
        self.sliced = nn.ModuleDict({name: nn.ModuleDict({**ranking_metrics(eval_ks), "users": Users()})
                                     for name in slices})

    def update(self, scores: torch.Tensor, batch: dict[str, torch.Tensor],
               new_items: torch.Tensor) -> tuple[dict[str, nn.Module], dict[str, dict[str, nn.Module]]]:
        """Update every metric with a batch's scores (B, N + 1); ``new_items`` (N + 1,) bool are the items the
        ``cold_new`` slice ranks among. Returns the updated metrics: (overall, slice -> metrics)."""
        full = full_ranking_ranks(scores, batch["target"], batch["history"])  # (B,)
        sampled = sampled_ranks(scores, batch["candidates"])  # (B,)
        for name, metric in self.overall.items():
            metric.update(sampled if name.endswith("_sampled") else full)
        updated = {}
        for slice_name, mask in slice_masks(batch, self.slices).items():
            ranks = full_ranking_ranks(scores, batch["target"], batch["history"], new_items) \
                if slice_name == COLD_NEW else full
            for metric in self.sliced[slice_name].values():
                metric.update(ranks, mask)
            updated[slice_name] = dict(self.sliced[slice_name].items())
        return dict(self.overall.items()), updated
