"""Checkpoint files that a kill can never leave half-written.

Lightning 2.6's ``TorchCheckpointIO`` serializes into memory and writes through an fsspec transaction:
the bytes go to a temporary file made by ``tempfile.mkstemp()`` in ``$TMPDIR`` and are then moved onto
the target with ``shutil.move``. When ``$TMPDIR`` is another file system than the checkpoint folder
(a tmpfs ``/tmp``, a scratch disk) that move is a copy *into the target file*, so a kill during it
leaves a truncated ``last.ckpt``; nothing is fsynced, so a crash can lose a renamed file's data; and a
killed write leaves its temporary file in ``$TMPDIR``. :class:`AtomicCheckpointIO` writes beside the
target, fsyncs, then ``os.replace``-s it: readers see the old file or the new one, nothing between.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
from pathlib import Path
from typing import Any

import torch
from fsspec.implementations.local import LocalFileSystem
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.fabric.utilities.types import _PATH


def temp_prefix(target: Path) -> str:
    """Temporary files for ``target`` are ``.<name>.<random>.tmp`` in its folder (hidden, and never
    ``*.ckpt``, so neither ``--ckpt_path last`` nor ModelCheckpoint ever picks one up)."""
    return f".{target.name}."


def _fsync_dir(directory: Path) -> None:
    """Persist a rename in ``directory`` (no-op where directories cannot be opened, e.g. Windows)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj, path)`` through a temporary file in the same folder, fsync and ``os.replace``.

    On any error (including KeyboardInterrupt) the temporary file is removed and ``path`` keeps its
    old content. A SIGKILL can leave a ``.<name>.*.tmp`` file, which the next successful save removes.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.parent / f"{temp_prefix(target)}{secrets.token_hex(6)}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for open()
    try:
        with os.fdopen(fd, "wb") as file:
            torch.save(obj, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    _fsync_dir(target.parent)
    for stale in target.parent.glob(f"{glob.escape(temp_prefix(target))}*.tmp"):  # left by a killed earlier save
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local saves are atomic (see :func:`atomic_torch_save`).

    Remote paths (``s3://``...) keep Lightning's behaviour: object stores publish whole objects.
    Loading and removal are Lightning's.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        if storage_options is not None or not isinstance(get_filesystem(path), LocalFileSystem):
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_torch_save(checkpoint, os.fspath(path).removeprefix("file://"))
