"""The GPU check's results: the results file, the epoch timings read back from a run's ``metrics.csv``, the
outcomes of the GPU tests from their JUnit XML, and the summary table printed last (standard library only)."""

from __future__ import annotations

import csv
import json
import math
import os
import statistics
from pathlib import Path

RESULTS_FILE = "gpu_check.json"
UR4REC_BAR_SECONDS = 60.0  # issue 17: the whole four-stage UR4Rec run on M_ML-100K, on the H200
SHOWN_TEST_METRICS = ("test/ndcg@10", "test/hit@10", "test/ndcg@20", "test/mrr", "test/hit@10_sampled")


class Results:
    """The one results file: a JSON object rewritten atomically after every step, so a run cut short by its
    time limit still leaves what it measured."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.data: dict = {}

    def record(self, key: str, value) -> None:
        self.data[key] = value
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.data, indent=2, sort_keys=False, default=str) + "\n")
        os.replace(temporary, self.path)

    @staticmethod
    def load(path: Path) -> dict:
        return json.loads(Path(path).read_text())


def _float(value: str) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def epoch_timings(metrics_csv: Path, batches_per_epoch: int | None = None) -> dict:
    """Seconds per epoch of a fit from its ``metrics.csv``: each epoch's ``time/fit_seconds`` (logged at its
    validation) minus the previous one, so an epoch's time holds its training, validation and checkpoints.

    An epoch belongs to the stage whose ``val_<stage>/ndcg@10`` it logged (a run without a retriever has one
    stage, ``pretrain_sasrec``). With ``batches_per_epoch``, ``train/batches_per_sec`` (the Throughput callback)
    gives the training part alone.
    """
    fit_seconds: dict[int, float] = {}
    stage_of: dict[int, str] = {}
    batches_per_sec: dict[int, float] = {}
    with open(metrics_csv, newline="") as handle:
        for row in csv.DictReader(handle):
            epoch = int(row["epoch"]) if row.get("epoch", "").strip() else None
            if epoch is None:
                continue
            seconds = _float(row.get("time/fit_seconds", ""))
            if seconds is not None:
                fit_seconds[epoch] = seconds
                stages = [k.split("/")[0].removeprefix("val_") for k, v in row.items()
                          if k and k.startswith("val_") and k.endswith("/ndcg@10") and _float(v) is not None]
                stage_of[epoch] = stages[0] if stages else "pretrain_sasrec"
            rate = _float(row.get("train/batches_per_sec", ""))
            if rate:
                batches_per_sec[epoch] = rate
    epochs = sorted(fit_seconds)
    durations = {e: fit_seconds[e] - (fit_seconds[epochs[i - 1]] if i else 0.0) for i, e in enumerate(epochs)}
    per_stage: dict[str, dict] = {}
    for epoch in epochs:
        stage = per_stage.setdefault(stage_of[epoch], {"epochs": 0, "seconds": 0.0, "durations": []})
        stage["epochs"] += 1
        stage["seconds"] += durations[epoch]
        stage["durations"].append(durations[epoch])
    for stage in per_stage.values():
        stage["epoch_seconds_median"] = statistics.median(stage.pop("durations"))
        stage["seconds"] = round(stage["seconds"], 3)
    timings = {
        "epochs": len(epochs),
        "fit_seconds": fit_seconds[epochs[-1]] if epochs else None,
        "epoch_seconds_median": statistics.median(durations.values()) if durations else None,
        "first_epoch_seconds": durations[epochs[0]] if epochs else None,
        "per_stage": per_stage,
    }
    if batches_per_epoch and batches_per_sec:
        timings["train_seconds_per_epoch_median"] = batches_per_epoch / statistics.median(batches_per_sec.values())
    return timings


def junit_outcomes(path: Path) -> dict:
    """Counts per outcome and one entry per test (name, outcome, seconds, message) of a pytest JUnit XML file."""
    import xml.etree.ElementTree as ElementTree

    tests, counts = [], {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for kind in ("failure", "error", "skipped"):
            element = case.find(kind)
            if element is not None:
                outcome = {"failure": "failed"}.get(kind, kind)
                message = (element.get("message") or element.text or "").strip()
                break
        counts[outcome] += 1
        tests.append({"name": f"{case.get('classname', '')}::{case.get('name', '')}", "outcome": outcome,
                      "seconds": float(case.get("time") or 0.0), "message": message[:800]})
    return {"counts": {k: n for k, n in counts.items() if n}, "tests": tests}


def _metric(values: dict, key: str) -> str:
    value = values.get(key)
    return f"{value:.4f}" if isinstance(value, (int, float)) else "-"


def _seconds(value) -> str:
    return f"{value:.2f} s" if isinstance(value, (int, float)) else "-"


def summary_lines(results: dict) -> list[str]:
    """The table the check prints last: environment, tests, and per run its times, memory and test metrics."""
    env = results.get("environment", {})
    lines = [f"device: {env.get('device_name', 'cpu')}, torch {env.get('torch', '?')}, python {env.get('python', '?')}"]
    features = results.get("features")
    if features:
        lines.append(f"features: {'bundle matches the real data' if features.get('ok') else 'MISMATCH'} "
                     f"({features.get('digest', {}).get('posters_embedded', '?')} posters, "
                     f"{features.get('texts_computed', '?')} texts embedded now)")
    tests = results.get("gpu_tests")
    if tests:
        counts = ", ".join(f"{n} {k}" for k, n in tests.get("counts", {}).items())
        lines.append(f"gpu tests: {counts or 'none collected'} (exit {tests.get('returncode')})")
    for run, record in results.get("runs", {}).items():
        if "skipped" in record:
            lines.append(f"{run}: skipped ({record['skipped']})")
            continue
        fit, test = record.get("fit", {}), record.get("test", {})
        timings = fit.get("timings", {})
        lines.append(f"{run}: fit process {_seconds(fit.get('process_seconds'))} (fit loop "
                     f"{_seconds(timings.get('fit_seconds'))}, {timings.get('epochs', '-')} epochs, "
                     f"{_seconds(timings.get('epoch_seconds_median'))} per epoch with validation, training part "
                     f"{_seconds(timings.get('train_seconds_per_epoch_median'))})")
        for stage, numbers in timings.get("per_stage", {}).items():
            lines.append(f"  {stage}: {numbers['epochs']} epochs, {_seconds(numbers['seconds'])}, "
                         f"{_seconds(numbers['epoch_seconds_median'])} per epoch")
        peak, reserved, rss = (fit.get(k) for k in ("peak_cuda_allocated_mib", "peak_cuda_reserved_mib", "peak_rss_mib"))
        memory = f"{peak:.0f} MiB allocated, {reserved:.0f} MiB reserved" if peak is not None else "-"
        lines.append(f"  peak GPU memory: {memory}; peak RSS {f'{rss:.0f} MiB' if rss else '-'}; full-ranking "
                     f"evaluation of all {test.get('users', '?')} users: {_seconds(test.get('full_ranking_seconds'))}")
        metrics = test.get("metrics", {})
        lines.append("  test: " + ", ".join(f"{k.removeprefix('test/')} {_metric(metrics, k)}" for k in SHOWN_TEST_METRICS)
                     + f" (checkpoint {Path(test['checkpoint']).name if test.get('checkpoint') else '-'})")
        if "error" in record:
            lines.append(f"  FAILED: {record['error']}")
    bar = results.get("bar")
    if bar:
        bf16 = bar.get("ur4rec_bf16_fit_process_seconds")
        lines.append(f"bar: whole four-stage UR4Rec fit {_seconds(bar.get('ur4rec_fit_process_seconds'))} with "
                     f"gpu.yaml{f' (bf16-mixed: {_seconds(bf16)})' if bf16 else ''} (bar {bar['bar_seconds']:.0f} s): "
                     f"{'met' if bar.get('met') else 'NOT met'}"
                     f"{'' if bar.get('comparable', True) else ' (dry run: not comparable)'}")
    return lines
