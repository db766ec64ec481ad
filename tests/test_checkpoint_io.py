"""AtomicCheckpointIO: a checkpoint file is the old one or the new one, never a partial write."""

from __future__ import annotations

import os

import pytest
import torch

from synthetic import write_ml100k
from ur4rec.checkpoint_io import AtomicCheckpointIO, atomic_torch_save
from ur4rec.cli import UR4RecCLI


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_save_writes_a_loadable_file_and_no_temporary(tmp_path):
    AtomicCheckpointIO().save_checkpoint({"w": torch.arange(3.0), "epoch": 1}, tmp_path / "sub" / "last.ckpt")
    assert _files(tmp_path / "sub") == ["last.ckpt"]
    (tmp_path / "plain").write_bytes(b"")
    assert (tmp_path / "sub/last.ckpt").stat().st_mode == (tmp_path / "plain").stat().st_mode  # umask, not 0600
    loaded = torch.load(tmp_path / "sub/last.ckpt", weights_only=True)
    assert loaded["epoch"] == 1 and torch.equal(loaded["w"], torch.arange(3.0))


class _Unpicklable:
    def __reduce__(self):
        raise RuntimeError("disk full")  # raised midway: torch.save has already written the tensors


@pytest.mark.parametrize("fail", ["serialize", "replace", "interrupt"])
def test_a_failed_save_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch, fail):
    target = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"w": torch.zeros(4), "epoch": 1}, target)
    before = target.read_bytes()
    new = {"w": torch.ones(100_000), "epoch": 2}
    if fail == "serialize":
        new["callbacks"] = _Unpicklable()
        error = RuntimeError
    else:
        error = OSError if fail == "replace" else KeyboardInterrupt

        def replace(src, dst):
            assert os.path.getsize(src) > 400_000  # the whole new checkpoint was written beside the target
            raise error("killed")

        monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(error):
        io.save_checkpoint(new, target)
    assert target.read_bytes() == before
    assert _files(tmp_path) == ["last.ckpt"]
    assert torch.load(target, weights_only=True)["epoch"] == 1


def test_a_temporary_left_by_a_killed_save_is_removed_by_the_next_save(tmp_path):
    stale = tmp_path / ".last.ckpt.abc123.tmp"
    stale.write_bytes(b"PK\x03\x04 half a checkpoint")
    other = tmp_path / ".best.ckpt.abc123.tmp"  # another target's: not touched
    other.write_bytes(b"x")
    atomic_torch_save({"epoch": 3}, tmp_path / "last.ckpt")
    assert _files(tmp_path) == [".best.ckpt.abc123.tmp", "last.ckpt"]


def test_the_cli_trainer_saves_through_atomic_checkpoint_io(tmp_path, monkeypatch):
    write_ml100k(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    cli = UR4RecCLI(args=["--data.data_dir=data", "--trainer.accelerator=cpu", "--model.hidden_size=16"], run=False)
    assert isinstance(cli.trainer.strategy.checkpoint_io, AtomicCheckpointIO)
