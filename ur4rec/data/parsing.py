"""Parsing shared by the readers: delimited text files read strictly (file and line named on any error),
integer and rating columns vectorized, items and users frames, and the ratings checks every layout applies.

Text files may start with a UTF-8 byte order mark and use LF, CRLF or CR line endings. The MovieLens
metadata files are latin-1; a copy saved as UTF-8 (e.g. with Japanese or Cyrillic titles) is read as
UTF-8 when the whole file is valid UTF-8.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ur4rec.data.errors import DataFormatError, DataFormatWarning

USER_COLUMNS = ("user", "gender", "age", "occupation", "zip")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
INT_RE = re.compile(r"[+-]?[0-9]+")
_INT64_MAX = np.iinfo(np.int64).max
_INT_COLUMN_RE = re.compile(r"(?:[ \t]*[+-]?[0-9]{1,18}[ \t]*\n)*")  # 18 digits always fit in int64


def read_fields(path: Path, sep: str, num_fields: int, encoding: str) -> list[tuple[int, list[str]]]:
    """Split every non-blank line of ``path`` into exactly ``num_fields`` fields; return (line number, fields).

    ``encoding="latin-1"`` (the MovieLens metadata files) reads a file that is valid UTF-8 as UTF-8.
    """
    if not path.is_file():
        raise DataFormatError(path, "file is missing" if not path.exists() else "is not a regular file")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataFormatError(path, f"cannot read the file: {err.strerror or err}") from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if encoding == "latin-1" and _is_utf8(data):
        encoding = "utf-8"
    rows = []
    # splitlines() on bytes splits on \n, \r\n and \r only (LF, CRLF and old Mac line endings)
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as err:
            raise DataFormatError(path, f"not valid {encoding} (byte {raw[err.start]:#04x} at column {err.start + 1})",
                                  number) from None
        fields = text.split(sep)
        if len(fields) != num_fields:
            raise DataFormatError(path, f"expected {num_fields} {sep!r}-separated fields, found {len(fields)}", number)
        rows.append((number, fields))
    if not rows:
        raise DataFormatError(path, "file is empty")
    return rows


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def parse_int(value: str, path: Path, line: int, what: str, minimum: int | None = None) -> int:
    """Parse a plain ASCII decimal integer (no ``_``, no Unicode digits) that fits in int64."""
    text = value.strip()
    if not INT_RE.fullmatch(text):
        raise DataFormatError(path, f"{what} is not an integer: {value!r}", line)
    number = int(text)
    if abs(number) > _INT64_MAX:
        raise DataFormatError(path, f"{what} is out of range: {value!r}", line)
    if minimum is not None and number < minimum:
        raise DataFormatError(path, f"{what} must be >= {minimum}, got {number}", line)
    return number


def int_column(values: list[str], minimum: int | None = None) -> np.ndarray | None:
    """Vectorised fast path: the column as int64, or None when any value needs the per-line checks."""
    if not _INT_COLUMN_RE.fullmatch("\n".join(values) + "\n"):
        return None
    array = np.fromiter(map(int, values), dtype=np.int64, count=len(values))
    if minimum is not None and len(array) and array.min() < minimum:
        return None
    return array


def float_column(values: list[str]) -> np.ndarray | None:
    if any("_" in v for v in values):
        return None
    try:
        array = np.fromiter(map(float, values), dtype=np.float64, count=len(values))
    except ValueError:
        return None
    return array if np.isfinite(array).all() else None


def read_ratings(path: Path, sep: str, encoding: str, items: pd.DataFrame, items_path: Path) -> pd.DataFrame:
    """Parse a ratings file, refuse items that ``items`` lacks and keep the latest row of a repeated pair."""
    rows = read_fields(path, sep, 4, encoding)
    lines = np.array([line for line, _ in rows])
    return checked_ratings(parse_ratings(path, rows), lines, path, items, items_path)


def checked_ratings(ratings: pd.DataFrame, lines: np.ndarray, path: Path, items: pd.DataFrame,
                    items_path: Path) -> pd.DataFrame:
    """``ratings`` (file order, ``lines`` their line numbers) with items that ``items`` lacks refused, a rating
    that is not a finite number >= 0 refused, and the older rows of a repeated (user, item) pair dropped."""
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
    # stable sort by time: for a pair rated twice at the same time, the later row in the file wins
    by_time = ratings.sort_values("timestamp", kind="stable")
    older = by_time.duplicated(["user", "item"], keep="last").sort_index().to_numpy()
    if older.any():
        first = np.flatnonzero(older)[0]
        user, item = ratings["user"].iat[first], ratings["item"].iat[first]
        kept = np.flatnonzero((ratings["user"] == user).to_numpy() & (ratings["item"] == item).to_numpy() & ~older)[0]
        warnings.warn(f"{path}: dropped {int(older.sum())} rating row(s) of (user, item) pairs rated more than once, "
                      f"keeping the latest rating of each pair (e.g. user {user}, item {item}: line {lines[first]} "
                      f"dropped, line {lines[kept]} kept)", DataFormatWarning)
        ratings = ratings[~older].reset_index(drop=True)
    return ratings


def parse_ratings(path: Path, rows: list[tuple[int, list[str]]]) -> pd.DataFrame:
    columns = list(zip(*(fields for _, fields in rows)))
    fast = (int_column(columns[0], 0), int_column(columns[1], 0), float_column(columns[2]),
            int_column(columns[3]))
    if all(c is not None for c in fast):
        return pd.DataFrame({"user": fast[0], "item": fast[1], "rating": fast[2], "timestamp": fast[3]})
    # slow path: find the first bad value and name its line
    users = np.empty(len(rows), dtype=np.int64)
    items = np.empty(len(rows), dtype=np.int64)
    ratings = np.empty(len(rows), dtype=np.float64)
    stamps = np.empty(len(rows), dtype=np.int64)
    for i, (line, (user, item, rating, stamp)) in enumerate(rows):
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
    return pd.DataFrame({"user": users, "item": items, "rating": ratings, "timestamp": stamps})


def read_movies_dat(path: Path) -> pd.DataFrame:
    items = []
    for line, (item, title, genres) in read_fields(path, "::", 3, "latin-1"):
        genre_tuple = tuple(g.strip() for g in genres.split("|") if g.strip())
        items.append((parse_int(item, path, line, "item id", minimum=0), title, genre_tuple, line))
    return items_frame(items, path)


def items_frame(items: list[tuple[int, str, tuple[str, ...], int]], path: Path) -> pd.DataFrame:
    """Build the items frame from (id, title, genres, line) rows; a repeated id is an error."""
    first_line: dict[int, int] = {}
    for item, _, _, line in items:
        if item in first_line:
            raise DataFormatError(path, f"item id {item} repeats the one on line {first_line[item]}", line)
        first_line[item] = line
    frame = pd.DataFrame([row[:3] for row in items], columns=["item", "title", "genres"])
    frame["item"] = frame["item"].astype(np.int64)
    return frame


def read_users(path: Path, sep: str, columns: tuple[str, ...], encoding: str) -> pd.DataFrame:
    """Read a users file; the frame always has the columns of ``USER_COLUMNS`` in that order."""
    rows = read_fields(path, sep, len(columns), encoding)
    records, first_line = [], {}
    for line, fields in rows:
        record = dict(zip(columns, (f.strip() for f in fields)))
        user = parse_int(record["user"], path, line, "user id", minimum=0)
        if user in first_line:
            raise DataFormatError(path, f"user id {user} repeats the one on line {first_line[user]}", line)
        first_line[user] = line
        record["user"] = user
        record["age"] = parse_int(record["age"], path, line, "age", minimum=0)
        records.append(record)
    frame = pd.DataFrame(records, columns=list(USER_COLUMNS))
    frame["user"] = frame["user"].astype(np.int64)
    frame["age"] = frame["age"].astype(np.int64)
    return frame


def scan_images(folder: Path) -> dict[int, Path]:
    """Map item id -> poster file for ``<item_id>.{png,jpg,jpeg}``; other names are counted in a warning."""
    if not folder.is_dir():
        if folder.exists():
            warnings.warn(f"{folder}: is a file, not a folder of <item_id>.jpg posters; no item has a poster",
                          DataFormatWarning)
        return {}
    images, ignored = {}, []
    for path in sorted(folder.iterdir()):
        named_by_id = path.stem.isascii() and path.stem.isdigit()
        if path.suffix.lower() in IMAGE_SUFFIXES and named_by_id and path.is_file():
            images[int(path.stem)] = path
        else:
            ignored.append(path.name)
    if ignored:
        warnings.warn(f"{folder}: ignored {len(ignored)} file(s) not named <item_id>.png/jpg/jpeg, e.g. {ignored[:3]}")
    return images
