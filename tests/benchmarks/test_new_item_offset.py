"""new_item_offset: an offset on new items trades warm users' ranks for cold users', read on validation."""

import torch

from benchmarks.new_item_offset import offset_rows

N = 30


def test_an_offset_lifts_new_items_past_warm_ones_at_the_warm_users_cost():
    unseen = torch.zeros(N + 1, dtype=torch.bool)
    unseen[21:] = True  # items 21..30 are new
    scores = torch.full((2, N + 1), -10.0)
    scores[:, 1:21] = torch.linspace(-1, -3, 20)  # warm items 1..20, best first
    scores[:, 21:] = -5.0
    scores[:, 25] = -4.0  # the best new item
    batch = {"target": torch.tensor([25, 1]), "history": torch.zeros(2, 1, dtype=torch.long),
             "target_new": torch.tensor([True, False]), "target_count": torch.zeros(2, dtype=torch.long),
             "history_length": torch.ones(2, dtype=torch.long)}
    rows = offset_rows(scores, [batch], unseen, [0.0, 10.0])
    assert rows[0]["cold hit@10"] == 0.0 and rows[0]["warm hit@10"] == 1.0  # new items below every warm one
    assert rows[1]["cold ndcg@10"] == 1.0  # lifted above all warm items, the cold target ranks first
    assert rows[1]["warm ndcg@10"] < rows[0]["warm ndcg@10"]  # the warm target is pushed down by ten new items
    assert rows[1]["all ndcg@10"] == (rows[1]["cold ndcg@10"] + rows[1]["warm ndcg@10"]) / 2
