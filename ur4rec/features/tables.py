"""Build every side feature into one table object aligned with the remapped ids of a split."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ur4rec.data.preprocessing import SequenceSplits
from ur4rec.data.readers import RawDataset
from ur4rec.features.image_embeddings import embed_images
from ur4rec.features.image_encoders import ImageEncoder, make_image_encoder
from ur4rec.features.text_embeddings import DEFAULT_TEXT_MODEL, TEXT_MAX_TOKENS, TextEncoder, embed_texts
from ur4rec.features.texts import ITEM_SOURCES, USER_SOURCES, TextTables, build_texts


@dataclass
class FeatureTables:
    """Side features aligned with ``splits``: items by remapped id 0..N (0 = padding), users 0..U-1.

    Row 0 of the item tables is zeros; ``image_mask`` is False for padding and for items whose poster
    is absent or unreadable (their ``item_image`` rows are zeros). A layout without images gives an
    all-False mask and zero vectors of the chosen encoder's dimension.
    """

    user_text: torch.Tensor  # (U, text_dim) float32, unit rows
    item_text: torch.Tensor  # (N + 1, text_dim) float32, row 0 zeros
    item_image: torch.Tensor  # (N + 1, image_dim) float32, row 0 and masked rows zeros
    image_mask: torch.Tensor  # (N + 1,) bool
    item_text_source: list[str]  # (N + 1,) "padding", then "llm" / "plot" / "template"
    user_text_source: list[str]  # (U,) "llm" / "template"
    image_encoder: str  # e.g. "descriptor-v1", "clip:openai/clip-vit-base-patch32"
    text_model: str  # e.g. "sentence-transformers/all-MiniLM-L6-v2"
    text_dim: int
    image_dim: int
    raw_item_ids: np.ndarray  # (N + 1,) as in splits (entry 0 = -1)
    raw_user_ids: np.ndarray  # (U,)
    item_texts: list[str] = field(repr=False, default_factory=list)  # the texts embedded (N + 1)
    user_texts: list[str] = field(repr=False, default_factory=list)  # (U,)
    images_missing: int = 0  # items (not padding) without an image file
    images_unreadable: int = 0  # items whose image file could not be decoded
    has_images: bool = False  # whether the layout provides images at all
    stats: dict = field(default_factory=dict)  # timings and cache hits

    @property
    def num_items(self) -> int:
        return self.item_text.shape[0] - 1

    @property
    def num_users(self) -> int:
        return self.user_text.shape[0]

    def item_source_counts(self) -> dict[str, int]:
        return {s: self.item_text_source[1:].count(s) for s in ITEM_SOURCES}

    def user_source_counts(self) -> dict[str, int]:
        return {s: self.user_text_source.count(s) for s in USER_SOURCES}

    def summary(self) -> dict:
        return {
            "num_items": self.num_items,
            "num_users": self.num_users,
            "text_model": self.text_model,
            "text_dim": self.text_dim,
            "image_encoder": self.image_encoder,
            "image_dim": self.image_dim,
            "items_by_text_source": self.item_source_counts(),
            "users_by_text_source": self.user_source_counts(),
            "posters_embedded": int(self.image_mask.sum()),
            "posters_missing": self.images_missing,
            "posters_unreadable": self.images_unreadable,
            **self.stats,
        }


def build_feature_tables(
    raw: RawDataset,
    splits: SequenceSplits,
    llm_dir: str | Path | None = None,
    text_model: str | TextEncoder = DEFAULT_TEXT_MODEL,
    image_encoder: str | ImageEncoder = "descriptor",
    image_model: str | None = None,
    cache_dir: str | Path | None = None,
    device: str = "cpu",
    texts: TextTables | None = None,
    text_max_tokens: int = TEXT_MAX_TOKENS,
    image_batch_size: int = 32,
) -> FeatureTables:
    """Texts (:func:`build_texts`), their embeddings, and poster embeddings, aligned with ``splits``.

    Args:
        raw, splits: the dataset as read and its remapped leave-one-out split.
        llm_dir: folder with optional ``user_preferences.json`` / ``item_descriptions.json``.
        text_model: sentence-transformers hub name, local folder or a :class:`TextEncoder`.
        image_encoder: ``"descriptor"``, ``"clip"`` (with ``image_model`` or the default CLIP),
            ``"clip:<name or folder>"``, or an encoder object.
        cache_dir: embedding cache folder (``None``: no cache).
        texts: precomputed texts (skips :func:`build_texts`).
    """
    stats: dict = {}
    t0 = time.perf_counter()
    texts = texts if texts is not None else build_texts(raw, splits, llm_dir)
    stats["texts_seconds"] = round(time.perf_counter() - t0, 3)

    encoder = TextEncoder(text_model, device, text_max_tokens) if isinstance(text_model, str) else text_model
    t0 = time.perf_counter()
    embedded = embed_texts(texts.item_texts[1:] + texts.user_texts, encoder, cache_dir=cache_dir)
    stats["text_embedding_seconds"] = round(time.perf_counter() - t0, 3)
    stats["texts_computed"], stats["texts_cached"] = embedded.computed, embedded.cached
    num_items = splits.num_items
    item_text = np.zeros((num_items + 1, embedded.dim), dtype=np.float32)
    item_text[1:] = embedded.vectors[:num_items]
    user_text = embedded.vectors[num_items:]

    image_enc = make_image_encoder(image_encoder, image_model, device=device, batch_size=image_batch_size)
    has_images = bool(raw.image_paths)
    paths = [raw.image_paths.get(int(r)) for r in splits.raw_item_ids[1:]]
    if has_images:
        images = embed_images(paths, image_enc, cache_dir=cache_dir, batch_size=max(image_batch_size, 1))
        stats["image_embedding_seconds"] = round(images.seconds, 3)
        stats["images_computed"], stats["images_cached"] = images.computed, images.cached
        image_dim, vectors, mask = images.dim, images.vectors, images.mask
        missing, unreadable = len(images.missing), len(images.unreadable)
    else:  # e.g. raw MovieLens: no posters at all; no weights are loaded for this
        image_dim = image_enc.dim
        vectors = np.zeros((num_items, image_dim), dtype=np.float32)
        mask = np.zeros(num_items, dtype=bool)
        missing, unreadable = num_items, 0
    item_image = np.zeros((num_items + 1, image_dim), dtype=np.float32)
    item_image[1:] = vectors
    image_mask = np.concatenate([[False], mask])

    return FeatureTables(
        user_text=torch.from_numpy(np.ascontiguousarray(user_text)),
        item_text=torch.from_numpy(item_text),
        item_image=torch.from_numpy(item_image),
        image_mask=torch.from_numpy(image_mask),
        item_text_source=list(texts.item_sources),
        user_text_source=list(texts.user_sources),
        image_encoder=image_enc.name,
        text_model=embedded.model,
        text_dim=embedded.dim,
        image_dim=image_dim,
        raw_item_ids=np.asarray(splits.raw_item_ids),
        raw_user_ids=np.asarray(splits.raw_user_ids),
        item_texts=list(texts.item_texts),
        user_texts=list(texts.user_texts),
        images_missing=missing,
        images_unreadable=unreadable,
        has_images=has_images,
        stats=stats,
    )
