"""Small builders shared by the tests/test_features_*.py modules (no pytest fixtures here)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ur4rec.data.preprocessing import prepare_splits
from ur4rec.data.readers import RawDataset
from ur4rec.features.text_embeddings import TextEncoder

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")



class HashTextEncoder(TextEncoder):
    """A deterministic stand-in for a sentence model: unit vectors seeded by each text's hash."""

    def __init__(self, name: str = "test-hash-encoder", dim: int = 8):
        super().__init__(name)
        self._dim = dim
        self.encoded: list[list[str]] = []  # the texts of every call

    def load(self):
        self._model = self
        return self

    @property
    def dim(self) -> int:
        return self._dim

    def token_lengths(self, texts):
        return [1] * len(texts)  # all equal: embed_texts keeps the texts in their given order

    def encode(self, texts):
        self.load()
        self.calls += 1
        self.encoded.append(list(texts))
        return np.stack([hash_vector(t, self._dim) for t in texts]).astype(np.float32)


def hash_vector(text: str, dim: int = 8) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    v = np.random.default_rng(seed).standard_normal(dim)
    return (v / np.linalg.norm(v)).astype(np.float32)


def tiny_raw(root: Path | None = None, images: dict[int, Path] | None = None,
             item_texts: dict[int, str] | None = None) -> RawDataset:
    """Three users; the last two ratings of each user (valid, test) are items no one else rated, whose
    titles and genres occur nowhere else (``HELDOUT...`` / ``ValidOnly...`` / ``TestOnly...``)."""
    items = [
        (1, "Alpha Movie (1990)", ("Comedy", "Drama")),
        (2, "Beta Movie (1991)", ("Action",)),
        (3, "Gamma Movie (1992)", ("Drama",)),
        (4, "Delta Movie (1993)", ("Comedy",)),
        (5, "Epsilon Movie (1994)", ("Horror", "Drama")),
    ]
    ratings = []
    stamp = 1000
    for user, history in ((1, [1, 2, 3]), (2, [2, 3, 4, 5]), (3, [5, 1, 4])):
        for item in history:
            ratings.append((user, item, 5.0, stamp))
            stamp += 1
        for kind in ("Valid", "Test"):
            item = 100 + 10 * user + (0 if kind == "Valid" else 1)
            items.append((item, f"HELDOUT{kind}Title{user} (2000)", (f"{kind}OnlyGenre{user}",)))
            ratings.append((user, item, 5.0, stamp))
            stamp += 1
    frame = pd.DataFrame(ratings, columns=["user", "item", "rating", "timestamp"])
    frame = frame.astype({"user": np.int64, "item": np.int64, "rating": np.float64, "timestamp": np.int64})
    item_frame = pd.DataFrame(items, columns=["item", "title", "genres"]).astype({"item": np.int64})
    return RawDataset("m-ml-100k", root or Path("."), frame, item_frame, None, item_texts or {}, images or {})


def tiny_splits(raw: RawDataset):
    return prepare_splits(raw.ratings, min_rating=0, min_user_interactions=3)


def save_tiny_clip(folder: Path) -> Path:
    """A randomly initialised, tiny CLIP saved like a real one (model + image processor)."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2,
                         vocab_size=99, max_position_embeddings=16, bos_token_id=0, eos_token_id=1, pad_token_id=1),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=16,
    )
    CLIPModel(config).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder
