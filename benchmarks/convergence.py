"""How fast runs converge: best validation NDCG@10, its epoch and wall-clock time, and the time to reach a bar.

    python -m benchmarks convergence logs/sasrec-seed0 logs/sasrec-seed1 [--reach 0.1009] [--at_best val_warm/ndcg@10]

Reads each run's ``version_*/metrics.csv`` (``val/ndcg@10`` and ``time/fit_seconds``, the training seconds
logged at every validation) and prints one row per run plus the mean; ``--at_best`` adds other validation
metrics (e.g. a slice's) at the best epoch.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Sequence

import pandas as pd

from benchmarks.common import markdown_table
from ur4rec.run_report import load_run

METRIC, CLOCK = "val/ndcg@10", "time/fit_seconds"


def convergence(metrics: pd.DataFrame, reach: float | None = None, at_best: Sequence[str] = ()) -> dict[str, float]:
    """Best ``val/ndcg@10``, the epoch and training seconds at which it came, the epochs run, the first
    training seconds at which validation reached ``reach`` (NaN when it never did), and each ``at_best``
    metric at the best epoch (NaN when the run did not log it)."""
    missing = [c for c in (METRIC, CLOCK) if c not in metrics]
    rows = metrics.dropna(subset=[METRIC, CLOCK]).drop_duplicates("epoch", keep="last") if not missing else metrics[:0]
    if rows.empty:
        raise ValueError(f"no rows with both {METRIC} and {CLOCK}: was this run logged by cli.py fit?")
    best = rows.loc[rows[METRIC].idxmax()]
    result = {"best": float(best[METRIC]), "best_epoch": int(best["epoch"]), "seconds_to_best": float(best[CLOCK]),
              "epochs": int(rows["epoch"].max()) + 1, "seconds": float(rows[CLOCK].max()),
              **{name: float(best.get(name, float("nan"))) for name in at_best}}
    if reach is not None:
        reached = rows[rows[METRIC] >= reach]
        result["seconds_to_reach"] = float(reached[CLOCK].iloc[0]) if len(reached) else float("nan")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks convergence", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", type=Path, nargs="+", help="logs/<run_name> folders")
    parser.add_argument("--reach", type=float, default=None, help="report the seconds until val/ndcg@10 >= this")
    parser.add_argument("--at_best", nargs="*", default=[], help="validation metrics to report at the best epoch")
    args = parser.parse_args(argv)
    rows = [{"run": d.name, **convergence(load_run(d), args.reach, args.at_best)} for d in args.run_dirs]
    columns = ["run", "best", "best_epoch", "seconds_to_best", "epochs", "seconds"]
    if args.reach is not None:
        columns.append("seconds_to_reach")
    columns += args.at_best
    mean = {"run": "mean"}
    for column in columns[1:]:
        values = [r[column] for r in rows if r[column] == r[column]]  # NaN (never reached) left out
        mean[column] = statistics.mean(values) if values else float("nan")
    integer = {c: (lambda v: f"{v:.0f}") for c in ("best_epoch", "epochs")}
    seconds = {c: (lambda v: f"{v:.1f}") for c in ("seconds_to_best", "seconds", "seconds_to_reach")}
    print(f"{METRIC} per run" + (f"; seconds_to_reach: first validation at or above {args.reach}" if args.reach else ""))
    print(markdown_table(columns, [*rows, mean], {**integer, **seconds}))
    return 0
