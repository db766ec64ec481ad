"""The pooled comparison over several data splits: rows pooled per slice, users resampled as a whole."""

from __future__ import annotations

import pytest
import torch

from benchmarks.paired import save_gains, slice_gains, user_gains
from benchmarks.pooled import main, pooled_rows


def split_file(ids, users, base, cand):
    """One ``paired --save_gains`` payload with one slice ``warm`` over ``users`` (bool) of raw ``ids``."""
    gains = lambda values: {m: torch.tensor(values, dtype=torch.float) for m in ("ndcg@10", "hit@10")}  # noqa: E731
    return {"raw_user_ids": torch.tensor(ids), "slices": {"warm": {"users": torch.tensor(users),
                                                                   "baseline": gains(base), "candidate": gains(cand)}}}


def test_pooled_rows_average_every_split_and_resample_whole_users():
    first = split_file([10, 20, 30], [True, True, False], [1.0, 0.0, 9.0], [1.0, 1.0, 9.0])
    second = split_file([10, 20, 30], [True, False, True], [1.0, 5.0, 0.0], [0.0, 5.0, 0.0])
    row = next(r for r in pooled_rows([first, second], draws=50) if r["metric"] == "ndcg@10")
    assert row["compared"] == "slice warm (4 rows, 3 users, 2 splits)"  # users 10, 20 / 10, 30
    assert (row["baseline"], row["candidate"]) == (pytest.approx(0.5), pytest.approx(0.5))
    assert row["relative"] == pytest.approx(0.0)
    # summed over its rows user 10 loses 1 and user 20 gains 1: resampling users spreads the difference both ways
    assert row["low"] < 0 < row["high"]


def test_a_uniform_gain_over_splits_has_an_exact_interval():
    files = [split_file([1, 2, 3, 4], [True] * 4, [0.2, 0.4, 0.6, 0.8], [0.3, 0.6, 0.9, 1.2]) for _ in range(3)]
    row = pooled_rows(files, draws=100)[0]
    assert (row["relative"], row["low"], row["high"]) == pytest.approx((0.5, 0.5, 0.5))


def test_saved_gains_load_with_weights_only_and_pool_through_the_command(tmp_path, capsys):
    batch = {"user": torch.tensor([0, 1]), "target": torch.tensor([1, 2]), "history": torch.zeros(2, 1, dtype=torch.long),
             "target_count": torch.tensor([5, 500]), "history_length": torch.tensor([3, 3])}
    low, high = torch.zeros(2, 13), torch.zeros(2, 13)
    low[:, 1:3], high[:, 1:3] = -1.0, 1.0  # the targets rank 11th and 12th, or first and second
    high[1, 2] = 0.5
    per_slice = slice_gains({"baseline": [low], "candidate": [high]}, [batch], None)
    save_gains(str(tmp_path / "a.pt"), per_slice, [batch], [7, 8])
    saved = torch.load(tmp_path / "a.pt", weights_only=True)
    assert saved["raw_user_ids"].tolist() == [7, 8]
    assert torch.equal(saved["slices"]["all"]["candidate"]["hit@10"], user_gains(high, [batch])["hit@10"])
    assert saved["slices"]["pop_100+"]["users"].tolist() == [False, True]
    assert main([str(tmp_path / "a.pt"), str(tmp_path / "a.pt"), "--draws", "20"]) == 0
    assert "| slice all (4 rows, 2 users, 2 splits) | hit@10 | 0.0000 | 1.0000 | n/a | n/a |" in capsys.readouterr().out
