"""Scaling study: SASRec training and full-ranking evaluation on MovieLens-like data at 1x, 10x, 100x.

    python -m benchmarks bench_scaling --work_dir /tmp/scaling [--scales 1 10 100] [--epochs 2]

Each scale multiplies MovieLens-100K's users (943) and items (1,682); every user keeps ML-100K's
statistics (ratings per user log-normal with ML-100K's mean and spread of log counts, clipped to
[20, 737]; rating values with ML-100K's frequencies; item popularity Zipf-like with ML-100K's exponent
0.77), so interactions grow with users and the catalog with items. Each scale runs in a fresh process
(its own peak memory) through ``benchmarks.bench``: the sampled BCE loss, whose cost grows with interactions
(full-softmax cross-entropy costs positions x items), and full-ranking evaluation in batches of
``--eval_batch_size`` users, so its memory is bounded by that batch times the catalog.
"""

from __future__ import annotations

import argparse
import multiprocessing
import platform
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ML100K_USERS, ML100K_ITEMS = 943, 1682
LOG_COUNT_MEAN, LOG_COUNT_STD, MIN_COUNT, MAX_COUNT = 4.27, 0.88, 20, 737
RATING_FREQUENCIES = (0.061, 0.114, 0.271, 0.342, 0.212)  # ratings 1..5
ZIPF_EXPONENT = 0.77
GENRE_FLAGS = 19


def write_movielens_like(root: Path, scale: int, seed: int = 0) -> Path:
    """Write ``u.data``/``u.item``/``u.user`` (ML-100K layout) with ``scale`` times its users and items."""
    rng = np.random.default_rng(seed)
    num_users, num_items = ML100K_USERS * scale, ML100K_ITEMS * scale
    counts = np.exp(rng.normal(LOG_COUNT_MEAN, LOG_COUNT_STD, num_users)).round().clip(MIN_COUNT, MAX_COUNT)
    users = np.repeat(np.arange(1, num_users + 1), counts.astype(np.int64))
    popularity = np.arange(1, num_items + 1, dtype=np.float64) ** -ZIPF_EXPONENT
    items = rng.permutation(num_items)[rng.choice(num_items, size=users.size, p=popularity / popularity.sum())] + 1
    ratings = pd.DataFrame({"user": users, "item": items}).drop_duplicates()  # a user rates an item once
    ratings["rating"] = rng.choice(np.arange(1, 6), size=len(ratings), p=RATING_FREQUENCIES)
    ratings["timestamp"] = 880_000_000 + ratings.groupby("user").cumcount() * 60 + rng.integers(0, 60, len(ratings))
    root.mkdir(parents=True, exist_ok=True)
    ratings.to_csv(root / "u.data", sep="\t", header=False, index=False)
    flags = np.zeros((num_items, GENRE_FLAGS), dtype=np.int64)
    flags[np.arange(num_items), rng.integers(0, GENRE_FLAGS, num_items)] = 1
    item_ids = np.arange(1, num_items + 1)
    catalog = pd.DataFrame({"id": item_ids, "title": [f"Movie {i} (1995)" for i in item_ids], "date": "01-Jan-1995",
                            "video": "", "url": "http://x"})
    catalog = pd.concat([catalog, pd.DataFrame(flags)], axis=1)
    catalog.to_csv(root / "u.item", sep="|", header=False, index=False, encoding="latin-1")
    user_ids = np.arange(1, num_users + 1)
    pd.DataFrame({"id": user_ids, "age": 20 + user_ids % 40, "gender": np.where(user_ids % 2, "M", "F"),
                  "occupation": "other", "zip": "00000"}).to_csv(root / "u.user", sep="|", header=False, index=False)
    return root


def measure(data_dir: str, scale: int, epochs: int, eval_batch_size: int) -> dict[str, float]:
    """One scale, run in its own process (so its peak memory is its own): ``benchmarks.bench.run_benchmark``."""
    from benchmarks.bench import run_benchmark

    return {"scale": scale, **run_benchmark(data_dir, epochs=epochs, loss="bce", eval_batch_size=eval_batch_size)}


def format_table(rows: list[dict[str, float]]) -> str:
    base = rows[0]
    lines = ["| scale | users | items | interactions | prepare s | s / epoch | epoch vs 1x (interactions vs 1x) "
             "| full-ranking eval s | eval vs 1x (users x items vs 1x) | peak RSS MiB |", "|---" * 10 + "|"]
    for r in rows:
        work = r["interactions"] / base["interactions"]
        pairs = r["users"] * r["items"] / (base["users"] * base["items"])
        lines.append(f"| {r['scale']:g}x | {r['users']:,.0f} | {r['items']:,.0f} | {r['interactions']:,.0f} | "
                     f"{r['prepare_s']:.1f} | {r['epoch_s']:.2f} | {r['epoch_s'] / base['epoch_s']:.1f}x ({work:.1f}x) | "
                     f"{r['eval_full_ranking_s']:.2f} | {r['eval_full_ranking_s'] / base['eval_full_ranking_s']:.0f}x "
                     f"({pairs:.0f}x) | {r['peak_rss_mib']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work_dir", required=True, help="where the generated datasets are written")
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--epochs", type=int, default=2, help="the first is a warm-up; the rest are timed")
    parser.add_argument("--eval_batch_size", type=int, default=256)
    args = parser.parse_args(argv)
    rows = []
    for scale in args.scales:
        data_dir = str(write_movielens_like(Path(args.work_dir) / f"x{scale}", scale))
        with multiprocessing.get_context("spawn").Pool(1) as pool:  # a fresh process: its own peak memory
            rows.append(pool.apply(measure, (data_dir, scale, args.epochs, args.eval_batch_size)))
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}; "
          f"SASRec (hidden 64, 2 blocks, max length 50), BCE loss, batch 128, eval batch {args.eval_batch_size}")
    print(format_table(rows))


if __name__ == "__main__":
    main()
