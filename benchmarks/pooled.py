"""``pooled``: the paired difference over several data splits (e.g. the five new-item folds) in one interval.

    python -m benchmarks pooled out/gains-fold0.pt out/gains-fold1.pt ...

Each file is one ``paired --slices --save_gains`` output. A slice pools the users of every file; the
bootstrap resamples raw user ids, and a drawn user brings its rows of every file (the folds share their
users, so their rows are not independent).
"""

from __future__ import annotations

import argparse
from typing import Sequence

import torch

from benchmarks.paired import METRICS, format_table, relative_row


def pooled_rows(files: Sequence[dict], draws: int = 2000) -> list[dict[str, object]]:
    """One row per slice and metric over the rows of all ``files``; the interval comes from a bootstrap
    over users (each user's summed gains of all its rows)."""
    names = list(dict.fromkeys(name for f in files for name in f["slices"]))
    rows = []
    for name in names:
        parts = [(f["raw_user_ids"], f["slices"][name]) for f in files if name in f["slices"]]
        ids = torch.cat([raw[s["users"]] for raw, s in parts])  # (R,) the user of each pooled row
        users, cluster = torch.unique(ids, return_inverse=True)
        for metric in METRICS:
            side = {k: torch.cat([s[k][metric][s["users"]].double() for _, s in parts]) for k in ("baseline", "candidate")}
            sums = {k: torch.zeros(len(users), dtype=torch.float64).index_add_(0, cluster, v) for k, v in side.items()}
            row = relative_row(f"slice {name} ({len(ids)} rows, {len(users)} users, {len(parts)} splits)", metric,
                               sums["baseline"], sums["candidate"], draws)
            rows.append({**row, "baseline": float(side["baseline"].mean()) if len(ids) else 0.0,
                         "candidate": float(side["candidate"].mean()) if len(ids) else 0.0})
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks pooled", description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", help="`paired --save_gains` outputs, one per data split")
    parser.add_argument("--draws", type=int, default=2000, help="bootstrap resamples of the users")
    args = parser.parse_args(argv)
    files = [torch.load(path, weights_only=True) for path in args.files]
    print(f"{len(files)} split(s) pooled, {args.draws} bootstrap draws over users")
    print(format_table(pooled_rows(files, args.draws)))
    return 0
