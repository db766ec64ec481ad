"""Files that a kill can never leave half-written, and writers that never touch each other's temporaries.

:func:`atomic_write` writes beside the target (``.<name>.<pid>.<random>.tmp``), fsyncs and ``os.replace``-s:
readers see the old file or the new one. Checkpoints, recommendations and generated texts all go through it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import BinaryIO, Callable


def temp_prefix(target: Path) -> str:
    """Temporary files for ``target`` are ``.<name>.<pid>.<random>.tmp`` in its folder (hidden, and never
    ``*.ckpt``, so neither ``--ckpt_path last`` nor ModelCheckpoint ever picks one up)."""
    return f".{target.name}."


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_dead_temporaries(target: Path) -> None:
    """Remove ``target``'s temporary files left by killed writers (their pid no longer runs); a live
    process's file, mid-write, is never touched."""
    prefix = temp_prefix(target)
    for stale in target.parent.iterdir():
        if not (stale.name.startswith(prefix) and stale.name.endswith(".tmp")):
            continue
        pid = stale.name[len(prefix):].split(".")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()


def _fsync_dir(directory: Path) -> None:
    """Persist a rename in ``directory`` (no-op where directories cannot be opened, e.g. Windows)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(file)`` on a temporary file in ``path``'s folder, fsync it and rename it onto ``path``.

    On any error (including KeyboardInterrupt) the temporary file is removed and ``path`` keeps its old
    content. A SIGKILL can leave a ``.<name>.<pid>.*.tmp`` file, which the next successful write removes once
    that pid no longer runs (another live writer's file is never touched).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.parent / f"{temp_prefix(target)}{os.getpid()}.{secrets.token_hex(6)}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for open()
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    _fsync_dir(target.parent)
    _remove_dead_temporaries(target)
