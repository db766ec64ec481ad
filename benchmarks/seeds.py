"""Fit and test one config under several seeds; print test metrics as mean ± std (for BENCHMARKS.md).

    python -m benchmarks seeds --run_name sasrec --seeds 0 1 2 -- --config configs/sasrec.yaml --data.data_dir ../shared/data/ml-100k

Everything after ``--`` is passed to ``cli.py fit``. ``--jobs N`` trains N seeds at a time in separate
processes, each with an equal share of the CPU threads. Each seed trains as run ``<run_name>-seed<k>``
and is tested on its best validation checkpoint (selection never looks at the test split), and on
any other checkpoint named with ``--also_test`` (e.g. ``best-end_to_end``, the best fused model of
the last stage), reported with that name as a prefix.

``--cold_folds 0 1 2 3 4`` runs the new-item protocol once per fold (``--cold_fraction``, default 0.2: five
folds make every item new once), runs ``<run_name>-fold<k>-seed<s>``; the table adds every test slice.

``--experiments A B ...`` runs each ``configs/experiments/<name>.yaml`` as an extra ``--config`` (runs
``<run_name>-<name>-seed<k>``) and prints one row per experiment instead (an ablation table):

    python -m benchmarks seeds --run_name abl --seeds 0 --experiments no_image no_text -- --config configs/ur4rec.yaml ...
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial

import torch

from benchmarks.common import mean_std
from ur4rec.callbacks.alternating import AdaptiveAlternating
from ur4rec.cli import main as cli_main

REPORTED = ("test/hit@5", "test/ndcg@5", "test/hit@10", "test/ndcg@10", "test/hit@20", "test/ndcg@20", "test/mrr@10",
            "test/mrr", "test/hit@10_sampled", "test/ndcg@10_sampled")
SLICE_COLUMNS = ("/ndcg@10", "/hit@10", "/users")  # of every test slice (cold, warm, popularity, history)


def fit_and_test(fit_args: list[str], seed: int, run_name: str, also_test: tuple[str, ...] = ()) -> dict[str, float]:
    """One seed: fit, then test the best checkpoint by ``val/ndcg@10`` (and ``also_test`` ones).

    Returns test metrics, epochs, seconds, optimizer steps (and steps per module when alternating)."""
    start = time.perf_counter()
    cli = cli_main(["fit", *fit_args, f"--seed_everything={seed}", f"--run_name={run_name}-seed{seed}"])
    trainer = cli.trainer
    metrics: dict[str, float] = {"epochs": trainer.current_epoch, "optimizer_steps": trainer.global_step,
                                 "seconds": time.perf_counter() - start}
    for callback in trainer.callbacks:
        if isinstance(callback, AdaptiveAlternating) and any(callback.steps.values()):
            metrics.update({f"joint_steps_{m}": n for m, n in callback.steps.items()}, switches=callback.switches)
    checkpoint_dir = trainer.checkpoint_callback.dirpath
    for name in ("best", *also_test):
        trainer.test(cli.model, datamodule=cli.datamodule, verbose=False,
                     ckpt_path="best" if name == "best" else f"{checkpoint_dir}/{name}.ckpt")
        prefix = "" if name == "best" else f"{name}:"
        metrics.update({prefix + k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test")})
    return metrics


def summarize(runs: list[dict[str, float]], also_test: tuple[str, ...] = ()) -> str:
    """A Markdown table: one row per metric with mean ± std over seeds and each seed's value."""
    sliced = sorted({k for r in runs for k in r if k.startswith("test_") and k.endswith(SLICE_COLUMNS)})
    keys = [*REPORTED, *sliced, *(f"{name}:{k}" for name in also_test for k in (*REPORTED, *sliced))]
    extra = sorted({k for r in runs for k in r if k.startswith(("joint_steps_", "switches"))})
    lines = ["| metric | mean ± std | per seed |", "|---|---|---|"]
    for key in (*keys, "epochs", "optimizer_steps", *extra, "seconds"):
        values = [r[key] for r in runs if key in r]
        if not values:
            continue
        lines.append(f"| {key} | {mean_std(values)} | "
                     + ", ".join(f"{v:.4f}" for v in values) + " |")
    return "\n".join(lines)


