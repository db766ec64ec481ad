"""benchmarks.slice_table: each slice's users and metrics per run, from the logged test metrics."""

from __future__ import annotations

import math

import pandas as pd

from benchmarks.slice_table import main, slice_rows, metrics_of_test


def test_rows_take_the_chosen_test_of_each_run_per_slice():
    log = pd.DataFrame({"epoch": [3, 3, 3], "test/ndcg@10": [None, 0.1, 0.2], "test/hit@10": [None, 0.3, 0.4],
                        "test_cold/ndcg@10": [None, 0.0, 0.05], "test_cold/hit@10": [None, 0.0, 0.1],
                        "test_cold/users": [None, 9.0, 9.0], "val/ndcg@10": [0.5, None, None]})
    metrics = metrics_of_test(log)
    assert metrics["test/ndcg@10"] == 0.2 and "val/ndcg@10" not in metrics
    first = metrics_of_test(log, 0)  # a seeds --also_test run: the best checkpoint's test comes first
    assert (first["test/ndcg@10"], first["test_cold/ndcg@10"], first["test_cold/users"]) == (0.1, 0.0, 9.0)
    rows = slice_rows({"a": metrics, "b": {"test/ndcg@10": 0.3, "test/hit@10": 0.6}})
    assert [r["slice"] for r in rows] == ["all", "cold"]
    assert rows[1]["users"] == 9.0 and rows[1]["a ndcg@10"] == 0.05 and math.isnan(rows[1]["b ndcg@10"])


def test_seeds_flag_prints_the_mean_and_spread_over_the_runs(tmp_path, capsys):
    for k, ndcg in enumerate((0.1, 0.2, 0.3)):
        (tmp_path / f"run{k}" / "version_0").mkdir(parents=True)
        pd.DataFrame({"epoch": [0], "test/ndcg@10": [ndcg]}).to_csv(tmp_path / f"run{k}" / "version_0" / "metrics.csv",
                                                                    index=False)
    assert main([str(tmp_path / f"run{k}") for k in range(3)] + ["--seeds"]) == 0
    assert "| test/ndcg@10 | 0.2000 ± 0.1000 | 0.1000, 0.2000, 0.3000 |" in capsys.readouterr().out
