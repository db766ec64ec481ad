"""``fusion_sweep``: validation metrics of a trained UR4Rec checkpoint for several fusion weights.

    python -m benchmarks fusion_sweep --ckpt_path checkpoints/ur4rec/best-end_to_end.ckpt \\
        [--weights 0.4 0.5 0.6 0.7 0.8 0.9 1.0] -- --config configs/ur4rec.yaml --data.data_dir ...

Everything after ``--`` is the run's LightningCLI configuration. Only the validation split is read, so
the weight chosen here (then set as ``model.fusion_weight``) never sees a test item. Weight 1.0 is
SASRec alone, 0.0 the retriever alone.
"""

from __future__ import annotations

import argparse
from typing import Sequence

from benchmarks.common import configured, markdown_table, split_at_dashes, validation_rows
from ur4rec.vocabulary import SCORE_FUSED

DEFAULT_WEIGHTS = (0.0, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
COLUMNS = ("val/ndcg@10", "val/hit@10", "val/ndcg@20", "val/hit@20")
NEW_ITEM_COLUMNS = ("val_warm/ndcg@10", "val_cold_new/ndcg@10")  # under the new-item protocol


def sweep(cli, ckpt_path: str, weights: Sequence[float]) -> list[dict[str, float]]:
    """One ``trainer.validate`` per weight on the checkpoint's weights, scoring with the fused model."""
    model = cli.model
    if model.net.fusion is None:
        raise SystemExit("fusion_sweep needs a model with a retriever (model.retriever is null)")

    def set_weight(weight: float) -> None:
        model.net.fusion.set_sasrec_weight(weight)
        model.score_mode = SCORE_FUSED  # validate() runs no stage callback, so this holds

    return validation_rows(cli, ckpt_path, "fusion_weight", weights, set_weight, COLUMNS + NEW_ITEM_COLUMNS)


def format_table(rows: list[dict[str, float]]) -> str:
    best = max(rows, key=lambda r: r["val/ndcg@10"])
    rows = [{**r, "fusion_weight": f"{r['fusion_weight']:.2f}" + (" (best)" if r is best else "")} for r in rows]
    return markdown_table(tuple(rows[0]), rows)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(argv or [])
    ours, cli_args = split_at_dashes(argv)
    parser = argparse.ArgumentParser(prog="python -m benchmarks fusion_sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt_path", required=True)
    parser.add_argument("--weights", type=float, nargs="+", default=list(DEFAULT_WEIGHTS))
    args = parser.parse_args(ours)
    cli = configured(cli_args)
    print(format_table(sweep(cli, args.ckpt_path, args.weights)))
    return 0
