"""Broken side inputs through the DataModule and ``cli.py features``: posters that are not images, an image
path that is a file, a text.xls without its columns, LLM JSON of the wrong shape or for unknown ids. Each ends
in one clear error naming the file (and nothing cached changes), or in one counted warning."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import xlwt

from bad_input_checks import (assert_clear_error, datamodule, hash_text_encoder, prepared,  # noqa: F401
                              snapshot, write_layout, write_llm)
from writers import write_image, write_mml_folder
from ur4rec.cli import main
from ur4rec.data.errors import DataFormatError, DataFormatWarning
from ur4rec.features.image_encoders import ImageFeatureWarning


# ---------------------------------------------------------------------------------------------- posters


def test_posters_that_are_not_images_are_masked_and_counted_not_fatal(tmp_path, capsys):
    root = write_mml_folder(tmp_path / "data", posters={1: "red", 2: "text"})  # 2.jpg holds plain text
    (root / "image" / "3.jpg").write_bytes(b"")
    whole = write_image(tmp_path / "whole.jpg", "noise", size=(120, 160), fmt="JPEG").read_bytes()
    (root / "image" / "4.jpg").write_bytes(whole[: len(whole) // 2])  # cut off mid-download
    (root / "image" / "5.png").write_bytes(np.random.default_rng(0).bytes(2000))
    unreadable = r"6 item\(s\) have no image and 4 image file\(s\) could not be read"

    with pytest.warns(ImageFeatureWarning, match=unreadable) as caught:
        features = prepared(datamodule(root, features=True)).features
    assert len([w for w in caught if issubclass(w.category, ImageFeatureWarning)]) == 1
    assert (features.images_missing, features.images_unreadable) == (6, 4)
    index = features.raw_item_ids.tolist()
    assert [r for r, masked in zip(index, features.image_mask.tolist()) if masked] == [1]
    for raw in (2, 3, 4, 5):
        assert not features.item_image[index.index(raw)].any()

    with pytest.warns(ImageFeatureWarning, match=unreadable):
        assert main(["features", "--data_dir", str(root), "--cache_dir", str(tmp_path / "cache"), "--min_rating=0",
                     "--min_user_interactions=3", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (summary["posters_embedded"], summary["posters_missing"], summary["posters_unreadable"]) == (1, 6, 4)


# ---------------------------------------------------------------------------------------------- text.xls


def write_xls(path: Path, header: list[str], rows: list[list]) -> None:
    book = xlwt.Workbook()
    sheet = book.add_sheet("Sheet1")
    for r, row in enumerate([header, *rows]):
        for c, value in enumerate(row):
            sheet.write(r, c, value)
    book.save(str(path))


@pytest.mark.parametrize("entry", ["datamodule", "features command"])
@pytest.mark.parametrize("header, words", [
    (["id", "plot"], ["missing column(s) ['movie-id', 'review']", "found columns ['id', 'plot']"]),
    (["movie-id", "text"], ["missing column(s) ['review']"]),
])
def test_text_xls_without_the_expected_columns(tmp_path, entry, header, words):
    root = write_mml_folder(tmp_path / "data")
    write_xls(root / "text.xls", header, [[1, "A plot."]])
    with pytest.raises(DataFormatError) as info:
        if entry == "datamodule":
            prepared(datamodule(root))
        else:
            main(["features", "--data_dir", str(root), "--texts_only"])
    assert_clear_error(info, "text.xls", None, *words)


def test_text_xls_that_is_not_a_spreadsheet(tmp_path):
    root = write_mml_folder(tmp_path / "data")
    (root / "text.xls").write_text("movie-id,review\n1,A plot saved as CSV.\n")
    with pytest.raises(DataFormatError) as info:
        prepared(datamodule(root))
    assert_clear_error(info, "text.xls", None, "cannot read the spreadsheet")


# ---------------------------------------------------------------------------------------------- LLM JSON


@pytest.mark.parametrize("name", ["item_descriptions.json", "user_preferences.json"])
@pytest.mark.parametrize("content, words", [
    (b"", ["not valid JSON"]),
    (b'{"1": "A film.",}', ["not valid JSON", "line 1"]),
    (json.dumps(["A film.", "Another."]).encode(), ['expected a JSON object {"<raw id>": "<text>"}, got list']),
    (json.dumps({"1": 5}).encode(), ["value of key '1' must be a string, got int"]),
    (json.dumps({"1": {"text": "A film."}}).encode(), ["value of key '1' must be a string, got dict"]),
    (json.dumps({"1": None}).encode(), ["value of key '1' must be a string, got NoneType"]),
    (json.dumps({"Toy Story": "A film."}).encode(), ["key 'Toy Story' is not an integer raw id"]),
    (json.dumps({"1.0": "A film."}).encode(), ["key '1.0' is not an integer raw id"]),
], ids=["empty", "trailing-comma", "list", "int-value", "object-value", "null-value", "title-key", "float-key"])
def test_llm_json_with_wrong_types_fails_before_touching_the_cache(tmp_path, name, content, words):
    root = write_layout("ml-100k", tmp_path / "data")
    llm = write_llm(tmp_path / "llm", {"1": "A film."}, {"1": "Likes films."})
    prepared(datamodule(root, features=True, llm_dir=str(llm)))  # builds the features: fills the cache
    cache = snapshot(tmp_path / "cache")
    assert cache

    (llm / name).write_bytes(content)
    with pytest.raises(DataFormatError) as info:
        prepared(datamodule(root, features=True, llm_dir=str(llm)))
    assert_clear_error(info, name, None, *words)
    assert snapshot(tmp_path / "cache") == cache



def test_an_image_path_that_is_a_file_is_a_counted_warning(tmp_path):
    root = write_mml_folder(tmp_path / "data")
    shutil.rmtree(root / "image")
    (root / "image").write_bytes(b"not a folder")
    with pytest.warns(DataFormatWarning, match="image: is a file, not a folder"):
        dm = prepared(datamodule(root, features=True))
    assert not dm.features.image_mask.any()


def test_llm_texts_for_ids_the_data_lacks_are_a_counted_warning(tmp_path):
    root = write_layout("ml-100k", tmp_path / "data")
    llm = write_llm(tmp_path / "llm", {"1": "A film.", "5000": "Another catalog.", "5001": "Same."}, {"77777": "x"})
    with pytest.warns(DataFormatWarning) as caught:
        prepared(datamodule(root, features=True, llm_dir=str(llm)))
    messages = [str(w.message) for w in caught]
    assert any("item_descriptions.json: 2 of its 3 ids are not items of this dataset (e.g. [5000, 5001])" in m
               for m in messages)
    assert any("user_preferences.json: 1 of its 1 ids are not users" in m for m in messages)

