"""Readers: the multimodal M_ML-100K layout (movies.dat, ratings.dat, user.dat, text.xls, image/)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import xlwt

from reader_checks import raises_at
from ur4rec.data.errors import DataFormatError
from ur4rec.data.readers import USER_COLUMNS, detect_layout, read_dataset


def write_xls(path: Path, header: list, rows: list[list]) -> Path:
    """Write a one-sheet .xls (pandas cannot write xls, xlwt can); ``None`` cells are left empty."""
    book = xlwt.Workbook()
    sheet = book.add_sheet("Sheet1")
    for r, row in enumerate([header, *rows]):
        for c, value in enumerate(row):
            if value is not None:
                sheet.write(r, c, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(str(path))
    return path


TINY_MML = {
    "ratings.dat": "1::10::5::100\n1::20::3::200\n2::10::4::150\n1::30::4::300\n",
    "movies.dat": "10::Toy Story (1995)::Animation|Children's|Comedy\n"
                  "20::GoldenEye (1995)::Action|Adventure|Thriller\n".encode("latin-1")
                  + "30::Café (1990)::\n".encode("latin-1"),
    "user.dat": "1::M::24::technician::85711\n2::F::53::other::94043\n",
    "image/10.png": b"\x89PNG fake",
    "image/20.JPG": b"\xff\xd8 fake",
}


@pytest.fixture
def mml_dir(make_dataset):
    root = make_dataset(TINY_MML, "M_ML-100K")
    write_xls(root / "text.xls", ["movie-id", "review"], [[10, "  A cowboy doll.  "], [30, "Coffee."], [20, None]])
    return root


# ---------------------------------------------------------------------------------------------- M_ML-100K


def test_mml100k_parses_every_file(mml_dir):
    assert detect_layout(mml_dir) == "m-ml-100k"
    data = read_dataset(mml_dir)
    assert data.layout == "m-ml-100k"
    assert data.ratings["user"].tolist() == [1, 1, 2, 1]
    assert data.ratings["item"].tolist() == [10, 20, 10, 30]
    assert data.ratings["rating"].tolist() == [5.0, 3.0, 4.0, 4.0]
    assert data.ratings["timestamp"].tolist() == [100, 200, 150, 300]
    assert data.items["item"].tolist() == [10, 20, 30]
    assert data.items["title"].tolist() == ["Toy Story (1995)", "GoldenEye (1995)", "Café (1990)"]
    assert data.items["genres"].tolist() == [
        ("Animation", "Children's", "Comedy"), ("Action", "Adventure", "Thriller"), (),
    ]
    assert list(data.users.columns) == list(USER_COLUMNS)
    assert data.users["gender"].tolist() == ["M", "F"] and data.users["age"].tolist() == [24, 53]
    # text: stripped; item 20 has an empty review cell, so no text (normal)
    assert data.item_texts == {10: "A cowboy doll.", 30: "Coffee."}
    # image: <item_id>.png/.jpg/.jpeg, case-insensitive suffix; item 30 has none (normal)
    assert data.image_paths == {10: mml_dir / "image" / "10.png", 20: mml_dir / "image" / "20.JPG"}


def test_mml100k_without_text_or_images(make_dataset):
    files = {k: v for k, v in TINY_MML.items() if not k.startswith("image/")}
    data = read_dataset(make_dataset(files))
    assert data.layout == "m-ml-100k"
    assert data.item_texts == {} and data.image_paths == {}
    assert len(data.ratings) == 4


def test_mml100k_jpeg_and_odd_image_names(mml_dir):
    (mml_dir / "image" / "30.jpeg").write_bytes(b"x")
    (mml_dir / "image" / "poster.jpg").write_bytes(b"x")
    (mml_dir / "image" / "².jpg").write_bytes(b"x")  # a Unicode digit, not an item id
    (mml_dir / "image" / "40.png").mkdir()  # not a file
    with pytest.warns(UserWarning, match="ignored 3 file"):
        data = read_dataset(mml_dir)
    assert sorted(data.image_paths) == [10, 20, 30]
    assert data.image_paths[30].name == "30.jpeg"


def test_text_xls_string_and_float_ids(make_dataset):
    root = make_dataset(TINY_MML)
    write_xls(root / "text.xls", ["movie-id", "review"], [["10", "Ten"], [20.0, "Twenty"], [None, "orphan"]])
    assert read_dataset(root).item_texts == {10: "Ten", 20: "Twenty"}


def test_text_xls_missing_column_names_file_and_columns(make_dataset):
    root = make_dataset(TINY_MML)
    write_xls(root / "text.xls", ["movie-id", "plot"], [[10, "Ten"]])
    with pytest.raises(DataFormatError) as exc:
        read_dataset(root)
    raises_at(exc, "text.xls", None)
    message = str(exc.value)
    assert "'review'" in message and "'plot'" in message and "'movie-id'" in message


def test_text_xls_bad_movie_id_names_row(make_dataset):
    root = make_dataset(TINY_MML)
    write_xls(root / "text.xls", ["movie-id", "review"], [[10, "Ten"], ["abc", "x"]])
    with pytest.raises(DataFormatError, match="movie-id is not an integer") as exc:
        read_dataset(root)
    raises_at(exc, "text.xls", 3)  # spreadsheet row 3 (row 1 is the header)


def test_text_xls_fractional_movie_id_is_rejected(make_dataset):
    root = make_dataset(TINY_MML)
    write_xls(root / "text.xls", ["movie-id", "review"], [[10.5, "x"]])
    with pytest.raises(DataFormatError) as exc:
        read_dataset(root)
    raises_at(exc, "text.xls", 2)


def test_corrupt_text_xls_is_wrapped(make_dataset):
    files = dict(TINY_MML)
    files["text.xls"] = b"this is not a spreadsheet at all"
    with pytest.raises(DataFormatError, match="cannot read the spreadsheet") as exc:
        read_dataset(make_dataset(files))
    raises_at(exc, "text.xls", None)


def test_text_xls_read_without_deprecation_noise(mml_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_dataset(mml_dir).item_texts[10] == "A cowboy doll."


@pytest.mark.parametrize(
    ("name", "content", "line"),
    [
        ("ratings.dat", "1::10::5::100\n1::20::3\n", 2),
        ("ratings.dat", "1::10::5::100\n1\t20\t3\t200\n", 2),  # wrong separator
        ("ratings.dat", b"1::10::5::100\n1::2\xc3\x28::3::4\n", 2),  # invalid UTF-8
        ("movies.dat", "10::Toy Story (1995)\n", 1),
        ("movies.dat", "ten::Toy Story (1995)::Comedy\n", 1),
        ("user.dat", "1::M::24::technician::85711\n2::F::53::other\n", 2),
    ],
)
def test_mml100k_malformed_lines(make_dataset, name, content, line):
    files = dict(TINY_MML)
    files[name] = content
    with pytest.raises(DataFormatError) as exc:
        read_dataset(make_dataset(files))
    raises_at(exc, name, line)


@pytest.mark.parametrize("name", ["movies.dat", "user.dat"])
def test_mml100k_missing_file(mml_dir, name):
    (mml_dir / name).unlink()
    with pytest.raises(DataFormatError, match="missing") as exc:
        read_dataset(mml_dir)
    raises_at(exc, name, None)
