"""What every reader returns: ratings, item metadata and optional side information, exactly as read."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass
class RawDataset:
    """Ratings, item metadata and optional side information exactly as read (raw ids)."""

    layout: str
    root: Path
    ratings: pd.DataFrame  # columns: user, item (int64), rating (float64), timestamp (int64); file order
    items: pd.DataFrame  # columns: item (int64), title (str), genres (tuple[str, ...])
    users: pd.DataFrame | None = None  # columns: user, gender, age (int64), occupation, zip
    item_texts: dict[int, str] = field(default_factory=dict)  # plot/review text per raw item id
    image_paths: dict[int, Path] = field(default_factory=dict)  # poster per raw item id
    item_tags: dict[int, tuple[str, ...]] = field(default_factory=dict)  # most frequent user tags per raw item id
