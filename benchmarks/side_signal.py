"""``side_signal``: how well each side input ranks items on its own, with no training at all.

    python -m benchmarks side_signal [--split val] -- --config configs/ur4rec.yaml --data.data_dir ...

Everything after ``--`` is a LightningCLI configuration with features enabled (a retriever config).
Each ranker scores every item for a user from one input, and is evaluated by full ranking like the models:

* ``popularity``: training interactions per item (no personalization; the floor to beat);
* ``description``: cosine between the item's description vector and the mean description vector of
  the user's visible history;
* ``poster``: the same with poster vectors (items without a poster rank last);
* ``preference``: cosine between the user's preference-text vector and the item's description vector;
* ``random (expected)``: the expectation of a uniformly random ranking, for scale.

A retriever expert can only add to SASRec what its input carries; this table says how much that is.
"""

from __future__ import annotations

import argparse
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import configured, evaluation_batches, markdown_table, split_at_dashes
from ur4rec.evaluation import SplitEvaluation
from ur4rec.metrics import NDCG, full_ranking_ranks, ranking_metrics
from ur4rec.slices import COLD_NEW, SLICES, slice_masks

RANKERS = ("popularity", "description", "poster", "preference")
COLUMNS = ("ndcg@10", "hit@10", "ndcg@20", "hit@20")


