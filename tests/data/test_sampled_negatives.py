"""The fixed negatives of the sampled evaluation protocol: distinct, never a positive, uniform over each user's
non-interacted items on both of the sampler's paths (rejection for sparse users, ranked keys for dense ones)."""

from __future__ import annotations

import numpy as np
import pytest

import ur4rec.data.datasets as datasets
from ur4rec.data.datasets import draw_sampled_negatives
from ur4rec.errors import ConfigError

NUM_ITEMS = 60


def mixed_users(seed: int = 0, count: int = 300) -> list[np.ndarray]:
    """Users with 0 to 50 of the 60 items: both sparse users (rejection) and dense ones (ranked keys)."""
    rng = np.random.default_rng(seed)
    return [rng.choice(np.arange(1, NUM_ITEMS + 1), size=int(rng.integers(0, 51)), replace=False) for _ in range(count)]


def chi_square(counts: np.ndarray) -> float:
    expected = counts.sum() / len(counts)
    return float(((counts - expected) ** 2 / expected).sum())


def assert_uniform(counts: np.ndarray) -> None:
    """Chi-square of equal expected counts below its mean plus 6 standard deviations (df = cells - 1)."""
    df = len(counts) - 1
    assert chi_square(counts) < df + 6 * np.sqrt(2 * df), counts


def test_negatives_are_distinct_in_range_and_never_a_positive():
    users = mixed_users()
    negatives = draw_sampled_negatives(users, NUM_ITEMS, 9, seed=0).numpy()
    assert negatives.shape == (len(users), 9) and negatives.dtype == np.int64
    for items, row in zip(users, negatives):
        assert len(set(row.tolist())) == 9
        assert row.min() >= 1 and row.max() <= NUM_ITEMS
        assert not set(row.tolist()) & set(items.tolist())


@pytest.mark.parametrize("num_positives", [10, 40], ids=["sparse-rejection", "dense-ranked-keys"])
def test_draws_are_uniform_over_the_complement(num_positives):
    positives = np.random.default_rng(7).permutation(np.arange(1, NUM_ITEMS + 1))[:num_positives]
    complement = np.setdiff1d(np.arange(1, NUM_ITEMS + 1), positives)
    negatives = draw_sampled_negatives([positives] * 4000, NUM_ITEMS, 5, seed=1).numpy()  # (4000, 5)
    counts = np.bincount(negatives.ravel(), minlength=NUM_ITEMS + 1)
    assert counts[positives].sum() == 0 and counts[0] == 0
    assert_uniform(counts[complement])
    assert_uniform(np.bincount(negatives[:, 0], minlength=NUM_ITEMS + 1)[complement])  # the order is random too


def test_the_uniformity_check_catches_a_ten_percent_bias():
    complement = np.arange(1, 51)  # 20,000 draws, as above: half the items 10% too often, half 10% too rarely
    biased = np.concatenate([np.repeat(complement[:25], 440), np.repeat(complement[25:], 360)])
    with pytest.raises(AssertionError):
        assert_uniform(np.bincount(biased)[complement])


def test_users_short_after_a_round_draw_again_and_stay_uniform(monkeypatch):
    monkeypatch.setattr(datasets, "OVERSAMPLING", 0.5)  # a first round of 4 draws for 5 negatives: all fall short
    monkeypatch.setattr(datasets, "EXTRA_DRAWS", 0)
    positives = np.arange(1, 11)
    negatives = draw_sampled_negatives([positives] * 3000, NUM_ITEMS, 5, seed=2).numpy()
    assert all(len(set(row.tolist())) == 5 and row.min() > 10 for row in negatives)
    assert_uniform(np.bincount(negatives.ravel(), minlength=NUM_ITEMS + 1)[11:])


def test_the_draw_is_fixed_by_its_seed():
    users = mixed_users()
    first = draw_sampled_negatives(users, NUM_ITEMS, 9, seed=3)
    assert first.equal(draw_sampled_negatives(users, NUM_ITEMS, 9, seed=3))
    assert not first.equal(draw_sampled_negatives(users, NUM_ITEMS, 9, seed=4))


def test_a_user_with_too_few_unseen_items_is_a_config_error():
    users = [np.arange(1, 11), np.arange(1, NUM_ITEMS - 3)]  # user 1 never saw 4 items
    with pytest.raises(ConfigError, match="data.num_sampled_negatives: user 1 has fewer than 5 items"):
        draw_sampled_negatives(users, NUM_ITEMS, 5, seed=0)
    assert draw_sampled_negatives(users, NUM_ITEMS, 4, seed=0)[1].sort().values.tolist() == [57, 58, 59, 60]
