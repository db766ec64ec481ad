"""Preprocessing: filtering, time order, id remapping and leave-one-out on hand-built tables."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from ur4rec.data.preprocessing import SequenceSplits, build_splits, filter_ratings, order_by_time, prepare_splits
from ur4rec.errors import ConfigError


def table(rows: list[tuple[int, int, float, int]]) -> pd.DataFrame:
    """(user, item, rating, timestamp) rows in file order, with the readers' dtypes."""
    frame = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])
    return frame.astype({"user": np.int64, "item": np.int64, "rating": np.float64, "timestamp": np.int64})


def as_lists(splits: SequenceSplits) -> list[list[int]]:
    return [s.tolist() for s in splits.train]


# ---------------------------------------------------------------------------------------------- filter_ratings


def test_min_rating_filter_keeps_ratings_at_or_above():
    ratings = table([(1, 1, 5, 1), (1, 2, 4, 2), (1, 3, 3.5, 3), (1, 4, 1, 4), (1, 5, 4.0, 5)])
    kept = filter_ratings(ratings, min_rating=4, min_user_interactions=1)
    assert kept["item"].tolist() == [1, 2, 5]
    kept = filter_ratings(ratings, min_rating=3.5, min_user_interactions=1)
    assert kept["item"].tolist() == [1, 2, 3, 5]


def test_min_rating_zero_keeps_everything():
    ratings = table([(1, 1, 0, 1), (1, 2, 1, 2), (2, 3, 0.5, 3)])
    assert filter_ratings(ratings, min_rating=0, min_user_interactions=1).equals(ratings)


def test_min_user_interactions_counts_after_the_rating_filter():
    # user 1: 3 ratings but only 2 are >= 4; user 2: 3 ratings >= 4
    ratings = table([
        (1, 1, 5, 1), (1, 2, 4, 2), (1, 3, 2, 3),
        (2, 1, 4, 1), (2, 2, 5, 2), (2, 3, 4, 3),
    ])
    kept = filter_ratings(ratings, min_rating=4, min_user_interactions=3)
    assert kept["user"].tolist() == [2, 2, 2]
    # without the rating filter user 1 has enough
    assert sorted(set(filter_ratings(ratings, min_rating=0, min_user_interactions=3)["user"])) == [1, 2]


def test_filter_keeps_file_order_and_input_untouched():
    ratings = table([(2, 9, 5, 3), (1, 8, 5, 1), (2, 7, 5, 2), (1, 6, 5, 9)])
    copy = ratings.copy()
    kept = filter_ratings(ratings, min_rating=4, min_user_interactions=2)
    assert kept["item"].tolist() == [9, 8, 7, 6]
    assert ratings.equals(copy)


def test_filter_missing_column_is_a_clear_error():
    with pytest.raises(ValueError, match="rating"):
        filter_ratings(pd.DataFrame({"user": [1], "item": [2]}))


# ---------------------------------------------------------------------------------------------- order_by_time


def test_order_by_time_sorts_by_user_then_timestamp():
    ratings = table([(2, 1, 5, 30), (1, 2, 5, 20), (2, 3, 5, 10), (1, 4, 5, 5)])
    ordered = order_by_time(ratings)
    assert ordered["user"].tolist() == [1, 1, 2, 2]
    assert ordered["item"].tolist() == [4, 2, 3, 1]
    assert list(ordered.columns) == ["user", "item", "rating", "timestamp"]


def test_equal_timestamps_keep_file_order():
    # many ties so an unstable sort would be likely to shuffle them
    rows = [(1, item, 5, 100) for item in (50, 3, 40, 7, 99, 1, 23, 8, 61, 12)]
    rows += [(1, 500, 5, 50), (1, 400, 5, 150)]
    ordered = order_by_time(table(rows))
    assert ordered["item"].tolist() == [500, 50, 3, 40, 7, 99, 1, 23, 8, 61, 12, 400]
    # the same ties in reverse file order come out reversed
    reversed_rows = [(1, item, 5, 100) for item in (12, 61, 8, 23, 1, 99, 7, 40, 3, 50)]
    assert order_by_time(table(reversed_rows))["item"].tolist() == [12, 61, 8, 23, 1, 99, 7, 40, 3, 50]


def test_tie_break_uses_position_not_index_labels():
    ratings = table([(1, 10, 5, 7), (1, 20, 5, 7), (1, 30, 5, 7)])
    ratings.index = [2, 1, 0]  # labels disagree with the file order
    assert order_by_time(ratings)["item"].tolist() == [10, 20, 30]


# ---------------------------------------------------------------------------------------------- build_splits


