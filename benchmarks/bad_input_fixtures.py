"""The good inputs the bad-input corpus breaks: small synthetic datasets in every layout, LLM texts, and the
edits that turn a copy of one into a bad input (see :mod:`benchmarks.bad_input_cases`).

Every user rates ``PER_USER`` consecutive items (4 or 5 stars), so all ``NUM_USERS`` users and all
``NUM_ITEMS`` items survive the default filters and a clean folder reads as ``COUNTS``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

NUM_USERS, NUM_ITEMS, PER_USER = 24, 30, 10
OTHER_NUM_ITEMS = 36  # the catalog of the "other" dataset, for a checkpoint of another catalog
COUNTS = f"{NUM_USERS} users, {NUM_ITEMS} items"  # what the features command prints for a clean folder
GENRES = ("Action", "Comedy", "Drama", "Horror", "Romance")
ML100K_GENRE_FLAGS = 19
RATING_ROWS = NUM_USERS * PER_USER

Setup = Callable[[Path, dict], None]  # (case folder, fixture paths) -> None: writes the case's bad input


def rating_rows(num_items: int = NUM_ITEMS) -> list[tuple[int, int, int, int]]:
    """(user, item, stars, timestamp) in file order; users start at distinct offsets so every item is rated."""
    rows = []
    for user in range(1, NUM_USERS + 1):
        for step in range(PER_USER):
            item, stars = (user * 7 + step) % num_items + 1, 4 + (user + step) % 2
            rows.append((user, item, stars, 880_000_000 + 1000 * step + user))
    return rows


def title(item: int) -> str:
    return f"Movie {item} ({1990 + item % 10})"


def write_ml100k(root: Path, num_items: int = NUM_ITEMS) -> Path:
    """``u.data`` (tab), ``u.item`` (``|``, 19 genre flags, latin-1), ``u.user`` (``|``)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "u.data").write_text("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in rating_rows(num_items)))
    lines = []
    for item in range(1, num_items + 1):
        flags = ["0"] * ML100K_GENRE_FLAGS
        flags[1 + item % (ML100K_GENRE_FLAGS - 1)] = "1"
        lines.append("|".join([str(item), title(item), "01-Jan-1995", "", f"http://x/{item}", *flags]))
    (root / "u.item").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    (root / "u.user").write_text("".join(f"{u}|{20 + u}|{'MF'[u % 2]}|other|0000{u % 10}\n"
                                         for u in range(1, NUM_USERS + 1)))
    return root


def write_mml(root: Path) -> Path:
    """M_ML-100K: ``ratings.dat``/``movies.dat``/``user.dat`` (``::``), plots in ``text.xls`` for two thirds of
    the items, ``image/<id>.jpg`` posters for four fifths."""
    import xlwt

    root.mkdir(parents=True, exist_ok=True)
    (root / "ratings.dat").write_text("".join(f"{u}::{i}::{r}::{t}\n" for u, i, r, t in rating_rows()))
    (root / "movies.dat").write_bytes("".join(f"{i}::{title(i)}::{GENRES[i % 5]}|{GENRES[(i + 2) % 5]}\n"
                                              for i in range(1, NUM_ITEMS + 1)).encode("latin-1"))
    (root / "user.dat").write_text("".join(f"{u}::M::25::1::00000\n" for u in range(1, NUM_USERS + 1)))
    book = xlwt.Workbook()
    sheet = book.add_sheet("text")
    sheet.write(0, 0, "movie-id")
    sheet.write(0, 1, "review")
    plotted = [i for i in range(1, NUM_ITEMS + 1) if i % 3]
    for row, item in enumerate(plotted, start=1):
        sheet.write(row, 0, item)
        sheet.write(row, 1, f"{title(item)}: a {GENRES[item % 5].lower()} story number {item}.")
    book.save(str(root / "text.xls"))
    for item in range(1, NUM_ITEMS + 1):
        if item % 5:
            write_poster(root / "image" / f"{item}.jpg", seed=item)
    return root


def write_poster(path: Path, seed: int, size: tuple[int, int] = (40, 56)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="JPEG")
    return path


def write_movielens_csv(root: Path) -> Path:
    """MovieLens CSV (CRLF, as published): half-star ratings, quoted titles with commas, tags, links."""
    root.mkdir(parents=True, exist_ok=True)

    def write(name: str, rows: list[str]) -> None:
        (root / name).write_bytes("\r\n".join(rows + [""]).encode())

    write("ratings.csv", ["userId,movieId,rating,timestamp"]
          + [f"{u},{i},{r - 0.5 * (i % 2) * (r == 5)},{t}" for u, i, r, t in rating_rows()])
    write("movies.csv", ["movieId,title,genres"]
          + [f'{i},"{title(i)}, The",{GENRES[i % 5]}|{GENRES[(i + 1) % 5]}' for i in range(1, NUM_ITEMS + 1)])
    write("tags.csv", ["userId,movieId,tag,timestamp"] + [f"1,{i},tag{i % 3},1" for i in range(1, 21)])
    write("links.csv", ["movieId,imdbId,tmdbId"] + [f"{i},{100000 + i},{200 + i}" for i in range(1, NUM_ITEMS + 1)])
    return root


def write_llm(root: Path) -> Path:
    """LLM texts: descriptions of items 1-10, preferences of users 1-5."""
    root.mkdir(parents=True, exist_ok=True)
    items = {str(i): f"An LLM description of {title(i)}." for i in range(1, 11)}
    users = {str(u): f"User {u} likes {GENRES[u % 5].lower()} films." for u in range(1, 6)}
    (root / "item_descriptions.json").write_text(json.dumps(items, indent=1))
    (root / "user_preferences.json").write_text(json.dumps(users, indent=1))
    return root


def write_datasets(root: Path) -> dict[str, str]:
    """Every good dataset folder under ``root``; returns their placeholders (``{ml100k}`` ...) as absolute paths."""
    folders = {"ml100k": write_ml100k(root / "ml100k"), "mml": write_mml(root / "mml"),
               "csv": write_movielens_csv(root / "csv"), "other": write_ml100k(root / "other", OTHER_NUM_ITEMS),
               "llm": write_llm(root / "llm")}
    return {name: str(path.resolve()) for name, path in folders.items()}


# ---------------------------------------------------------------------------------------------- case setups


def copied(fixture: str, to: str = "data") -> Setup:
    """Copy the fixture folder (or file) named ``fixture`` into the case folder as ``to``."""

    def setup(case_dir: Path, fixtures: dict) -> None:
        source = Path(fixtures[fixture])
        (shutil.copytree if source.is_dir() else shutil.copy)(source, case_dir / to)

    return setup


def edited(fixture: str, name: str, edit: Callable[[bytes], bytes], to: str = "data") -> Setup:
    """A copy of ``fixture`` as ``to`` whose file ``name`` is rewritten by ``edit(bytes) -> bytes``."""

    def setup(case_dir: Path, fixtures: dict) -> None:
        copied(fixture, to)(case_dir, fixtures)
        path = case_dir / to / name
        path.write_bytes(edit(path.read_bytes() if path.exists() else b""))

    return setup


def steps(*setups: Setup) -> Setup:
    def setup(case_dir: Path, fixtures: dict) -> None:
        for step in setups:
            step(case_dir, fixtures)

    return setup


def written(name: str, content: str | bytes) -> Setup:
    """Write one file into the case folder."""

    def setup(case_dir: Path, fixtures: dict) -> None:
        path = case_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)

    return setup


