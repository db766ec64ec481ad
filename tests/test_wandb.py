"""W&B dashboards from an offline UR4Rec run, read back from its ``.wandb`` files, and a scan of every file
the run wrote for the API keys in its environment."""

from __future__ import annotations

import ast
import io
import math
import tempfile
import zipfile
from pathlib import Path

import pytest
import torch
import wandb

from writers import write_ml100k
from ur4rec.callbacks.run_logging import REDACTED, redact, secret_values
from ur4rec.cli import main
from wandb_records import OfflineRun

REPO = Path(__file__).resolve().parents[1]
RUN = "wb"
STAGE_EPOCHS = {"pretrain_sasrec": 1, "pretrain_retriever": 1, "joint_finetune": 2, "end_to_end": 1}
STAGES = f"""
trainer:
  log_every_n_steps: 1
stages: {STAGE_EPOCHS}
alternating: {{mode: fixed}}
"""
SECRETS = {
    "DASHSCOPE_API_KEY": "sk-test-dashscope-5f0c9a1e7b3d4c2a9e8f",
    "OPENAI_API_KEY": "sk-test-openai-3c8e1f5a9b2d7e4c6a0f",
    "WANDB_API_KEY": "0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d",  # 40 characters, like a real one
}
EXPERTS = ("preference", "description", "image")
NUM_USERS = 40  # write_ml100k's default; every user is validated


def cli(root: Path, command: str, *extra: str):
    return main([command, "--config", str(REPO / "configs/ur4rec.yaml"), "--config", str(root / "stages.yaml"),
                 "--config", str(REPO / "configs/logger/wandb.yaml"), "--data.data_dir=data", f"--run_name={RUN}",
                 "--data.batch_size=8", "--data.num_sampled_negatives=20", "--model.sasrec.hidden_size=16",
                 "--model.retriever.hidden_size=16", "--trainer.accelerator=cpu",
                 "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", *extra])


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Fit into joint_finetune, resume to the end, then test: W&B offline, fake API keys in the environment,
    every folder W&B, temp files and caches use under one work dir."""
    root = tmp_path_factory.mktemp("wandb_run")
    write_ml100k(root / "data")
    (root / "stages.yaml").write_text(STAGES)
    wandb.teardown()  # a W&B service started by an earlier test keeps that test's environment
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        for name in ("home", "tmp", "wandb_cache", "wandb_config", "wandb_data"):
            (root / name).mkdir()
        mp.setenv("HOME", str(root / "home"))
        mp.setenv("TMPDIR", str(root / "tmp"))
        mp.setattr(tempfile, "tempdir", str(root / "tmp"))
        mp.setenv("WANDB_CACHE_DIR", str(root / "wandb_cache"))
        mp.setenv("WANDB_CONFIG_DIR", str(root / "wandb_config"))
        mp.setenv("WANDB_DATA_DIR", str(root / "wandb_data"))
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_SILENT", "true")
        mp.setenv("XDG_CACHE_HOME", str(root / "home/.cache"))
        for name, value in SECRETS.items():
            mp.setenv(name, value)
        try:
            cli(root, "fit", "--trainer.max_epochs=3")  # stops inside joint_finetune
            wandb.finish()  # the CLI process would flush the run at exit
            cli(root, "fit", "--ckpt_path=last")
            wandb.finish()
            cli(root, "test", "--ckpt_path=last")
            wandb.finish()
        finally:
            wandb.teardown()
    return root


@pytest.fixture(scope="module")
def offline(root) -> OfflineRun:
    return OfflineRun(sorted((root / "logs/wandb").glob("offline-run-*/run-*.wandb")))


@pytest.mark.slow  # the module's run embeds texts with MiniLM
def test_dashboard_keys_are_logged(offline):
    keys = offline.keys()
    for stage in STAGE_EPOCHS:
        assert f"val_{stage}/ndcg@10" in keys and f"val_{stage}/hit@10" in keys, stage
    assert {"val/ndcg@10", "train/loss", "train/loss_sasrec", "train/loss_retriever", "train/loss_fused",
            "train/loss_balance", "train/fusion_weight", "test/ndcg@10", "test/hit@10_sampled"} <= keys
    assert {f"val/router_{e}" for e in EXPERTS} <= keys
    # alternating: the active module flips (fixed mode switches every step) and the switch count grows
    assert set(offline.values("alternating/active_is_sasrec")) == {0.0, 1.0}
    switches = offline.values("alternating/switches")
    assert switches == sorted(switches) and switches[-1] >= 2
    assert {"alternating/steps_sasrec", "alternating/steps_retriever"} <= keys
    # learning rates of both optimizers (SASRec's first), and training throughput
    assert offline.values("lr-AdamW") and offline.values("lr-AdamW-1")
    assert all(v > 0 for v in offline.values("train/samples_per_sec")) and offline.values("train/batches_per_sec")
    # every metric row is on the trainer's step axis
    assert all("trainer/global_step" in row for row in offline.history if any(k.startswith("val/") for k in row))


@pytest.mark.slow  # the module's run embeds texts with MiniLM
def test_router_weight_histograms_cover_every_validation_user(offline):
    fused_epochs = sum(STAGE_EPOCHS.values()) - STAGE_EPOCHS["pretrain_sasrec"]  # SASRec alone has no router
    for expert in EXPERTS:
        histograms = offline.values(f"val/router_{expert}_hist")
        assert len(histograms) == fused_epochs, expert
        for histogram in histograms:
            assert histogram["_type"] == "histogram"
            assert sum(histogram["values"]) == NUM_USERS
            assert 0.0 <= histogram["bins"][0] and histogram["bins"][-1] <= 1.0 + 1e-6


@pytest.mark.slow  # the module's run embeds texts with MiniLM
def test_resolved_config_is_logged_and_best_checkpoint_is_an_artifact(offline, root):
    config = offline.config["cli"]
    assert config["run_name"] == RUN and config["model"]["retriever"]["experts"] == list(EXPERTS)
    assert config["stages"]["joint_finetune"] == STAGE_EPOCHS["joint_finetune"] and config["alternating"]["mode"] == "fixed"
    assert config["trainer"]["plugins"][0]["class_path"] == "ur4rec.checkpoint_io.AtomicCheckpointIO"
    assert offline.config["sasrec"]["hidden_size"] == 16  # the module's hparams, grouped as in the config
    # a key is configured (WANDB_MODE=offline only keeps the upload for later): log_model stays on and
    # the best checkpoint is logged as an artifact at the end of each fit
    assert "artifact" in offline.kinds
    staged = {p.read_bytes() for p in (root / "wandb_data/artifacts/staging").iterdir()}  # kept for `wandb sync`
    best = next((root / f"checkpoints/{RUN}").glob("best-epoch*.ckpt"))
    assert best.read_bytes() in staged


@pytest.mark.slow  # the module's run embeds texts with MiniLM
def test_resumed_fit_and_test_continue_the_same_wandb_run(offline, root):
    run_id = (root / f"checkpoints/{RUN}/wandb_id").read_text().strip()
    runs = sorted((root / "logs/wandb").glob("offline-run-*"))
    assert len(runs) == 3 and all(r.name.endswith(f"-{run_id}") for r in runs)  # fit, resumed fit, test
    assert offline.run_ids == {run_id}
    steps = [row["trainer/global_step"] for row in offline.history if "val/ndcg@10" in row]
    assert len(steps) == sum(STAGE_EPOCHS.values()) and steps == sorted(set(steps))  # no epoch twice


def _contents(path: Path) -> list[bytes]:
    """A file's bytes, plus every member of it when it is a zip (a torch checkpoint, a W&B artifact)."""
    data = path.read_bytes()
    contents = [data]
    if zipfile.is_zipfile(io.BytesIO(data)):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            contents += [archive.read(name) for name in archive.namelist()]
    return contents


