"""The scaling study's MovieLens-like generator and its table."""

from __future__ import annotations

import numpy as np

from benchmarks.bench_scaling import MAX_COUNT, MIN_COUNT, ML100K_ITEMS, ML100K_USERS, format_table, write_movielens_like
from ur4rec.data.readers import read_dataset


def test_generated_data_reads_as_movielens_with_its_statistics(tmp_path):
    raw = read_dataset(str(write_movielens_like(tmp_path, scale=2)))
    ratings = raw.ratings
    assert ratings["user"].nunique() == 2 * ML100K_USERS and ratings["item"].max() <= 2 * ML100K_ITEMS
    per_user = ratings.groupby("user").size()
    assert per_user.max() <= MAX_COUNT and per_user.quantile(0.1) >= MIN_COUNT * 0.8  # duplicates drop a few
    assert 50 < per_user.median() < 90  # ML-100K: 65
    assert not ratings.duplicated(["user", "item"]).any()
    assert abs((ratings["rating"] >= 4).mean() - 0.554) < 0.02
    popularity = ratings.groupby("item").size().sort_values(ascending=False).to_numpy()
    assert popularity[0] > 20 * np.median(popularity)  # a long tail, as in MovieLens
    assert ratings.groupby("user")["timestamp"].is_monotonic_increasing.all()


def test_table_reports_growth_against_the_first_scale():
    rows = [{"scale": 1, "users": 10, "items": 20, "interactions": 100, "prepare_s": 1.0, "epoch_s": 2.0,
             "eval_full_ranking_s": 0.5, "peak_rss_mib": 300.0},
            {"scale": 10, "users": 100, "items": 200, "interactions": 1000, "prepare_s": 9.0, "epoch_s": 21.0,
             "eval_full_ranking_s": 50.0, "peak_rss_mib": 900.0}]
    last = format_table(rows).splitlines()[-1]
    assert "| 10x | 100 | 200 | 1,000 |" in last and "| 10.5x (10.0x) |" in last and "| 100x (100x) |" in last
