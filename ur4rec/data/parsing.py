"""Parsing shared by the readers: delimited text files read strictly (file and line named on any error),
integer columns vectorized, and the items and users frames.

Text files may start with a UTF-8 byte order mark and use LF, CRLF or CR line endings; how each line is
decoded is :mod:`ur4rec.data.encodings`' rule. Per-line Python here is per item or user, never per rating
(ratings are read by :mod:`ur4rec.data.ratings`).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ur4rec.data.encodings import decode_lines, read_bytes
from ur4rec.data.errors import DataFormatError, DataFormatWarning

USER_COLUMNS = ("user", "gender", "age", "occupation", "zip")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
INT_RE = re.compile(r"[+-]?[0-9]+")
ASCII_WHITESPACE = " \t\n\r\x0b\x0c"  # what bytes.strip() removes: a line of only these is blank
_INT64_MAX = np.iinfo(np.int64).max
_INT_COLUMN_RE = re.compile(r"(?:[ \t]*[+-]?[0-9]{1,18}[ \t]*\n)*")  # 18 digits always fit in int64


@dataclass(frozen=True)
class Fields:
    """The non-blank lines of a delimited file, split: ``columns[j][i]`` is field ``j`` of line ``lines[i]``."""

    path: Path
    lines: np.ndarray  # (R,) 1-based line numbers
    columns: list[tuple[str, ...]]  # num_fields columns of R values each


def read_fields(path: Path, sep: str, num_fields: int, encoding: str) -> Fields:
    """Split every non-blank line of ``path`` into exactly ``num_fields`` fields.

    ``encoding="utf-8"`` (files of numbers) is strict: a byte that is not UTF-8 is an error naming its line
    and column. ``encoding="latin-1"`` (the MovieLens metadata files) decodes by :func:`decode_lines`' rule.
    """
    data = read_bytes(path)
    lines = _strict_utf8_lines(path, data) if encoding == "utf-8" else decode_lines(path, data, encoding)
    numbers = [n for n, line in enumerate(lines, start=1) if line.strip(ASCII_WHITESPACE)]
    if not numbers:
        raise DataFormatError(path, "file is empty")
    rows = [lines[n - 1].split(sep) for n in numbers]
    counts = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    wrong = np.flatnonzero(counts != num_fields)
    if len(wrong):
        raise DataFormatError(path, f"expected {num_fields} {sep!r}-separated fields, found {counts[wrong[0]]}",
                              numbers[wrong[0]])
    return Fields(path, np.array(numbers, dtype=np.int64), list(zip(*rows)))


def _strict_utf8_lines(path: Path, data: bytes) -> list[str]:
    try:
        return data.decode("utf-8").split("\n")
    except UnicodeDecodeError as err:
        line_start = data.rfind(b"\n", 0, err.start) + 1
        raise DataFormatError(path, f"not valid utf-8 (byte {data[err.start]:#04x} at column {err.start - line_start + 1})",
                              data.count(b"\n", 0, err.start) + 1) from None


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


def int_column(values: Sequence[str], lines: np.ndarray, path: Path, what: str,
               minimum: int | None = None) -> np.ndarray:
    """``values`` as int64: (R,). One regex over the whole column vouches for the common case; otherwise each
    value goes through :func:`parse_int`, and the first that is not an integer >= ``minimum`` names its line."""
    if _INT_COLUMN_RE.fullmatch("\n".join(values) + "\n"):
        array = np.fromiter(map(int, values), dtype=np.int64, count=len(values))
        if minimum is None or not len(array) or array.min() >= minimum:
            return array
    return np.fromiter((parse_int(value, path, int(line), what, minimum) for value, line in zip(values, lines)),
                       dtype=np.int64, count=len(values))


def refuse_repeats(ids: np.ndarray, lines: np.ndarray, path: Path, what: str) -> None:
    """A DataFormatError at the first id of ``ids`` (R,) that repeats an earlier one, naming that one's line."""
    repeated = np.flatnonzero(pd.Series(ids).duplicated().to_numpy())
    if len(repeated):
        second = repeated[0]
        first = np.flatnonzero(ids == ids[second])[0]
        raise DataFormatError(path, f"{what} {ids[second]} repeats the one on line {lines[first]}", int(lines[second]))


def read_movies_dat(path: Path) -> pd.DataFrame:
    fields = read_fields(path, "::", 3, "latin-1")
    ids, titles, genres = fields.columns
    genre_tuples = [tuple(g.strip() for g in text.split("|") if g.strip()) for text in genres]
    return items_frame(int_column(ids, fields.lines, path, "item id", minimum=0), titles, genre_tuples, fields.lines,
                       path)


def items_frame(ids: np.ndarray, titles: Sequence[str], genres: Sequence[tuple[str, ...]], lines: np.ndarray,
                path: Path) -> pd.DataFrame:
    """The items frame from ``ids`` (R,), their titles and genres, read from ``lines`` (R,); a repeated id is an error."""
    refuse_repeats(ids, lines, path, "item id")
    return pd.DataFrame({"item": ids.astype(np.int64), "title": list(titles), "genres": list(genres)})


def read_users(path: Path, sep: str, columns: tuple[str, ...], encoding: str) -> pd.DataFrame:
    """Read a users file; the frame always has the columns of ``USER_COLUMNS`` in that order."""
    fields = read_fields(path, sep, len(columns), encoding)
    values = {name: [value.strip() for value in column] for name, column in zip(columns, fields.columns)}
    users = int_column(values["user"], fields.lines, path, "user id", minimum=0)
    refuse_repeats(users, fields.lines, path, "user id")
    values["user"] = users
    values["age"] = int_column(values["age"], fields.lines, path, "age", minimum=0)
    return pd.DataFrame({name: values[name] for name in USER_COLUMNS})


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