ABLATION_COLUMNS = ("test/ndcg@10", "test/hit@10")
ABLATION_COUNTS = ("optimizer_steps", "joint_steps_sasrec", "joint_steps_retriever", "switches")


def ablation_table(runs: dict[str, list[dict[str, float]]], also_test: tuple[str, ...] = ()) -> str:
    """A Markdown table with one row per experiment: metrics (mean over its seeds) and step counts."""
    columns = [*ABLATION_COLUMNS, *(f"{name}:{k}" for name in also_test for k in ABLATION_COLUMNS), *ABLATION_COUNTS]
    lines = ["| experiment | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, seeds in runs.items():
        cells = []
        for column in columns:
            values = [r[column] for r in seeds if column in r]
            mean = statistics.mean(values) if values else float("nan")
            cells.append(f"{mean:.0f}" if column in ABLATION_COUNTS else f"{mean:.4f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--run_name", required=True, help="runs are named <run_name>-seed<k>")
    parser.add_argument("--also_test", nargs="*", default=[], help="checkpoint names to test besides the best")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at the same time")
    parser.add_argument("--experiments", nargs="*", default=[],
                        help="configs/experiments/<name>.yaml overlays, one table row each")
    parser.add_argument("--cold_folds", type=int, nargs="*", default=[],
                        help="the new-item protocol: one run per fold (data.cold_item_seed) of --cold_fraction")
    parser.add_argument("--cold_fraction", type=float, default=0.2, help="data.cold_item_fraction of --cold_folds")
    parser.add_argument("fit_args", nargs=argparse.REMAINDER, help="arguments for cli.py fit, after --")
    args = parser.parse_args(argv)
    fit_args = [a for a in args.fit_args if a != "--"]
    also_test = tuple(args.also_test)
    jobs = [(name, with_overlay(fit_args, f"configs/experiments/{name}.yaml"), f"{args.run_name}-{name}", seed)
            for name in args.experiments for seed in args.seeds] \
        or [("", [*fit_args, "--data.cold_item_fraction", str(args.cold_fraction), "--data.cold_item_seed", str(fold)],
             f"{args.run_name}-fold{fold}", seed) for fold in args.cold_folds for seed in args.seeds] \
        or [("", fit_args, args.run_name, seed) for seed in args.seeds]
    results = run_all([job[1:] for job in jobs], also_test, args.jobs)
    print(f"seeds {args.seeds}; cli.py fit {' '.join(fit_args)}")
    if args.experiments:
        runs = {name: [r for job, r in zip(jobs, results) if job[0] == name] for name in args.experiments}
        print(ablation_table(runs, also_test))
    else:
        print(summarize(results, also_test))


def with_overlay(fit_args: list[str], config: str) -> list[str]:
    """``fit_args`` with ``--config config`` right after the first ``--config`` (so later arguments,
    e.g. the user's overrides, still win over the overlay)."""
    at = fit_args.index("--config") + 2 if "--config" in fit_args else 0
    return [*fit_args[:at], "--config", config, *fit_args[at:]]


def _fit_and_test(job: tuple[list[str], str, int], also_test: tuple[str, ...]) -> dict[str, float]:
    fit_args, run_name, seed = job
    return fit_and_test(fit_args, seed, run_name, also_test)


def run_all(jobs: list[tuple[list[str], str, int]], also_test: tuple[str, ...], parallel: int) -> list[dict]:
    """Each (fit args, run name, seed) through ``fit_and_test``; ``parallel`` processes at a time."""
    run = partial(_fit_and_test, also_test=also_test)
    if parallel == 1:
        return [run(job) for job in jobs]
    threads = max(1, (os.cpu_count() or 1) // parallel)
    with ProcessPoolExecutor(parallel, mp_context=multiprocessing.get_context("spawn"),
                             initializer=torch.set_num_threads, initargs=(threads,)) as pool:
        return list(pool.map(run, jobs))


if __name__ == "__main__":
    main()
