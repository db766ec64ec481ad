"""Two CPU processes (DDP over gloo) against one: same test metrics, every user counted once."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from writers import write_ml100k

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
COMMON = ["--config", str(REPO / "configs/sasrec.yaml"), "--data.data_dir=data", "--run_name=ddp",
          "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
          "--model.sasrec.hidden_size=16", "--data.num_sampled_negatives=20", "--data.eval_batch_size=7"]


def cli(workdir: Path, *args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    result = subprocess.run([sys.executable, str(REPO / "cli.py"), *args], cwd=workdir, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


def logged_test_metrics(workdir: Path, version: int, run_name: str = "ddp") -> dict[str, float]:
    rows = list(csv.DictReader((workdir / f"logs/{run_name}/version_{version}/metrics.csv").open()))
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


STAGES = """
stages: {pretrain_sasrec: 3, pretrain_retriever: 1, joint_finetune: 3, end_to_end: 1}
alternating: {mode: adaptive, min_steps: 2, window: 2, switch_threshold: 0.05}
trainer:
  callbacks:
    - class_path: ddp_probe.RankDecisions
"""


def test_four_stage_fit_on_two_processes_decides_alike_on_every_rank(tmp_path):
    write_ml100k(tmp_path / "data", num_users=48)
    (tmp_path / "stages.yaml").write_text(STAGES)
    ur4rec = ["--config", str(REPO / "configs/ur4rec.yaml"), "--config", "stages.yaml", "--data.data_dir=data",
              "--data.feature_cache_dir=cache", "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false",
              "--trainer.enable_model_summary=false", "--model.sasrec.hidden_size=16", "--model.retriever.hidden_size=16",
              "--data.batch_size=8", "--data.num_sampled_negatives=20"]
    # two ranks of 4 users per step: the same global batch, hence the same steps, as one device with 8
    cli(tmp_path, "fit", *ur4rec, "--run_name=two", "--seed_everything=0", "--config",
        str(REPO / "configs/trainer/ddp.yaml"), "--trainer.accelerator=cpu", "--data.batch_size=4")
    ranks = [json.loads((tmp_path / f"decisions_rank{r}.json").read_text()) for r in (0, 1)]
    assert [t["stage"] for t in ranks[0]["transitions"]] == ["pretrain_sasrec", "pretrain_retriever",
                                                             "joint_finetune", "end_to_end"]
    assert ranks[0]["alternating"]["switches"] > 0  # the rule fired, so there is a sequence to compare
    assert ranks[0] == ranks[1]  # same stages, same switch steps, same weights on both ranks

    # and the run learned: a random order puts the target in the top 10 of its 21 sampled candidates 10/21 times
    cli(tmp_path, "test", *ur4rec, "--run_name=two", "--ckpt_path=last")
    two = logged_test_metrics(tmp_path, 1, "two")
    assert two["test/hit@10_sampled"] > 10 / 21 + 0.15, two
