"""The dataset writers of the tests: tiny folders in every supported layout, written where a test says
(never the real data, which tests read from ``paths.REAL_DATA``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from feature_fixtures import tiny_raw
from ur4rec.data.readers import ML100K_GENRES

GENRE_FLAGS = 19


def write_files(folder: Path, files: dict[str, str | bytes]) -> Path:
    """Write ``{relative name: content}`` under ``folder`` (str is written as UTF-8); return ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return folder


def write_ml100k(root: Path, num_users: int = 40, num_items: int = 150, per_user: int = 15, seed: int = 0) -> Path:
    """Write ``u.data``/``u.item``/``u.user`` with a learnable pattern: users walk the catalog in order.

    Every user rates ``per_user`` consecutive items (wrapping around) with ratings 4-5, so
    next-item prediction is easy and all users survive the default filters.
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for user in range(1, num_users + 1):
        start = int(rng.integers(num_items))
        for step in range(per_user):
            item = (start + step) % num_items + 1
            lines.append(f"{user}\t{item}\t{int(rng.integers(4, 6))}\t{880000000 + 1000 * step + user}")
    (root / "u.data").write_text("\n".join(lines) + "\n")
    items = []
    for item in range(1, num_items + 1):
        flags = ["0"] * GENRE_FLAGS
        flags[1 + item % (GENRE_FLAGS - 1)] = "1"
        items.append("|".join([str(item), f"Movie {item} (199{item % 10})", "01-Jan-1995", "", "http://x", *flags]))
    (root / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))
    (root / "u.user").write_text("\n".join(f"{u}|{20 + u % 40}|{'MF'[u % 2]}|other|0000{u % 10}"
                                           for u in range(1, num_users + 1)) + "\n")
    return root


def write_image(path: Path, kind: str, size=(40, 56), seed: int = 0, fmt: str | None = None) -> Path:
    """Write a small test image: ``noise``, ``red``, ``blue``, ``stripes`` or ``gradient``."""
    w, h = size
    if kind == "noise":
        array = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    elif kind in ("red", "blue"):
        array = np.zeros((h, w, 3), np.uint8)
        array[..., 0 if kind == "red" else 2] = 200
    elif kind == "stripes":
        array = np.zeros((h, w, 3), np.uint8)
        array[:, ::4] = 255
    elif kind == "gradient":
        ramp = np.linspace(0, 255, w, dtype=np.uint8)
        array = np.stack([np.tile(ramp, (h, 1))] * 3, axis=-1)
    else:
        raise ValueError(kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)
    return path


def write_mml_folder(root: Path, plots: dict[int, str] | None = None, posters: dict[int, str] | None = None) -> Path:
    """Write :func:`tiny_raw`'s data as an on-disk M_ML-100K folder (ratings/movies/user .dat, text.xls,
    image/). ``posters`` maps raw item id -> image kind for :func:`write_image`, or ``"text"`` for a
    file of plain text bytes named like a JPEG."""
    import xlwt

    raw = tiny_raw()
    root.mkdir(parents=True, exist_ok=True)
    (root / "ratings.dat").write_text(
        "".join(f"{u}::{i}::{int(r)}::{t}\n" for u, i, r, t in raw.ratings.itertuples(index=False)))
    (root / "movies.dat").write_bytes("".join(
        f"{i}::{title}::{'|'.join(genres)}\n" for i, title, genres in raw.items.itertuples(index=False)
    ).encode("latin-1"))
    (root / "user.dat").write_text("".join(f"{u}::M::25::1::00000\n" for u in sorted(set(raw.ratings["user"]))))
    book = xlwt.Workbook()
    sheet = book.add_sheet("text")
    sheet.write(0, 0, "movie-id")
    sheet.write(0, 1, "review")
    for row, (item, text) in enumerate(sorted((plots or {}).items()), start=1):
        sheet.write(row, 0, item)
        sheet.write(row, 1, text)
    book.save(str(root / "text.xls"))
    (root / "image").mkdir(exist_ok=True)
    for item, kind in (posters or {}).items():
        if kind == "text":
            (root / "image" / f"{item}.jpg").write_bytes(b"not an image at all\n")
        else:
            write_image(root / "image" / f"{item}.jpg", kind, seed=item, fmt="JPEG")
    return root


def _ml100k_tables(root: Path):
    """(ratings lines, items [(id, title, genres)], users) of a written synthetic MovieLens-100K."""
    ratings = [line.split("\t") for line in (root / "u.data").read_text().splitlines()]
    items = []
    for line in (root / "u.item").read_bytes().decode("latin-1").splitlines():
        fields = line.split("|")
        genres = [g for g, flag in zip(ML100K_GENRES, fields[5:]) if flag == "1"]
        items.append((int(fields[0]), fields[1], genres))
    users = sorted({int(r[0]) for r in ratings})
    return ratings, items, users


def write_dat_layout(source: Path, root: Path, users_file: str) -> Path:
    """The same ratings in the ``::`` layouts: ``user.dat`` (M_ML-100K) or ``users.dat`` (MovieLens-1M)."""
    ratings, items, users = _ml100k_tables(source)
    root.mkdir(parents=True, exist_ok=True)
    (root / "ratings.dat").write_text("".join("::".join(r) + "\n" for r in ratings))
    (root / "movies.dat").write_bytes("".join(f"{i}::{t}::{'|'.join(g)}\n" for i, t, g in items).encode("latin-1"))
    (root / users_file).write_text("".join(f"{u}::{'MF'[u % 2]}::25::{u % 20}::0000{u % 10}\n" for u in users))
    return root


def write_mml100k(source: Path, root: Path) -> Path:
    """A multimodal M_ML-100K folder: plots in text.xls for two thirds of the items, posters for 80%."""
    import xlwt

    write_dat_layout(source, root, "user.dat")
    _, items, _ = _ml100k_tables(source)
    book = xlwt.Workbook()
    sheet = book.add_sheet("text")
    sheet.write(0, 0, "movie-id")
    sheet.write(0, 1, "review")
    row = 1
    for item, title, genres in items:
        if item % 3:
            sheet.write(row, 0, item)
            sheet.write(row, 1, f"{title}: a {' and '.join(genres).lower()} story number {item}.")
            row += 1
    book.save(str(root / "text.xls"))
    kinds = ("noise", "red", "blue", "stripes", "gradient")
    for item, _, _ in items:
        if item % 5:
            write_image(root / "image" / f"{item}.jpg", kinds[item // 5 % len(kinds)], seed=item, fmt="JPEG")
    return root


def write_movielens_csv(source: Path, root: Path) -> Path:
    """The same ratings in the MovieLens CSV layout (CRLF, as published): half stars, a quoted title, tags."""
    ratings, items, _ = _ml100k_tables(source)
    root.mkdir(parents=True, exist_ok=True)
    rows = ["userId,movieId,rating,timestamp"] + [f"{u},{i},{int(r) - 0.5},{t}" for u, i, r, t in ratings]
    (root / "ratings.csv").write_bytes("\r\n".join(rows + [""]).encode())
    movies = ["movieId,title,genres"] + [f'{i},"{t}, The",{"|".join(g) or "(no genres listed)"}' for i, t, g in items]
    (root / "movies.csv").write_bytes("\r\n".join(movies + [""]).encode())
    tags = ["userId,movieId,tag,timestamp"] + [f"1,{i},tag{i % 3},1" for i, _, _ in items[:20]]
    (root / "tags.csv").write_bytes("\r\n".join(tags + [""]).encode())
    return root


