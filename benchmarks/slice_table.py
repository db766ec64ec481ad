"""The test metrics of runs per evaluation slice (new items, target popularity, history length), from their logs.

    python -m benchmarks slice_table logs/cold-sasrec-fold0-seed0 logs/cold-ur4rec-fold0-seed0

Reads the latest logged value of every ``test_<slice>/ndcg@10``, ``hit@10`` and ``users`` in each run's
``version_*/metrics.csv`` (what ``cli.py test`` logged) and prints one row per slice, one column pair per run.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import pandas as pd

from benchmarks.common import markdown_table
from ur4rec.run_report import load_run
from ur4rec.slices import SLICES


def latest_test_metrics(metrics: pd.DataFrame) -> dict[str, float]:
    """Every ``test*`` column's last logged value."""
    return {c: float(metrics[c].dropna().iloc[-1]) for c in metrics.columns
            if c.startswith("test") and metrics[c].notna().any()}


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
    args = parser.parse_args(argv)
    runs = {d.name: latest_test_metrics(load_run(d)) for d in args.run_dirs}
    rows = slice_rows(runs)
    columns = ["slice", "users", *(f"{run} {m}" for run in runs for m in ("ndcg@10", "hit@10"))]
    print(markdown_table(columns, rows, {"users": lambda v: "" if v != v else f"{v:.0f}"}))
    return 0
