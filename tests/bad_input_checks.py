"""Shared checks of the bad-input tests: tiny dataset folders in each layout, the DataModule as Lightning
drives it, and the shape of a clear error (ur4rec's own DataFormatError naming the file and line)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import ur4rec
from feature_fixtures import HashTextEncoder
from reader_checks import raises_at
from writers import write_ml100k, write_mml_folder
from ur4rec.datamodule import UR4RecDataModule
from ur4rec.data.errors import DataFormatError

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


def write_llm(folder: Path, items: dict, users: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "item_descriptions.json").write_text(json.dumps(items, indent=1, ensure_ascii=False), encoding="utf-8")
    (folder / "user_preferences.json").write_text(json.dumps(users, indent=1, ensure_ascii=False), encoding="utf-8")
    return folder
