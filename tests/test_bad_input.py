"""Bad input, end to end through ``cli.py``: a fit on broken data fails with one line and leaves the earlier
run's checkpoints and logs intact; the entry point prints no traceback; a checkpoint of another catalog and an
unknown predict user are one line each. The data files and side inputs are checked file by file in
tests/data/test_bad_data_files.py and tests/features/test_bad_side_inputs.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bad_input_checks import append, assert_clear_error, hash_text_encoder, snapshot  # noqa: F401
from writers import write_ml100k
from ur4rec.cli import main
from ur4rec.data.errors import DataFormatError

REPO = Path(__file__).resolve().parents[1]


FIT = ["fit", "--config", str(REPO / "configs/sasrec.yaml"), "--data.data_dir=data", "--run_name=run",
       "--stages.pretrain_sasrec=1", "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false",
       "--trainer.enable_model_summary=false", "--trainer.log_every_n_steps=1", "--model.sasrec.hidden_size=8",
       "--data.batch_size=8", "--data.num_sampled_negatives=5"]


def test_fit_on_broken_data_fails_clearly_and_leaves_the_earlier_run_intact(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_ml100k(tmp_path / "good", num_users=10, num_items=30, per_user=8)
    shutil.copytree(tmp_path / "good", tmp_path / "data")
    main(FIT)
    outputs = {folder: snapshot(tmp_path / folder) for folder in ("checkpoints", "logs")}
    assert "run/last.ckpt" in outputs["checkpoints"]

    breakages = [("u.data", "7\t12\t4\n", 81, "expected 4"), ("u.data", "7\t999\t4\t881000000\n", 81, "item id 999"),
                 ("u.item", None, None, "file is empty")]
    for name, text, line, words in breakages:
        shutil.rmtree(tmp_path / "data")
        shutil.copytree(tmp_path / "good", tmp_path / "data")
        if text is None:
            (tmp_path / "data" / name).write_bytes(b"")
        else:
            assert append(tmp_path / "data" / name, text) == line
        with pytest.raises(DataFormatError) as info:
            main(FIT)
        assert_clear_error(info, name, line, words)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints", "data", "good", "logs"]
        assert {folder: snapshot(tmp_path / folder) for folder in outputs} == outputs


def test_cli_entry_point_prints_the_error_without_a_traceback(tmp_path):
    write_ml100k(tmp_path / "data", num_users=10, num_items=30, per_user=8)
    append(tmp_path / "data" / "u.data", "7\t12\t4\n")
    result = subprocess.run([sys.executable, str(REPO / "cli.py"), *FIT], cwd=tmp_path, capture_output=True,
                            text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "u.data:81" in result.stderr and "expected 4" in result.stderr
    assert "Traceback" not in result.stderr



def test_a_checkpoint_of_another_catalog_and_an_unknown_predict_user_are_one_line(tmp_path, monkeypatch):
    from ur4rec.errors import CheckpointError, ConfigError

    monkeypatch.chdir(tmp_path)
    write_ml100k(tmp_path / "data", num_users=10, num_items=30, per_user=8)
    main(FIT)
    write_ml100k(tmp_path / "other", num_users=10, num_items=40, per_user=8, seed=1)
    with pytest.raises(CheckpointError, match=r"trained on a catalog of \d+ items; this data has 40"):
        main(["test", *FIT[1:], "--data.data_dir=other", "--ckpt_path=checkpoints/run/last.ckpt"])
    with pytest.raises(ConfigError, match=r"data.predict_users: unknown raw user id\(s\) \[999\]"):
        main(["predict", *FIT[1:], "--ckpt_path=checkpoints/run/last.ckpt", "--data.predict_users=[999]"])
