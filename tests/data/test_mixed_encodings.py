"""Metadata files whose lines mix UTF-8 and latin-1: each line is decoded in its own encoding (no mojibake) and
one warning names the file and counts the lines; clean files, the staged real data included, warn nothing."""

from __future__ import annotations

import warnings

import pytest

from paths import REAL_DATA
from ur4rec.data.errors import DataFormatWarning
from ur4rec.data.readers import read_dataset

TITLES = ["Amélie (2001)", "Café (1990)", "Toy Story (1995)", "Léon (1994)", "Ça tourne (1996)"]
FLAGS = "|".join(["0"] * 18 + ["1"])


def items_file(encodings: list[str], sep: str) -> bytes:
    """One line per title of ``TITLES``, line ``i`` encoded in ``encodings[i]``: u.item (``|``) or movies.dat (``::``)."""
    lines = [(f"{i + 1}|{title}|01-Jan-1995||http://x|{FLAGS}" if sep == "|" else f"{i + 1}::{title}::Drama")
             for i, title in enumerate(TITLES)]
    return b"".join((line + "\n").encode(encoding) for line, encoding in zip(lines, encodings))


def write_layout(root, layout: str, items: bytes):
    root.mkdir(parents=True, exist_ok=True)
    if layout == "ml-100k":
        (root / "u.item").write_bytes(items)
        (root / "u.data").write_text("1\t1\t5\t100\n1\t2\t4\t200\n1\t3\t3\t300\n")
        (root / "u.user").write_text("1|24|M|technician|85711\n")
    else:
        (root / "movies.dat").write_bytes(items)
        (root / "ratings.dat").write_text("1::1::5::100\n1::2::4::200\n1::3::3::300\n")
        (root / "users.dat").write_text("1::M::24::7::85711\n")
    return root


def read_with_warnings(root):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = read_dataset(root)
    return data, [w for w in caught if issubclass(w.category, DataFormatWarning)]


@pytest.mark.parametrize(("layout", "name", "sep"), [("ml-100k", "u.item", "|"), ("ml-1m", "movies.dat", "::")])
def test_utf8_lines_in_a_latin1_file_are_decoded_and_counted_in_one_warning(tmp_path, layout, name, sep):
    encodings = ["latin-1", "utf-8", "latin-1", "utf-8", "utf-8"]  # lines 2, 4 and 5 are UTF-8
    root = write_layout(tmp_path / "data", layout, items_file(encodings, sep))
    data, caught = read_with_warnings(root)
    assert data.items["title"].tolist() == TITLES  # not "AmÃ©lie"
    assert len(caught) == 1
    message = str(caught[0].message)
    assert message.startswith(f"{root / name}: mixed encodings: 3 line(s) (first: line 2) are UTF-8")
    assert "and 1 (first: line 1) latin-1;" in message  # line 3 is ASCII: either encoding


@pytest.mark.parametrize("encoding", ["latin-1", "utf-8"])
def test_a_file_in_one_encoding_reads_without_a_warning(tmp_path, encoding):
    root = write_layout(tmp_path / "data", "ml-100k", items_file([encoding] * len(TITLES), "|"))
    data, caught = read_with_warnings(root)
    assert data.items["title"].tolist() == TITLES and caught == []


def test_latin1_lines_in_a_utf8_csv_are_decoded_and_counted_in_one_warning(tmp_path):
    root = tmp_path / "mls"
    root.mkdir()
    lines = ["movieId,title,genres", *(f'{i + 1},"{title}",Drama' for i, title in enumerate(TITLES))]
    encodings = ["utf-8", "utf-8", "latin-1", "utf-8", "utf-8", "latin-1"]  # lines 3 and 6 are latin-1
    (root / "movies.csv").write_bytes(b"".join((line + "\r\n").encode(e) for line, e in zip(lines, encodings)))
    (root / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.5,100\n1,2,3.0,200\n1,3,5.0,300\n")
    data, caught = read_with_warnings(root)
    assert data.items["title"].tolist() == TITLES
    assert [str(w.message) for w in caught] == [
        f"{root / 'movies.csv'}: 2 line(s) (first: line 3) are not valid UTF-8; decoded as latin-1"]


@pytest.mark.parametrize("name", ["ml-100k", "M_ML-100K", "ml-latest-small"])
def test_the_staged_real_data_reads_without_a_data_warning(name):
    root = REAL_DATA / name
    if not root.is_dir():
        pytest.skip(reason=f"real data not staged: {root} is missing")
    _, caught = read_with_warnings(root)
    assert [str(w.message) for w in caught] == []
