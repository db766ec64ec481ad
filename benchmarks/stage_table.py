"""Validation NDCG@10 per training stage for several runs side by side: the stage's best and its mean.

    python -m benchmarks stage_table logs/ur4rec3-seed0 logs/ur4rec3-seed1 logs/ur4rec3-seed2

The best epoch of a stage is the maximum of noisy validation scores; the mean over the stage's epochs
shows whether the stage helps as a whole. Reads each run's ``version_*/metrics.csv`` like ``report``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import pandas as pd

from benchmarks.common import markdown_table
from ur4rec.run_report import load_run
from ur4rec.vocabulary import STAGES


def stage_summary(metrics: pd.DataFrame, metric: str = "ndcg@10") -> dict[str, tuple[float, float, int]]:
    """stage -> (best, mean, validation epochs) of ``val_<stage>/<metric>``, for the stages the run logged."""
    summary = {}
    for stage in STAGES:
        column = f"val_{stage}/{metric}"
        if column in metrics:
            values = metrics.dropna(subset=[column]).drop_duplicates("epoch", keep="last")[column]
            if len(values):
                summary[stage] = (float(values.max()), float(values.mean()), len(values))
    return summary


def stage_table(run_dirs: Sequence[Path], metric: str = "ndcg@10") -> str:
    """A Markdown table: one row per run, ``best / mean (epochs)`` per stage (blank where a stage did not run)."""
    rows = []
    for run_dir in run_dirs:
        summary = stage_summary(load_run(run_dir), metric)
        rows.append({"run": run_dir.name, **{s: f"{summary[s][0]:.4f} / {summary[s][1]:.4f} ({summary[s][2]})"
                                             for s in STAGES if s in summary}})
    return markdown_table(("run", *STAGES), rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", type=Path, nargs="+", help="logs/<run_name> folders")
    parser.add_argument("--metric", default="ndcg@10", help="validation metric logged per stage (ndcg@10, hit@10)")
    args = parser.parse_args(argv)
    print(f"val_<stage>/{args.metric}: best / mean (validation epochs)")
    print(stage_table(args.run_dirs, args.metric))
    return 0


if __name__ == "__main__":
    sys.exit(main())
