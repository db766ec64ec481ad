"""Two CPU processes (DDP over gloo) against one: same test metrics, every user counted once."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from synthetic import write_ml100k

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
COMMON = ["--config", str(REPO / "configs/sasrec.yaml"), "--data.data_dir=data", "--run_name=ddp",
          "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
          "--model.hidden_size=16", "--data.num_sampled_negatives=20", "--data.eval_batch_size=7"]


def cli(workdir: Path, *args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, str(REPO / "cli.py"), *args], cwd=workdir, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


def logged_test_metrics(workdir: Path, version: int) -> dict[str, float]:
    rows = list(csv.DictReader((workdir / f"logs/ddp/version_{version}/metrics.csv").open()))
    return {k: float(v) for k, v in rows[-1].items() if k.startswith("test/") and v}


def test_two_processes_give_the_same_test_metrics_as_one(tmp_path):
    write_ml100k(tmp_path / "data", num_users=41)  # odd: the two ranks get 21 and 20 users
    cli(tmp_path, "fit", *COMMON, "--trainer.max_epochs=2", "--trainer.devices=2",
        "--trainer.strategy=ddp_find_unused_parameters_true")
    assert (tmp_path / "checkpoints/ddp/last.ckpt").exists()
    cli(tmp_path, "test", *COMMON, "--ckpt_path=last", "--trainer.devices=1")
    cli(tmp_path, "test", *COMMON, "--ckpt_path=last", "--trainer.devices=2", "--trainer.strategy=ddp")
    one, two = logged_test_metrics(tmp_path, 1), logged_test_metrics(tmp_path, 2)
    assert one.keys() == two.keys() and "test/ndcg@10" in one
    for key, value in one.items():
        assert two[key] == pytest.approx(value, abs=1e-6), key
