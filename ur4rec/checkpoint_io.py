"""Checkpoint files that a kill can never leave half-written, that carry a checksum, and older layouts upgraded.

Lightning 2.6's ``TorchCheckpointIO`` serializes into memory and writes through an fsspec transaction:
the bytes go to a temporary file made by ``tempfile.mkstemp()`` in ``$TMPDIR`` and are then moved onto
the target with ``shutil.move``. When ``$TMPDIR`` is another file system than the checkpoint folder
(a tmpfs ``/tmp``, a scratch disk) that move is a copy *into the target file*, so a kill during it
leaves a truncated ``last.ckpt``; nothing is fsynced, so a crash can lose a renamed file's data; and a
killed write leaves its temporary file in ``$TMPDIR``. :class:`AtomicCheckpointIO` writes beside the
target, fsyncs, then ``os.replace``-s it: readers see the old file or the new one, nothing between.
Every checkpoint it writes carries ``content_sha256`` (over every tensor and value in it), checked on
load: a corrupted file is refused with a one-line error naming it; one written before checksums loads
with a warning. :func:`upgrade_checkpoint` reads checkpoints of the earlier flat module layout.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from fsspec.implementations.local import LocalFileSystem
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.fabric.utilities.types import _PATH

from ur4rec.atomic_files import atomic_write
from ur4rec.errors import CheckpointError

CHECKSUM_KEY = "content_sha256"


def _digest(value: Any, digest) -> None:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"T{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        digest.update(b"D")
        for key in sorted(value, key=repr):
            if key != CHECKSUM_KEY:
                digest.update(repr(key).encode())
                _digest(value[key], digest)
    elif isinstance(value, (list, tuple)):
        digest.update(f"L{len(value)}".encode())
        for item in value:
            _digest(item, digest)
    else:
        digest.update(repr(value).encode())


def content_checksum(checkpoint: dict) -> str:
    """SHA-256 over every tensor's bytes and every other value of ``checkpoint`` (the checksum key excluded)."""
    digest = hashlib.sha256()
    _digest(checkpoint, digest)
    return digest.hexdigest()


def verify_checkpoint(checkpoint: Any, path: str | os.PathLike) -> dict:
    """``checkpoint`` when its checksum matches; a :class:`CheckpointError` naming ``path`` when it does not."""
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path}: not a checkpoint (holds a {type(checkpoint).__name__}, not a dict)")
    stored = checkpoint.get(CHECKSUM_KEY)
    if stored is None:
        warnings.warn(f"{path}: written before checkpoints carried a checksum; loading it unverified")
    elif stored != content_checksum(checkpoint):
        raise CheckpointError(f"{path}: corrupted (its content does not match the checksum stored when it was "
                              "written); use another checkpoint, e.g. last.ckpt or a best-*.ckpt of the run")
    return checkpoint


def load_checkpoint_file(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """``torch.load(path, weights_only=True)``, verified; a missing, truncated or foreign file is a
    :class:`CheckpointError` naming it."""
    if not Path(path).is_file():
        raise CheckpointError(f"{path}: " + ("is a folder, not a checkpoint file" if Path(path).is_dir() else
                                             "no such checkpoint file"))
    if Path(path).stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty, not a checkpoint")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated zip, not a torch file, unsafe pickle: all "cannot use this file"
        detail = str(err).strip().splitlines()  # some errors (EOFError) carry no message at all
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(err).__name__}"
                              + (f": {detail[0][:200]})" if detail else ")")) from None
    return verify_checkpoint(checkpoint, path)


