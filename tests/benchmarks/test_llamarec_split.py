"""benchmarks.llamarec_split: LlamaRec's preprocessing rebuilt, against our split of the same CSV folder."""

from __future__ import annotations

import pandas as pd

from benchmarks.llamarec_split import compare, llamarec_sequences
from writers import write_ml100k, write_movielens_csv


def test_without_time_ties_both_splits_agree_user_by_user(tmp_path):
    folder = write_movielens_csv(write_ml100k(tmp_path / "src", num_users=40, num_items=60, per_user=12),
                                 tmp_path / "csv")
    counts = compare(folder)
    assert counts["users (ours)"] == counts["users (LlamaRec)"] > 0
    assert counts["items (ours)"] == counts["items (LlamaRec)"] < 60  # the 5-core dropped rare items
    assert counts["interactions (ours)"] == counts["interactions (LlamaRec)"]
    assert all(v == 0 for k, v in counts.items() if k.startswith("users whose"))


def test_llamarec_orders_each_user_by_time_and_keeps_the_5_core(tmp_path):
    folder = write_movielens_csv(write_ml100k(tmp_path / "src", num_users=40, num_items=60, per_user=12),
                                 tmp_path / "csv")
    sequences = llamarec_sequences(folder)
    items = [s for seq in sequences.values() for s in seq]
    assert min(len(seq) for seq in sequences.values()) >= 5
    assert min(items.count(s) for s in set(items)) >= 5
    ratings = pd.read_csv(folder / "ratings.csv")
    kept = ratings[ratings["userId"].isin(sequences) & ratings["movieId"].isin(items)]
    by_time = {u: g.sort_values("timestamp")["movieId"].tolist() for u, g in kept.groupby("userId")}
    assert by_time == sequences  # no equal timestamps here, so time alone gives the order
