"""A fit that explains itself and survives bad days: stage lines, the summary, ``--ckpt_path best``, stage
flags, the run lock, settings that cannot work, a failed resume, a missing data folder, SIGTERM."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from writers import write_ml100k
from ur4rec.callbacks.stages import TrainingStages
from ur4rec.checkpoint_io import load_checkpoint_file
from ur4rec.cli import main
from ur4rec.run_folder import FitLock
from ur4rec.data.errors import DataFormatError
from ur4rec.errors import CheckpointError, ConfigError

REPO = Path(__file__).resolve().parents[1]
FAST = ["--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
        "--model.sasrec.hidden_size=16", "--data.batch_size=8", "--data.num_sampled_negatives=20"]
SASREC = ["--config", str(REPO / "configs/sasrec.yaml"), "--data.data_dir=data", *FAST]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    write_ml100k(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def lightning_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("lightning")]


def test_fit_announces_its_stage_and_ends_with_a_summary_then_best_resolves(workdir, caplog):
    caplog.set_level(logging.INFO)
    main(["fit", *SASREC, "--run_name=tiny", "--stages.pretrain_sasrec=2"])
    lines = lightning_lines(caplog)
    assert any(line.startswith("stage pretrain_sasrec starts at epoch 0 (at most 2 epochs): SASRec trains") for line in lines)
    assert any(line.startswith("stage pretrain_sasrec ends: best val/ndcg@10") for line in lines)
    summary = next(line for line in lines if line.startswith("fit finished"))
    best = next(workdir.glob("checkpoints/tiny/best-epoch*.ckpt"))
    assert f"best checkpoint: {best.relative_to(workdir)}" in summary
    assert "last checkpoint: checkpoints/tiny/last.ckpt" in summary and "metrics: logs/tiny/version_0/metrics.csv" in summary
    assert "best validation (epoch " in summary and "val/ndcg@10 " in summary
    next_command = summary.split("next: ")[1]
    assert next_command.startswith("python cli.py test ") and next_command.endswith("--ckpt_path best")
    assert "--stages.pretrain_sasrec=2" in next_command  # the fit's own settings, so the same run is tested

    cli = main(["test", *SASREC, "--run_name=tiny", "--ckpt_path=best"])
    assert Path(cli.config.test.ckpt_path).name == best.name
    expected = load_checkpoint_file(best)["callbacks"]
    score = next(v["best_model_score"] for k, v in expected.items() if k.startswith("ModelCheckpoint"))
    validated = main(["validate", *SASREC, "--run_name=tiny", "--ckpt_path=best"]).trainer.callback_metrics
    assert float(validated["val/ndcg@10"]) == pytest.approx(float(score), abs=1e-6)
    with pytest.raises(CheckpointError, match="no best-epoch"):
        main(["test", *SASREC, "--run_name=never-fit", "--ckpt_path=best"])


def test_a_max_epochs_that_cuts_stages_off_is_warned_about():
    stages = TrainingStages(1, 1, 1, 0)
    trainer = SimpleNamespace(max_epochs=1, fit_loop=SimpleNamespace(max_epochs=1))
    with pytest.warns(UserWarning, match=r"max_epochs=1 ends training before stage\(s\) pretrain_retriever, "
                                         r"joint_finetune run; shorten stages instead"):
        stages._check_max_epochs(trainer)
    trainer.max_epochs = -1
    stages._check_max_epochs(trainer)
    assert trainer.fit_loop.max_epochs == 3  # the stages decide the run's length


@pytest.mark.parametrize("setting, key", [
    ("--model.sasrec.hidden_size=0", "model.sasrec.hidden_size"),
    ("--model.sasrec.num_heads=3", "model.sasrec.num_heads"),
    ("--model.sasrec.dropout=1.0", "model.sasrec.dropout"),
    ("--data.batch_size=0", "data.batch_size"),
    ("--data.max_seq_len=0", "data.max_seq_len"),
    ("--data.window_stride=51", "data.window_stride"),  # wider than a window: transitions never trained
    ("--model.eval_ks=[0, 10]", "model.eval_ks"),
    ("--stages.pretrain_sasrec=-1", "stages.pretrain_sasrec"),
    ("--stages.pretrain_sasrec=0", "stages.pretrain_sasrec"),  # SASRec alone: trained nothing without a word
    ("--alternating.mode=sometimes", "alternating.mode"),
    ("--trainer.max_epochs=0", "trainer.max_epochs"),  # trained nothing, with only a warning
    ("--trainer.max_epochs=-5", "trainer.max_epochs"),  # was Lightning's traceback
    ("--seed_everything=-1", "seed_everything"),  # was Lightning's traceback
    ("--data.num_workers=-1", "data.num_workers"),  # was torch's DataLoader traceback
    ("--data.min_rating=6", "data.min_rating"),  # filters to nothing: was a traceback from the splitter
    ("--model.loss_weights.contrastive_temperature=0", "model.loss_weights.contrastive_temperature"),  # unnamed
    ("--model.loss_weights.distill_temperature=-1", "model.loss_weights.distill_temperature"),  # unnamed
], ids=lambda v: v if v.startswith("--") else "")
def test_settings_that_cannot_work_name_their_key(workdir, setting, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        main(["fit", *SASREC, "--run_name=bad", setting])
    assert not (workdir / "checkpoints/bad").exists()


def test_retriever_settings_that_cannot_work_name_their_key(workdir):
    for setting, key in (("--model.retriever.fusion_weight=1.5", "model.retriever.fusion_weight"),
                         ("--model.retriever.experts=[audio]", "model.retriever.experts"),
                         # both were tracebacks: a ZeroDivisionError in the queue, torch's ValueError
                         ("--model.loss_weights.contrastive_queue_size=0", "model.loss_weights.contrastive_queue_size"),
                         ("--model.sasrec_optimizer.init_args.lr=-0.001", "model.sasrec_optimizer.init_args.lr")):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            main(["fit", "--config", str(REPO / "configs/ur4rec.yaml"), "--data.data_dir=data", *FAST, setting])


def test_a_second_live_fit_on_the_same_run_is_refused_and_a_stale_lock_is_taken_over(workdir):
    lock = workdir / "checkpoints/run.fit.lock"
    lock.parent.mkdir()
    lock.write_text(f"{os.getppid()}\n")  # a live process holds the run
    with pytest.raises(ConfigError, match=f"another fit \\(pid {os.getppid()}\\) is writing checkpoints/run"):
        main(["fit", *SASREC, "--run_name=run", "--stages.pretrain_sasrec=1"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(f"{dead.pid}\n")  # its process is gone: a crashed run's lock
    main(["fit", *SASREC, "--run_name=run", "--stages.pretrain_sasrec=1"])
    assert (workdir / "checkpoints/run/last.ckpt").exists() and not lock.exists()  # released at the end
    FitLock("checkpoints/other").acquire()  # our own pid: re-entrant within one process
    FitLock("checkpoints/other").acquire()


def test_a_failed_resume_keeps_the_good_exception_checkpoint(workdir):
    main(["fit", *SASREC, "--run_name=run", "--stages.pretrain_sasrec=1"])
    good = workdir / "checkpoints/run/on_exception.ckpt"
    shutil.copy(workdir / "checkpoints/run/last.ckpt", good)
    before = good.read_bytes()
    (workdir / "broken.ckpt").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(CheckpointError, match="broken.ckpt: not a readable checkpoint"):
        main(["fit", *SASREC, "--run_name=run", "--stages.pretrain_sasrec=3", "--ckpt_path=broken.ckpt"])
    assert good.read_bytes() == before


def test_a_missing_data_folder_is_one_clear_error_and_never_a_download(workdir, monkeypatch):
    import urllib.request

    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("tried to download"))
    with pytest.raises(DataFormatError, match=r"dat: data folder is missing or empty: .* --data.download true"):
        main(["fit", "--config", str(REPO / "configs/sasrec.yaml"), "--data.data_dir=dat", *FAST])
    assert not (workdir / "dat").exists()


def test_the_entry_point_shows_config_errors_as_one_line(workdir):
    result = subprocess.run([sys.executable, str(REPO / "cli.py"), "fit", *SASREC, "--model.sasrec.num_heads=3"],
                            capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].startswith("error: model.sasrec.num_heads: must be > 0 and divide")
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_sigterm_exits_non_zero_and_says_how_to_resume(workdir):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(REPO / "tests"), str(REPO)]))
    paced = '--trainer.callbacks+={"class_path": "pacing.PacedBatches", "init_args": {"seconds": 0.25}}'
    process = subprocess.Popen([sys.executable, str(REPO / "cli.py"), "fit", *SASREC, "--run_name=term",
                                "--stages.pretrain_sasrec=50", paced], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.monotonic() + 90
    while not (workdir / "checkpoints/term/last.ckpt").exists():
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 143, output[-2000:]
    assert "terminated (SIGTERM)" in output and "--ckpt_path checkpoints/term/on_exception.ckpt" in output
    assert torch.load(workdir / "checkpoints/term/on_exception.ckpt", weights_only=True)["global_step"] > 0


def test_the_new_item_protocol_logs_every_slice_with_its_users(workdir):
    with pytest.warns(UserWarning, match="new items are scored by SASRec item embeddings that never trained"):
        main(["fit", *SASREC, "--run_name=cold", "--stages.pretrain_sasrec=1", "--data.cold_item_fraction=0.2"])
    metrics = main(["test", *SASREC, "--run_name=cold", "--ckpt_path=best",
                    "--data.cold_item_fraction=0.2"]).trainer.callback_metrics
    users = {name: int(metrics[f"test_{name}/users"]) for name in ("cold", "warm", "cold_new")}
    assert users["cold"] > 0 and users["cold"] + users["warm"] == 40 and users["cold_new"] == users["cold"]
    for group in ("pop_0-9", "pop_10-29", "pop_30-99", "pop_100+"), ("hist_0-10", "hist_11-30", "hist_31-100",
                                                                         "hist_101+"):
        assert sum(int(metrics[f"test_{name}/users"]) for name in group) == 40
    # all users' NDCG@10 is the user-weighted mean of the cold and warm slices'
    mean = (users["cold"] * metrics["test_cold/ndcg@10"] + users["warm"] * metrics["test_warm/ndcg@10"]) / 40
    assert float(mean) == pytest.approx(float(metrics["test/ndcg@10"]), abs=1e-5)
    assert metrics["test_cold_new/mrr"] >= metrics["test_cold/mrr"]  # fewer competitors: never a worse rank


def test_a_misspelled_flag_is_two_short_lines_with_the_closest_option(workdir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *SASREC, "--model.sasrec.hiden_size=3"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].endswith("fit --help lists every option")
    assert err[1] == ("error: unrecognized arguments: --model.sasrec.hiden_size=3 "
                      "(did you mean --model.sasrec.hidden_size?)")


def test_a_value_of_the_wrong_type_is_one_line_naming_its_key(workdir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *SASREC, "--model.sasrec.hidden_size=abc"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2, err
    assert err[1].startswith('error: Parser key "model.sasrec.hidden_size": Expected a') and err[1].endswith("abc")


@pytest.mark.parametrize("text, message", [
    ("model:\n  sasrec: [unclosed\n",
     "bad.yaml: not valid YAML (line 3, column 1): expected ',' or ']', but got '<stream end>'"),
    ("- fit\n- data\n", "bad.yaml: a config file holds settings by name (e.g. 'data:' then '  batch_size: 64'), "
                        "not a list"),
], ids=["syntax error", "a list"])
def test_a_config_file_that_is_not_a_yaml_mapping_is_one_error_naming_it(workdir, text, message):
    """jsonargparse's own messages named neither the file nor the line."""
    (workdir / "bad.yaml").write_text(text)
    with pytest.raises(ConfigError) as info:
        main(["fit", "--config", "bad.yaml", *FAST])
    assert str(info.value) == message

