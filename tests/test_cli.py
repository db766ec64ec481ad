"""The LightningCLI end to end on a tiny written dataset: fit, test, resume, print_config."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest
import torch
import wandb
import yaml

from writers import write_ml100k
from ur4rec.cli import main

REPO = Path(__file__).resolve().parents[1]
FAST = [
    "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
    "--model.sasrec.hidden_size=16", "--model.sasrec.dropout=0.3", "--data.batch_size=8",
]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    write_ml100k(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(*args: str):
    return main(list(args))


def fit(run_name: str, epochs: int, *extra: str):
    return run("fit", "--config", str(REPO / "configs/sasrec.yaml"), "--data.data_dir=data", f"--run_name={run_name}",
               f"--trainer.max_epochs={epochs}", *FAST, *extra)


def logged(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open()))


def test_fit_then_test_logs_named_metrics(workdir):
    fit("tiny", 2)
    assert sorted(p.name for p in (workdir / "checkpoints/tiny").iterdir())[-1] == "last.ckpt"
    assert any(p.name.startswith("best-epoch") for p in (workdir / "checkpoints/tiny").iterdir())
    run("test", "--config", str(REPO / "configs/sasrec.yaml"), "--data.data_dir=data", "--run_name=tiny",
        "--ckpt_path=last", *FAST)
    versions = sorted((workdir / "logs/tiny").iterdir())
    fit_rows, test_rows = logged(versions[0] / "metrics.csv"), logged(versions[-1] / "metrics.csv")
    assert {"train/loss", "val/ndcg@10", "val/hit@10", "val/mrr", "val/hit@10_sampled"} <= set(fit_rows[0])
    test_row = test_rows[-1]
    for key in ("test/hit@5", "test/hit@10", "test/hit@20", "test/ndcg@10", "test/mrr", "test/hit@10_sampled",
                "test/ndcg@10_sampled"):
        assert 0.0 <= float(test_row[key]) <= 1.0, key
    # the pattern is learnable: after two epochs the sampled hit rate beats chance (10/100)
    assert float(test_row["test/hit@10_sampled"]) > 0.1


def _final_state(run_name: str) -> dict[str, torch.Tensor]:
    return torch.load(f"checkpoints/{run_name}/last.ckpt", weights_only=True)


def test_resume_matches_uninterrupted_run(workdir):
    fit("straight", 4)
    fit("resumed", 2)
    fit("resumed", 4, "--ckpt_path=last")
    straight, resumed = _final_state("straight"), _final_state("resumed")
    assert straight["epoch"] == resumed["epoch"] == 3  # last.ckpt is the latest epoch, improved or not
    assert straight["global_step"] == resumed["global_step"]
    for name, tensor in straight["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][name], tensor, rtol=0, atol=1e-6, msg=name)
    first_opt, second_opt = straight["optimizer_states"][0]["state"], resumed["optimizer_states"][0]["state"]
    for key in first_opt:
        torch.testing.assert_close(second_opt[key]["exp_avg"], first_opt[key]["exp_avg"], rtol=0, atol=1e-6)
    val = lambda name: [r["val/ndcg@10"] for v in sorted((workdir / "logs" / name).iterdir())
                        for r in logged(v / "metrics.csv") if r["val/ndcg@10"]]
    assert [float(x) for x in val("resumed")] == pytest.approx([float(x) for x in val("straight")], abs=1e-6)


MAIN_CONFIGS = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "configs").glob("*.yaml"))
# overlays: logger fragments go on the SASRec config, experiment ablations on the UR4Rec config
OVERLAYS = [["configs/sasrec.yaml", p.relative_to(REPO).as_posix()] for p in (REPO / "configs/logger").glob("*.yaml")]
OVERLAYS += [["configs/ur4rec.yaml", p.relative_to(REPO).as_posix()]
             for p in sorted((REPO / "configs/experiments").glob("*.yaml")) + sorted((REPO / "configs/trainer").glob("*.yaml"))]


@pytest.mark.parametrize("configs", [[c] for c in MAIN_CONFIGS] + OVERLAYS)
def test_print_config_for_every_shipped_config(configs, capsys, monkeypatch, tmp_path):
    """Every shipped config prints, and the printed config reproduces itself when fed back."""
    monkeypatch.chdir(REPO)

    def print_config(*config_files: str) -> str:
        with pytest.raises(SystemExit) as exit_info:
            run("fit", *[arg for c in config_files for arg in ("--config", c)], "--print_config")
        assert exit_info.value.code == 0
        return capsys.readouterr().out

    printed = print_config(*configs)
    parsed = yaml.safe_load(printed)
    assert parsed["checkpoint"]["monitor"] == "val/ndcg@10" and "last_checkpoint" in parsed
    assert parsed["run_name"]
    (tmp_path / "printed.yaml").write_text(printed)
    assert yaml.safe_load(print_config(str(tmp_path / "printed.yaml"))) == parsed


# the adaptive overlay restates the default, as the baseline row of the alternation comparison; the content
# overlay is UR4Rec's default and exists for configs/sasrec.yaml
SAME_AS_DEFAULT = {"alternating_adaptive", "sasrec_content"}


@pytest.mark.parametrize("name", sorted(p.stem for p in (REPO / "configs/experiments").glob("*.yaml")))
def test_every_experiment_overlay_changes_the_resolved_config(name, capsys, monkeypatch):
    """An ablation whose changes are all merged away would silently repeat the base run."""
    monkeypatch.chdir(REPO)

    def resolved(*overlay: str) -> dict:
        with pytest.raises(SystemExit):
            run("fit", "--config", "configs/ur4rec.yaml", *overlay, "--print_config")
        config = yaml.safe_load(capsys.readouterr().out)
        config.pop("run_name")
        return config

    same = resolved("--config", f"configs/experiments/{name}.yaml") == resolved()
    assert same == (name in SAME_AS_DEFAULT)


def test_wandb_logger_runs_offline_without_a_key(workdir, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(workdir))  # no ~/.netrc
    monkeypatch.setenv("WANDB_SILENT", "true")
    fit("wb", 1, "--config", str(REPO / "configs/logger/wandb.yaml"))
    wandb.finish()  # flush the offline run file (the CLI process would do this at exit)
    runs = list((workdir / "logs/wandb").glob("offline-run-*"))
    assert len(runs) == 1
    history, deadline = b"", time.monotonic() + 60
    while not (b"val/ndcg@10" in history and b"train/loss" in history) and time.monotonic() < deadline:
        time.sleep(0.2)  # W&B's service writes the offline file in the background: under load it lags finish()
        history = next(runs[0].glob("*.wandb")).read_bytes()
    assert b"val/ndcg@10" in history and b"train/loss" in history
    assert (workdir / "logs/wb/version_0/metrics.csv").exists()  # the CSV logger stays first
    run_id = (workdir / "checkpoints/wb/wandb_id").read_text().strip()
    assert runs[0].name.endswith(run_id)
    fit("wb", 2, "--config", str(REPO / "configs/logger/wandb.yaml"), "--ckpt_path=last")
    wandb.finish()
    resumed = sorted((workdir / "logs/wandb").glob("offline-run-*"))
    assert len(resumed) == 2 and all(r.name.endswith(run_id) for r in resumed)  # the same W&B run continues


def test_nonfinite_losses_are_skipped_then_stop_the_run_with_a_checkpoint(workdir, monkeypatch):
    """Losses turn NaN from the 3rd batch on: two steps happen, NaN batches change nothing, and the
    run stops after max_nonfinite_steps with the last good weights in on_exception.ckpt."""
    from ur4rec.models.ur4rec import UR4Rec

    original = UR4Rec.losses
    calls = {"n": 0}

    def poisoned(self, batch, objective, aux_scale=1.0):
        losses = original(self, batch, objective, aux_scale)
        calls["n"] += 1
        if calls["n"] > 2:
            losses["total"] = losses["total"] * float("nan")
        return losses

    monkeypatch.setattr(UR4Rec, "losses", poisoned)
    with pytest.raises(FloatingPointError, match="3 consecutive batches had a non-finite loss"):
        fit("nan", 3, "--model.max_nonfinite_steps=3")
    saved = torch.load(workdir / "checkpoints/nan/on_exception.ckpt", weights_only=True)
    assert saved["global_step"] == 2  # only the two finite batches stepped
    assert all(torch.isfinite(t).all() for t in saved["state_dict"].values())
