"""Pure preprocessing: filter ratings, order each user's items in time, remap ids, split leave-one-out."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ur4rec.errors import check


def concatenated(arrays: list[np.ndarray]) -> np.ndarray:
    """Per-user item arrays end to end as one int64 array (P,); empty when there are none."""
    return np.concatenate([*arrays, np.zeros(0, np.int64)]).astype(np.int64)


@dataclass(frozen=True)
class SequenceSplits:
    """Leave-one-out splits over remapped ids (items 1..N, 0 = padding; users 0..U-1).

    ``train[u]`` holds user ``u``'s items in time order except the last two; ``valid_target[u]`` is
    the second to last item and ``test_target[u]`` the last.
    """

    train: list[np.ndarray]
    valid_target: np.ndarray  # (U,)
    test_target: np.ndarray  # (U,)
    raw_user_ids: np.ndarray  # (U,) raw id of each remapped user
    raw_item_ids: np.ndarray  # (N + 1,) raw id of each remapped item; entry 0 (padding) is -1
    new_items: np.ndarray | None = None  # (N + 1,) bool: items held out as new (see hold_out_new_items)

    @property
    def num_users(self) -> int:
        return len(self.train)

    @property
    def num_items(self) -> int:
        return len(self.raw_item_ids) - 1

    @property
    def num_interactions(self) -> int:
        return sum(len(s) for s in self.train) + 2 * self.num_users

    def valid_history(self, user: int) -> np.ndarray:
        """Items visible when predicting the validation target."""
        return self.train[user]

    def test_history(self, user: int) -> np.ndarray:
        """Items visible when predicting the test target (training items, then the validation item unless
        it is a new item: nothing a model sees before ranking holds a new item)."""
        valid = self.valid_target[user]
        return self.train[user] if self.is_new(valid) else np.append(self.train[user], valid)

    def is_new(self, item: int) -> bool:
        return self.new_items is not None and bool(self.new_items[item])

    def item_counts(self) -> np.ndarray:
        """(N + 1,) training interactions per item (what popularity slices count; never validation or test)."""
        return np.bincount(concatenated(self.train), minlength=self.num_items + 1)

    def user_text_view(self, retriever_positions: int) -> SequenceSplits:
        """The splits that user texts (template profiles, LLM prompts) describe: each training sequence cut
        before its latest ``retriever_positions`` items.

        The retriever trains on those latest transitions, so their targets are never named in the text it
        reads, as at evaluation time. The one place this rule lives (DataModule, ``generate``, ``features``).
        """
        return replace(self, train=[t[: max(len(t) - retriever_positions, 0)] for t in self.train])

    def item_index(self) -> dict[int, int]:
        """Raw item id -> remapped id."""
        return {int(raw): i for i, raw in enumerate(self.raw_item_ids) if i > 0}

    def user_index(self) -> dict[int, int]:
        """Raw user id -> remapped id."""
        return {int(raw): u for u, raw in enumerate(self.raw_user_ids)}


def hold_out_new_items(splits: SequenceSplits, fraction: float, fold: int = 0) -> SequenceSplits:
    """The new-item (cold-start) protocol: ``fraction`` of the items are new, and every interaction with one
    leaves the training sequences (inputs and targets); validation and test targets stay as they are, so
    some users must rank an item no model trained on. The new items are block ``fold`` of a fixed random
    permutation of the catalog (blocks wrap around), so folds ``0..1/fraction - 1`` make every item new
    once. Users left without a training item are dropped (a warning counts them).
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"data.cold_item_fraction must be in [0, 1), got {fraction}")
    n = splits.num_items
    size = int(round(fraction * n))
    order = np.random.default_rng(0).permutation(n) + 1  # (N,) the same permutation for every fold
    new = np.zeros(n + 1, dtype=bool)
    new[order[(fold * size + np.arange(size)) % n]] = True
    train = [t[~new[t]] for t in splits.train]
    keep = np.array([len(t) > 0 for t in train], dtype=bool)
    if not keep.all():
        warnings.warn(f"data.cold_item_fraction={fraction}: dropped {int((~keep).sum())} user(s) whose every training "
                      "item is new (no history to rank from)")
    return replace(splits, train=[t for t, k in zip(train, keep) if k], valid_target=splits.valid_target[keep],
                   test_target=splits.test_target[keep], raw_user_ids=splits.raw_user_ids[keep], new_items=new)


REQUIRED_COLUMNS = ("user", "item", "rating", "timestamp")


