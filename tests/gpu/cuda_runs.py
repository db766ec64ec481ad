"""What the GPU tests share: their marks (skipped without CUDA), the data they run on, and running the CLI in a
folder of their own."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from paths import REAL_DATA, REPO

if str(REPO) not in sys.path:  # scripts/ and benchmarks/ live at the repository root
    sys.path.insert(0, str(REPO))

from scripts.gpu_support import BundleLayout, DataDirs, run_args  # noqa: E402

NO_CUDA = "needs a CUDA GPU (torch.cuda.is_available() is False); the device check runs it: python -m scripts.gpu_check"
GPU_TESTS = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)]
# every stage cut short: the tests need trained weights and each stage's objective, not a good model
SHORT_STAGES = ["--stages.pretrain_retriever", "1", "--stages.joint_finetune", "1", "--stages.end_to_end", "1",
                "--stages.plateau_patience", "null"]


def data_dirs() -> DataDirs:
    """The device bundle (``UR4REC_GPU_BUNDLE``, set by scripts/gpu_check.py), else ../shared/data; skips without."""
    bundle = os.environ.get("UR4REC_GPU_BUNDLE")
    if bundle:
        return BundleLayout(Path(bundle)).data_dirs()
    if (REAL_DATA / "M_ML-100K").is_dir():
        return DataDirs.shared(REAL_DATA, REPO / ".cache" / "features")
    pytest.skip(reason="no data: set UR4REC_GPU_BUNDLE to a bundle (python -m scripts.gpu_bundle) or stage ../shared/data")


def ur4rec_args(sasrec_epochs: int, *extra: str) -> list[str]:
    """The device run's UR4Rec arguments (configs/ur4rec.yaml + configs/trainer/gpu.yaml) with short stages."""
    return [*run_args("ur4rec", data_dirs()), "--stages.pretrain_sasrec", str(sasrec_epochs), *SHORT_STAGES, *extra]


@contextmanager
def inside(folder: Path):
    """Run with ``folder`` as the working folder (checkpoints/ and logs/ land there)."""
    previous = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def cli_in(folder: Path, argv: list[str]):
    """``cli.py ARGV`` in ``folder``; returns the LightningCLI."""
    from ur4rec.cli import main

    with inside(folder):
        return main(argv)


@contextmanager
def sync_debug(mode: str | int):
    """``torch.cuda.set_sync_debug_mode(mode)`` inside the block (``"error"``: a host-device sync raises)."""
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode(mode)
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(previous)
