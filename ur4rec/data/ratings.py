"""Ratings files (``user<sep>item<sep>rating<sep>timestamp`` per line: ``u.data``, ``ratings.dat``) and the
checks every layout applies to its ratings.

A plain file (digits, ``.`` and ``-`` only; every dot inside a rating) is vouched for by a few vectorized
passes over its bytes and parsed by pandas' C reader: linear in its size, no per-line Python. Any other file
goes through the strict line-by-line parser, which names the first bad line, or reads the file all the same
when every line is valid after all (e.g. spaces around a value, ``+5``).
"""

from __future__ import annotations

import csv
import io
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ur4rec.data.encodings import read_bytes
from ur4rec.data.errors import DataFormatError, DataFormatWarning
from ur4rec.data.parsing import Fields, parse_int, read_fields

RATING_COLUMNS = ("user", "item", "rating", "timestamp")
_DTYPES = {"user": np.int64, "item": np.int64, "rating": np.float64, "timestamp": np.int64}
_PLAIN_BYTES = b"0123456789.-\n"


def read_ratings(path: Path, sep: str, items: pd.DataFrame, items_path: Path) -> pd.DataFrame:
    """Parse a ratings file, refuse items that ``items`` lacks and keep the latest row of a repeated pair."""
    plain = parse_plain_ratings(read_bytes(path), sep)
    ratings, lines = plain if plain is not None else parse_ratings(read_fields(path, sep, 4, "utf-8"))
    return checked_ratings(ratings, lines, path, items, items_path)


def parse_plain_ratings(data: bytes, sep: str) -> tuple[pd.DataFrame, np.ndarray] | None:
    """(ratings, line number of each row (R,)) when ``data`` is a plain ratings file, else None.

    Plain: only digits, ``.``, ``-``, ``sep`` and line breaks; each non-empty line has exactly four fields and any
    dot sits in the rating; user and item ids are >= 0. Such a file holds nothing the strict parser would
    read differently, so pandas' values are its values; anything pandas refuses is left to the strict parser.
    """
    if sep != "\t":  # fields hold digits, dots and dashes only, so a tab can stand for the separator
        if b"\t" in data:
            return None
        data = data.replace(sep.encode(), b"\t")
    array = np.frombuffer(data, dtype=np.uint8)
    counts = {byte: np.count_nonzero(array == ord(byte)) for byte in "\t\n.-"}
    digits = np.count_nonzero((array - np.uint8(ord("0"))) < 10)
    if not len(array) or digits + sum(counts.values()) != len(array):
        return None
    blank_lines = data.startswith(b"\n") or b"\n\n" in data
    breaks = np.flatnonzero(array == ord("\n")) if blank_lines or counts["."] else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pd.errors.ParserWarning)  # extra fields: refused by the count below
            ratings = pd.read_csv(io.BytesIO(data), sep="\t", header=None, names=list(RATING_COLUMNS), dtype=_DTYPES,
                                  index_col=False, quoting=csv.QUOTE_NONE, na_filter=False, engine="c")
    except (ValueError, OverflowError, pd.errors.ParserError):  # a missing field, "1-2", "." or a value past int64
        return None
    # pandas refuses a line with fewer than four fields, so three tabs per row means exactly three on each line
    if counts["\t"] != 3 * len(ratings) or (ratings["user"] < 0).any() or (ratings["item"] < 0).any():
        return None
    if counts["."] and not _dots_in_ratings(array, breaks):
        return None
    if not blank_lines:
        return ratings, np.arange(1, len(ratings) + 1)
    ends = np.append(breaks, len(array))
    return ratings, np.flatnonzero(np.diff(ends, prepend=-1) > 1) + 1  # lines with a byte before their break


def _dots_in_ratings(array: np.ndarray, breaks: np.ndarray) -> bool:
    """Whether every ``.`` of ``array`` (the bytes of a tab-separated ratings file) is in a line's third field."""
    dots = np.flatnonzero(array == ord("."))
    tabs = np.flatnonzero(array == ord("\t"))
    line = np.searchsorted(breaks, dots)  # (D,) the line of each dot, 0-based
    starts = np.where(line > 0, breaks[np.maximum(line - 1, 0)] + 1, 0)
    return bool((np.searchsorted(tabs, dots) - np.searchsorted(tabs, starts) == 2).all())


