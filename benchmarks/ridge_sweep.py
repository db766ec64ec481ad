"""``ridge_sweep``: validation metrics of a trained checkpoint for several penalties of SASRec's new-item map.

    python -m benchmarks ridge_sweep --ckpt_path checkpoints/run/best-epoch*.ckpt [--ridges 0.1 1 10 100] \\
        -- --config configs/ur4rec.yaml --model.sasrec.new_item_ridge 1 --data.cold_item_fraction 0.2 ...

Everything after ``--`` is the run's LightningCLI configuration, with ``model.sasrec.new_item_ridge`` set
(to any value: each row overwrites it). The map has no trained parameters, so a plain SASRec checkpoint
can be read with it. Only the validation split is read, so the penalty chosen here never sees a test item.
"""

from __future__ import annotations

import argparse
from typing import Sequence

from benchmarks.common import configured, markdown_table, resolve, split_at_dashes, validation_rows

DEFAULT_RIDGES = (0.1, 1.0, 10.0, 100.0)
COLUMNS = ("val/ndcg@10", "val_warm/ndcg@10", "val_cold/ndcg@10", "val_cold_new/ndcg@10", "val_cold_new/hit@10")


def sweep(cli, ckpt_path: str, ridges: Sequence[float]) -> list[dict[str, float]]:
    """One ``trainer.validate`` per penalty on the checkpoint's weights."""
    sasrec = cli.model.net.sasrec
    if sasrec.new_item_ridge is None:
        raise SystemExit("ridge_sweep needs --model.sasrec.new_item_ridge (any value) after --")
    return validation_rows(cli, ckpt_path, "new_item_ridge", ridges,
                           lambda ridge: setattr(sasrec, "new_item_ridge", ridge), COLUMNS)


def main(argv: Sequence[str] | None = None) -> int:
    ours, cli_args = split_at_dashes(list(argv or []))
    parser = argparse.ArgumentParser(prog="python -m benchmarks ridge_sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt_path", required=True, help="a checkpoint (or a glob naming exactly one)")
    parser.add_argument("--ridges", type=float, nargs="+", default=list(DEFAULT_RIDGES))
    args = parser.parse_args(ours)
    cli = configured(cli_args)
    rows = sweep(cli, resolve(args.ckpt_path), args.ridges)
    print(markdown_table(tuple(rows[0]), rows, {"new_item_ridge": lambda v: f"{v:g}"}))
    return 0
