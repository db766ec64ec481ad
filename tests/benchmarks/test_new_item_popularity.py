"""benchmarks.new_item_popularity: a ridge fit of log counts on content, read on the new items."""

from __future__ import annotations

import torch

from benchmarks.new_item_popularity import cold_target_popularity, popularity_rows, predicted_log_counts, spearman


def catalog(num_items: int = 60, dim: int = 4, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    content = torch.randn(num_items + 1, dim, generator=generator)
    new = torch.zeros(num_items + 1, dtype=torch.bool)
    new[1::5] = True  # every fifth item is new
    return content, new


def test_counts_that_follow_the_content_are_predicted_for_new_items():
    content, new = catalog()
    true_counts = torch.expm1(3 + content[:, 0]).round().clamp(min=0)  # popularity set by the first feature
    train_counts = torch.where(new, 0, true_counts)
    known = ~new
    known[0] = False
    predicted = predicted_log_counts(content, torch.log1p(train_counts), known, ridge=0.01)
    assert spearman(predicted[new], true_counts[new]) > 0.95
    rows = popularity_rows(content, train_counts, true_counts, new, [0.01, 1000.0])
    assert rows[0]["spearman (new items)"] > 0.95
    # a large penalty shrinks every prediction toward the known items' mean: the most chosen new items lose most
    assert rows[1]["top-10 new: predicted"] < rows[0]["top-10 new: predicted"]
    assert rows[0]["10th training count"] == float(torch.sort(train_counts, descending=True).values[9])


def test_content_unrelated_to_popularity_predicts_nothing():
    content, new = catalog(num_items=600, seed=1)
    true_counts = torch.randint(0, 100, (601,), generator=torch.Generator().manual_seed(2)).double()
    rows = popularity_rows(content, torch.where(new, 0, true_counts), true_counts, new, [1.0])
    assert abs(rows[0]["spearman (new items)"]) < 0.2


def test_spearman_reads_ranks_only():
    a = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert spearman(a, a.exp()) == 1.0
    assert spearman(a, -a ** 3) == -1.0


def test_cold_targets_are_read_against_the_most_chosen_new_items():
    true_counts = torch.arange(31, dtype=torch.float64)  # item i chosen i times; items 1..30
    new = torch.zeros(31, dtype=torch.bool)
    new[11:] = True  # items 11..30 are new; the ten most chosen new ones are 21..30
    targets = torch.tensor([30, 25, 12, 3, 5])  # three cold users (30, 25, 12), two warm
    cold = cold_target_popularity(true_counts, new, targets)
    assert cold == {"cold users": 3, "share of their targets among the ten most chosen new items": 2 / 3,
                    "median count of their targets": 25.0}
