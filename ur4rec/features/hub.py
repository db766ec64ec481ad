"""Load a model from a local folder or a hub name, never touching the network when a local copy serves."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, TypeVar

T = TypeVar("T")


def offline() -> bool:
    """True when Hugging Face hub access is switched off (``HF_HUB_OFFLINE=1``)."""
    return os.environ.get("HF_HUB_OFFLINE") == "1"


def load_local_first(load: Callable[[bool], T], source: str) -> T:
    """``load(local_files_only=True)``: a local folder, or a hub name already cached; only a hub name that is
    not cached, while online, is then fetched with ``load(False)``."""
    try:
        return load(True)
    except Exception:
        if Path(source).exists() or offline():
            raise
        return load(False)


def first_line(err: Exception) -> str:
    """The first line of an exception's message (its type's name when it has none): errors stay one line."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__
