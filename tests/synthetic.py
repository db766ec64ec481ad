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


def small_module(num_items: int, text_dim: int = 0, image_dim: int = 0, retriever: dict | None = None,
                 sasrec: dict | None = None, loss_weights: dict | None = None, **kwargs):
    """A UR4RecModule with hidden size 16; ``retriever`` (a dict of RetrieverConfig fields, hidden size 16 unless
    given) adds the three-expert retriever, None keeps SASRec alone."""
    from ur4rec.models.configs import LossWeights, RetrieverConfig, SASRecConfig
    from ur4rec.module import UR4RecModule

    return UR4RecModule(num_items=num_items, text_dim=text_dim, image_dim=image_dim,
                        sasrec=SASRecConfig(**{"hidden_size": 16, **(sasrec or {})}),
                        retriever=None if retriever is None else RetrieverConfig(**{"hidden_size": 16, **retriever}),
                        loss_weights=LossWeights(**(loss_weights or {})), **kwargs)


def load_features(module, datamodule) -> None:
    """Put a DataModule's item tables into a module's model (what ``UR4RecModule.setup`` does under the CLI)."""
    tables = datamodule.features
    module.net.set_item_features(tables.item_text, tables.item_image, tables.image_mask, datamodule.seen_item_mask())