def holds(path: Path, secret: str) -> bool:
    needles = (secret.encode(), secret.encode("utf-16-le"))
    return any(needle in content for content in _contents(path) for needle in needles)


def test_the_scan_finds_a_key_inside_a_compressed_checkpoint(tmp_path):
    path = tmp_path / "x.ckpt"
    torch.save({"hparams": {"note": SECRETS["OPENAI_API_KEY"]}}, path)
    with zipfile.ZipFile(tmp_path / "x.zip", "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.write(path, "inner.ckpt")
    assert holds(path, SECRETS["OPENAI_API_KEY"]) and holds(tmp_path / "x.zip", SECRETS["OPENAI_API_KEY"])
    assert SECRETS["OPENAI_API_KEY"].encode() not in (tmp_path / "x.zip").read_bytes()  # found only inside


@pytest.mark.slow  # the module's run embeds texts with MiniLM
def test_no_file_written_by_the_run_holds_an_api_key(root):
    written = [p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and p.parts[len(root.parts)] != "data"]
    assert any(p.suffix == ".ckpt" for p in written) and any(p.suffix == ".wandb" for p in written)
    assert any(".cache" in p.parts for p in written)  # the feature cache is scanned too
    for path in written:
        for name, secret in SECRETS.items():
            assert not holds(path, secret), f"{name} found in {path.relative_to(root)}"
    for checkpoint in root.rglob("*.ckpt"):
        assert "state_dict" in torch.load(checkpoint, weights_only=True), checkpoint


def test_every_torch_load_in_the_code_uses_weights_only():
    """Unpickling arbitrary objects runs code: every ``torch.load`` call passes ``weights_only=True``."""
    sources = [REPO / "cli.py", *sorted((REPO / "ur4rec").rglob("*.py")), *sorted((REPO / "tests").rglob("*.py"))]
    calls = 0
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch":
                calls += 1
                keywords = {k.arg: k.value for k in node.keywords}
                flag = keywords.get("weights_only")
                assert isinstance(flag, ast.Constant) and flag.value is True, f"{source}:{node.lineno}"
    assert calls > 3


def test_redact_removes_secret_keys_and_values():
    secrets = secret_values({"OPENAI_API_KEY": "sk-abcdefgh123", "HF_TOKEN": "hf_0123456789", "PATH": "/usr/bin/x",
                             "EMPTY_TOKEN": ""})
    assert sorted(secrets) == ["hf_0123456789", "sk-abcdefgh123"]
    config = {"model": {"api_key": "anything", "lr": 0.1, "token": None},
              "data": {"urls": ["https://x/?key=sk-abcdefgh123"], "name": "plain"}}
    assert redact(config, secrets) == {"model": {"api_key": REDACTED, "lr": 0.1, "token": None},
                                       "data": {"urls": [f"https://x/?key={REDACTED}"], "name": "plain"}}
    assert math.isnan(redact(float("nan"), secrets))
