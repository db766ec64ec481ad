"""Evaluation slices and masked rank metrics: each slice averages exactly its own users."""

from __future__ import annotations

import torch

from ur4rec.metrics import NDCG, Users, full_ranking_ranks
from ur4rec.slices import SLICES, slice_masks


def test_masked_updates_equal_updating_with_the_kept_users_only():
    ranks, mask = torch.tensor([0, 3, 12, 1, 40]), torch.tensor([True, False, True, True, False])
    masked, kept, users = NDCG(10), NDCG(10), Users()
    masked.update(ranks, mask)
    kept.update(ranks[mask])
    users.update(ranks, mask)
    assert masked.compute() == kept.compute() and users.compute() == 3


def test_slices_by_popularity_history_and_newness():
    batch = {"target_count": torch.tensor([0, 9, 10, 99, 100]), "history_length": torch.tensor([3, 10, 11, 101, 50]),
             "target_new": torch.tensor([True, False, False, False, False])}
    masks = slice_masks(batch, SLICES)
    assert masks["pop_0-9"].tolist() == [True, True, False, False, False]
    assert masks["pop_30-99"].tolist() == [False, False, False, True, False]
    assert masks["pop_100+"].tolist() == [False, False, False, False, True]
    assert masks["hist_0-10"].tolist() == [True, True, False, False, False]
    assert masks["hist_31-100"].tolist() == [False, False, False, False, True]
    assert masks["cold"].tolist() == [True, False, False, False, False] and masks["warm"].sum() == 4
    for group in ("pop_", "hist_"):  # each user in exactly one slice of a grouping
        assert sum(m.long() for name, m in masks.items() if name.startswith(group)).eq(1).all()
    without = slice_masks({k: v for k, v in batch.items() if k != "target_new"}, SLICES)
    assert "cold" not in without and "warm" not in without  # no protocol, no new-item slices


def test_ranking_among_a_subset_of_items():
    scores = torch.tensor([[0.0, 5.0, 4.0, 3.0, 2.0, 1.0]])  # items 1..5, best first
    target, history = torch.tensor([4]), torch.tensor([[1]])
    assert full_ranking_ranks(scores, target, history).item() == 2  # items 2, 3 above (1 is history)
    among = torch.tensor([False, True, False, True, True, False])
    assert full_ranking_ranks(scores, target, history, among).item() == 1  # only item 3 competes
