"""Side inputs as zero-training rankers: each ranker's scores and the random expectation."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from benchmarks.side_signal import expected_random_gains, history_mean, random_expectation, ranker_scores, side_signal

# 4 items (row 0 = padding): items 1 and 2 share a direction, 3 and 4 another; item 4 has no poster
TEXT = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
FEATURES = SimpleNamespace(item_text=TEXT, item_image=TEXT.flip(1).clone(),
                           image_mask=torch.tensor([False, True, True, True, False]))
POPULARITY = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0])


def batch(history, target, user_text=None):
    out = {"history": torch.tensor(history), "target": torch.tensor(target)}
    out["user_text"] = torch.tensor(user_text if user_text is not None else [[0.0, 1.0]] * len(target))
    return out


def test_history_mean_skips_padding_and_absent_items():
    present = torch.tensor([False, True, True, True, False])
    mean = history_mean(TEXT, torch.tensor([[1, 4, 0], [0, 0, 0]]), present)
    assert mean.tolist() == [[1.0, 0.0], [0.0, 0.0]]  # item 4 absent, padding ignored, empty history -> zeros


def test_each_ranker_scores_from_its_own_input():
    b = batch([[1, 0]], [2])  # watched item 1; item 2 is the similar one
    description = ranker_scores("description", b, FEATURES, POPULARITY)
    assert description[0, 0] == float("-inf") and description[0, 2] > description[0, 3]
    poster = ranker_scores("poster", b, FEATURES, POPULARITY)
    assert poster[0, 4] == float("-inf") and poster[0, 2] > poster[0, 3]  # no poster: ranks last
    preference = ranker_scores("preference", b, FEATURES, POPULARITY)  # the user text points at items 3 and 4
    assert preference[0, 3] > preference[0, 1]
    assert ranker_scores("popularity", b, FEATURES, POPULARITY)[0, 1:].tolist() == [1.0, 2.0, 3.0, 4.0]
    with pytest.raises(ValueError, match="unknown ranker 'clip'"):
        ranker_scores("clip", b, FEATURES, POPULARITY)


def test_side_signal_ranks_the_similar_item_first():
    rows = {r["ranker"]: r for r in side_signal([batch([[1, 0]], [2])], FEATURES, POPULARITY)}
    assert rows["description"]["ndcg@10"] == pytest.approx(1.0)
    assert rows["popularity"]["hit@10"] == 1.0 and rows["popularity"]["ndcg@10"] == pytest.approx(0.5)  # rank 2 of 3


def test_random_expectation_is_the_mean_gain_over_the_ranks_that_exist():
    # user 0 watched items 1, 2 and has 2 competing items (3, 4); user 1 watched item 3 and has 3
    expected = random_expectation([batch([[1, 2], [3, 0]], [4, 1])], num_items=4)
    assert expected["hit@10"] == pytest.approx(1.0)  # every rank is inside the cut-off
    user0 = (1 + 1 / math.log2(3)) / 2
    user1 = (1 + 1 / math.log2(3) + 1 / 2) / 3
    assert expected["ndcg@10"] == pytest.approx((user0 + user1) / 2)


def test_expected_random_gains_per_user_and_among_new_items_only():
    data = batch([[1, 2], [3, 0]], [4, 1])
    gains = expected_random_gains(data, num_items=4)
    assert gains.tolist() == pytest.approx([(1 + 1 / math.log2(3)) / 2, (1 + 1 / math.log2(3) + 1 / 2) / 3])
    assert float(gains.mean()) == pytest.approx(random_expectation([data], num_items=4)["ndcg@10"])
    new = torch.tensor([False, True, False, False, True])  # items 1 and 4 are new
    # user 0 (target 4): new items outside the history are 4 only -> rank 0 surely; user 1 (target 1): 1 and 4
    assert expected_random_gains(data, 4, new).tolist() == pytest.approx([1.0, (1 + 1 / math.log2(3)) / 2])
