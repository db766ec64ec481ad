"""The test metrics of runs per evaluation slice (new items, target popularity, history length), from their logs.

    python -m benchmarks slice_table logs/cold-sasrec-fold0-seed0 logs/cold-ur4rec-fold0-seed0

Reads every ``test_<slice>/ndcg@10``, ``hit@10`` and ``users`` of one test in each run's
``version_*/metrics.csv`` (one row per ``cli.py test``; ``--test`` picks which: the latest by default, 0 for
the first, which is the best checkpoint's in a ``seeds --also_test`` run) and prints one row per slice, one
column pair per run; ``--seeds`` first prints each metric's mean ± std over the runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import pandas as pd

from benchmarks.common import markdown_table
from benchmarks.seeds import summarize
from ur4rec.run_report import load_run
from ur4rec.slices import SLICES


def metrics_of_test(metrics: pd.DataFrame, which: int = -1) -> dict[str, float]:
    """Every ``test*`` value of the ``which``-th test the run logged (one row per test; -1 the latest)."""
    tests = metrics[[c for c in metrics.columns if c.startswith("test")]]
    row = tests[tests.notna().any(axis=1)].iloc[which]
    return {c: float(v) for c, v in row.dropna().items()}


def slice_rows(runs: dict[str, dict[str, float]]) -> list[dict]:
    """One row per slice that any run logged (``all`` first): users, then NDCG@10 and Hit@10 per run."""
    rows = []
    for name in ("all", *SLICES):
        prefix = "test" if name == "all" else f"test_{name}"
        if not any(f"{prefix}/ndcg@10" in metrics for metrics in runs.values()):
            continue
        row = {"slice": name}
        for run, metrics in runs.items():
            row["users"] = metrics.get(f"{prefix}/users", row.get("users", float("nan")))
            row[f"{run} ndcg@10"] = metrics.get(f"{prefix}/ndcg@10", float("nan"))
            row[f"{run} hit@10"] = metrics.get(f"{prefix}/hit@10", float("nan"))
        rows.append(row)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks slice_table", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", type=Path, nargs="+", help="logs/<run_name> folders of tested runs")
    parser.add_argument("--test", type=int, default=-1, help="which test of each run: -1 the latest, 0 the first")
    parser.add_argument("--seeds", action="store_true", help="also each metric's mean ± std over the runs (as seeds)")
    args = parser.parse_args(argv)
    runs = {d.name: metrics_of_test(load_run(d), args.test) for d in args.run_dirs}
    if args.seeds:
        print(summarize(list(runs.values())))
    rows = slice_rows(runs)
    columns = ["slice", "users", *(f"{run} {m}" for run in runs for m in ("ndcg@10", "hit@10"))]
    print(markdown_table(columns, rows, {"users": lambda v: "" if v != v else f"{v:.0f}"}))
    return 0
