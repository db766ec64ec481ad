"""The MovieLens CSV layout (latest-small, 20M, 25M, 32M), k-core filtering and the item-id tie order."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

from paths import REAL_DATA
from ur4rec.data.errors import DataFormatError, DataFormatWarning
from ur4rec.data.preprocessing import filter_ratings, order_by_time, prepare_splits
from ur4rec.data.readers import detect_layout, read_dataset
from ur4rec.features.texts import build_texts

MOVIES = ('movieId,title,genres\n'
          '1,Toy Story (1995),Adventure|Animation|Children\n'
          '2,"American President, The (1995)",Comedy|Drama|Romance\n'
          '3,Café Society (2016),(no genres listed)\n')
RATINGS = ('userId,movieId,rating,timestamp\n'
           '1,1,4.5,100\n1,2,0.5,100\n1,3,3.0,90\n'
           '2,3,5.0,200\n2,1,2.5,210\n2,2,4.0,220\n')
TAGS = ('userId,movieId,tag,timestamp\n'
        '1,1,pixar,5\n2,1,Pixar,6\n2,1,funny,7\n1,2,politics,8\n1,99,orphan tag,9\n')


def write_csv(folder, movies=MOVIES, ratings=RATINGS, tags=TAGS, crlf=False):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (("movies.csv", movies), ("ratings.csv", ratings), ("tags.csv", tags)):
        if text is not None:
            (folder / name).write_bytes((text.replace("\n", "\r\n") if crlf else text).encode("utf-8"))
    return folder


@pytest.mark.parametrize("crlf", [False, True], ids=["LF", "CRLF"])
def test_the_csv_layout_reads_half_stars_quoted_titles_genres_and_tags(tmp_path, crlf):
    root = write_csv(tmp_path / "mls", crlf=crlf)
    assert detect_layout(root) == "ml-csv"
    with pytest.warns(DataFormatWarning, match=r"tags.csv: ignored 1 tag row\(s\) .* \(first on line 6\)"):
        raw = read_dataset(root)
    assert raw.ratings["rating"].tolist() == [4.5, 0.5, 3.0, 5.0, 2.5, 4.0]
    titles = dict(zip(raw.items["item"], raw.items["title"]))
    assert titles[2] == "American President, The (1995)" and titles[3] == "Café Society (2016)"
    assert dict(zip(raw.items["item"], raw.items["genres"]))[3] == ()  # (no genres listed)
    assert raw.item_tags == {1: ("pixar", "funny"), 2: ("politics",)}  # case-folded, most frequent first
    kept = filter_ratings(raw.ratings, min_rating=3.0, min_user_interactions=1)
    assert kept["rating"].tolist() == [4.5, 3.0, 5.0, 4.0]  # a real-valued min_rating compares half stars
    texts = build_texts(raw, prepare_splits(raw.ratings, 0, 3))
    assert texts.item_texts[1] == "Toy Story (1995). Genres: Adventure, Animation, Children. Tags: pixar, funny"


@pytest.mark.parametrize("name, text, line, words", [
    ("ratings.csv", "user,movie,rating,time\n1,1,4,1\n", 1, "expected the header userId,movieId,rating,timestamp"),
    ("ratings.csv", RATINGS + "3,1,four,5\n", 8, "rating is not a number: 'four'"),
    ("ratings.csv", RATINGS + "3,1.5,4,5\n", 8, "movieId is not an integer: '1.5'"),
    ("ratings.csv", RATINGS + "3,1,4,5,extra\n", 8, "Expected 4 fields"),
    ("ratings.csv", RATINGS + "3,7,4,5\n", 8, "item id 7 is not in movies.csv"),
    ("movies.csv", MOVIES + '4,"Unclosed (1999),Drama\n', 5, "unbalanced quote"),
    ("movies.csv", MOVIES + '4,"Unclosed (1999),Drama\n5,"Closed (2000)",Drama\n', 5, "unbalanced quote"),
    ("ratings.csv", RATINGS + "-3,1,4,5\n", 8, "user id must be >= 0, got -3"),  # was read as a user
    ("ratings.csv", RATINGS.split("\n")[0] + "\n", None, "holds no rating rows"),  # was a traceback later on
    ("movies.csv", "", None, "file is empty"),
], ids=["header", "rating", "movie-id", "fields", "unknown-movie", "quote-eof", "quote-swallows",
        "negative-user", "header-only", "empty"])
def test_broken_csv_files_name_file_and_line(tmp_path, name, text, line, words):
    root = write_csv(tmp_path / "mls", **{name.removesuffix(".csv"): text})
    with pytest.raises(DataFormatError) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore", DataFormatWarning)
        read_dataset(root)
    assert info.value.path.name == name and info.value.line == line and words in str(info.value)


def test_k_core_filters_users_and_items_in_turn_until_both_hold():
    # item 30 has 2 raters; dropping it leaves user 3 with 1 rating, so user 3 goes too on the second pass,
    # which leaves item 20 with 2 raters: a third pass drops it. One pass of each rule would keep user 3.
    rows = [(1, 10), (1, 20), (1, 40), (2, 10), (2, 20), (2, 40), (3, 20), (3, 30), (4, 30), (4, 10), (4, 40)]
    ratings = pd.DataFrame(rows, columns=["user", "item"]).assign(rating=5.0, timestamp=0)
    kept = filter_ratings(ratings, min_rating=0, min_user_interactions=2, min_item_interactions=3)
    assert sorted(map(tuple, kept[["user", "item"]].to_numpy().tolist())) == [
        (1, 10), (1, 40), (2, 10), (2, 40), (4, 10), (4, 40)]
    users_only = filter_ratings(ratings, min_rating=0, min_user_interactions=2)  # item rule off: one pass
    assert len(users_only) == len(ratings)


def test_equal_timestamps_go_by_file_order_or_by_item_id():
    ratings = pd.DataFrame({"user": [1, 1, 1], "item": [30, 10, 20], "rating": 5.0, "timestamp": [7, 7, 5]})
    assert order_by_time(ratings)["item"].tolist() == [20, 30, 10]
    assert order_by_time(ratings, "item")["item"].tolist() == [20, 10, 30]
    with pytest.raises(ValueError, match="tie_order"):
        order_by_time(ratings, "random")


def test_llamarec_protocol_on_the_real_ml_latest_small():
    root = REAL_DATA / "ml-latest-small"
    if not root.is_dir():
        pytest.skip(reason=f"real data not staged: {root} is missing")
    raw = read_dataset(root)
    assert raw.layout == "ml-csv" and len(raw.ratings) == 100_836 and raw.image_paths == {}
    splits = prepare_splits(raw.ratings, min_rating=0, min_user_interactions=5, min_item_interactions=5,
                            tie_order="item")
    assert (splits.num_users, splits.num_items, splits.num_interactions) == (610, 3_650, 90_274)
