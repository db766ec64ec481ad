"""Bad input, end to end: each broken file is written here and run through the entry points a user hits
(the DataModule's ``prepare_data``/``setup``/``build_features`` and ``cli.py fit`` / ``cli.py features``).

Each case ends either in a :class:`DataFormatError` raised by ur4rec itself naming the file (and the line
or key), with no library traceback chained to it, or in one warning that counts what was dropped or
masked. A failing run changes nothing written before it. Reader details are unit-tested in test_readers*.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xlwt

import ur4rec
from feature_fixtures import HashTextEncoder
from writers import write_image, write_mml_folder
from reader_checks import raises_at
from writers import write_ml100k
from ur4rec.cli import main
from ur4rec.datamodule import UR4RecDataModule
from ur4rec.data.errors import DataFormatError, DataFormatWarning
from ur4rec.features.image_encoders import ImageFeatureWarning

REPO = Path(__file__).resolve().parents[1]
PACKAGE = Path(ur4rec.__file__).resolve().parent
# layout -> (ratings file, field separator, items file, users file)
FILES = {"ml-100k": ("u.data", "\t", "u.item", "u.user"), "m-ml-100k": ("ratings.dat", "::", "movies.dat", "user.dat")}


@pytest.fixture(autouse=True)
def hash_text_encoder(monkeypatch):
    """Text features without a sentence model: the DataModule and the features command embed with a hash."""
    monkeypatch.setattr("ur4rec.features.tables.TextEncoder", lambda *args, **kwargs: HashTextEncoder())


def write_layout(layout: str, root: Path) -> Path:
    """ml-100k: 6 users each rating 6 of 8 items; m-ml-100k: the 3 users and 11 items of ``tiny_raw``."""
    return write_ml100k(root, num_users=6, num_items=8, per_user=6) if layout == "ml-100k" else write_mml_folder(root)


def datamodule(data_dir: Path, **kwargs) -> UR4RecDataModule:
    settings = dict(min_rating=0, min_user_interactions=3, num_sampled_negatives=2,
                    feature_cache_dir=str(data_dir.parent / "cache"))
    return UR4RecDataModule(data_dir=str(data_dir), **{**settings, **kwargs})


def prepared(dm: UR4RecDataModule) -> UR4RecDataModule:
    """What Lightning calls before fitting."""
    dm.prepare_data()
    dm.setup("fit")
    return dm


def assert_clear_error(exc_info, name: str, line: int | None, *words: str) -> None:
    """A DataFormatError naming ``name`` (and ``line``) and ``words``, raised by ur4rec's own checks."""
    assert isinstance(exc_info.value, DataFormatError)
    raises_at(exc_info, name, line)
    for word in words:
        assert word in str(exc_info.value)
    assert PACKAGE in Path(exc_info.traceback[-1].path).parents  # not a pandas/PIL/json error passing through
    err = exc_info.value
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)


def append(path: Path, text: str) -> int:
    """Append ``text`` to a file ending in a newline; return the line number it starts on."""
    data = path.read_bytes()
    path.write_bytes(data + text.encode())
    return len(data.splitlines()) + 1


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with the SHA-256 of its bytes."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


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


def write_llm(folder: Path, items: dict, users: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "item_descriptions.json").write_text(json.dumps(items, indent=1, ensure_ascii=False), encoding="utf-8")
    (folder / "user_preferences.json").write_text(json.dumps(users, indent=1, ensure_ascii=False), encoding="utf-8")
    return folder


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


# ---------------------------------------------------------------------------------------------- cli.py fit


FIT = ["fit", "--config", str(REPO / "configs/sasrec.yaml"), "--data.data_dir=data", "--run_name=run",
       "--stages.pretrain_sasrec=1", "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false",
       "--trainer.enable_model_summary=false", "--trainer.log_every_n_steps=1", "--model.sasrec.hidden_size=8",
       "--data.batch_size=8", "--data.num_sampled_negatives=5"]


