"""Shared fixtures: the staged real data (skipped when absent) and a writer for tiny dataset folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# No test may reach a model hub: names resolve to local folders or fail fast.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

from paths import REAL_DATA  # noqa: E402  (after the environment above)
from writers import write_files  # noqa: E402


def _genre_flags(*indices: int) -> str:
    return "|".join("1" if i in indices else "0" for i in range(19))


# A tiny raw MovieLens-100K: 3 users, 4 items; item 30's title is latin-1 ("Café").
TINY_ML100K = {
    "u.data": (
        "1\t10\t5\t100\n"
        "1\t20\t3\t200\n"
        "2\t10\t4\t150\n"
        "1\t30\t4\t300\n"
        "2\t40\t2\t50\n"
        "3\t20\t5\t10\n"
    ).encode(),
    "u.item": (
        f"10|Toy Story (1995)|01-Jan-1995||http://x/10|{_genre_flags(3, 4, 5)}\n"
        f"20|GoldenEye (1995)|01-Jan-1995||http://x/20|{_genre_flags(1, 2, 16)}\n"
        f"30|Café (1990)|01-Jan-1990||http://x/30|{_genre_flags()}\n"
        f"40|unknown||||{_genre_flags(0)}\n"
    ).encode("latin-1"),
    "u.user": (
        "1|24|M|technician|85711\n"
        "2|53|F|other|94043\n"
        "3|23|M|writer|32067\n"
    ).encode(),
}


@pytest.fixture
def make_dataset(tmp_path):
    """``make_dataset(files, name="data")`` writes a dataset folder under tmp_path and returns its path."""

    def make(files: dict[str, str | bytes], name: str = "data") -> Path:
        return write_files(tmp_path / name, files)

    return make


@pytest.fixture
def tiny_ml100k_files() -> dict[str, bytes]:
    return dict(TINY_ML100K)


def _real(name: str) -> Path:
    path = REAL_DATA / name
    if not path.is_dir():
        pytest.skip(reason=f"real data not staged: ../shared/data not found ({path} is missing)")
    return path


@pytest.fixture(scope="session")
def real_ml100k_dir() -> Path:
    return _real("ml-100k")


@pytest.fixture(scope="session")
def real_mml100k_dir() -> Path:
    return _real("M_ML-100K")


@pytest.fixture(scope="session")
def real_ml100k(real_ml100k_dir):
    """The real MovieLens-100K, read once per session."""
    from ur4rec.data.readers import read_dataset

    return read_dataset(real_ml100k_dir)


@pytest.fixture(scope="session")
def real_mml100k(real_mml100k_dir):
    """The real M_ML-100K, read once per session."""
    from ur4rec.data.readers import read_dataset

    return read_dataset(real_mml100k_dir)
