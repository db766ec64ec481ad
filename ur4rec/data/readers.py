"""Readers for the supported on-disk layouts, auto-detected from a folder's contents.

* ``ml-100k``: raw MovieLens-100K (``u.data``, ``u.item``, ``u.user``);
* ``m-ml-100k``: the multimodal layout (``ratings.dat``, ``movies.dat``, ``user.dat``, ``text.xls``, ``image/``);
* ``ml-1m``: MovieLens-1M (``ratings.dat``, ``movies.dat``, ``users.dat``);
* ``ml-csv``: today's MovieLens CSV releases (``ratings.csv``, ``movies.csv``, optional ``tags.csv``), see
  :mod:`ur4rec.data.movielens_csv`.

Every reader returns a :class:`RawDataset` whose ratings keep the file order (the tie-break for equal
timestamps). Malformed input raises :class:`DataFormatError` naming the file and line; so does a rating
of an item id that the items file does not list (the two files do not belong together). A repeated
(user, item) pair is not an error: as on MovieLens, where re-rating a movie replaces the old rating,
only the latest row of each pair (by timestamp, then file order) is kept, and the rows dropped are
counted in one :class:`DataFormatWarning`.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ur4rec.data.errors import DataFormatError
from ur4rec.data.movielens_csv import read_ml_csv
from ur4rec.data.parsing import (
    INT_RE, USER_COLUMNS, int_column, items_frame, read_fields, read_movies_dat, read_users, scan_images,
)
from ur4rec.data.ratings import read_ratings
from ur4rec.data.raw import RawDataset

ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
)

def detect_layout(root: str | Path) -> str:
    """Return ``"ml-100k"``, ``"m-ml-100k"``, ``"ml-1m"`` or ``"ml-csv"`` from the files present in ``root``."""
    root = Path(root)
    if not root.exists():
        raise DataFormatError(root, "data folder does not exist")
    if not root.is_dir():
        raise DataFormatError(root, "is not a folder")
    names = {p.name for p in root.iterdir()}
    if not names:
        raise DataFormatError(root, "data folder is empty: expected MovieLens-100K, M_ML-100K, MovieLens-1M or "
                              "MovieLens CSV files")
    if "u.data" in names:
        return "ml-100k"
    if "ratings.csv" in names:
        if "movies.csv" not in names:
            raise DataFormatError(root, "has ratings.csv but no movies.csv (the MovieLens CSV layout needs both)")
        return "ml-csv"
    if "ratings.dat" in names:
        if "users.dat" in names:
            return "ml-1m"
        if names & {"user.dat", "text.xls", "image"}:
            return "m-ml-100k"
        raise DataFormatError(
            root, "has ratings.dat but neither users.dat (MovieLens-1M) nor user.dat/text.xls/image/ (M_ML-100K)"
        )
    raise DataFormatError(
        root, "no known layout: expected u.data (MovieLens-100K), ratings.dat (M_ML-100K, MovieLens-1M) or ratings.csv "
        "(MovieLens CSV releases); "
        f"found {sorted(names)[:10]}"
    )


def read_dataset(root: str | Path) -> RawDataset:
    """Read the dataset in ``root`` whatever its layout."""
    readers = {"ml-100k": read_ml100k, "m-ml-100k": read_mml100k, "ml-1m": read_ml1m, "ml-csv": read_ml_csv}
    return readers[detect_layout(root)](Path(root))


def read_ml100k(root: Path) -> RawDataset:
    items = _read_u_item(root / "u.item")
    ratings = read_ratings(root / "u.data", "\t", items, root / "u.item")
    users = read_users(root / "u.user", "|", ("user", "age", "gender", "occupation", "zip"), "latin-1")
    return RawDataset("ml-100k", root, ratings, items, users)


def _read_u_item(path: Path) -> pd.DataFrame:
    """``id|title|date|video url|IMDb url|19 genre flags``; a flag that is not 0 or 1 names its line."""
    fields = read_fields(path, "|", 5 + len(ML100K_GENRES), "latin-1")
    flags = np.array([[flag.strip() for flag in column] for column in fields.columns[5:]]).T  # (R, 19)
    wrong = np.flatnonzero(~np.isin(flags, ("0", "1")).all(axis=1))
    if len(wrong):
        raise DataFormatError(path, f"genre flags must be 0 or 1, got {flags[wrong[0]].tolist()}",
                              int(fields.lines[wrong[0]]))
    codes = (flags == "1") @ (1 << np.arange(len(ML100K_GENRES)))  # (R,) the flags as one number per item
    genres = {int(code): tuple(g for bit, g in enumerate(ML100K_GENRES) if code >> bit & 1) for code in np.unique(codes)}
    ids = int_column(fields.columns[0], fields.lines, path, "item id", minimum=0)
    return items_frame(ids, fields.columns[1], [genres[code] for code in codes.tolist()], fields.lines, path)


def read_mml100k(root: Path) -> RawDataset:
    items = read_movies_dat(root / "movies.dat")
    ratings = read_ratings(root / "ratings.dat", "::", items, root / "movies.dat")
    users = read_users(root / "user.dat", "::", USER_COLUMNS, "latin-1")
    texts = _read_text_xls(root / "text.xls") if (root / "text.xls").exists() else {}
    images = scan_images(root / "image")
    return RawDataset("m-ml-100k", root, ratings, items, users, texts, images)


def read_ml1m(root: Path) -> RawDataset:
    items = read_movies_dat(root / "movies.dat")
    ratings = read_ratings(root / "ratings.dat", "::", items, root / "movies.dat")
    users = read_users(root / "users.dat", "::", USER_COLUMNS, "latin-1")
    return RawDataset("ml-1m", root, ratings, items, users)


# ---------------------------------------------------------------------------------------------- side files


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
        if INT_RE.fullmatch(text):
            return int(text)
        try:
            number = float(text)
        except ValueError:
            return None
        return int(number) if np.isfinite(number) and number.is_integer() else None
    return None
