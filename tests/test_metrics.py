"""Ranking metrics: hand-computed cases, tie handling, masking, and a cross-check against torchmetrics."""

import math

import pytest
import torch
from torchmetrics.utilities.data import dim_zero_sum
from torchmetrics.retrieval import RetrievalHitRate, RetrievalMRR, RetrievalNormalizedDCG

from ur4rec.metrics import MRR, NDCG, HitRate, full_ranking_ranks, ranking_metrics, sampled_ranks


def test_full_ranking_masks_history_but_never_the_target():
    scores = torch.tensor([[0.0, 9.0, 8.0, 7.0, 1.0]])  # column 0 is padding
    # target 3 is beaten by items 1 and 2; item 1 is in the history and is masked.
    assert full_ranking_ranks(scores, torch.tensor([3]), torch.tensor([[1, 0]])).tolist() == [1]
    # the target appearing in the history is still ranked (not masked away).
    assert full_ranking_ranks(scores, torch.tensor([3]), torch.tensor([[3, 1]])).tolist() == [1]
    # padding column never competes, even with a huge score.
    scores[0, 0] = 100.0
    assert full_ranking_ranks(scores, torch.tensor([1]), torch.tensor([[0]])).tolist() == [0]


def test_ties_never_favour_the_target():
    scores = torch.tensor([[0.0, 5.0, 5.0, 5.0, 1.0]])
    assert full_ranking_ranks(scores, torch.tensor([2]), torch.tensor([[0]])).tolist() == [2]
    assert sampled_ranks(scores, torch.tensor([[2, 1, 3, 4]])).tolist() == [2]
    constant = torch.zeros(1, 11)  # an untrained constant model ranks the target last
    assert full_ranking_ranks(constant, torch.tensor([4]), torch.tensor([[0]])).tolist() == [9]


def test_metric_values_by_hand():
    ranks = torch.tensor([0, 1, 4, 9, 30])
    hit, ndcg, mrr = HitRate(5), NDCG(5), MRR()
    for m in (hit, ndcg, mrr):
        m.update(ranks[:2])
        m.update(ranks[2:])
    assert hit.compute().item() == pytest.approx(3 / 5)
    assert ndcg.compute().item() == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(6)) / 5)
    assert mrr.compute().item() == pytest.approx((1 + 1 / 2 + 1 / 5 + 1 / 10 + 1 / 31) / 5)


def test_ranking_metrics_names():
    names = set(ranking_metrics((5, 10), "_sampled"))
    assert names == {"hit@5_sampled", "ndcg@5_sampled", "mrr@5_sampled", "hit@10_sampled", "ndcg@10_sampled",
                     "mrr@10_sampled", "mrr_sampled"}


def test_matches_torchmetrics_retrieval_on_random_scores():
    torch.manual_seed(0)
    users, items = 64, 200
    scores = torch.rand(users, items + 1) + 0.1  # positive: torchmetrics MRR ignores preds <= 0
    target = torch.randint(1, items + 1, (users,))
    history = torch.randint(1, items + 1, (users, 30))
    history[history == target[:, None]] = 0  # keep the target out of the history for the reference
    ranks = full_ranking_ranks(scores, target, history)

    # Reference: drop padding and history items, then let torchmetrics rank the rest.
    preds, labels, indexes = [], [], []
    for u in range(users):
        keep = torch.ones(items + 1, dtype=torch.bool)
        keep[0] = False
        keep[history[u]] = False
        keep[target[u]] = True
        preds.append(scores[u, keep])
        labels.append((torch.arange(items + 1) == target[u])[keep])
        indexes.append(torch.full((int(keep.sum()),), u))
    preds, labels, indexes = torch.cat(preds), torch.cat(labels), torch.cat(indexes)
    for k in (5, 10, 20):
        ours_hit, ours_ndcg = HitRate(k), NDCG(k)
        ours_hit.update(ranks)
        ours_ndcg.update(ranks)
        ref_hit = RetrievalHitRate(top_k=k)(preds, labels, indexes=indexes)
        ref_ndcg = RetrievalNormalizedDCG(top_k=k)(preds, labels, indexes=indexes)
        assert ours_hit.compute().item() == pytest.approx(ref_hit.item(), abs=1e-6)
        assert ours_ndcg.compute().item() == pytest.approx(ref_ndcg.item(), abs=1e-6)
    for k in (None, 10):  # MRR over the whole ranking, and MRR@10 (LlamaRec's table)
        ours_mrr = MRR(k)
        ours_mrr.update(ranks)
        reference = RetrievalMRR(top_k=k)(preds, labels, indexes=indexes)
        assert ours_mrr.compute().item() == pytest.approx(reference.item(), abs=1e-6)
    assert MRR(10).gain(torch.tensor([9, 10])).tolist() == pytest.approx([0.1, 0.0])  # rank 10 is outside the top 10


def test_states_sum_across_processes():
    """The states are sums with dist_reduce_fx='sum', so merging shards equals one pass over all users."""
    ranks = torch.tensor([0, 3, 7, 12, 50, 2])
    whole, left, right = NDCG(10), NDCG(10), NDCG(10)
    whole.update(ranks)
    left.update(ranks[:2])
    right.update(ranks[2:])
    left.merge_state(right)
    assert left.compute().item() == pytest.approx(whole.compute().item())
    assert all(fx is dim_zero_sum for fx in whole._reductions.values())


def test_nan_scores_never_help_the_target():
    scores = torch.tensor([[0.0, float("nan"), 2.0, 1.0, 0.5]])
    assert full_ranking_ranks(scores, torch.tensor([2]), torch.tensor([[0]])).tolist() == [1]  # NaN item above
    assert full_ranking_ranks(scores, torch.tensor([1]), torch.tensor([[0]])).tolist() == [3]  # NaN target last
    assert sampled_ranks(scores, torch.tensor([[1, 2, 3]])).tolist() == [2]
