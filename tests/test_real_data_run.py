"""A small UR4Rec run on the real M_ML-100K (one epoch per stage), then ``predict`` and ``report`` on it."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from ur4rec.cli import main

REPO = Path(__file__).resolve().parents[1]
STAGES = """
stages: {pretrain_sasrec: 1, pretrain_retriever: 1, joint_finetune: 1, end_to_end: 1}
alternating: {mode: fixed}
"""
pytestmark = pytest.mark.slow


def test_predict_and_report_on_a_small_real_run(real_mml100k_dir, tmp_path, monkeypatch):
    real_llm_dir = real_mml100k_dir.parent / "llm_generated"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "stages.yaml").write_text(STAGES)
    common = ["--config", str(REPO / "configs/ur4rec.yaml"), "--config", "stages.yaml",
              f"--data.data_dir={real_mml100k_dir}", f"--data.llm_dir={real_llm_dir}", "--run_name=real",
              "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false"]
    main(["fit", *common])
    main(["predict", *common, "--ckpt_path=checkpoints/real/last.ckpt", "--data.predict_users=[1, 42]",
          "--predictions.output_path=recs.csv"])
    rows = list(csv.DictReader(open("recs.csv")))
    assert [r["user"] for r in rows] == ["1"] * 10 + ["42"] * 10
    assert all(r["title"] for r in rows) and len({r["item"] for r in rows[:10]}) == 10

    assert main(["report", "--run_dir", "logs/real", "--checkpoint", "checkpoints/real/last.ckpt"]) == 0
    for name in ("loss.png", "validation.png", "alternating.png", "router.png"):
        assert (tmp_path / "reports/real" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert "pretrain_retriever" in (tmp_path / "reports/real/report.md").read_text()
