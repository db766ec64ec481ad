"""Fit and test one config under several seeds; print test metrics as mean ± std (for BENCHMARKS.md).

    python -m ur4rec.seeds --run_name sasrec --seeds 0 1 2 -- --config configs/sasrec.yaml --data.data_dir ../shared/data/ml-100k

Everything after ``--`` is passed to ``cli.py fit``. ``--jobs N`` trains N seeds at a time in separate
processes, each with an equal share of the CPU threads. Each seed trains as run ``<run_name>-seed<k>``
and is tested on its best validation checkpoint (selection never looks at the test split), and on
any other checkpoint named with ``--also_test`` (e.g. ``best-end_to_end``, the best fused model of
the last stage), reported with that name as a prefix.
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

from ur4rec.callbacks.alternating import AdaptiveAlternating
from ur4rec.cli import main as cli_main

REPORTED = ("test/hit@10", "test/ndcg@10", "test/hit@20", "test/ndcg@20", "test/mrr", "test/hit@10_sampled",
            "test/ndcg@10_sampled")


def fit_and_test(fit_args: list[str], seed: int, run_name: str, also_test: tuple[str, ...] = ()) -> dict[str, float]:
    """One seed: fit, then test the best checkpoint by ``val/ndcg@10`` (and ``also_test`` ones).

    Returns test metrics, epochs, seconds, optimizer steps (and steps per module when alternating)."""
    start = time.perf_counter()
    cli = cli_main(["fit", *fit_args, f"--seed_everything={seed}", f"--run_name={run_name}-seed{seed}"])
    trainer = cli.trainer
    metrics: dict[str, float] = {"epochs": trainer.current_epoch, "optimizer_steps": trainer.global_step,
                                 "seconds": time.perf_counter() - start}
    for callback in trainer.callbacks:
        if isinstance(callback, AdaptiveAlternating):
            metrics.update({f"joint_steps_{m}": n for m, n in callback.steps.items()}, switches=callback.switches)
    checkpoint_dir = trainer.checkpoint_callback.dirpath
    for name in ("best", *also_test):
        trainer.test(cli.model, datamodule=cli.datamodule, verbose=False,
                     ckpt_path="best" if name == "best" else f"{checkpoint_dir}/{name}.ckpt")
        prefix = "" if name == "best" else f"{name}:"
        metrics.update({prefix + k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")})
    return metrics


def summarize(runs: list[dict[str, float]], also_test: tuple[str, ...] = ()) -> str:
    """A Markdown table: one row per metric with mean ± std over seeds and each seed's value."""
    keys = [*REPORTED, *(f"{name}:{k}" for name in also_test for k in REPORTED)]
    extra = sorted({k for r in runs for k in r if k.startswith(("joint_steps_", "switches"))})
    lines = ["| metric | mean ± std | per seed |", "|---|---|---|"]
    for key in (*keys, "epochs", "optimizer_steps", *extra, "seconds"):
        values = [r[key] for r in runs if key in r]
        if not values:
            continue
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        lines.append(f"| {key} | {statistics.mean(values):.4f} ± {spread:.4f} | "
                     + ", ".join(f"{v:.4f}" for v in values) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--run_name", required=True, help="runs are named <run_name>-seed<k>")
    parser.add_argument("--also_test", nargs="*", default=[], help="checkpoint names to test besides the best")
    parser.add_argument("--jobs", type=int, default=1, help="seeds trained at the same time")
    parser.add_argument("fit_args", nargs=argparse.REMAINDER, help="arguments for cli.py fit, after --")
    args = parser.parse_args(argv)
    fit_args = [a for a in args.fit_args if a != "--"]
    run = partial(fit_and_test, fit_args, run_name=args.run_name, also_test=tuple(args.also_test))
    if args.jobs == 1:
        runs = [run(seed) for seed in args.seeds]
    else:
        threads = max(1, (os.cpu_count() or 1) // args.jobs)
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=torch.set_num_threads, initargs=(threads,)) as pool:
            runs = list(pool.map(run, args.seeds))
    print(f"seeds {args.seeds}; cli.py fit {' '.join(fit_args)}")
    print(summarize(runs, tuple(args.also_test)))


if __name__ == "__main__":
    main()
