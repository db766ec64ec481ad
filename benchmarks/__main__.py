"""``python -m benchmarks COMMAND ...``: the analysis and benchmark tools, one entry point.

Commands that score a run's checkpoints take that run's LightningCLI configuration after ``--``.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "bench": ("benchmarks.bench", "data preparation, seconds per epoch, full-ranking evaluation, memory"),
    "bench_scaling": ("benchmarks.bench_scaling", "training and evaluation as users and items grow (1x/10x/100x)"),
    "bench_features": ("benchmarks.bench_features", "text and poster features, cold and cached"),
    "seeds": ("benchmarks.seeds", "fit and test several seeds (or experiment overlays); mean ± std"),
    "stage_table": ("benchmarks.stage_table", "validation NDCG@10 per stage of several runs"),
    "convergence": ("benchmarks.convergence", "best validation NDCG@10, time to it, time to reach a bar"),
    "slice_table": ("benchmarks.slice_table", "test metrics per slice (new items, popularity, history) of runs"),
    "paired": ("benchmarks.paired", "two sets of checkpoints compared user by user, bootstrap interval"),
    "pooled": ("benchmarks.pooled", "paired differences of several data splits (folds) in one interval"),
    "side_signal": ("benchmarks.side_signal", "each side input (texts, posters) as an untrained ranker"),
    "fusion_sweep": ("benchmarks.fusion_sweep", "validation metrics of a checkpoint per fusion weight"),
    "ridge_sweep": ("benchmarks.ridge_sweep", "validation metrics of a checkpoint per penalty of SASRec's new-item map"),
    "new_item_offset": ("benchmarks.new_item_offset", "validation cost and gain of ranking new items higher"),
    "new_item_popularity": ("benchmarks.new_item_popularity", "how well content predicts a new item's popularity"),
    "llamarec_split": ("benchmarks.llamarec_split", "a MovieLens CSV split against LlamaRec's own preprocessing"),
    "llamarec_lrurec": ("benchmarks.llamarec_lrurec", "LlamaRec's LRURec trained and tested by LlamaRec's code"),
    "recbole_sasrec": ("benchmarks.recbole_sasrec", "RecBole's SASRec fitted and tested on our split, several seeds"),
    "llamarec_average": ("benchmarks.llamarec_average", "our checkpoints averaged as LlamaRec averages; against LRURec"),
    "bad_input_corpus": ("benchmarks.bad_input_corpus", "every bad input run through cli.py, classified and counted"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in COMMANDS:
        print("usage: python -m benchmarks COMMAND [--help]\n\ncommands:", file=sys.stderr)
        for name, (_, summary) in COMMANDS.items():
            print(f"  {name:15} {summary}", file=sys.stderr)
        if argv and argv[0] not in ("-h", "--help"):
            print(f"error: unknown command {argv[0]!r}", file=sys.stderr)
            return 2
        return 0 if argv else 2
    result = importlib.import_module(COMMANDS[argv[0]][0]).main(argv[1:])
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