def _check_columns(ratings: pd.DataFrame, columns: tuple[str, ...] = REQUIRED_COLUMNS) -> None:
    missing = [c for c in columns if c not in ratings.columns]
    if missing:
        raise ValueError(f"ratings table lacks column(s) {missing}; found {list(ratings.columns)}")


TIE_ORDERS = ("file", "item")


def filter_ratings(ratings: pd.DataFrame, min_rating: float = 4, min_user_interactions: int = 5,
                   min_item_interactions: int = 0) -> pd.DataFrame:
    """Keep ratings >= ``min_rating`` (0 keeps all), then, repeatedly until both hold, users with
    >= ``min_user_interactions`` of them and items with >= ``min_item_interactions`` (0: no item rule; then
    one pass over users is the whole filter)."""
    _check_columns(ratings, ("user", "item", "rating"))
    kept = ratings[ratings["rating"] >= min_rating] if min_rating > 0 else ratings
    while True:
        keep = kept.groupby("user")["item"].transform("size").to_numpy() >= min_user_interactions
        if min_item_interactions > 0:
            keep &= kept.groupby("item")["user"].transform("size").to_numpy() >= min_item_interactions
        if keep.all():
            return kept
        kept = kept[keep]


def order_by_time(ratings: pd.DataFrame, tie_order: str = "file") -> pd.DataFrame:
    """Sort by user, then timestamp; equal timestamps keep their file order (``file``, stable) or go by raw
    item id (``item``, as LlamaRec orders them)."""
    _check_columns(ratings, ("user", "timestamp"))
    if tie_order not in TIE_ORDERS:
        raise ValueError(f"data.tie_order must be one of {TIE_ORDERS}, got {tie_order!r}")
    keys = ["timestamp", "user"] if tie_order == "file" else ["item", "timestamp", "user"]
    # np.lexsort sorts by the last key first and is stable: rows still tied keep their file order
    return ratings.iloc[np.lexsort([ratings[column].to_numpy() for column in keys])]


def build_splits(ratings: pd.DataFrame, tie_order: str = "file") -> SequenceSplits:
    """Remap ids and split each user's time-ordered sequence leave-one-out.

    Items are numbered 1..N and users 0..U-1 in increasing raw-id order. Every user needs at least
    three interactions (one to train on, one to validate, one to test).
    """
    _check_columns(ratings, ("user", "item", "timestamp"))
    if len(ratings) == 0:
        raise ValueError(
            "no interactions left to split (empty ratings table): lower min_rating or min_user_interactions"
        )
    ordered = order_by_time(ratings, tie_order)
    raw_items = np.sort(ordered["item"].unique())
    raw_users = np.sort(ordered["user"].unique())
    items = np.searchsorted(raw_items, ordered["item"].to_numpy()) + 1
    users = np.searchsorted(raw_users, ordered["user"].to_numpy())
    bounds = np.flatnonzero(np.diff(users)) + 1
    sequences = np.split(items.astype(np.int64), bounds)
    short = [int(raw_users[u]) for u, s in enumerate(sequences) if len(s) < 3]
    if short:
        raise ValueError(
            f"{len(short)} user(s) have fewer than 3 interactions after filtering (e.g. raw ids {short[:5]}); "
            "leave-one-out needs 3: raise min_user_interactions to at least 3"
        )
    return SequenceSplits(
        train=[s[:-2] for s in sequences],
        valid_target=np.array([s[-2] for s in sequences], dtype=np.int64),
        test_target=np.array([s[-1] for s in sequences], dtype=np.int64),
        raw_user_ids=raw_users.astype(np.int64),
        raw_item_ids=np.concatenate([[-1], raw_items]).astype(np.int64),
    )


def prepare_splits(ratings: pd.DataFrame, min_rating: float = 4, min_user_interactions: int = 5,
                   min_item_interactions: int = 0, tie_order: str = "file") -> SequenceSplits:
    """Filter, order and split in one call (the DataModule's pipeline); filters that keep nothing are a
    :class:`ConfigError` naming them."""
    kept = filter_ratings(ratings, min_rating, min_user_interactions, min_item_interactions)
    check(len(kept) > 0, "data.min_rating", f"{min_rating}, with data.min_user_interactions {min_user_interactions} "
          f"and data.min_item_interactions {min_item_interactions}, keeps none of the {len(ratings)} ratings; "
          "lower these settings")
    return build_splits(kept, tie_order)
