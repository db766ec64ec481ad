"""Reader of today's MovieLens CSV releases (latest-small, 20M, 25M, 32M), layout ``ml-csv``.

* ``ratings.csv``: ``userId,movieId,rating,timestamp``; half-star ratings are kept as real values
  (``data.min_rating`` compares them);
* ``movies.csv``: ``movieId,title,genres``; titles are quoted when they hold commas; genres are
  ``|``-separated (``(no genres listed)`` means none);
* ``tags.csv`` (optional): ``userId,movieId,tag,timestamp``; each movie keeps its ``TOP_TAGS`` most
  frequent tags for its item text; tags of movies that ``movies.csv`` lacks are ignored and counted;
* ``links.csv`` is not needed; ``image/<movieId>.jpg`` posters are read when present.

Files are UTF-8 with LF or CRLF line endings (the published latest-small has CRLF) and may start with a
byte order mark; a line that is not valid UTF-8 is read as latin-1 and counted in one warning. Parsing is
pandas' C reader plus vectorized checks (no per-row Python); a missing or different header, a row with the
wrong number of fields, an unbalanced quote or a value that is not a number is a :class:`DataFormatError`
naming the file and line.
"""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ur4rec.data.encodings import decode_lines, read_bytes
from ur4rec.data.errors import DataFormatError, DataFormatWarning
from ur4rec.data.parsing import items_frame, scan_images
from ur4rec.data.ratings import checked_ratings
from ur4rec.data.raw import RawDataset

RATINGS_HEADER = ("userId", "movieId", "rating", "timestamp")
MOVIES_HEADER = ("movieId", "title", "genres")
TAGS_HEADER = ("userId", "movieId", "tag", "timestamp")
NO_GENRES = "(no genres listed)"
TOP_TAGS = 5


def read_ml_csv(root: Path) -> RawDataset:
    items = _read_movies(root / "movies.csv")
    frame = read_csv(root / "ratings.csv", RATINGS_HEADER)
    path = root / "ratings.csv"
    ratings = pd.DataFrame({"user": numbers(frame, "userId", path, integer=True),
                            "item": numbers(frame, "movieId", path, integer=True),
                            "rating": numbers(frame, "rating", path),
                            "timestamp": numbers(frame, "timestamp", path, integer=True)})
    ratings = checked_ratings(ratings, frame.index.to_numpy() + 2, path, items, root / "movies.csv")
    tags = _read_tags(root / "tags.csv", set(items["item"].tolist())) if (root / "tags.csv").exists() else {}
    return RawDataset("ml-csv", root, ratings, items, None, {}, scan_images(root / "image"), tags)


def read_csv(path: Path, header: tuple[str, ...]) -> pd.DataFrame:
    """``path`` as strings, one row per data line (the index + 2 is the line number), header checked.

    A line that is not valid UTF-8 is decoded as latin-1 and counted in a warning (:func:`decode_lines`)."""
    data = read_bytes(path)
    if not data.isascii():
        data = "\n".join(decode_lines(path, data, "utf-8")).encode("utf-8")
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, skip_blank_lines=False,
                            index_col=False, encoding="utf-8")
    except pd.errors.EmptyDataError:
        raise DataFormatError(path, "file is empty") from None
    except pd.errors.ParserError as err:
        message = str(err).replace("Error tokenizing data. C error: ", "")
        line = re.search(r"line (\d+)", message)
        row = re.search(r"starting at row (\d+)", message)
        where = int(line.group(1)) if line else int(row.group(1)) + 1 if row else None
        if row:
            message = "unbalanced quote: a quoted field never closes"
        raise DataFormatError(path, message, where) from None
    if tuple(frame.columns) != header:
        raise DataFormatError(path, f"expected the header {','.join(header)}, found {','.join(map(str, frame.columns))}",
                              1)
    frame = frame[~(frame == "").all(axis=1)]  # blank lines
    broken = frame.apply(lambda column: column.str.contains(r"[\r\n]", regex=True)).any(axis=1).to_numpy()
    if broken.any():  # a quote that closes only on a later line swallowed the line breaks between
        raise DataFormatError(path, "unbalanced quote: a quoted field runs over the end of its line",
                              int(frame.index[np.flatnonzero(broken)[0]]) + 2)
    return frame


def numbers(frame: pd.DataFrame, column: str, path: Path, integer: bool = False) -> np.ndarray:
    """Column ``column`` as int64 (``integer``) or float64; the first value that is not one names its line."""
    text = frame[column].str.strip()
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if integer:
        bad |= ~text.str.fullmatch(r"[+-]?[0-9]{1,18}").to_numpy()
    if bad.any():
        first = np.flatnonzero(bad)[0]
        raise DataFormatError(path, f"{column} is not {'an integer' if integer else 'a number'}: "
                              f"{frame[column].iat[first]!r}", int(frame.index[first]) + 2)
    return text.astype(np.int64).to_numpy() if integer else values


def _read_movies(path: Path) -> pd.DataFrame:
    frame = read_csv(path, MOVIES_HEADER)
    ids = numbers(frame, "movieId", path, integer=True)
    genres = [tuple(g for g in text.split("|") if g and g != NO_GENRES) for text in frame["genres"]]
    return items_frame(ids, frame["title"].tolist(), genres, frame.index.to_numpy() + 2, path)


def _read_tags(path: Path, movies: set[int]) -> dict[int, tuple[str, ...]]:
    """Each movie's ``TOP_TAGS`` most frequent tags (ties by first use); unknown movies are counted in a warning."""
    frame = read_csv(path, TAGS_HEADER)
    tags = pd.DataFrame({"item": numbers(frame, "movieId", path, integer=True),
                         "tag": frame["tag"].str.strip().str.lower()})
    known = tags["item"].isin(movies).to_numpy()
    if not known.all():
        first = int(frame.index[np.flatnonzero(~known)[0]]) + 2
        warnings.warn(f"{path}: ignored {int((~known).sum())} tag row(s) of movies that movies.csv does not list "
                      f"(first on line {first})", DataFormatWarning)
    tags = tags[known & (tags["tag"] != "").to_numpy()]
    counts = tags.groupby(["item", "tag"], sort=False).size().reset_index(name="count")
    counts = counts.sort_values(["item", "count"], ascending=[True, False], kind="stable")
    top = counts.groupby("item").head(TOP_TAGS)
    return {int(item): tuple(group["tag"]) for item, group in top.groupby("item", sort=False)}
