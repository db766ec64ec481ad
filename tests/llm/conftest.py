"""Fixtures of the ``generate`` tests (the data folder and a clean key environment)."""

from __future__ import annotations

from pathlib import Path

import pytest

from generate_setup import KEY, KEY_ENV, RATINGS, TITLES, genre_flags


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    root = tmp_path / "ml-100k"
    root.mkdir()
    (root / "u.data").write_text("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in RATINGS))
    (root / "u.item").write_bytes("".join(
        f"{i}|{title}|01-Jan-1995||http://x/{i}|{genre_flags(1 + i % 17, 8)}\n" for i, title in TITLES.items()
    ).encode("latin-1"))
    (root / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n3|23|M|writer|32067\n")
    return root


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    return monkeypatch
