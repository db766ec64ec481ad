"""Fit and test one config under several seeds; print test metrics as mean ± std (for BENCHMARKS.md).

    python -m ur4rec.seeds --run_name sasrec --seeds 0 1 2 -- --config configs/sasrec.yaml --data.data_dir ../shared/data/ml-100k

Everything after ``--`` is passed to ``cli.py fit``. Each seed trains as run ``<run_name>-seed<k>``
and is tested on its best validation checkpoint (selection never looks at the test split).
"""

from __future__ import annotations

import argparse
import statistics
import time

from ur4rec.cli import main as cli_main

REPORTED = ("test/hit@10", "test/ndcg@10", "test/hit@20", "test/ndcg@20", "test/mrr", "test/hit@10_sampled",
            "test/ndcg@10_sampled")


def fit_and_test(fit_args: list[str], seed: int, run_name: str) -> dict[str, float]:
    """One seed: fit, then test the best checkpoint by ``val/ndcg@10``; returns test metrics, epochs and seconds."""
    start = time.perf_counter()
    cli = cli_main(["fit", *fit_args, f"--seed_everything={seed}", f"--run_name={run_name}-seed{seed}"])
    trainer = cli.trainer
    trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path="best", verbose=False)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
    metrics["epochs"] = trainer.current_epoch
    metrics["seconds"] = time.perf_counter() - start
    return metrics


def summarize(runs: list[dict[str, float]], keys=REPORTED) -> str:
    """A Markdown table: one row per metric with mean ± std over seeds and each seed's value."""
    lines = ["| metric | mean ± std | per seed |", "|---|---|---|"]
    for key in (*keys, "epochs", "seconds"):
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
    parser.add_argument("fit_args", nargs=argparse.REMAINDER, help="arguments for cli.py fit, after --")
    args = parser.parse_args(argv)
    fit_args = [a for a in args.fit_args if a != "--"]
    runs = [fit_and_test(fit_args, seed, args.run_name) for seed in args.seeds]
    print(f"seeds {args.seeds}; cli.py fit {' '.join(fit_args)}")
    print(summarize(runs))


if __name__ == "__main__":
    main()
