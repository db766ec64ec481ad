"""Tiny MovieLens-100K-layout folders written by tests (never the real data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

GENRE_FLAGS = 19


def write_ml100k(root: Path, num_users: int = 40, num_items: int = 150, per_user: int = 15, seed: int = 0) -> Path:
    """Write ``u.data``/``u.item``/``u.user`` with a learnable pattern: users walk the catalog in order.

    Every user rates ``per_user`` consecutive items (wrapping around) with ratings 4-5, so
    next-item prediction is easy and all users survive the default filters.
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for user in range(1, num_users + 1):
        start = int(rng.integers(num_items))
        for step in range(per_user):
            item = (start + step) % num_items + 1
            lines.append(f"{user}\t{item}\t{int(rng.integers(4, 6))}\t{880000000 + 1000 * step + user}")
    (root / "u.data").write_text("\n".join(lines) + "\n")
    items = []
    for item in range(1, num_items + 1):
        flags = ["0"] * GENRE_FLAGS
        flags[1 + item % (GENRE_FLAGS - 1)] = "1"
        items.append("|".join([str(item), f"Movie {item} (199{item % 10})", "01-Jan-1995", "", "http://x", *flags]))
    (root / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))
    (root / "u.user").write_text("\n".join(f"{u}|{20 + u % 40}|{'MF'[u % 2]}|other|0000{u % 10}"
                                           for u in range(1, num_users + 1)) + "\n")
    return root
