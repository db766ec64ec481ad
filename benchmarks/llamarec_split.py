"""Our split of a MovieLens CSV folder under LlamaRec's protocol against LlamaRec's own preprocessing, user by user.

    python -m benchmarks llamarec_split --data_dir ../shared/data/ml-latest-small

LlamaRec (github.com/Yueeeeeeee/LlamaRec, ``datasets/base.py`` and ``datasets/ml_100k.py``) keeps the rated
movies listed in ``movies.csv``, filters users and items to 5 interactions in turn until both hold, gives
items dense ids in the iteration order of a Python ``set`` of the movie ids, and orders each user's items
by (timestamp, dense id). So its ties go by that set order, not by the movie id as
``configs/datasets/ml-latest-small.yaml``'s ``tie_order: item`` does. This script rebuilds LlamaRec's split
the same way and counts the users whose test target, validation target or training sequence differs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from benchmarks.common import markdown_table
from ur4rec.datamodule import UR4RecDataModule


def llamarec_sequences(data_dir: str | Path, min_uc: int = 5, min_sc: int = 5) -> dict[int, list[int]]:
    """Raw user id -> raw movie ids in LlamaRec's order (its ``filter_triplets``, ``densify_index``, ``split_df``)."""
    folder = Path(data_dir)
    df = pd.read_csv(folder / "ratings.csv")
    df.columns = ["uid", "sid", "rating", "timestamp"]
    listed = set(pd.read_csv(folder / "movies.csv", encoding="ISO-8859-1").iloc[:, 0])
    df = df[df["sid"].isin(listed)]
    while True:  # users and items to the minimum counts, in turn, until both hold
        df = df[df["sid"].map(df["sid"].value_counts()) >= min_sc]
        df = df[df["uid"].map(df["uid"].value_counts()) >= min_uc]
        if df["sid"].value_counts().min() >= min_sc:
            break
    dense = {s: i for i, s in enumerate(set(df["sid"]), start=1)}  # LlamaRec's dense ids: set order
    df = df.assign(dense=df["sid"].map(dense)).sort_values(["uid", "timestamp", "dense"], kind="stable")
    return {int(u): group.tolist() for u, group in df.groupby("uid")["sid"]}


def compare(data_dir: str | Path) -> dict[str, int]:
    """Counts of users, items and interactions of both splits, and of users whose split differs."""
    ours = UR4RecDataModule(str(data_dir), min_rating=0, min_user_interactions=5, min_item_interactions=5,
                            tie_order="item", num_sampled_negatives=1).load()  # only the split is read
    theirs = llamarec_sequences(data_dir)
    raw = ours.raw_item_ids
    differ = {"test target": 0, "validation target": 0, "training order": 0, "training item set": 0}
    for user, raw_user in enumerate(ours.raw_user_ids):
        sequence = theirs[int(raw_user)]
        train = raw[ours.train[user]].tolist()
        differ["test target"] += int(raw[ours.test_target[user]]) != sequence[-1]
        differ["validation target"] += int(raw[ours.valid_target[user]]) != sequence[-2]
        differ["training order"] += train != sequence[:-2]
        differ["training item set"] += sorted(train) != sorted(sequence[:-2])
    return {"users (ours)": ours.num_users, "users (LlamaRec)": len(theirs), "items (ours)": ours.num_items,
            "items (LlamaRec)": len({s for seq in theirs.values() for s in seq}),
            "interactions (ours)": ours.num_interactions,
            "interactions (LlamaRec)": sum(len(seq) for seq in theirs.values()),
            **{f"users whose {name} differs": count for name, count in differ.items()}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True, help="a MovieLens CSV folder (ratings.csv, movies.csv)")
    args = parser.parse_args(argv)
    counts = compare(args.data_dir)
    print(markdown_table(["count", "value"], [{"count": k, "value": v} for k, v in counts.items()]))


if __name__ == "__main__":
    main()