def test_fit_on_broken_data_fails_clearly_and_leaves_the_earlier_run_intact(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_ml100k(tmp_path / "good", num_users=10, num_items=30, per_user=8)
    shutil.copytree(tmp_path / "good", tmp_path / "data")
    main(FIT)
    outputs = {folder: snapshot(tmp_path / folder) for folder in ("checkpoints", "logs")}
    assert "run/last.ckpt" in outputs["checkpoints"]

    breakages = [("u.data", "7\t12\t4\n", 81, "expected 4"), ("u.data", "7\t999\t4\t881000000\n", 81, "item id 999"),
                 ("u.item", None, None, "file is empty")]
    for name, text, line, words in breakages:
        shutil.rmtree(tmp_path / "data")
        shutil.copytree(tmp_path / "good", tmp_path / "data")
        if text is None:
            (tmp_path / "data" / name).write_bytes(b"")
        else:
            assert append(tmp_path / "data" / name, text) == line
        with pytest.raises(DataFormatError) as info:
            main(FIT)
        assert_clear_error(info, name, line, words)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints", "data", "good", "logs"]
        assert {folder: snapshot(tmp_path / folder) for folder in outputs} == outputs


def test_cli_entry_point_prints_the_error_without_a_traceback(tmp_path):
    write_ml100k(tmp_path / "data", num_users=10, num_items=30, per_user=8)
    append(tmp_path / "data" / "u.data", "7\t12\t4\n")
    result = subprocess.run([sys.executable, str(REPO / "cli.py"), *FIT], cwd=tmp_path, capture_output=True,
                            text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "u.data:81" in result.stderr and "expected 4" in result.stderr
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------------------------------------- degraded without a word


def test_an_image_path_that_is_a_file_is_a_counted_warning(tmp_path):
    root = write_mml_folder(tmp_path / "data")
    shutil.rmtree(root / "image")
    (root / "image").write_bytes(b"not a folder")
    with pytest.warns(DataFormatWarning, match="image: is a file, not a folder"):
        dm = prepared(datamodule(root, features=True))
    assert not dm.features.image_mask.any()


def test_ratings_above_five_are_a_counted_warning(tmp_path):
    root = write_ml100k(tmp_path / "data", num_users=6, num_items=8, per_user=6)
    lines = (root / "u.data").read_text().splitlines()
    lines[3] = "\t".join(lines[3].split("\t")[:2] + ["400"] + lines[3].split("\t")[3:])
    (root / "u.data").write_text("\n".join(lines) + "\n")
    with pytest.warns(DataFormatWarning, match=r"u.data: 1 rating\(s\) above 5 .* e.g. 400 on line 4"):
        datamodule(root).setup("fit")


def test_llm_texts_for_ids_the_data_lacks_are_a_counted_warning(tmp_path):
    root = write_layout("ml-100k", tmp_path / "data")
    llm = write_llm(tmp_path / "llm", {"1": "A film.", "5000": "Another catalog.", "5001": "Same."}, {"77777": "x"})
    with pytest.warns(DataFormatWarning) as caught:
        prepared(datamodule(root, features=True, llm_dir=str(llm)))
    messages = [str(w.message) for w in caught]
    assert any("item_descriptions.json: 2 of its 3 ids are not items of this dataset (e.g. [5000, 5001])" in m
               for m in messages)
    assert any("user_preferences.json: 1 of its 1 ids are not users" in m for m in messages)


def test_a_checkpoint_of_another_catalog_and_an_unknown_predict_user_are_one_line(tmp_path, monkeypatch):
    from ur4rec.errors import CheckpointError, ConfigError

    monkeypatch.chdir(tmp_path)
    write_ml100k(tmp_path / "data", num_users=10, num_items=30, per_user=8)
    main(FIT)
    write_ml100k(tmp_path / "other", num_users=10, num_items=40, per_user=8, seed=1)
    with pytest.raises(CheckpointError, match=r"trained on a catalog of \d+ items; this data has 40"):
        main(["test", *FIT[1:], "--data.data_dir=other", "--ckpt_path=checkpoints/run/last.ckpt"])
    with pytest.raises(ConfigError, match=r"data.predict_users: unknown raw user id\(s\) \[999\]"):
        main(["predict", *FIT[1:], "--ckpt_path=checkpoints/run/last.ckpt", "--data.predict_users=[999]"])
