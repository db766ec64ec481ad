"""Broken or unusual data files through the DataModule: truncated lines, unknown items, duplicate ratings,
empty files, CRLF with a BOM, non-latin titles, out-of-range ratings. Each ends in one clear error naming the
file and line, or in one counted warning."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from bad_input_checks import (FILES, append, assert_clear_error, datamodule, hash_text_encoder,  # noqa: F401
                              prepared, write_layout, write_llm)
from writers import write_ml100k, write_mml_folder
from ur4rec.data.errors import DataFormatError, DataFormatWarning


# ---------------------------------------------------------------------------------------------- ratings


@pytest.mark.parametrize("layout", FILES)
@pytest.mark.parametrize("which, line_text, words", [
    ("ratings", "1{sep}5", ["expected 4", "found 2"]),  # the file ends mid-line
    ("ratings", "1{sep}5{sep}4{sep}", ["timestamp is not an integer: ''"]),
    ("items", "9{sep}Truncated Mov", ["found 2"]),
])
def test_truncated_line_names_file_and_line(tmp_path, layout, which, line_text, words):
    ratings, sep, items, _ = FILES[layout]
    name = ratings if which == "ratings" else items
    root = write_layout(layout, tmp_path / "data")
    line = append(root / name, line_text.format(sep="|" if name == "u.item" else sep))
    with pytest.raises(DataFormatError) as info:
        prepared(datamodule(root))
    assert_clear_error(info, name, line, *words)


@pytest.mark.parametrize("layout", FILES)
def test_rating_of_an_item_the_items_file_lacks_is_an_error(tmp_path, layout):
    ratings, sep, items, _ = FILES[layout]
    root = write_layout(layout, tmp_path / "data")
    line = append(root / ratings, f"1{sep}999{sep}5{sep}881000000\n")
    append(root / ratings, f"2{sep}998{sep}5{sep}881000001\n")
    with pytest.raises(DataFormatError) as info:
        prepared(datamodule(root))
    assert_clear_error(info, ratings, line, f"item id 999 is not in {items}", "2 rating row(s)")


def test_duplicate_ratings_keep_the_latest_of_each_pair_with_one_counted_warning(tmp_path):
    root = write_layout("ml-100k", tmp_path / "data")
    clean = prepared(datamodule(root)).raw.ratings
    first, second = (root / "u.data").read_text().splitlines()[:2]
    copy = append(root / "u.data", first + "\n")  # an exact copy: same time, so the later row is kept
    user, item, _, _ = second.split("\t")
    append(root / "u.data", f"{user}\t{item}\t1\t999999999\n")  # rated again, after everything else
    with pytest.warns(DataFormatWarning, match=r"u\.data: dropped 2 rating row\(s\)") as caught:
        dm = prepared(datamodule(root))
    messages = [str(w.message) for w in caught if issubclass(w.category, DataFormatWarning)]
    first_user, first_item = first.split("\t")[:2]
    assert len(messages) == 1
    assert f"user {first_user}, item {first_item}: line 1 dropped, line {copy} kept" in messages[0]
    ratings = dm.raw.ratings
    assert len(ratings) == len(clean) and not ratings.duplicated(["user", "item"]).any()
    kept = ratings[(ratings["user"] == int(user)) & (ratings["item"] == int(item))]
    assert kept[["rating", "timestamp"]].values.tolist() == [[1.0, 999999999]]
    # the re-rated item is now the user's latest interaction: the test target
    remapped_user = dm.splits.user_index()[int(user)]
    assert dm.splits.test_target[remapped_user] == dm.splits.item_index()[int(item)]


# ---------------------------------------------------------------------------------------------- empty, CRLF, BOM


@pytest.mark.parametrize("layout, name", [
    ("ml-100k", "u.data"), ("ml-100k", "u.item"), ("ml-100k", "u.user"),
    ("m-ml-100k", "ratings.dat"), ("m-ml-100k", "movies.dat"), ("m-ml-100k", "user.dat"), ("m-ml-100k", "text.xls"),
])
def test_empty_file_is_named(tmp_path, layout, name):
    root = write_layout(layout, tmp_path / "data")
    (root / name).write_bytes(b"")
    with pytest.raises(DataFormatError) as info:
        prepared(datamodule(root))
    assert_clear_error(info, name, None, "file is empty" if name != "text.xls" else "cannot read the spreadsheet")


def crlf_with_bom(path: Path) -> None:
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))



@pytest.mark.parametrize("layout", FILES)
def test_crlf_and_bom_files_give_the_same_splits_and_texts(tmp_path, layout):
    write_layout(layout, tmp_path / "plain" / "data")
    write_llm(tmp_path / "plain" / "llm", {"1": "An LLM description."}, {"2": "Likes dramas."})
    shutil.copytree(tmp_path / "plain", tmp_path / "windows")
    ratings, _, items, users = FILES[layout]
    for name in (ratings, items, users):
        crlf_with_bom(tmp_path / "windows" / "data" / name)
    for path in (tmp_path / "windows" / "llm").iterdir():
        crlf_with_bom(path)
    assert b"\r\n" in (tmp_path / "windows" / "llm" / "item_descriptions.json").read_bytes()

    built = []
    for variant in ("plain", "windows"):
        dm = prepared(datamodule(tmp_path / variant / "data", features=True, llm_dir=str(tmp_path / variant / "llm")))
        built.append((dm.splits, dm.features))
    (plain, plain_features), (windows, windows_features) = built
    for field in ("valid_target", "test_target", "raw_user_ids", "raw_item_ids"):
        np.testing.assert_array_equal(getattr(windows, field), getattr(plain, field))
    assert [t.tolist() for t in windows.train] == [t.tolist() for t in plain.train]
    assert windows_features.item_texts == plain_features.item_texts
    assert windows_features.user_texts == plain_features.user_texts
    assert windows_features.item_source_counts()["llm"] == windows_features.user_source_counts()["llm"] == 1


# ---------------------------------------------------------------------------------------------- non-latin text


JAPANESE, CYRILLIC = "千と千尋の神隠し (2001)", "Броненосец «Потёмкин» (1925)"


def set_titles_utf8(path: Path, sep: str, titles: dict[int, str]) -> None:
    """Rewrite an items file (read as latin-1) in UTF-8 with some titles replaced."""
    lines = []
    for line in path.read_bytes().decode("latin-1").splitlines():
        fields = line.split(sep)
        fields[1] = titles.get(int(fields[0]), fields[1])
        lines.append(sep.join(fields))
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))


@pytest.mark.parametrize("layout", FILES)
def test_non_latin_titles_plots_and_llm_texts_flow_into_the_texts(tmp_path, layout):
    if layout == "ml-100k":
        root = write_layout(layout, tmp_path / "data")
    else:
        root = write_mml_folder(tmp_path / "data", plots={4: "ある少女が不思議な町に迷い込む。"})
    _, sep, items, _ = FILES[layout]
    set_titles_utf8(root / items, "|" if items == "u.item" else sep, {1: JAPANESE, 2: CYRILLIC, 3: "Amélie (2001)"})
    llm = write_llm(tmp_path / "llm", {"5": "Фильм о море."}, {})

    dm = prepared(datamodule(root, features=True, llm_dir=str(llm), retriever_positions=0))
    texts, index = dm.features.item_texts, dm.splits.item_index()
    assert texts[index[1]].startswith(JAPANESE + ". Genres:")
    assert texts[index[2]].startswith(CYRILLIC + ". Genres:")
    assert texts[index[3]].startswith("Amélie (2001). Genres:")
    assert texts[index[5]] == "Фильм о море."
    if layout == "m-ml-100k":
        assert texts[index[4]] == "ある少女が不思議な町に迷い込む。"
    for title in (JAPANESE, CYRILLIC):  # user profiles list the titles of training items
        assert any(title in text for text in dm.features.user_texts), title
    assert dm.item_titles()[index[1]] == JAPANESE



def test_ratings_above_five_are_a_counted_warning(tmp_path):
    root = write_ml100k(tmp_path / "data", num_users=6, num_items=8, per_user=6)
    lines = (root / "u.data").read_text().splitlines()
    lines[3] = "\t".join(lines[3].split("\t")[:2] + ["400"] + lines[3].split("\t")[3:])
    (root / "u.data").write_text("\n".join(lines) + "\n")
    with pytest.warns(DataFormatWarning, match=r"u.data: 1 rating\(s\) above 5 .* e.g. 400 on line 4"):
        datamodule(root).setup("fit")

