"""Readers: raw MovieLens-100K and MovieLens-1M on tiny fixture folders, layout detection, malformed input,
and the staged real data (M_ML-100K has its own file)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reader_checks import raises_at
from ur4rec.data.errors import DataFormatError
from ur4rec.data.readers import USER_COLUMNS, RawDataset, detect_layout, read_dataset

TINY_ML1M = {
    "ratings.dat": "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n",
    "movies.dat": "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n661::James and the Giant Peach (1996)::"
                  "Animation|Children's|Musical\n",
    "users.dat": "1::F::1::10::48067\n2::M::56::16::70072\n",
}


# ---------------------------------------------------------------------------------------------- ml-100k


def test_ml100k_parses_every_file(make_dataset, tiny_ml100k_files):
    root = make_dataset(tiny_ml100k_files)
    assert detect_layout(root) == "ml-100k"
    data = read_dataset(root)
    assert isinstance(data, RawDataset)
    assert data.layout == "ml-100k" and data.root == root

    r = data.ratings
    assert list(r.columns) == ["user", "item", "rating", "timestamp"]
    assert [str(t) for t in r.dtypes] == ["int64", "int64", "float64", "int64"]
    # file order is kept (it is the tie-break for equal timestamps)
    assert r["user"].tolist() == [1, 1, 2, 1, 2, 3]
    assert r["item"].tolist() == [10, 20, 10, 30, 40, 20]
    assert r["rating"].tolist() == [5.0, 3.0, 4.0, 4.0, 2.0, 5.0]
    assert r["timestamp"].tolist() == [100, 200, 150, 300, 50, 10]

    items = data.items
    assert list(items.columns) == ["item", "title", "genres"]
    assert items["item"].dtype == np.int64
    assert items["item"].tolist() == [10, 20, 30, 40]
    assert items["title"].tolist() == ["Toy Story (1995)", "GoldenEye (1995)", "Café (1990)", "unknown"]
    assert items["genres"].tolist() == [
        ("Animation", "Children's", "Comedy"), ("Action", "Adventure", "Thriller"), (), ("unknown",),
    ]

    users = data.users
    assert list(users.columns) == list(USER_COLUMNS)
    assert users["user"].tolist() == [1, 2, 3]
    assert users["age"].tolist() == [24, 53, 23] and users["age"].dtype == np.int64
    assert users["gender"].tolist() == ["M", "F", "M"]
    assert users["occupation"].tolist() == ["technician", "other", "writer"]
    assert users["zip"].tolist() == ["85711", "94043", "32067"]
    assert data.item_texts == {} and data.image_paths == {}


def test_crlf_and_bom_parse_like_plain_lf(make_dataset, tiny_ml100k_files):
    plain = read_dataset(make_dataset(tiny_ml100k_files, "plain"))
    odd = {name: b"\xef\xbb\xbf" + content.replace(b"\n", b"\r\n") for name, content in tiny_ml100k_files.items()}
    data = read_dataset(make_dataset(odd, "crlf_bom"))
    assert data.ratings.equals(plain.ratings)
    assert data.items.equals(plain.items)
    assert data.users.equals(plain.users)
    assert data.users["zip"].tolist() == ["85711", "94043", "32067"]  # no stray "\r"
    assert data.items["genres"].tolist()[0] == ("Animation", "Children's", "Comedy")


def test_old_mac_line_endings_and_blank_lines(make_dataset, tiny_ml100k_files):
    files = dict(tiny_ml100k_files)
    files["u.data"] = b"1\t10\t5\t100\r\r1\t20\t3\t200\r\n\n   \n2\t10\t4\t150\n"
    data = read_dataset(make_dataset(files))
    assert data.ratings["item"].tolist() == [10, 20, 10]


def test_blank_lines_do_not_shift_line_numbers(make_dataset, tiny_ml100k_files):
    files = dict(tiny_ml100k_files)
    files["u.data"] = b"1\t10\t5\t100\n\n\n1\tx\t3\t200\n"
    with pytest.raises(DataFormatError) as exc:
        read_dataset(make_dataset(files))
    raises_at(exc, "u.data", 4)


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (b"1\t20\t3\n", ["expected 4", "found 3"]),  # wrong field count
        (b"1\t20\t3\t200\t9\n", ["expected 4", "found 5"]),
        (b"one\t20\t3\t200\n", ["user id", "'one'"]),  # non-numeric user id
        (b"1\t20x\t3\t200\n", ["item id", "'20x'"]),  # non-numeric item id
        (b"1\t20\tgood\t200\n", ["rating", "'good'"]),  # non-numeric rating
        (b"1\t20\tnan\t200\n", ["rating", "finite"]),
        (b"1\t20\t3\tyesterday\n", ["timestamp"]),
        (b"1\t2.5\t3\t200\n", ["item id", "'2.5'"]),
        (b"1\t1_0\t3\t200\n", ["item id", "'1_0'"]),  # int() would take it
        (b"1\t20\t4_0\t200\n", ["rating", "'4_0'"]),  # float() would take it
        (b"-1\t20\t3\t200\n", ["user id", ">= 0"]),
        (b"1\t20\t3\t99999999999999999999999\n", ["timestamp", "out of range"]),  # no raw OverflowError
        (b"1\t\xff20\t3\t200\n", ["utf-8", "0xff", "column 3"]),  # bad encoding
    ],
)
def test_malformed_rating_line_names_file_and_line(make_dataset, tiny_ml100k_files, line, words):
    files = dict(tiny_ml100k_files)
    files["u.data"] = b"1\t10\t5\t100\n2\t10\t4\t150\n" + line
    with pytest.raises(DataFormatError) as exc:
        read_dataset(make_dataset(files))
    raises_at(exc, "u.data", 3)
    for word in words:
        assert word in str(exc.value)


@pytest.mark.parametrize("name", ["u.data", "u.item", "u.user"])
def test_missing_file_is_named(make_dataset, tiny_ml100k_files, name):
    files = dict(tiny_ml100k_files)
    if name == "u.data":  # u.data is what marks the layout: keep it as a folder entry that is not a file
        del files[name]
        root = make_dataset(files)
        (root / name).mkdir()
    else:
        del files[name]
        root = make_dataset(files)
    with pytest.raises(DataFormatError) as exc:
        read_dataset(root)
    raises_at(exc, name, None)


def test_missing_item_file_says_missing(make_dataset, tiny_ml100k_files):
    files = dict(tiny_ml100k_files)
    del files["u.item"]
    with pytest.raises(DataFormatError, match=r"u\.item: file is missing"):
        read_dataset(make_dataset(files))


@pytest.mark.parametrize("content", [b"", b"\n\n  \r\n", b"\xef\xbb\xbf"])
def test_empty_file(make_dataset, tiny_ml100k_files, content):
    files = dict(tiny_ml100k_files)
    files["u.data"] = content
    with pytest.raises(DataFormatError, match="empty") as exc:
        read_dataset(make_dataset(files))
    raises_at(exc, "u.data", None)


def test_u_item_bad_genre_flag_and_field_count(make_dataset, tiny_ml100k_files):
    files = dict(tiny_ml100k_files)
    lines = files["u.item"].split(b"\n")
    lines[1] = lines[1][:-1] + b"2"
    files["u.item"] = b"\n".join(lines)
    with pytest.raises(DataFormatError, match="genre flags") as exc:
        read_dataset(make_dataset(files, "flags"))
    raises_at(exc, "u.item", 2)

    files = dict(tiny_ml100k_files)
    files["u.item"] += b"50|Too short|x\n"
    with pytest.raises(DataFormatError, match="expected 24") as exc:
        read_dataset(make_dataset(files, "short"))
    raises_at(exc, "u.item", 5)


def test_duplicate_item_id_is_an_error(make_dataset, tiny_ml100k_files):
    files = dict(tiny_ml100k_files)
    files["u.item"] += files["u.item"].split(b"\n")[0] + b"\n"
    with pytest.raises(DataFormatError, match="repeats the one on line 1") as exc:
        read_dataset(make_dataset(files))
    raises_at(exc, "u.item", 5)


def test_u_user_bad_user_id_and_age(make_dataset, tiny_ml100k_files):
    files = dict(tiny_ml100k_files)
    files["u.user"] += b"x|30|M|writer|1\n"
    with pytest.raises(DataFormatError, match="user id") as exc:
        read_dataset(make_dataset(files, "uid"))
    raises_at(exc, "u.user", 4)

    files = dict(tiny_ml100k_files)
    files["u.user"] = b"1|old|M|writer|1\n"
    with pytest.raises(DataFormatError, match="age") as exc:
        read_dataset(make_dataset(files, "age"))
    raises_at(exc, "u.user", 1)


# ---------------------------------------------------------------------------------------------- ml-1m


def test_ml1m_parses_every_file(make_dataset):
    root = make_dataset(TINY_ML1M)
    assert detect_layout(root) == "ml-1m"
    data = read_dataset(root)
    assert data.layout == "ml-1m"
    assert data.ratings["item"].tolist() == [1193, 661, 1193]
    assert data.ratings["timestamp"].tolist() == [978300760, 978302109, 978298413]
    assert data.items["item"].tolist() == [1193, 661]
    assert data.items["genres"].tolist() == [("Drama",), ("Animation", "Children's", "Musical")]
    assert list(data.users.columns) == list(USER_COLUMNS)
    assert data.users["user"].tolist() == [1, 2] and data.users["age"].tolist() == [1, 56]
    assert data.users["occupation"].tolist() == ["10", "16"]
    assert data.item_texts == {} and data.image_paths == {}


def test_ml1m_missing_movies(make_dataset):
    files = dict(TINY_ML1M)
    del files["movies.dat"]
    with pytest.raises(DataFormatError) as exc:
        read_dataset(make_dataset(files))
    raises_at(exc, "movies.dat", None)


def test_ml1m_bad_users_line(make_dataset):
    files = dict(TINY_ML1M)
    files["users.dat"] = "1::F::1::10::48067\n\n2::M::56::16\n"
    with pytest.raises(DataFormatError) as exc:
        read_dataset(make_dataset(files))
    raises_at(exc, "users.dat", 3)


# ---------------------------------------------------------------------------------------------- layout detection


def test_unknown_layout_is_a_clear_error(make_dataset):
    root = make_dataset({"notes.txt": "hello", "data.csv": "a,b\n"})
    with pytest.raises(DataFormatError, match="no known layout") as exc:
        read_dataset(root)
    assert "u.data" in str(exc.value) and "ratings.dat" in str(exc.value)
    assert exc.value.path == root


def test_ratings_dat_alone_is_ambiguous(make_dataset):
    root = make_dataset({"ratings.dat": "1::2::3::4\n", "movies.dat": "2::X::Drama\n"})
    with pytest.raises(DataFormatError, match="users.dat"):
        detect_layout(root)


def test_missing_empty_and_file_folders(tmp_path):
    with pytest.raises(DataFormatError, match="does not exist"):
        read_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match="empty"):
        read_dataset(tmp_path / "empty")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataFormatError, match="not a folder"):
        read_dataset(tmp_path / "file")


def test_data_format_error_is_a_value_error():
    err = DataFormatError("/x/u.data", "boom", 7)
    assert isinstance(err, ValueError)
    assert str(err) == f"{Path('/x/u.data')}:7: boom"


# ---------------------------------------------------------------------------------------------- real data


def test_real_ml100k(real_ml100k):
    data = real_ml100k
    assert data.layout == "ml-100k"
    assert len(data.ratings) == 100_000
    assert data.ratings["user"].nunique() == 943 and data.ratings["item"].nunique() == 1682
    assert len(data.items) == 1682 and len(data.users) == 943
    assert set(data.ratings["rating"].unique()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    titles = dict(zip(data.items["item"], data.items["title"]))
    assert titles[1] == "Toy Story (1995)" and titles[267] == "unknown"


def test_real_mml100k_matches_ml100k(real_ml100k, real_mml100k):
    mml, raw = real_mml100k, real_ml100k
    assert mml.layout == "m-ml-100k"
    assert len(mml.ratings) == 100_000
    assert mml.ratings.equals(raw.ratings)  # same ratings, same file order
    assert mml.items["item"].tolist() == raw.items["item"].tolist()
    assert mml.items["title"].tolist() == raw.items["title"].tolist()
    assert mml.items["genres"].tolist() == raw.items["genres"].tolist()
    assert mml.users.equals(raw.users)

    assert len(mml.image_paths) == 1604
    item_ids = set(mml.items["item"])
    assert set(mml.image_paths) <= item_ids
    assert all(p.is_file() and p.stem == str(i) for i, p in mml.image_paths.items())

    assert len(mml.item_texts) == 1467
    assert set(mml.item_texts) <= item_ids
    assert all(isinstance(t, str) and t == t.strip() and t for t in mml.item_texts.values())
    assert "doll" in mml.item_texts[1]  # Toy Story's plot text
