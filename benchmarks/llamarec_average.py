"""Test metrics of our checkpoints averaged as LlamaRec's retriever trainer averages them, and over users.

    python -m benchmarks llamarec_average 'checkpoints/mls-sasrec-seed0/best-epoch*.ckpt' ... \\
        -- --config configs/sasrec.yaml --config configs/datasets/ml-latest-small.yaml --data.data_dir ...

LlamaRec's retriever trainer tests with the mean of per-batch means (``AverageMeterSet``, one update per
batch), in batches of 16 users taken in the order of its dense user ids, which follow the iteration order
of a Python ``set`` of the raw ids (ascending for ml-latest-small's ids 1..610). A shorter last batch then
weighs as much as a full one: on ml-latest-small the last batch holds 2 of the 610 users, each weighing 8
times as much as any other user.

``--against ranks.pt`` (written by ``llamarec_lrurec --save_ranks``) adds the paired comparison with
LRURec over the same users, mean over users, with the bootstrap interval of ``paired``: each checkpoint,
and the checkpoints' per-user mean.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import torch

from benchmarks.common import configured, evaluation_batches, load_for_scoring, markdown_table, resolve, split_at_dashes
from benchmarks.paired import format_table, log_scores, relative_row, user_ranks

METRIC_NAMES = ("NDCG@10", "Recall@10", "NDCG@5", "MRR@10")
PAIRED_METRICS = ("NDCG@10", "Recall@10")  # what --against compares
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


def against_rows(reference: dict[str, torch.Tensor], raw_user_ids: Sequence[int],
                 ours: dict[str, torch.Tensor], draws: int = 2000) -> list[dict[str, object]]:
    """Paired rows of our checkpoints' per-user ranks ``ours`` (name -> (U,), users in ``raw_user_ids`` order)
    against ``reference`` ({"raw_user_ids": (U,), "ranks": (U,)}), aligned by raw user id."""
    rank_of = dict(zip(reference["raw_user_ids"].tolist(), reference["ranks"].tolist()))
    missing = [int(u) for u in raw_user_ids if int(u) not in rank_of]
    if missing:
        raise ValueError(f"--against holds no rank for {len(missing)} of our test users (e.g. raw id {missing[0]})")
    theirs = user_metrics(torch.tensor([rank_of[int(u)] for u in raw_user_ids]))
    ours_metrics = {name: user_metrics(ranks) for name, ranks in ours.items()}
    if len(ours) > 1:
        ours_metrics["mean of the checkpoints"] = {m: torch.stack([v[m] for v in ours_metrics.values()]).mean(0)
                                                   for m in PAIRED_METRICS}
    return [relative_row(name, metric, theirs[metric], values[metric], draws)
            for name, values in ours_metrics.items() for metric in PAIRED_METRICS]


def main(argv: Sequence[str] | None = None) -> int:
    ours, cli_args = split_at_dashes(list(argv or []))
    parser = argparse.ArgumentParser(prog="python -m benchmarks llamarec_average", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="checkpoints (or globs naming one file each)")
    parser.add_argument("--against", default=None, help="a ranks file of `llamarec_lrurec --save_ranks`")
    args = parser.parse_args(ours)
    try:
        paths = [resolve(p) for p in args.checkpoints]
    except FileNotFoundError as error:
        parser.error(str(error))
    if args.against and not Path(args.against).is_file():
        parser.error(f"--against {args.against}: no such file")
    cli = configured(cli_args)
    batches = evaluation_batches(cli, "test")
    users = torch.cat([b["user"] for b in batches])  # (U,) row -> user index of the split
    raw_user_ids = cli.datamodule.splits.raw_user_ids[users.numpy()]  # (U,) raw id of each row
    order = llamarec_order(raw_user_ids)  # (U,) rows in LlamaRec's order
    raw_user_ids = raw_user_ids[order.numpy()]
    ranks = {}
    for path in paths:
        load_for_scoring(cli.model, path)
        ranks[path] = user_ranks(log_scores(cli.model, batches), batches)[order]
    print(f"test split, {len(order)} users; LlamaRec's last batch holds {len(order) % LLAMAREC_BATCH or LLAMAREC_BATCH}")
    print(markdown_table(("model", "averaging", *METRIC_NAMES),
                         [row for path, r in ranks.items() for row in averaging_rows(path, r)]))
    if args.against:
        reference = torch.load(args.against, weights_only=True)
        print(f"\npaired against {args.against} (baseline), mean over users")
        try:
            print(format_table(against_rows(reference, raw_user_ids, ranks)))
        except ValueError as error:
            parser.error(str(error))
    return 0