def history_mean(table: torch.Tensor, history: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Mean row of ``table`` (N + 1, D) over each user's history items (B, H) that are ``present`` (N + 1,)
    (padding never is): (B, D), zeros for a user with none."""
    weights = present[history].to(table.dtype)  # (B, H)
    return (table[history] * weights[..., None]).sum(1) / weights.sum(1, keepdim=True).clamp(min=1)


def ranker_scores(name: str, batch: dict[str, torch.Tensor], features, popularity: torch.Tensor) -> torch.Tensor:
    """(B, N + 1) scores of ranker ``name`` for a batch; column 0 (padding) and missing items are -inf."""
    history = batch["history"]  # (B, H)
    text = F.normalize(features.item_text, dim=-1)  # (N + 1, Dt)
    has_item = torch.ones(text.shape[0], dtype=torch.bool)
    has_item[0] = False
    if name == "popularity":
        scores, present = popularity.expand(history.shape[0], -1), has_item
    elif name == "description":
        scores, present = F.normalize(history_mean(text, history, has_item), dim=-1) @ text.T, has_item
    elif name == "poster":
        image, present = F.normalize(features.item_image, dim=-1), features.image_mask & has_item
        scores = F.normalize(history_mean(image, history, present), dim=-1) @ image.T
    elif name == "preference":
        scores, present = F.normalize(batch["user_text"], dim=-1) @ text.T, has_item
    else:
        raise ValueError(f"unknown ranker {name!r}; choose from {RANKERS}")
    return scores.masked_fill(~present, float("-inf"))  # (B, N + 1)


def random_expectation(batches: list[dict[str, torch.Tensor]], num_items: int) -> dict[str, float]:
    """Expected metrics of a uniformly random ranking: the target is equally likely at each of the
    ranks 0..C-1, C = the items not in the user's history (the target included)."""
    metrics = ranking_metrics((10, 20))
    expected = {k: [] for k in COLUMNS}
    for batch in batches:
        competing = num_items - (batch["history"] > 0).sum(1) + (batch["target"][:, None] == batch["history"]).any(1)
        for k in COLUMNS:
            cutoff = int(k.split("@")[1])
            ranks = torch.arange(cutoff)  # (cutoff,)
            gains = metrics[k].gain(ranks) * (ranks < competing[:, None])  # (B, cutoff): only ranks that exist
            expected[k].append(gains.sum(1).double() / competing)  # (B,)
    return {k: float(torch.cat(v).mean()) for k, v in expected.items()}


def side_signal(batches: list[dict[str, torch.Tensor]], features, popularity: torch.Tensor) -> list[dict[str, float]]:
    """One row per ranker (and the random expectation): full-ranking metrics over the batches' users."""
    rows = [{"ranker": "random (expected)", **random_expectation(batches, popularity.shape[0] - 1)}]
    for name in RANKERS:
        metrics = ranking_metrics((10, 20))
        for batch in batches:
            ranks = full_ranking_ranks(ranker_scores(name, batch, features, popularity), batch["target"],
                                       batch["history"])
            for metric in metrics.values():
                metric.update(ranks)
        rows.append({"ranker": name, **{k: float(metrics[k].compute()) for k in COLUMNS}})
    return rows


def expected_random_gains(batch: dict[str, torch.Tensor], num_items: int, among: torch.Tensor | None = None,
                          k: int = 10) -> torch.Tensor:
    """(B,) each user's expected NDCG@k under a uniformly random order of the items not in their history
    (only those ``among`` (N + 1,) marks, when given); the target is equally likely at every rank."""
    candidates = torch.ones(num_items + 1, dtype=torch.bool) if among is None else among.clone()
    candidates[0] = False
    competing = candidates.sum() - candidates[batch["history"]].sum(1) \
        + (candidates[batch["target"]] & (batch["target"][:, None] == batch["history"]).any(1))  # (B,)
    ranks = torch.arange(k)
    gains = NDCG(k).gain(ranks) * (ranks < competing[:, None])  # (B, k)
    return gains.sum(1).double() / competing.clamp(min=1)


def slice_rows(batches: list[dict[str, torch.Tensor]], features, popularity: torch.Tensor,
               new_items: torch.Tensor) -> list[dict]:
    """NDCG@10 per slice (rows) of the random expectation and of each ranker (columns), with slice sizes."""
    num_items = popularity.shape[0] - 1
    random_sums: dict[str, float] = {}
    users: dict[str, float] = {}
    for batch in batches:
        everything, among_new = expected_random_gains(batch, num_items), expected_random_gains(batch, num_items, new_items)
        for name, mask in slice_masks(batch, SLICES).items():
            gains = among_new if name == COLD_NEW else everything
            random_sums[name] = random_sums.get(name, 0.0) + float((gains * mask).sum())
            users[name] = users.get(name, 0.0) + float(mask.sum())
    columns = {}
    for ranker in RANKERS:
        evaluation = SplitEvaluation((10,), SLICES)
        for batch in batches:
            evaluation.update(ranker_scores(ranker, batch, features, popularity), batch, new_items)
        columns[ranker] = {name: float(metrics["ndcg@10"].compute()) for name, metrics in evaluation.sliced.items()}
    return [{"slice": name, "users": users[name], "random (expected)": random_sums[name] / max(users[name], 1),
             **{ranker: columns[ranker][name] for ranker in RANKERS}} for name in SLICES if name in users]


def format_table(rows: list[dict[str, float]]) -> str:
    return markdown_table(("ranker", *COLUMNS), rows)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(argv or [])
    ours, cli_args = split_at_dashes(argv)
    parser = argparse.ArgumentParser(prog="python -m benchmarks side_signal", description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=("val", "test"), default="val")
    parser.add_argument("--slices", action="store_true",
                        help="also print NDCG@10 per slice of users (popularity, history, and new items under the "
                             "new-item protocol), the random order's exact expectation beside each ranker")
    args = parser.parse_args(ours)
    cli = configured(cli_args)
    datamodule = cli.datamodule
    if not datamodule.hparams.features:
        raise SystemExit("side_signal needs item features: use a config with retriever experts "
                         "(e.g. configs/ur4rec.yaml)")
    splits = datamodule.load()
    popularity = torch.bincount(torch.as_tensor(np.concatenate(splits.train)),
                                minlength=splits.num_items + 1).float()  # (N + 1,) training interactions per item
    print(f"{args.split} split, {splits.num_users} users, {splits.num_items} items: each side input as a ranker")
    batches = evaluation_batches(cli, args.split)
    print(format_table(side_signal(batches, datamodule.features, popularity)))
    if args.slices:
        new_items = datamodule.new_item_mask()
        rows = slice_rows(batches, datamodule.features, popularity,
                          new_items if new_items is not None else torch.zeros_like(popularity, dtype=torch.bool))
        print(f"\nNDCG@10 per slice ({args.split} split; cold_new ranks the new items only)")
        print(markdown_table(("slice", "users", "random (expected)", *RANKERS), rows,
                             {"users": lambda v: f"{v:.0f}"}))
    return 0