def removed(name: str) -> Setup:
    """Delete a file or folder of the case folder (after a copy)."""

    def setup(case_dir: Path, fixtures: dict) -> None:
        path = case_dir / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()

    return setup


def appended(text: str | bytes) -> Callable[[bytes], bytes]:
    """Append ``text`` (plus a newline) after the file's last line."""
    extra = text.encode() if isinstance(text, str) else text

    def edit(data: bytes) -> bytes:
        newline = b"\r\n" if b"\r\n" in data else b"\n"
        return data + (b"" if data.endswith(b"\n") else newline) + extra + newline

    return edit


def appended_raw(extra: bytes) -> Callable[[bytes], bytes]:
    """Append bytes as they are (e.g. a last line cut off without its newline)."""
    return lambda data: data + extra


def line_replaced(number: int, change: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    """Rewrite line ``number`` (1-based) with ``change(line bytes)``."""

    def edit(data: bytes) -> bytes:
        lines = data.split(b"\n")
        lines[number - 1] = change(lines[number - 1])
        return b"\n".join(lines)

    return edit


def replaced(old: bytes, new: bytes) -> Callable[[bytes], bytes]:
    return lambda data: data.replace(old, new)


def emptied(_: bytes) -> bytes:
    return b""


def first_line_only(data: bytes) -> bytes:
    return data.splitlines(keepends=True)[0]


def with_bom_and_crlf(data: bytes) -> bytes:
    return b"\xef\xbb\xbf" + data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def with_cr_only(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r")


def random_bytes(size: int = 4096, seed: int = 0) -> Callable[[bytes], bytes]:
    return lambda _: np.random.default_rng(seed).bytes(size)


def halved(data: bytes) -> bytes:
    return data[: len(data) // 2]