def test_leave_one_out_and_remapping():
    ratings = table([
        # user 7: items by time 300, 100, 200, 400 -> raw order 300,100,200,400 (timestamps 1..4)
        (7, 200, 5, 3), (7, 300, 5, 1), (7, 400, 5, 4), (7, 100, 5, 2),
        # user 3: three items, two share a timestamp (file order wins)
        (3, 400, 5, 9), (3, 500, 5, 5), (3, 100, 5, 5),
    ])
    splits = build_splits(ratings)
    # items 1..N in increasing raw id; entry 0 is padding (-1)
    assert splits.raw_item_ids.tolist() == [-1, 100, 200, 300, 400, 500]
    assert splits.raw_item_ids.dtype == np.int64
    assert splits.item_index() == {100: 1, 200: 2, 300: 3, 400: 4, 500: 5}
    # users 0..U-1 in increasing raw id
    assert splits.raw_user_ids.tolist() == [3, 7]
    assert splits.user_index() == {3: 0, 7: 1}
    assert splits.num_users == 2 and splits.num_items == 5 and splits.num_interactions == 7

    # user 3 (remapped 0): time order 500, 100 (tie, file order), 400
    assert as_lists(splits)[0] == [5]
    assert splits.valid_target[0] == 1 and splits.test_target[0] == 4
    # user 7 (remapped 1): time order 300, 100, 200, 400
    assert as_lists(splits)[1] == [3, 1]
    assert splits.valid_target[1] == 2 and splits.test_target[1] == 4
    assert splits.valid_target.dtype == np.int64 and splits.test_target.dtype == np.int64
    assert all(s.dtype == np.int64 for s in splits.train)
    assert min(int(s.min()) for s in splits.train) >= 1  # 0 is never an item

    assert splits.valid_history(1).tolist() == [3, 1]
    assert splits.test_history(1).tolist() == [3, 1, 2]
    assert splits.test_history(0).tolist() == [5, 1]


def test_item_remap_round_trips_every_interaction():
    rng = np.random.default_rng(0)
    rows = [(int(u), int(i), 5, int(t)) for u, i, t in
            zip(rng.integers(1, 20, 400), rng.integers(1000, 1100, 400), rng.permutation(400))]
    ratings = filter_ratings(table(rows), min_rating=0, min_user_interactions=3)
    splits = build_splits(ratings)
    ordered = order_by_time(ratings)
    for u, raw_user in enumerate(splits.raw_user_ids):
        expected = ordered.loc[ordered["user"] == raw_user, "item"].tolist()
        got = splits.raw_item_ids[splits.test_history(u)].tolist() + [int(splits.raw_item_ids[splits.test_target[u]])]
        assert got == expected
    assert splits.num_interactions == len(ratings)
    assert splits.num_items == ratings["item"].nunique()


def test_users_with_fewer_than_three_interactions_are_refused():
    ratings = table([(1, 1, 5, 1), (1, 2, 5, 2), (1, 3, 5, 3), (42, 1, 5, 1), (42, 2, 5, 2)])
    with pytest.raises(ValueError, match=r"fewer than 3 interactions.*42") as exc:
        build_splits(ratings)
    assert "min_user_interactions" in str(exc.value)
    with pytest.raises(ValueError, match="fewer than 3"):
        prepare_splits(ratings, min_rating=0, min_user_interactions=2)
    # filtering them out first works
    assert prepare_splits(ratings, min_rating=0, min_user_interactions=3).raw_user_ids.tolist() == [1]


def test_filters_that_keep_nothing_name_the_setting():
    ratings = table([(1, 1, 2, 1), (1, 2, 2, 2), (1, 3, 2, 3)])
    with pytest.raises(ConfigError, match=r"data.min_rating: 4, with data.min_user_interactions 3 .* keeps none "
                                          r"of the 3 ratings"):
        prepare_splits(ratings, min_rating=4, min_user_interactions=3)
    with pytest.raises(ValueError, match="no interactions left"):
        build_splits(ratings.iloc[:0])


def test_exactly_three_interactions_gives_empty_history():
    splits = build_splits(table([(5, 30, 5, 1), (5, 20, 5, 2), (5, 10, 5, 3)]))
    assert as_lists(splits) == [[3]]
    assert splits.valid_target.tolist() == [2] and splits.test_target.tolist() == [1]
    assert splits.num_interactions == 3


def test_prepare_splits_is_filter_then_build():
    ratings = table([
        (1, 1, 5, 1), (1, 2, 4, 2), (1, 3, 3, 3), (1, 4, 4, 4), (1, 5, 5, 5),
        (2, 1, 1, 1), (2, 2, 5, 2), (2, 3, 5, 3), (2, 4, 5, 4),  # 3 kept: dropped at min 4 interactions
    ])
    splits = prepare_splits(ratings, min_rating=4, min_user_interactions=4)
    assert splits.raw_user_ids.tolist() == [1]
    assert splits.raw_item_ids.tolist() == [-1, 1, 2, 4, 5]
    assert as_lists(splits) == [[1, 2]] and splits.valid_target.tolist() == [3] and splits.test_target.tolist() == [4]
    assert splits.num_interactions == 4


def test_splits_are_frozen():
    splits = build_splits(table([(1, 1, 5, 1), (1, 2, 5, 2), (1, 3, 5, 3)]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        splits.train = []  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------- real data


def test_real_ml100k_default_filtering(real_ml100k):
    splits = prepare_splits(real_ml100k.ratings)  # min_rating 4, min_user_interactions 5
    assert splits.num_users == 938
    assert splits.num_items == 1447
    assert splits.num_interactions == 55_361
    assert len(splits.valid_target) == len(splits.test_target) == 938
    assert all(len(s) >= 3 for s in splits.train)
    assert int(splits.valid_target.max()) <= 1447 and int(splits.test_target.min()) >= 1


def test_real_mml100k_gives_the_same_splits(real_ml100k, real_mml100k):
    a, b = prepare_splits(real_ml100k.ratings), prepare_splits(real_mml100k.ratings)
    assert np.array_equal(a.raw_item_ids, b.raw_item_ids) and np.array_equal(a.raw_user_ids, b.raw_user_ids)
    assert np.array_equal(a.test_target, b.test_target) and np.array_equal(a.valid_target, b.valid_target)
    assert all(np.array_equal(x, y) for x, y in zip(a.train, b.train))
