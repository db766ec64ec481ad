"""The per-stage validation table: best and mean of each stage's validation epochs, per run."""

from __future__ import annotations

import pandas as pd
import pytest

from benchmarks.stage_table import main, stage_summary


def write_run(root, rows):
    (root / "version_0").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(root / "version_0" / "metrics.csv", index=False)


def test_best_and_mean_per_stage(tmp_path, capsys):
    rows = [{"epoch": 0, "val_pretrain_sasrec/ndcg@10": 0.1}, {"epoch": 1, "val_pretrain_sasrec/ndcg@10": 0.3},
            {"epoch": 1, "train/loss": 2.0},  # a training row of the same epoch does not count
            {"epoch": 2, "val_end_to_end/ndcg@10": 0.2}, {"epoch": 3, "val_end_to_end/ndcg@10": 0.4}]
    write_run(tmp_path / "run-a", rows)
    summary = stage_summary(pd.read_csv(tmp_path / "run-a/version_0/metrics.csv"))
    assert summary == {"pretrain_sasrec": pytest.approx((0.3, 0.2, 2)), "end_to_end": pytest.approx((0.4, 0.3, 2))}
    assert main([str(tmp_path / "run-a")]) == 0
    out = capsys.readouterr().out
    assert "| run-a | 0.3000 / 0.2000 (2) |  |  | 0.4000 / 0.3000 (2) |" in out
