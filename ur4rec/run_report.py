"""``report``: plots and a Markdown summary of a finished run, read from its CSV log (and checkpoint).

    python cli.py report --run_dir logs/ur4rec [--checkpoint checkpoints/ur4rec/last.ckpt] [--output_dir DIR]

Every ``version_*/metrics.csv`` of the run is read in order, so a resumed fit and later ``test``
runs (which log to new versions) all count.

Writes ``loss.png``, ``validation.png`` (NDCG@10 and Hit@10 with stage boundaries), ``alternating.png``
(active module over steps and switch points), ``router.png`` (expert weights over time) when the run
logged them, and ``report.md`` with the best validation metrics per stage and the test metrics.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after selecting the headless backend)
import pandas as pd  # noqa: E402

from ur4rec.checkpoint_io import load_checkpoint_file, upgrade_checkpoint  # noqa: E402
from ur4rec.data.errors import DataFormatError  # noqa: E402
from ur4rec.vocabulary import STAGE_POLICY, STAGES  # noqa: E402


def load_run(run_dir: Path) -> pd.DataFrame:
    """All ``version_*/metrics.csv`` of a run, concatenated in version order."""
    versions = sorted(run_dir.glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[1]))
    if not versions:
        raise FileNotFoundError(f"{run_dir}: no version_*/metrics.csv (is this a logs/<run_name> folder?)")
    return pd.concat([read_metrics(p) for p in versions], ignore_index=True)


def read_metrics(path: Path) -> pd.DataFrame:
    """One ``metrics.csv`` as the CSV logger writes it (an ``epoch`` column); anything else names the file."""
    try:
        metrics = pd.read_csv(path)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DataFormatError(path, f"not a metrics.csv written by a run ({type(err).__name__}: {err})") from None
    if "epoch" not in metrics.columns:
        raise DataFormatError(path, f"not a metrics.csv written by a run (no epoch column; found "
                                    f"{list(metrics.columns)[:5]})")
    return metrics


def stage_boundaries(metrics: pd.DataFrame, checkpoint: Path | None) -> list[tuple[str, int]]:
    """(stage, first epoch) from the TrainingStages state in ``checkpoint``, else from ``val_<stage>/`` columns."""
    if checkpoint is not None and checkpoint.exists():
        state = upgrade_checkpoint(load_checkpoint_file(checkpoint)).get("callbacks", {})
        for key, value in state.items():
            if key.startswith("TrainingStages"):
                return [(t["stage"], int(t["epoch"])) for t in value["transitions"]]
    bounds = []
    for stage in STAGES:
        column = f"val_{stage}/ndcg@10"
        if column in metrics and metrics[column].notna().any():
            bounds.append((stage, int(metrics.loc[metrics[column].notna(), "epoch"].min())))
    return bounds


def switch_epochs(metrics: pd.DataFrame) -> list[float]:
    """The (fractional) epochs at which the alternating rule switched the active module."""
    active = _series(metrics, "alternating/active_is_sasrec")
    changed = active["value"].diff().fillna(0) != 0
    return active.loc[changed, "epoch"].tolist()


def best_per_stage(metrics: pd.DataFrame) -> pd.DataFrame:
    """Best validation NDCG@10 per stage with the Hit@10 of that same validation epoch."""
    rows = []
    for stage in STAGES:
        ndcg, hit = f"val_{stage}/ndcg@10", f"val_{stage}/hit@10"
        if ndcg in metrics and metrics[ndcg].notna().any():
            best = metrics.loc[metrics[ndcg].idxmax()]
            rows.append({"stage": stage, "epoch": int(best["epoch"]), "val/ndcg@10": best[ndcg], "val/hit@10": best[hit]})
    if not rows and "val/ndcg@10" in metrics and metrics["val/ndcg@10"].notna().any():
        best = metrics.loc[metrics["val/ndcg@10"].idxmax()]
        rows.append({"stage": "all", "epoch": int(best["epoch"]), "val/ndcg@10": best["val/ndcg@10"],
                     "val/hit@10": best["val/hit@10"]})
    return pd.DataFrame(rows)


def _plot(path: Path, series: dict[str, pd.DataFrame], bounds: list[tuple[str, int]], ylabel: str,
          step_plot: bool = False, marks: list[float] = (), mark_label: str = "") -> None:
    """Series over epochs, a dashed line and a label at every stage start (what the objective became),
    and dotted ``marks`` (e.g. the alternation's switches)."""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for label, frame in series.items():
        if step_plot:
            ax.step(frame["epoch"], frame["value"], where="post", label=label)
        else:
            ax.plot(frame["epoch"], frame["value"], label=label)
    for epoch in marks:
        ax.axvline(epoch, color="tab:red", linestyle=":", linewidth=0.6)
    if marks:
        ax.plot([], [], color="tab:red", linestyle=":", label=f"{mark_label} ({len(marks)})")
    for stage, epoch in bounds:
        ax.axvline(epoch, color="grey", linestyle="--", linewidth=0.8)
        ax.annotate(f"{stage} ({STAGE_POLICY[stage].objective} objective)", (epoch, 0.02), xytext=(3, 0),
                    textcoords="offset points", xycoords=("data", "axes fraction"), rotation=90, va="bottom",
                    fontsize=7, annotation_clip=False)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _series(metrics: pd.DataFrame, column: str) -> pd.DataFrame:
    """``column`` over fractional epochs: a step's epoch plus its place among the epoch's logged steps."""
    frame = metrics.loc[metrics[column].notna(), ["epoch", "step", column]].copy()
    spans = metrics.groupby("epoch")["step"].agg(["min", "max"])
    first, last = frame["epoch"].map(spans["min"]), frame["epoch"].map(spans["max"])
    frame["epoch"] = frame["epoch"] + (frame["step"] - first) / (last - first + 1)
    return frame.rename(columns={column: "value"})


def write_report(run_dir: Path, output_dir: Path, checkpoint: Path | None = None) -> Path:
    """Write the plots and ``report.md`` for the run logged in ``run_dir``; returns the report path."""
    metrics = load_run(run_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    bounds = stage_boundaries(metrics, checkpoint)
    columns = set(metrics.columns)
    if "train/loss" in columns:
        _plot(output_dir / "loss.png", {"train/loss": _series(metrics, "train/loss")}, bounds, "loss")
    validation = {c: _series(metrics, c) for c in ("val/ndcg@10", "val/hit@10") if c in columns}
    if validation:
        _plot(output_dir / "validation.png", validation, bounds, "validation metric")
    if "alternating/active_is_sasrec" in columns:
        _plot(output_dir / "alternating.png",
              {"active module (1 = SASRec, 0 = retriever)": _series(metrics, "alternating/active_is_sasrec")},
              bounds, "active module", step_plot=True, marks=switch_epochs(metrics), mark_label="switches")
    routers = {c.split("router_")[1]: _series(metrics, c) for c in sorted(columns) if c.startswith("val/router_")}
    if routers:
        _plot(output_dir / "router.png", routers, bounds, "mean router weight (validation)")

    lines = [f"# Run report: {run_dir}", "", "## Best validation metrics per stage", ""]
    best = best_per_stage(metrics)
    lines += ["| stage | epoch | val/ndcg@10 | val/hit@10 |", "|---|---|---|---|"]
    lines += [f"| {r.stage} | {r.epoch} | {r['val/ndcg@10']:.4f} | {r['val/hit@10']:.4f} |" for _, r in best.iterrows()]
    tests = [c for c in sorted(columns) if c.startswith("test/")]
    lines += ["", "## Test metrics", ""]
    if tests:
        last = metrics[tests].dropna(how="all").iloc[-1]
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {c} | {last[c]:.4f} |" for c in tests if not math.isnan(last[c])]
    else:
        lines += [f"None logged for this run: `python cli.py test` with the run's config, `--run_name {run_dir.name}` "
                  "and `--ckpt_path best` logs them (as a new version of this log), then run `report` again."]
    if bounds:
        lines += ["", "## Stages", "", "| stage | first epoch |", "|---|---|"]
        lines += [f"| {stage} | {epoch} |" for stage, epoch in bounds]
    report = output_dir / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run_dir", required=True, type=Path, help="logs/<run_name>, holding version_*/metrics.csv")
    parser.add_argument("--checkpoint", type=Path, default=None, help="the run's last.ckpt (stage transitions)")
    parser.add_argument("--output_dir", type=Path, default=None, help="default: reports/<run_name>")
    args = parser.parse_args(argv)
    try:
        report = write_report(args.run_dir, args.output_dir or Path("reports") / args.run_dir.name, args.checkpoint)
    except FileNotFoundError as err:
        parser.error(str(err))
    print(f"report: wrote {report} and its plots")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
