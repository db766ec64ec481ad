"""``new_item_offset``: what ranking new items higher would cost, measured on validation.

    python -m benchmarks new_item_offset --ckpt_path checkpoints/run/best-epoch*.ckpt [--offsets 0 1 2 4] \\
        -- --config configs/ur4rec.yaml --data.cold_item_fraction 0.2 --data.data_dir ...

Under the new-item protocol a calibrated model gives each new item about the probability its content
earns, which rarely beats the tenth warm item. This adds ``offset`` (in nats) to the log-probability of
every item no training sequence holds and reports validation NDCG@10 / Hit@10 for all users and the
cold and warm slices: the trade between cold users gained and warm users lost, read on validation only.
"""

from __future__ import annotations

import argparse
from typing import Sequence

import torch

from benchmarks.common import configured, evaluation_batches, load_for_scoring, markdown_table, resolve, split_at_dashes
from benchmarks.paired import log_scores, user_gains
from ur4rec.slices import COLD, WARM, slice_masks

DEFAULT_OFFSETS = (0.0, 1.0, 2.0, 3.0, 4.0, 6.0)


def offset_rows(scores: torch.Tensor, batches: list[dict[str, torch.Tensor]], unseen: torch.Tensor,
                offsets: Sequence[float]) -> list[dict[str, object]]:
    """scores: (U, N + 1) log-probabilities; unseen: (N + 1,) bool. One row per offset: NDCG@10 and Hit@10
    of all users and of the cold and warm slices."""
    masks = {name: torch.cat([slice_masks(b, (name,))[name] for b in batches]) for name in (COLD, WARM)}
    rows = []
    for offset in offsets:
        gains = user_gains(scores + offset * unseen.to(scores.dtype), batches)
        row: dict[str, object] = {"offset": offset}
        for group, users in (("all", torch.ones_like(masks[COLD])), *masks.items()):
            for metric, values in gains.items():
                row[f"{group} {metric}"] = float(values[users].mean())
        rows.append(row)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    ours, cli_args = split_at_dashes(list(argv or []))
    parser = argparse.ArgumentParser(prog="python -m benchmarks new_item_offset", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt_path", required=True, help="a checkpoint (or a glob naming exactly one)")
    parser.add_argument("--offsets", type=float, nargs="+", default=list(DEFAULT_OFFSETS))
    args = parser.parse_args(ours)
    cli = configured(cli_args)
    if cli.datamodule.new_item_mask() is None:
        parser.error("needs the new-item protocol: set --data.cold_item_fraction after --")
    load_for_scoring(cli.model, resolve(args.ckpt_path))
    batches = evaluation_batches(cli, "val")
    unseen = ~cli.datamodule.seen_item_mask()
    unseen[0] = False
    rows = offset_rows(log_scores(cli.model, batches), batches, unseen, args.offsets)
    print(markdown_table(tuple(rows[0]), rows, {"offset": lambda v: f"{v:g}"}))
    return 0
