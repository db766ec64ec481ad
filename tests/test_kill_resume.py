"""``python cli.py fit`` SIGKILLed mid-epoch, then ``--ckpt_path last``: the same model as an uninterrupted run."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from writers import write_ml100k
from ur4rec.cli import main

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 5  # 40 users / batch 8 = 5 batches per epoch: one window per user (histories are shorter than 50)
COMMON = [
    "--config", str(REPO / "configs/sasrec.yaml"), "--data.data_dir=data", "--data.window_stride=50",
    "--trainer.accelerator=cpu",
    "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", "--model.sasrec.hidden_size=16",
    "--model.sasrec.dropout=0.3", "--data.batch_size=8",
]
PACED = '--trainer.callbacks+={"class_path": "pacing.PacedBatches", "init_args": {"seconds": 0.25}}'


def launch(workdir: Path, run_name: str, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               PYTHONPATH=os.pathsep.join([str(REPO / "tests"), str(REPO)]))
    log = (workdir / f"{run_name}.log").open("ab")
    return subprocess.Popen([sys.executable, str(REPO / "cli.py"), "fit", *COMMON, f"--run_name={run_name}",
                             f"--trainer.max_epochs={EPOCHS}", *extra],
                            cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)


def finish(process: subprocess.Popen, workdir: Path, run_name: str, timeout: float = 120) -> None:
    assert process.wait(timeout) == 0, (workdir / f"{run_name}.log").read_text()[-3000:]


def progress(path: Path) -> tuple[int, int]:
    try:
        epoch, batch = path.read_text().split()
        return int(epoch), int(batch)
    except (FileNotFoundError, ValueError):  # not written yet, or caught mid-write
        return -1, -1


def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    write_ml100k(tmp_path / "data")
    straight = launch(tmp_path, "straight")  # runs beside the killed one (both single-threaded)
    killed = launch(tmp_path, "killed", PACED)
    last = tmp_path / "checkpoints/killed/last.ckpt"
    deadline = time.monotonic() + 90
    # kill inside the 3rd epoch or later, past its first batch, once an epoch-end last.ckpt exists
    while not (last.exists() and progress(tmp_path / "progress.txt") >= (2, 1)):
        assert killed.poll() is None, "the paced run ended before it could be killed"
        assert time.monotonic() < deadline, "the paced run never reached its 3rd epoch"
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait(30) == -signal.SIGKILL
    killed_at = progress(tmp_path / "progress.txt")

    # every checkpoint file the killed run left loads, and nothing half-written is left as *.ckpt
    for path in (tmp_path / "checkpoints/killed").glob("*.ckpt"):
        torch.load(path, weights_only=True)
    interrupted = torch.load(last, weights_only=True)
    assert 1 <= interrupted["epoch"] < EPOCHS - 1 and interrupted["epoch"] <= killed_at[0]

    resumed = launch(tmp_path, "killed", "--ckpt_path=last")
    finish(straight, tmp_path, "straight")
    finish(resumed, tmp_path, "killed")

    # it did resume: the resumed run's log (version_1) starts at the epoch after last.ckpt's
    with (tmp_path / "logs/killed/version_1/metrics.csv").open() as rows:
        epochs = {int(row["epoch"]) for row in csv.DictReader(rows) if row["epoch"]}
    assert min(epochs) == interrupted["epoch"] + 1 and max(epochs) == EPOCHS - 1

    a = torch.load(tmp_path / "checkpoints/straight/last.ckpt", weights_only=True)
    b = torch.load(last, weights_only=True)
    assert a["epoch"] == b["epoch"] == EPOCHS - 1 and a["global_step"] == b["global_step"] == 5 * EPOCHS
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for name, tensor in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][name], tensor, rtol=0, atol=1e-6, msg=name)
    for key, state in a["optimizer_states"][0]["state"].items():
        torch.testing.assert_close(b["optimizer_states"][0]["state"][key]["exp_avg_sq"], state["exp_avg_sq"],
                                   rtol=0, atol=1e-6)

    monkeypatch.chdir(tmp_path)
    scores = {}
    for run_name in ("straight", "killed"):
        cli = main(["test", *COMMON, f"--run_name={run_name}", "--ckpt_path=last"])
        scores[run_name] = {k: float(v) for k, v in cli.trainer.callback_metrics.items() if k.startswith("test/")}
    assert {"test/ndcg@10", "test/hit@10", "test/mrr"} <= set(scores["straight"])
    assert scores["killed"] == pytest.approx(scores["straight"], abs=1e-6), json.dumps(scores, indent=1)
