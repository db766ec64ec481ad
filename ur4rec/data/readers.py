"""Readers for the three supported on-disk layouts, auto-detected from a folder's contents.

* ``ml-100k``: raw MovieLens-100K (``u.data``, ``u.item``, ``u.user``);
* ``m-ml-100k``: the multimodal layout (``ratings.dat``, ``movies.dat``, ``user.dat``, ``text.xls``, ``image/``);
* ``ml-1m``: MovieLens-1M (``ratings.dat``, ``movies.dat``, ``users.dat``).

Every reader returns a :class:`RawDataset` whose ratings keep the file order (the tie-break for equal
timestamps). Malformed input raises :class:`DataFormatError` naming the file and line; so does a rating
of an item id that the items file does not list (the two files do not belong together). A repeated
(user, item) pair is not an error: as on MovieLens, where re-rating a movie replaces the old rating,
only the latest row of each pair (by timestamp, then file order) is kept, and the rows dropped are
counted in one :class:`DataFormatWarning`.

Text files may start with a UTF-8 byte order mark and use LF, CRLF or CR line endings. The MovieLens
metadata files are latin-1; a copy saved as UTF-8 (e.g. with Japanese or Cyrillic titles) is read as
UTF-8 when the whole file is valid UTF-8.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ur4rec.data.errors import DataFormatError, DataFormatWarning

ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
USER_COLUMNS = ("user", "gender", "age", "occupation", "zip")
_INT_RE = re.compile(r"[+-]?[0-9]+")
_INT64_MAX = np.iinfo(np.int64).max
_INT_COLUMN_RE = re.compile(r"(?:[ \t]*[+-]?[0-9]{1,18}[ \t]*\n)*")  # 18 digits always fit in int64


@dataclass
class RawDataset:
    """Ratings, item metadata and optional side information exactly as read (raw ids)."""

    layout: str
    root: Path
    ratings: pd.DataFrame  # columns: user, item (int64), rating (float64), timestamp (int64); file order
    items: pd.DataFrame  # columns: item (int64), title (str), genres (tuple[str, ...])
    users: pd.DataFrame | None = None  # columns: user, gender, age (int64), occupation, zip
    item_texts: dict[int, str] = field(default_factory=dict)  # plot/review text per raw item id
    image_paths: dict[int, Path] = field(default_factory=dict)  # poster per raw item id


def detect_layout(root: str | Path) -> str:
    """Return ``"ml-100k"``, ``"m-ml-100k"`` or ``"ml-1m"`` from the files present in ``root``."""
    root = Path(root)
    if not root.exists():
        raise DataFormatError(root, "data folder does not exist")
    if not root.is_dir():
        raise DataFormatError(root, "is not a folder")
    names = {p.name for p in root.iterdir()}
    if not names:
        raise DataFormatError(root, "data folder is empty: expected MovieLens-100K, M_ML-100K or MovieLens-1M files")
    if "u.data" in names:
        return "ml-100k"
    if "ratings.dat" in names:
        if "users.dat" in names:
            return "ml-1m"
        if names & {"user.dat", "text.xls", "image"}:
            return "m-ml-100k"
        raise DataFormatError(
            root, "has ratings.dat but neither users.dat (MovieLens-1M) nor user.dat/text.xls/image/ (M_ML-100K)"
        )
    raise DataFormatError(
        root, "no known layout: expected u.data (MovieLens-100K) or ratings.dat (M_ML-100K, MovieLens-1M); "
        f"found {sorted(names)[:10]}"
    )


def read_dataset(root: str | Path) -> RawDataset:
    """Read the dataset in ``root`` whatever its layout."""
    readers = {"ml-100k": read_ml100k, "m-ml-100k": read_mml100k, "ml-1m": read_ml1m}
    return readers[detect_layout(root)](Path(root))


# ---------------------------------------------------------------------------------------------- layouts


def read_ml100k(root: Path) -> RawDataset:
    item_rows = _read_fields(root / "u.item", "|", 5 + len(ML100K_GENRES), "latin-1")
    items = []
    for line, fields in item_rows:
        flags = [f.strip() for f in fields[5:]]
        if any(f not in ("0", "1") for f in flags):
            raise DataFormatError(root / "u.item", f"genre flags must be 0 or 1, got {flags}", line)
        genres = tuple(g for g, f in zip(ML100K_GENRES, flags) if f == "1")
        items.append((_int(fields[0], root / "u.item", line, "item id", minimum=0), fields[1], genres, line))
    items = _items_frame(items, root / "u.item")
    ratings = _read_ratings(root / "u.data", "\t", "utf-8", items, root / "u.item")
    users = _read_users(root / "u.user", "|", ("user", "age", "gender", "occupation", "zip"), "latin-1")
    return RawDataset("ml-100k", root, ratings, items, users)


def read_mml100k(root: Path) -> RawDataset:
    items = _read_movies_dat(root / "movies.dat")
    ratings = _read_ratings(root / "ratings.dat", "::", "utf-8", items, root / "movies.dat")
    users = _read_users(root / "user.dat", "::", USER_COLUMNS, "latin-1")
    texts = _read_text_xls(root / "text.xls") if (root / "text.xls").exists() else {}
    images = _scan_images(root / "image")
    return RawDataset("m-ml-100k", root, ratings, items, users, texts, images)


def read_ml1m(root: Path) -> RawDataset:
    items = _read_movies_dat(root / "movies.dat")
    ratings = _read_ratings(root / "ratings.dat", "::", "utf-8", items, root / "movies.dat")
    users = _read_users(root / "users.dat", "::", USER_COLUMNS, "latin-1")
    return RawDataset("ml-1m", root, ratings, items, users)


# ---------------------------------------------------------------------------------------------- helpers


def _read_fields(path: Path, sep: str, num_fields: int, encoding: str) -> list[tuple[int, list[str]]]:
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


def _int(value: str, path: Path, line: int, what: str, minimum: int | None = None) -> int:
    """Parse a plain ASCII decimal integer (no ``_``, no Unicode digits) that fits in int64."""
    text = value.strip()
    if not _INT_RE.fullmatch(text):
        raise DataFormatError(path, f"{what} is not an integer: {value!r}", line)
    number = int(text)
    if abs(number) > _INT64_MAX:
        raise DataFormatError(path, f"{what} is out of range: {value!r}", line)
    if minimum is not None and number < minimum:
        raise DataFormatError(path, f"{what} must be >= {minimum}, got {number}", line)
    return number


def _int_column(values: list[str], minimum: int | None = None) -> np.ndarray | None:
    """Vectorised fast path: the column as int64, or None when any value needs the per-line checks."""
    if not _INT_COLUMN_RE.fullmatch("\n".join(values) + "\n"):
        return None
    array = np.fromiter(map(int, values), dtype=np.int64, count=len(values))
    if minimum is not None and len(array) and array.min() < minimum:
        return None
    return array


def _float_column(values: list[str]) -> np.ndarray | None:
    if any("_" in v for v in values):
        return None
    try:
        array = np.fromiter(map(float, values), dtype=np.float64, count=len(values))
    except ValueError:
        return None
    return array if np.isfinite(array).all() else None


def _read_ratings(path: Path, sep: str, encoding: str, items: pd.DataFrame, items_path: Path) -> pd.DataFrame:
    """Parse a ratings file, refuse items that ``items`` lacks and keep the latest row of a repeated pair."""
    rows = _read_fields(path, sep, 4, encoding)
    lines = np.array([line for line, _ in rows])
    ratings = _parse_ratings(path, rows)
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


def _parse_ratings(path: Path, rows: list[tuple[int, list[str]]]) -> pd.DataFrame:
    columns = list(zip(*(fields for _, fields in rows)))
    fast = (_int_column(columns[0], 0), _int_column(columns[1], 0), _float_column(columns[2]),
            _int_column(columns[3]))
    if all(c is not None for c in fast):
        return pd.DataFrame({"user": fast[0], "item": fast[1], "rating": fast[2], "timestamp": fast[3]})
    # slow path: find the first bad value and name its line
    users = np.empty(len(rows), dtype=np.int64)
    items = np.empty(len(rows), dtype=np.int64)
    ratings = np.empty(len(rows), dtype=np.float64)
    stamps = np.empty(len(rows), dtype=np.int64)
    for i, (line, (user, item, rating, stamp)) in enumerate(rows):
        users[i] = _int(user, path, line, "user id", minimum=0)
        items[i] = _int(item, path, line, "item id", minimum=0)
        stamps[i] = _int(stamp, path, line, "timestamp")
        if "_" in rating:  # float() would accept "4_0"
            raise DataFormatError(path, f"rating is not a number: {rating!r}", line)
        try:
            ratings[i] = float(rating)
        except ValueError:
            raise DataFormatError(path, f"rating is not a number: {rating!r}", line) from None
        if not np.isfinite(ratings[i]):
            raise DataFormatError(path, f"rating is not finite: {rating!r}", line)
    return pd.DataFrame({"user": users, "item": items, "rating": ratings, "timestamp": stamps})


def _read_movies_dat(path: Path) -> pd.DataFrame:
    items = []
    for line, (item, title, genres) in _read_fields(path, "::", 3, "latin-1"):
        genre_tuple = tuple(g.strip() for g in genres.split("|") if g.strip())
        items.append((_int(item, path, line, "item id", minimum=0), title, genre_tuple, line))
    return _items_frame(items, path)


def _items_frame(items: list[tuple[int, str, tuple[str, ...], int]], path: Path) -> pd.DataFrame:
    """Build the items frame from (id, title, genres, line) rows; a repeated id is an error."""
    first_line: dict[int, int] = {}
    for item, _, _, line in items:
        if item in first_line:
            raise DataFormatError(path, f"item id {item} repeats the one on line {first_line[item]}", line)
        first_line[item] = line
    frame = pd.DataFrame([row[:3] for row in items], columns=["item", "title", "genres"])
    frame["item"] = frame["item"].astype(np.int64)
    return frame


def _read_users(path: Path, sep: str, columns: tuple[str, ...], encoding: str) -> pd.DataFrame:
    """Read a users file; the frame always has the columns of ``USER_COLUMNS`` in that order."""
    rows = _read_fields(path, sep, len(columns), encoding)
    records, first_line = [], {}
    for line, fields in rows:
        record = dict(zip(columns, (f.strip() for f in fields)))
        user = _int(record["user"], path, line, "user id", minimum=0)
        if user in first_line:
            raise DataFormatError(path, f"user id {user} repeats the one on line {first_line[user]}", line)
        first_line[user] = line
        record["user"] = user
        record["age"] = _int(record["age"], path, line, "age", minimum=0)
        records.append(record)
    frame = pd.DataFrame(records, columns=list(USER_COLUMNS))
    frame["user"] = frame["user"].astype(np.int64)
    frame["age"] = frame["age"].astype(np.int64)
    return frame


def _read_text_xls(path: Path) -> dict[int, str]:
    """Read the ``movie-id``/``review`` columns of ``text.xls``; rows are named by their spreadsheet row."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas deprecates the xlrd engine; .xls needs it all the same
            sheet = pd.read_excel(path, engine="xlrd", dtype=object)
    except Exception as err:  # xlrd raises a zoo of types for corrupt workbooks
        raise DataFormatError(path, f"cannot read the spreadsheet: {type(err).__name__}: {err}") from None
    sheet.columns = [c.strip() if isinstance(c, str) else c for c in sheet.columns]
    missing = {"movie-id", "review"} - set(sheet.columns)
    if missing:
        raise DataFormatError(path, f"missing column(s) {sorted(missing)}; found columns {list(sheet.columns)}")
    texts: dict[int, str] = {}
    for row, (item, review) in enumerate(zip(sheet["movie-id"], sheet["review"]), start=2):
        if _is_blank(item):
            continue
        item_id = _xls_int(item)
        if item_id is None:
            raise DataFormatError(path, f"movie-id is not an integer: {item!r}", row)
        if _is_blank(review):
            continue
        text = str(review).strip()
        if text:
            texts[item_id] = text
    return texts


def _is_blank(value: object) -> bool:
    if isinstance(value, str):
        return not value.strip()
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _xls_int(value: object) -> int | None:
    """An integral spreadsheet cell (``3``, ``3.0``, ``"3"``) as int, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return int(value) if np.isfinite(value) and float(value).is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        if _INT_RE.fullmatch(text):
            return int(text)
        try:
            number = float(text)
        except ValueError:
            return None
        return int(number) if np.isfinite(number) and number.is_integer() else None
    return None


def _scan_images(folder: Path) -> dict[int, Path]:
    """Map item id -> poster file for ``<item_id>.{png,jpg,jpeg}``; other names are counted in a warning."""
    if not folder.is_dir():
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
