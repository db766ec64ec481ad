"""Fetch MovieLens-100K into an empty data folder: checksum-verified and unpacked atomically."""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.request
import zipfile
import zlib
from pathlib import Path

from ur4rec.data.errors import DataFormatError
from ur4rec.data.readers import detect_layout

ML100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
ML100K_MD5 = "0e33842e24a9c977be4e0107933c0723"


class DownloadError(RuntimeError):
    """The archive could not be fetched, failed its checksum or could not be unpacked."""


def needs_download(data_dir: str | Path) -> bool:
    """True when ``data_dir`` is missing or an empty folder (a file there never needs one)."""
    path = Path(data_dir)
    return not path.exists() or (path.is_dir() and not any(path.iterdir()))


def download_dataset(data_dir: str | Path, url: str = ML100K_URL, md5: str | None = ML100K_MD5,
                     timeout: float = 60.0) -> Path:
    """Download the zip at ``url`` into ``data_dir`` (which must be missing or empty).

    The archive is written to a temporary folder next to ``data_dir``, checked against ``md5`` (skip
    with ``None``), unpacked there and moved into place with one rename, so a failure at any point
    leaves ``data_dir`` as it was. A zip with a single top-level folder (``ml-100k/``) is flattened
    (macOS ``__MACOSX/`` metadata is dropped), and the result must hold a dataset layout that
    :func:`ur4rec.data.readers.detect_layout` recognises before it is moved into place.
    """
    target = Path(data_dir)
    if target.exists() and not target.is_dir():
        raise DownloadError(f"{target} exists and is not a folder; refusing to download over it")
    if not needs_download(target):
        raise DownloadError(f"{target} is not empty; refusing to download over it")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DownloadError(f"cannot create {target.parent}: {err}") from err
    with tempfile.TemporaryDirectory(prefix=f".{target.name}.", dir=target.parent) as tmp:
        archive = Path(tmp) / "archive.zip"
        digest = hashlib.md5()
        received = 0
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, archive.open("wb") as out:
                expected = (response.headers.get("Content-Length") or "").strip()
                while chunk := response.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
                    received += len(chunk)
        # OSError covers URLError/HTTPError/timeouts; HTTPException a truncated body; ValueError a bad URL
        except (OSError, http.client.HTTPException, ValueError) as err:
            raise DownloadError(f"cannot download {url}: {err}") from err
        # read(n) returns short rather than raising when the server closes early: compare with the header
        if expected.isdigit() and received != int(expected):
            raise DownloadError(f"cannot download {url}: transfer cut short, got {received} of {expected} bytes")
        if md5 is not None and digest.hexdigest() != md5.strip().lower():
            raise DownloadError(f"{url}: md5 {digest.hexdigest()} does not match the expected {md5}")
        unpacked = Path(tmp) / "unpacked"
        unpacked.mkdir()
        try:
            with zipfile.ZipFile(archive) as zf:
                members = [m for m in zf.namelist() if not _is_macos_metadata(m)]
                if not members:
                    raise DownloadError(f"{url}: the zip archive is empty")
                for member in members:
                    if member.startswith(("/", "\\")) or ".." in Path(member.replace("\\", "/")).parts:
                        raise DownloadError(f"{url}: unsafe path {member!r} in the zip")
                bad = zf.testzip()
                if bad is not None:
                    raise DownloadError(f"{url}: corrupted member {bad!r} in the zip")
                zf.extractall(unpacked, members=members)
        except DownloadError:
            raise
        # a garbled archive surfaces as any of these, from zipfile (NotImplementedError: unknown
        # compression method), zlib or the filesystem
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError,
                RuntimeError) as err:
            raise DownloadError(f"{url}: cannot unpack the zip archive ({type(err).__name__}: {err})") from err
        entries = list(unpacked.iterdir())
        root = entries[0] if len(entries) == 1 and entries[0].is_dir() else unpacked
        try:
            detect_layout(root)
        except DataFormatError as err:
            names = sorted(p.name for p in root.iterdir())[:10]
            raise DownloadError(f"{url}: the archive holds no known dataset layout (found {names})") from err
        if target.exists():
            target.rmdir()  # empty, checked above
        os.replace(root, target)
    return target


def _is_macos_metadata(member: str) -> bool:
    parts = member.replace("\\", "/").split("/")
    return parts[0] == "__MACOSX" or parts[-1] == ".DS_Store"


def ensure_dataset(data_dir: str | Path, url: str = ML100K_URL, md5: str | None = ML100K_MD5) -> Path:
    """Download into ``data_dir`` only when it is missing or empty; return its path.

    A non-empty folder is used as it is and never downloaded over.
    """
    if needs_download(data_dir):
        download_dataset(data_dir, url, md5)
    return Path(data_dir)

