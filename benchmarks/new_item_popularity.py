"""``new_item_popularity``: how well an item's content predicts how popular the item will be.

    python -m benchmarks new_item_popularity [--ridges 1 10 100] -- --config configs/ur4rec.yaml \\
        --data.cold_item_fraction 0.2 --data.cold_item_seed 0 --data.data_dir ... --data.llm_dir ...

Under the new-item protocol a new item enters a cold user's top 10 among all items only if the model expects
it to be about as popular as the warm items there. This fits a ridge regression of the known items' log
training counts on their description vectors (as SASRec's new-item map fits their ID embeddings) and compares
its predictions for the new items with how often each is really chosen (every interaction of the item, all
held out from training; read here for this analysis only): their rank correlation, and the ten most chosen
new items' mean count against the mean of their predictions. The tenth largest training count is what a
popularity ranking needs to place an item in every user's top 10. A line before the table says how popular
the cold users' test targets are.
"""

from __future__ import annotations

import argparse
from typing import Sequence

import numpy as np
import torch

from benchmarks.common import configured, markdown_table, split_at_dashes
from ur4rec.data.preprocessing import concatenated, prepare_splits
from ur4rec.models.sasrec import ridge_map

DEFAULT_RIDGES = (1.0, 10.0, 100.0)


def predicted_log_counts(content: torch.Tensor, log_counts: torch.Tensor, known: torch.Tensor,
                         ridge: float) -> torch.Tensor:
    """``ridge_map`` of ``log_counts`` (N + 1,) on ``content`` (N + 1, Dc), fitted on the ``known`` items, as
    SASRec maps ID embeddings -> every item's prediction (N + 1,)."""
    return ridge_map(content, log_counts[:, None], known, ridge)[:, 0]


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Rank correlation of two (n,) vectors (ties broken by position)."""
    ranks = [torch.argsort(torch.argsort(v)).double() for v in (a, b)]
    return float(torch.corrcoef(torch.stack(ranks))[0, 1])


def most_chosen_new(true_counts: torch.Tensor, new: torch.Tensor, k: int = 10) -> torch.Tensor:
    """Ids of the ``k`` new items chosen most often. true_counts: (N + 1,); new: (N + 1,) bool."""
    return torch.argsort(torch.where(new, true_counts.double(), -1.0), descending=True)[:k]


def popularity_rows(content: torch.Tensor, train_counts: torch.Tensor, true_counts: torch.Tensor,
                    new: torch.Tensor, ridges: Sequence[float]) -> list[dict[str, object]]:
    """One row per penalty. content: (N + 1, Dc); train_counts, true_counts: (N + 1,); new: (N + 1,) bool
    (row 0, padding, is neither new nor known)."""
    known = ~new
    known[0] = False
    top = most_chosen_new(true_counts, new)
    rows = []
    for ridge in ridges:
        predicted = predicted_log_counts(content, torch.log1p(train_counts.double()), known, ridge)
        rows.append({"ridge": ridge, "new items": int(new.sum()),
                     "spearman (new items)": spearman(predicted[new], true_counts[new].double()),
                     "top-10 new: true count": float(true_counts[top].double().mean()),
                     "top-10 new: predicted": float(torch.expm1(predicted[top]).mean()),
                     "10th training count": float(torch.sort(train_counts, descending=True).values[9])})
    return rows


def cold_target_popularity(true_counts: torch.Tensor, new: torch.Tensor, test_targets: torch.Tensor) -> dict[str, float]:
    """How popular the cold users' test targets (the new ones among ``test_targets`` (U,)) are: the share
    among the ten most chosen new items, and their median count. true_counts: (N + 1,); new: (N + 1,) bool."""
    cold = test_targets[new[test_targets]]
    return {"cold users": len(cold), "share of their targets among the ten most chosen new items":
            float(torch.isin(cold, most_chosen_new(true_counts, new)).double().mean()),
            "median count of their targets": float(true_counts[cold].double().median())}


def main(argv: Sequence[str] | None = None) -> int:
    ours, cli_args = split_at_dashes(list(argv or []))
    parser = argparse.ArgumentParser(prog="python -m benchmarks new_item_popularity",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--ridges", type=float, nargs="+", default=list(DEFAULT_RIDGES))
    args = parser.parse_args(ours)
    datamodule = configured(cli_args).datamodule
    new = datamodule.new_item_mask()
    if new is None:
        parser.error("needs the new-item protocol: set --data.cold_item_fraction after --")
    held, hp = datamodule.load(), datamodule.hparams
    every = prepare_splits(datamodule.raw.ratings, hp.min_rating, hp.min_user_interactions, hp.min_item_interactions,
                           hp.tie_order)  # the same items, ids and order, before the new ones were held out
    num_items = held.num_items
    true_counts = torch.as_tensor(np.bincount(concatenated([*every.train, every.valid_target, every.test_target]),
                                              minlength=num_items + 1))
    train_counts = torch.as_tensor(np.bincount(concatenated(held.train), minlength=num_items + 1))
    rows = popularity_rows(datamodule.features.item_text, train_counts, true_counts, new, args.ridges)
    cold = cold_target_popularity(true_counts, new, torch.as_tensor(held.test_target))
    print(", ".join(f"{name}: {value:.2f}" if isinstance(value, float) else f"{name}: {value}" for name, value in cold.items()))
    counts = lambda value: f"{value:.1f}"  # noqa: E731
    print(markdown_table(list(rows[0]), rows, {"ridge": str, "new items": str, "top-10 new: true count": counts,
                                               "top-10 new: predicted": counts, "10th training count": counts}))
    return 0
