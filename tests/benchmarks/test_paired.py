"""The paired comparison's arithmetic: per-user gains and the bootstrap over users."""

from __future__ import annotations

import math

import pytest
import torch

from benchmarks.paired import bootstrap_relative, user_gains


def test_bootstrap_interval_is_exact_for_a_uniform_gain_and_widens_with_noise():
    base = torch.rand(500, generator=torch.Generator().manual_seed(1)) + 0.1
    relative, low, high = bootstrap_relative(base, 1.1 * base, draws=300)
    assert (relative, low, high) == pytest.approx((0.1, 0.1, 0.1), abs=1e-6)  # every resample shows +10%

    noisy = 1.1 * base + 0.5 * torch.randn(500, generator=torch.Generator().manual_seed(2))
    relative, low, high = bootstrap_relative(base, noisy, draws=300)
    assert relative == pytest.approx(float(noisy.mean() / base.mean() - 1), rel=1e-6)
    assert low < relative < high and high - low > 0.02


def test_bootstrap_resamples_the_same_users_on_both_sides():
    base = torch.tensor([1.0, 2.0, 3.0, 4.0])
    _, low, high = bootstrap_relative(base, base.clone(), draws=100)
    assert low == high == 0.0  # unpaired resampling would spread this around 0


def test_user_gains_follow_the_full_ranking_of_each_batch():
    # 2 batches of users over 4 items (column 0 = padding); the targets rank 0, 2 and 0
    scores = torch.tensor([[-math.inf, 4.0, 3.0, 2.0, 1.0],
                           [-math.inf, 4.0, 3.0, 2.0, 1.0],
                           [-math.inf, 1.0, 2.0, 3.0, 4.0]])
    batches = [{"target": torch.tensor([1, 3]), "history": torch.tensor([[0], [0]])},
               {"target": torch.tensor([4]), "history": torch.tensor([[3]])}]  # item 3 seen: target ranks first
    gains = user_gains(scores, batches)
    assert gains["hit@10"].tolist() == [1.0, 1.0, 1.0]
    assert gains["ndcg@10"].tolist() == pytest.approx([1.0, 0.5, 1.0])


def test_each_side_is_scored_by_its_own_model(monkeypatch):
    import benchmarks.paired as paired

    scored_by = []
    monkeypatch.setattr(paired, "load_for_scoring", lambda model, path: scored_by.append((model, path)))
    monkeypatch.setattr(paired, "log_scores", lambda model, batches: torch.randn(2, 6))
    batch = {"target": torch.tensor([1, 2]), "history": torch.zeros(2, 1, dtype=torch.long)}
    candidate_model, baseline_model = object(), object()
    paired.compare(candidate_model, [batch], ["a.ckpt"], ["b.ckpt"], draws=10, baseline_model=baseline_model)
    assert scored_by == [(baseline_model, "a.ckpt"), (candidate_model, "b.ckpt")]


def test_a_slice_where_the_baseline_never_hits_has_no_relative_difference():
    from benchmarks.paired import format_table, slice_gains, slice_rows

    batch = {"target": torch.tensor([1, 2]), "history": torch.zeros(2, 1, dtype=torch.long),
             "target_count": torch.tensor([5, 500]), "history_length": torch.tensor([3, 3])}
    never = torch.zeros(2, 13)
    never[:, 1:3] = -1.0  # both targets score below ten other items
    always = torch.zeros(2, 13)
    always[:, 1:3] = 1.0
    rows = slice_rows(slice_gains({"baseline": [never], "candidate": [always]}, [batch], None), draws=20)
    rare = next(r for r in rows if r["compared"].startswith("slice pop_0-9") and r["metric"] == "hit@10")
    assert (rare["baseline"], rare["candidate"]) == (0.0, 1.0) and math.isnan(rare["relative"])
    assert "| n/a | n/a |" in format_table([rare])