# The module's hyperparameters before they were grouped: old name -> (group, new name).
_FLAT_HPARAMS = {
    "hidden_size": ("sasrec", "hidden_size"), "num_blocks": ("sasrec", "num_blocks"),
    "num_heads": ("sasrec", "num_heads"), "dropout": ("sasrec", "dropout"), "loss": ("sasrec", "loss"),
    "compile_sasrec": ("sasrec", "compile"), "experts": ("retriever", "experts"),
    "retriever_hidden_size": ("retriever", "hidden_size"), "retriever_dropout": ("retriever", "dropout"),
    "retriever_positions": ("retriever", "positions"), "recent_content": ("retriever", "recent_content"),
    "fusion_weight": ("retriever", "fusion_weight"), "learned_fusion": ("retriever", "learned_fusion"),
    "fused_loss_weight": ("loss_weights", "fused"), "sasrec_loss_weight": ("loss_weights", "sasrec"),
    "retriever_loss_weight": ("loss_weights", "retriever"), "balance_loss_weight": ("loss_weights", "balance"),
    "contrastive_weight": ("loss_weights", "contrastive"),
    "contrastive_queue_size": ("loss_weights", "contrastive_queue_size"),
    "contrastive_temperature": ("loss_weights", "contrastive_temperature"),
    "distill_weight": ("loss_weights", "distill"), "distill_temperature": ("loss_weights", "distill_temperature"),
}
_NET_PREFIXES = ("sasrec.", "retriever.", "fusion.", "contrastive.")


def upgrade_checkpoint(checkpoint: dict) -> dict:
    """Bring a checkpoint of the earlier layout (flat hyperparameters, weights at the module's top level,
    the stage's score mode in ``ur4rec_state``) to the current one, in place; a current one is unchanged."""
    hparams = checkpoint.get("hyper_parameters")
    if isinstance(hparams, dict) and "hidden_size" in hparams:
        groups: dict[str, dict] = {"sasrec": {}, "retriever": {}, "loss_weights": {}}
        for old, (group, new) in _FLAT_HPARAMS.items():
            if old in hparams:
                groups[group][new] = hparams.pop(old)
        hparams.update(sasrec=groups["sasrec"], loss_weights=groups["loss_weights"],
                       retriever=groups["retriever"] if groups["retriever"].get("experts") else None)
    state = checkpoint.get("state_dict")
    if isinstance(state, dict) and any(k.startswith(_NET_PREFIXES) for k in state):
        checkpoint["state_dict"] = {f"net.{k}" if k.startswith(_NET_PREFIXES) else k: v for k, v in state.items()}
    old_state = checkpoint.pop("ur4rec_state", None)
    if old_state:
        checkpoint.setdefault("score_mode", old_state.get("score_mode"))
        checkpoint.setdefault("stepped_this_epoch", old_state.get("stepped_this_epoch", []))
    return checkpoint


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj, path)`` so that ``path`` holds the old file or the new one, never part of one."""
    atomic_write(path, lambda file: torch.save(obj, file))


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local saves are atomic (see :func:`atomic_torch_save`) and carry a
    content checksum, verified when a local checkpoint is loaded.

    Remote paths (``s3://``...) keep Lightning's behaviour: object stores publish whole objects.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        checkpoint[CHECKSUM_KEY] = content_checksum(checkpoint)
        if storage_options is not None or not isinstance(get_filesystem(path), LocalFileSystem):
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_torch_save(checkpoint, os.fspath(path).removeprefix("file://"))

    def load_checkpoint(self, path: _PATH, map_location: Any = None, weights_only: bool | None = None) -> dict:
        if not isinstance(get_filesystem(path), LocalFileSystem):
            return super().load_checkpoint(path, map_location, weights_only)
        return load_checkpoint_file(os.fspath(path).removeprefix("file://"),
                                    map_location if map_location is not None else "cpu")


def sasrec_weights(path: str) -> dict[str, torch.Tensor]:
    """The SASRec weights (without their prefix) of a Lightning checkpoint of this module."""
    state = upgrade_checkpoint(load_checkpoint_file(path))["state_dict"]
    weights = {k.removeprefix("net.sasrec."): v for k, v in state.items() if k.startswith("net.sasrec.")}
    if not weights:
        raise CheckpointError(f"{path}: no SASRec weights (net.sasrec.*) in this checkpoint's state_dict")
    return weights
