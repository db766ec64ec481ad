"""Test metrics of our checkpoints averaged as LlamaRec averages them, beside the mean over users.

    python -m benchmarks llamarec_average 'checkpoints/mls-sasrec-seed0/best-epoch*.ckpt' ... \\
        -- --config configs/sasrec.yaml --config configs/datasets/ml-latest-small.yaml --data.data_dir ...

LlamaRec's trainers report the mean of per-batch means (``AverageMeterSet``, one update per batch), in
batches of 16 users taken in the order of its dense user ids, which follow the iteration order of a Python
``set`` of the raw ids. A shorter last batch then weighs as much as a full one: on ml-latest-small the last
batch holds 2 of the 610 users, each weighing 8 times as much as any other user.
"""

from __future__ import annotations

import argparse
from typing import Sequence

import torch

from benchmarks.common import configured, evaluation_batches, load_for_scoring, markdown_table, resolve, split_at_dashes
from benchmarks.paired import log_scores, user_ranks

METRIC_NAMES = ("NDCG@10", "Recall@10", "NDCG@5", "MRR@10")
LLAMAREC_BATCH = 16  # LlamaRec's set_template: batches of 16 for the dataset it calls "ml-100k"


def batch_mean(per_user: torch.Tensor, batch_size: int = LLAMAREC_BATCH) -> float:
    """The mean of per-batch means of ``per_user`` (U,) in order: every batch weighs the same, the last
    (shorter) one included."""
    return float(torch.stack([chunk.double().mean() for chunk in per_user.split(batch_size)]).mean())


def user_metrics(ranks: torch.Tensor) -> dict[str, torch.Tensor]:
    """metric -> (U,) per-user value of LlamaRec's metrics from each user's 0-based ``ranks`` (U,) of its one
    label (Recall@10 with one label is Hit@10)."""
    ranks = ranks.double()
    inside = lambda k, value: torch.where(ranks < k, value, torch.zeros_like(value))
    return {"NDCG@10": inside(10, 1 / torch.log2(ranks + 2)), "Recall@10": inside(10, torch.ones_like(ranks)),
            "NDCG@5": inside(5, 1 / torch.log2(ranks + 2)), "MRR@10": inside(10, 1 / (ranks + 1))}


def llamarec_order(raw_user_ids: Sequence[int]) -> torch.Tensor:
    """(U,) positions of ``raw_user_ids`` in LlamaRec's user order: its dense ids enumerate ``set(raw ids)``."""
    position = {raw: i for i, raw in enumerate(int(u) for u in raw_user_ids)}
    return torch.tensor([position[raw] for raw in set(position)])


def averaging_rows(name: str, ranks: torch.Tensor) -> list[dict[str, object]]:
    """Two rows for ``ranks`` (U,) already in LlamaRec's order: the mean over users and LlamaRec's batch mean."""
    per_user = user_metrics(ranks)
    return [{"model": name, "averaging": "mean over users", **{m: float(per_user[m].mean()) for m in METRIC_NAMES}},
            {"model": name, "averaging": f"mean of batch means ({LLAMAREC_BATCH})",
             **{m: batch_mean(per_user[m]) for m in METRIC_NAMES}}]


def main(argv: Sequence[str] | None = None) -> int:
    ours, cli_args = split_at_dashes(list(argv or []))
    parser = argparse.ArgumentParser(prog="python -m benchmarks llamarec_average", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="checkpoints (or globs naming one file each)")
    args = parser.parse_args(ours)
    try:
        paths = [resolve(p) for p in args.checkpoints]
    except FileNotFoundError as error:
        parser.error(str(error))
    cli = configured(cli_args)
    batches = evaluation_batches(cli, "test")
    users = torch.cat([b["user"] for b in batches])  # (U,) row -> user index of the split
    order = llamarec_order(cli.datamodule.splits.raw_user_ids[users.numpy()])
    rows = []
    for path in paths:
        load_for_scoring(cli.model, path)
        rows += averaging_rows(path, user_ranks(log_scores(cli.model, batches), batches)[order])
    print(f"test split, {len(order)} users; LlamaRec's last batch holds {len(order) % LLAMAREC_BATCH or LLAMAREC_BATCH}")
    print(markdown_table(("model", "averaging", *METRIC_NAMES), rows))
    return 0
