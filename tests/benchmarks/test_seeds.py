"""The seeds script's tables (the fits themselves run in tests/test_readme.py)."""

from __future__ import annotations

from benchmarks.seeds import ablation_table, summarize, with_overlay


def test_summary_has_mean_std_and_every_seed():
    runs = [{"test/ndcg@10": 0.1, "epochs": 10}, {"test/ndcg@10": 0.3, "epochs": 12}]
    lines = summarize(runs).splitlines()
    assert "| test/ndcg@10 | 0.2000 ± 0.1414 | 0.1000, 0.3000 |" in lines
    assert "| epochs | 11.0000 ± 1.4142 | 10.0000, 12.0000 |" in lines


def test_ablation_table_has_one_row_per_experiment_averaged_over_seeds():
    runs = {"no_image": [{"test/ndcg@10": 0.1, "test/hit@10": 0.2, "best-end_to_end:test/ndcg@10": 0.05,
                          "optimizer_steps": 100, "switches": 3},
                         {"test/ndcg@10": 0.2, "test/hit@10": 0.4, "best-end_to_end:test/ndcg@10": 0.07,
                          "optimizer_steps": 100, "switches": 5}],
            "no_text": [{"test/ndcg@10": 0.3, "test/hit@10": 0.5, "optimizer_steps": 90}]}
    lines = ablation_table(runs, ("best-end_to_end",)).splitlines()
    assert lines[0].startswith("| experiment | test/ndcg@10 | test/hit@10 | best-end_to_end:test/ndcg@10 |")
    assert lines[2] == "| no_image | 0.1500 | 0.3000 | 0.0600 | nan | 100 | nan | nan | 4 |"
    assert lines[3].startswith("| no_text | 0.3000 | 0.5000 | nan |")


def test_overlay_goes_after_the_base_config_so_later_overrides_win():
    args = ["--config", "configs/ur4rec.yaml", "--config", "mine.yaml", "--trainer.max_epochs", "3"]
    assert with_overlay(args, "x.yaml") == ["--config", "configs/ur4rec.yaml", "--config", "x.yaml",
                                            "--config", "mine.yaml", "--trainer.max_epochs", "3"]
    assert with_overlay(["--a", "1"], "x.yaml") == ["--config", "x.yaml", "--a", "1"]


def test_the_summary_adds_every_test_slice():
    runs = [{"test/ndcg@10": 0.1, "test_cold/ndcg@10": 0.02, "test_cold/users": 90.0, "test_cold/mrr": 0.5},
            {"test/ndcg@10": 0.3, "test_cold/ndcg@10": 0.04, "test_cold/users": 110.0, "test_cold/mrr": 0.5}]
    lines = summarize(runs).splitlines()
    assert "| test_cold/ndcg@10 | 0.0300 ± 0.0141 | 0.0200, 0.0400 |" in lines
    assert "| test_cold/users | 100.0000 ± 14.1421 | 90.0000, 110.0000 |" in lines
    assert not any(line.startswith("| test_cold/mrr") for line in lines)  # slices report NDCG, Hit and users
