"""Poster embeddings of many files, cached by content, with absent and unreadable images masked.

:func:`embed_images` reads each file, hashes its bytes for the cache, decodes only uncached files, and
masks items whose image is absent or unreadable (not an image, truncated): their vectors are zeros,
their ``mask`` entry False, and all such items are counted in ONE warning.
"""

from __future__ import annotations

import io
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from ur4rec.features.cache import EmbeddingCache, NullCache, content_key, open_cache
from ur4rec.features.image_encoders import ImageEncoder, ImageFeatureWarning, image_cache_namespace, make_image_encoder


# ---------------------------------------------------------------------------------------------- embedding


@dataclass
class ImageEmbeddings:
    vectors: np.ndarray  # (n, dim) float32; zeros where mask is False
    mask: np.ndarray  # (n,) bool: True where an image was embedded
    encoder: str  # identity of the encoder, e.g. "descriptor-v1" or "clip:openai/clip-vit-base-patch32"
    missing: list[int] = field(default_factory=list)  # rows with no image path or no file
    unreadable: list[int] = field(default_factory=list)  # rows whose file is not a readable image
    computed: int = 0  # distinct images encoded now
    cached: int = 0  # distinct images read from the cache
    seconds: float = 0.0

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def embedded(self) -> int:
        return int(self.mask.sum())


def embed_images(
    paths: Sequence[str | Path | None],
    encoder: str | ImageEncoder = "descriptor",
    cache: EmbeddingCache | NullCache | None = None,
    cache_dir: str | Path | None = None,
    batch_size: int = 64,
    warn: bool = True,
) -> ImageEmbeddings:
    """Embed the image at each path (``None`` = no image); mask absent and unreadable ones.

    Uncached images are decoded and encoded ``batch_size`` at a time; each batch is written to the
    cache in its own transaction, so an interrupted run keeps the finished batches.
    """
    start = time.perf_counter()
    encoder = make_image_encoder(encoder)
    if cache is None:
        cache = open_cache(cache_dir, image_cache_namespace(encoder))

    keys: list[str | None] = [None] * len(paths)
    data: dict[str, bytes] = {}
    missing, unreadable, reasons = [], [], {}
    for row, path in enumerate(paths):
        if path is None:
            missing.append(row)
            continue
        try:
            content = Path(path).read_bytes()
        except FileNotFoundError:
            missing.append(row)
            reasons[row] = f"{Path(path).name}: no such file"
            continue
        except OSError as err:
            unreadable.append(row)
            reasons[row] = f"{Path(path).name}: {err}"
            continue
        keys[row] = content_key(content)
        data.setdefault(keys[row], content)

    found = cache.get_many(list(data))
    cached = len(found)
    todo = [k for k in data if k not in found]
    failed: dict[str, str] = {}
    computed = 0
    for begin in range(0, len(todo), batch_size):
        batch_keys, prepared = [], []
        for key in todo[begin:begin + batch_size]:
            try:
                with Image.open(io.BytesIO(data[key])) as image:
                    prepared.append(encoder.prepare(image))
                batch_keys.append(key)
            except Exception as err:  # not an image, truncated, decompression bomb, ...
                failed[key] = f"{type(err).__name__}: {err}"
        if batch_keys:
            vectors = np.asarray(encoder.encode(prepared), dtype=np.float32)
            fresh = {k: vectors[i] for i, k in enumerate(batch_keys)}
            cache.put_many(fresh)
            found.update(fresh)
            computed += len(batch_keys)

    dim = next(iter(found.values())).shape[0] if found else encoder.dim
    vectors = np.zeros((len(paths), dim), dtype=np.float32)
    mask = np.zeros(len(paths), dtype=bool)
    for row, key in enumerate(keys):
        if key is None:
            continue
        if key in failed:
            unreadable.append(row)
            reasons[row] = f"{Path(paths[row]).name}: {failed[key]}"
            continue
        vectors[row] = found[key]
        mask[row] = True
    unreadable.sort()

    if warn and (missing or unreadable) and any(p is not None for p in paths):
        examples = [reasons[r] for r in unreadable[:3]] + [reasons[r] for r in missing if r in reasons][:2]
        warnings.warn(
            f"image features ({encoder.name}): {len(missing)} item(s) have no image and {len(unreadable)} "
            f"image file(s) could not be read; they get zero vectors and image_mask=False"
            + (f"; e.g. {examples}" if examples else ""),
            ImageFeatureWarning,
            stacklevel=2,
        )
    return ImageEmbeddings(vectors, mask, encoder.name, sorted(missing), unreadable, computed, cached,
                           time.perf_counter() - start)
