"""On-disk embedding cache: one SQLite file of float32 blobs per encoder identity.

Layout: ``<cache_dir>/<slug of namespace>-<8 hex of its sha1>/embeddings.sqlite`` with a table
``vectors(key, dim, data)``. The namespace names the encoder (``text:sentence-transformers/all-MiniLM-L6-v2``,
``image:descriptor-v1``, ``image:clip:/path/to/model``); the key is the SHA-256 of the content embedded
(the text's UTF-8 bytes, the image file's bytes). Changing one text therefore re-embeds only that row,
and switching models never mixes vectors. A model given as a local folder also carries a fingerprint
of the folder (file names, sizes, configs) in its namespace, so retraining it in place is noticed. Every write is one SQLite transaction, so an interrupted run
leaves the cache as it was before that write (SQLite's journal makes it atomic); concurrent readers
and writers are serialised by SQLite's locking.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from ur4rec.data.errors import DataFormatError

SCHEMA_VERSION = "1"
_CHUNK = 500  # keys per SELECT ... IN (...)


def content_key(data: str | bytes) -> str:
    """SHA-256 hex digest of a text (UTF-8) or of raw bytes."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def folder_fingerprint(folder: str | Path) -> str:
    """12 hex digits that change when a local model folder changes: every file's name and size, plus
    the bytes of its small text files (configs). Cheap: weights are not read."""
    folder = Path(folder)
    digest = hashlib.sha1()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        size = path.stat().st_size
        digest.update(f"{path.relative_to(folder).as_posix()}:{size};".encode())
        if path.suffix in (".json", ".txt") and size < 1_000_000:
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def namespace_dirname(namespace: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", namespace).strip("_")[-60:] or "cache"
    return f"{slug}-{hashlib.sha1(namespace.encode('utf-8')).hexdigest()[:8]}"


class EmbeddingCache:
    """float32 vectors keyed by content hash, for one encoder identity (``namespace``)."""

    def __init__(self, cache_dir: str | Path, namespace: str):
        self.namespace = namespace
        self.dir = Path(cache_dir) / namespace_dirname(namespace)
        self.path = self.dir / "embeddings.sqlite"
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:  # the cache folder (or a folder above it) is a file
            raise DataFormatError(cache_dir, f"cannot hold the embedding cache: {err.strerror or err}; give a "
                                  "folder (data.feature_cache_dir, or --cache_dir of the features command)") from None
        try:
            with closing(self._connect()) as conn, conn:
                conn.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
                conn.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, dim INTEGER NOT NULL, "
                             "data BLOB NOT NULL)")
                conn.execute("INSERT OR IGNORE INTO meta VALUES ('namespace', ?)", (namespace,))
                conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
                stored = dict(conn.execute("SELECT name, value FROM meta").fetchall())
        except sqlite3.DatabaseError as err:  # not a database (overwritten, truncated), or a folder of that name
            raise DataFormatError(self.path, f"not a readable embedding cache ({err}); delete it (it is rebuilt) "
                                  "or use another cache folder") from None
        if stored.get("namespace") != namespace or stored.get("schema") != SCHEMA_VERSION:
            raise DataFormatError(
                self.path, f"cache belongs to {stored.get('namespace')!r} (schema {stored.get('schema')}), "
                f"not {namespace!r} (schema {SCHEMA_VERSION}); delete the folder or use another cache_dir"
            )

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=60)

    def __len__(self) -> int:
        with closing(self._connect()) as conn:
            return conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached vectors among ``keys`` (absent keys are simply missing from the result)."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, np.ndarray] = {}
        with closing(self._connect()) as conn:
            for start in range(0, len(keys), _CHUNK):
                chunk = keys[start:start + _CHUNK]
                rows = conn.execute(
                    f"SELECT key, dim, data FROM vectors WHERE key IN ({','.join('?' * len(chunk))})", chunk
                ).fetchall()
                for key, dim, data in rows:
                    vector = np.frombuffer(data, dtype="<f4")
                    if vector.shape[0] != dim:  # a torn row cannot happen with transactions; be safe anyway
                        continue
                    found[key] = vector.astype(np.float32)
        return found

    def put_many(self, vectors: Mapping[str, np.ndarray]) -> None:
        """Store all ``vectors`` in one transaction (all or nothing)."""
        if not vectors:
            return
        rows = []
        for key, vector in vectors.items():
            vector = np.ascontiguousarray(vector, dtype="<f4").reshape(-1)
            rows.append((key, int(vector.shape[0]), vector.tobytes()))
        with closing(self._connect()) as conn, conn:
            conn.executemany("INSERT OR REPLACE INTO vectors (key, dim, data) VALUES (?, ?, ?)", rows)


class NullCache:
    """Stand-in when no ``cache_dir`` is given: remembers nothing."""

    namespace = ""

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        return {}

    def put_many(self, vectors: Mapping[str, np.ndarray]) -> None:
        pass


def open_cache(cache_dir: str | Path | None, namespace: str) -> EmbeddingCache | NullCache:
    return NullCache() if cache_dir is None else EmbeddingCache(cache_dir, namespace)


@dataclass
class CacheStats:
    computed: int  # distinct keys embedded in this call
    cached: int  # distinct keys loaded from the cache


def cached_compute(
    keys: Sequence[str],
    compute: Callable[[list[str]], np.ndarray],
    cache: EmbeddingCache | NullCache,
) -> tuple[dict[str, np.ndarray], CacheStats]:
    """Vectors for every distinct key: from ``cache`` when present, else ``compute(missing_keys)``.

    ``compute`` receives the distinct uncached keys and must return one row per key, in order. New
    vectors are written to the cache in one transaction.
    """
    unique = list(dict.fromkeys(keys))
    found = cache.get_many(unique)
    missing = [k for k in unique if k not in found]
    if missing:
        new = np.asarray(compute(missing), dtype=np.float32)
        if new.ndim != 2 or new.shape[0] != len(missing):
            raise ValueError(f"encoder returned shape {new.shape} for {len(missing)} inputs")
        fresh = {k: new[i] for i, k in enumerate(missing)}
        cache.put_many(fresh)
        found.update(fresh)
    dims = {v.shape[0] for v in found.values()}
    if len(dims) > 1:
        raise ValueError(f"cache {getattr(cache, 'path', '')} mixes vector sizes {sorted(dims)}; delete it")
    return found, CacheStats(computed=len(missing), cached=len(unique) - len(missing))