def parse_ratings(fields: Fields) -> tuple[pd.DataFrame, np.ndarray]:
    """(ratings, line number of each row (R,)) parsed line by line; the first bad value names its line."""
    size = len(fields.lines)
    users, items = np.empty(size, dtype=np.int64), np.empty(size, dtype=np.int64)
    ratings, stamps = np.empty(size, dtype=np.float64), np.empty(size, dtype=np.int64)
    path = fields.path
    for i, (line, user, item, rating, stamp) in enumerate(zip(fields.lines.tolist(), *fields.columns)):
        users[i] = parse_int(user, path, line, "user id", minimum=0)
        items[i] = parse_int(item, path, line, "item id", minimum=0)
        stamps[i] = parse_int(stamp, path, line, "timestamp")
        if "_" in rating:  # float() would accept "4_0"
            raise DataFormatError(path, f"rating is not a number: {rating!r}", line)
        try:
            ratings[i] = float(rating)
        except ValueError:
            raise DataFormatError(path, f"rating is not a number: {rating!r}", line) from None
        if not np.isfinite(ratings[i]):
            raise DataFormatError(path, f"rating is not finite: {rating!r}", line)
    return pd.DataFrame({"user": users, "item": items, "rating": ratings, "timestamp": stamps}), fields.lines


def checked_ratings(ratings: pd.DataFrame, lines: np.ndarray, path: Path, items: pd.DataFrame,
                    items_path: Path) -> pd.DataFrame:
    """``ratings`` (file order, ``lines`` their line numbers) with an empty table, a negative user or item id,
    items that ``items`` lacks and a rating that is not a finite number >= 0 refused, and the older rows of a
    repeated (user, item) pair dropped."""
    if not len(ratings):
        raise DataFormatError(path, "holds no rating rows")
    for column in ("user", "item"):
        negative = np.flatnonzero(ratings[column].to_numpy() < 0)
        if len(negative):
            raise DataFormatError(path, f"{column} id must be >= 0, got {ratings[column].iat[negative[0]]}",
                                  int(lines[negative[0]]))
    values = ratings["rating"].to_numpy()
    negative = np.flatnonzero(~(values >= 0))
    if len(negative):
        raise DataFormatError(path, f"rating must be >= 0, got {ratings['rating'].iat[negative[0]]}",
                              int(lines[negative[0]]))
    above = np.flatnonzero(values > 5)
    if len(above):  # MovieLens rates 0.5-5: another scale silently changes what data.min_rating keeps
        warnings.warn(f"{path}: {len(above)} rating(s) above 5 (MovieLens rates 0.5 to 5; e.g. {values[above[0]]:g} on "
                      f"line {int(lines[above[0]])}); data.min_rating compares these values as they are",
                      DataFormatWarning)
    unknown = np.flatnonzero(~ratings["item"].isin(items["item"]).to_numpy())
    if len(unknown):
        first = unknown[0]
        raise DataFormatError(path, f"item id {ratings['item'].iat[first]} is not in {items_path.name} "
                              f"({len(unknown)} rating row(s) name items it does not list)", int(lines[first]))
    if not _has_repeated_pairs(ratings):
        return ratings
    # stable sort by time: for a pair rated twice at the same time, the later row in the file wins
    by_time = ratings.sort_values("timestamp", kind="stable")
    older = by_time.duplicated(["user", "item"], keep="last").sort_index().to_numpy()
    first = np.flatnonzero(older)[0]
    user, item = ratings["user"].iat[first], ratings["item"].iat[first]
    kept = np.flatnonzero((ratings["user"] == user).to_numpy() & (ratings["item"] == item).to_numpy() & ~older)[0]
    warnings.warn(f"{path}: dropped {int(older.sum())} rating row(s) of (user, item) pairs rated more than once, "
                  f"keeping the latest rating of each pair (e.g. user {user}, item {item}: line {lines[first]} "
                  f"dropped, line {lines[kept]} kept)", DataFormatWarning)
    return ratings[~older].reset_index(drop=True)


def _has_repeated_pairs(ratings: pd.DataFrame) -> bool:
    """Whether some (user, item) pair repeats: one sort of a packed key when the ids allow it."""
    users, items = ratings["user"].to_numpy(), ratings["item"].to_numpy()
    if not len(users):
        return False
    span = int(items.max()) + 1
    if (int(users.max()) + 1) * span >= np.iinfo(np.int64).max:
        return bool(ratings.duplicated(["user", "item"]).any())
    keys = np.sort(users * span + items)
    return bool((keys[1:] == keys[:-1]).any())
