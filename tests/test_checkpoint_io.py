"""AtomicCheckpointIO: a checkpoint file is the old one or the new one, never a partial write."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from writers import write_ml100k
from ur4rec.checkpoint_io import AtomicCheckpointIO, atomic_torch_save, load_checkpoint_file, upgrade_checkpoint
from ur4rec.cli import UR4RecCLI
from ur4rec.errors import CheckpointError

REPO = Path(__file__).resolve().parents[1]


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


def dead_pid() -> int:
    """The pid of a process that has exited (and was reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_temporary_left_by_a_killed_save_is_removed_by_the_next_save(tmp_path):
    stale = tmp_path / f".last.ckpt.{dead_pid()}.abc123.tmp"
    stale.write_bytes(b"PK\x03\x04 half a checkpoint")
    other = tmp_path / f".best.ckpt.{dead_pid()}.abc123.tmp"  # another target's: not touched
    other.write_bytes(b"x")
    atomic_torch_save({"epoch": 3}, tmp_path / "last.ckpt")
    assert _files(tmp_path) == [other.name, "last.ckpt"]


def test_a_live_writers_temporary_is_never_removed(tmp_path):
    """Two fits on one folder: a save must not delete the other process's file mid-write (it did, before
    temporaries carried their writer's pid: 36 of 150 saves failed in each of two processes)."""
    live = tmp_path / f".last.ckpt.{os.getppid()}.abc123.tmp"  # the test runner's parent: alive
    live.write_bytes(b"PK\x03\x04 being written")
    atomic_torch_save({"epoch": 3}, tmp_path / "last.ckpt")
    assert live.exists()


def test_concurrent_writers_never_break_each_other(tmp_path):
    script = ("import sys; from ur4rec.checkpoint_io import atomic_torch_save; import torch\n"
              "for i in range(40): atomic_torch_save({'w': torch.randn(20_000), 'i': i}, sys.argv[1])\n")
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    writers = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "last.ckpt")], env=env,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for writer in writers:
        _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["i"] == 39


def test_a_flipped_byte_inside_a_weight_is_refused_with_the_file_named(tmp_path):
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.full((4096,), 0.5)}, "epoch": 1}, path)
    assert AtomicCheckpointIO().load_checkpoint(path)["epoch"] == 1
    data = bytearray(path.read_bytes())
    at = data.find(torch.full((64,), 0.5).numpy().tobytes())  # inside the tensor's bytes
    assert at > 0
    data[at + 1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=f"{path}: corrupted"):
        AtomicCheckpointIO().load_checkpoint(path)


def test_a_checkpoint_without_a_checksum_loads_with_a_warning_and_junk_is_named(tmp_path):
    torch.save({"epoch": 2}, tmp_path / "old.ckpt")
    with pytest.warns(UserWarning, match="before checkpoints carried a checksum"):
        assert load_checkpoint_file(tmp_path / "old.ckpt")["epoch"] == 2
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    full = tmp_path / "full.ckpt"
    AtomicCheckpointIO().save_checkpoint({"w": torch.randn(10_000)}, full)
    (tmp_path / "cut.ckpt").write_bytes(full.read_bytes()[:20_000])
    for name in ("junk.ckpt", "cut.ckpt", "missing.ckpt"):
        with pytest.raises(CheckpointError, match=name):
            load_checkpoint_file(tmp_path / name)
    (tmp_path / "empty.ckpt").write_bytes(b"")  # was an IndexError from the error message itself
    with pytest.raises(CheckpointError, match="empty.ckpt: the file is empty"):
        load_checkpoint_file(tmp_path / "empty.ckpt")
    (tmp_path / "pickle-cut.ckpt").write_bytes(b"\x80\x02")  # an old-style pickle cut short: EOFError, no message
    with pytest.raises(CheckpointError, match=r"pickle-cut.ckpt: not a readable checkpoint \(EOFError\)"):
        load_checkpoint_file(tmp_path / "pickle-cut.ckpt")
    (tmp_path / "run.ckpt").mkdir()
    with pytest.raises(CheckpointError, match="run.ckpt: is a folder, not a checkpoint file"):
        load_checkpoint_file(tmp_path / "run.ckpt")


def test_the_earlier_flat_layout_is_upgraded():
    old = {"hyper_parameters": {"num_items": 5, "hidden_size": 16, "dropout": 0.3, "experts": ("image",),
                                "retriever_hidden_size": 8, "fusion_weight": 0.4, "distill_weight": 0.5, "top_k": 3},
           "state_dict": {"sasrec.item_embedding.weight": torch.zeros(6, 16), "retriever.router.bias": torch.zeros(1),
                          "val_metrics.x": torch.zeros(1)},
           "ur4rec_state": {"stage": "pretrain_sasrec", "stepping": ["sasrec"], "score_mode": "sasrec",
                            "stepped_this_epoch": ["sasrec"]}}
    new = upgrade_checkpoint(old)
    assert new["hyper_parameters"] == {"num_items": 5, "top_k": 3, "sasrec": {"hidden_size": 16, "dropout": 0.3},
                                       "retriever": {"experts": ("image",), "hidden_size": 8, "fusion_weight": 0.4},
                                       "loss_weights": {"distill": 0.5}}
    assert set(new["state_dict"]) == {"net.sasrec.item_embedding.weight", "net.retriever.router.bias", "val_metrics.x"}
    assert new["score_mode"] == "sasrec" and new["stepped_this_epoch"] == ["sasrec"] and "ur4rec_state" not in new
    assert upgrade_checkpoint(dict(new)) == new  # the current layout is left as it is


def test_the_cli_trainer_saves_through_atomic_checkpoint_io(tmp_path, monkeypatch):
    write_ml100k(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    cli = UR4RecCLI(args=["--data.data_dir=data", "--trainer.accelerator=cpu", "--model.sasrec.hidden_size=16"], run=False)
    assert isinstance(cli.trainer.strategy.checkpoint_io, AtomicCheckpointIO)
