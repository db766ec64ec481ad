"""UR4Rec through the CLI on a tiny written dataset with real MiniLM text features (cached once)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from benchmarks.__main__ import main as tools
from writers import write_ml100k
from ur4rec.callbacks import AdaptiveAlternating, TrainingStages
from ur4rec.cli import main

REPO = Path(__file__).resolve().parents[1]
STAGES = """
stages: {pretrain_sasrec: 1, pretrain_retriever: 1, joint_finetune: 2, end_to_end: 1}
alternating: {mode: adaptive, min_steps: 2, window: 2, switch_threshold: 0.05}
model:
  retriever_scheduler:
    class_path: torch.optim.lr_scheduler.StepLR
    init_args: {step_size: 1, gamma: 0.5}
"""

pytestmark = pytest.mark.slow


def callback(cli, cls):
    return next(c for c in cli.trainer.callbacks if isinstance(c, cls))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("ur4rec")
    write_ml100k(root / "data")
    (root / "stages.yaml").write_text(STAGES)
    return root


def fit(workdir: Path, run_name: str, *extra: str):
    return main(["fit", "--config", str(REPO / "configs/ur4rec.yaml"), "--config", str(workdir / "stages.yaml"),
                 f"--data.data_dir={workdir / 'data'}", f"--data.feature_cache_dir={workdir / 'cache'}",
                 f"--run_name={run_name}", "--data.batch_size=8", "--data.num_sampled_negatives=20",
                 "--model.sasrec.hidden_size=16", "--model.retriever.hidden_size=16", "--trainer.accelerator=cpu",
                 "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", *extra])


def test_four_stages_then_resume_mid_stage_matches(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    straight = fit(workdir, "straight")
    stages, alternating = callback(straight, TrainingStages), callback(straight, AdaptiveAlternating)
    assert [t["stage"] for t in stages.transitions] == ["pretrain_sasrec", "pretrain_retriever",
                                                        "joint_finetune", "end_to_end"]
    assert straight.trainer.current_epoch == 5
    assert alternating.steps["sasrec"] + alternating.steps["retriever"] == 2 * len(
        straight.datamodule.train_dataloader())
    for stage in ("pretrain_sasrec", "pretrain_retriever", "joint_finetune", "end_to_end"):
        assert (workdir / f"checkpoints/straight/best-{stage}.ckpt").exists()
    hparams = (workdir / "logs/straight/version_0/hparams.yaml").read_text()
    assert "features/image_encoder: descriptor-v1" in hparams and "all-MiniLM-L6-v2" in hparams

    fit(workdir, "resumed", "--trainer.max_epochs=3")  # stops inside joint_finetune
    midway = torch.load(workdir / "checkpoints/resumed/last.ckpt", weights_only=True)
    stages_state = next(v for k, v in midway["callbacks"].items() if k.startswith("TrainingStages"))
    assert stages_state["stage_index"] == 2  # joint_finetune
    assert midway["score_mode"] == "fused"
    resumed = fit(workdir, "resumed", "--ckpt_path=last")

    a = torch.load(workdir / "checkpoints/straight/last.ckpt", weights_only=True)
    b = torch.load(workdir / "checkpoints/resumed/last.ckpt", weights_only=True)
    assert a["global_step"] == b["global_step"] and a["epoch"] == b["epoch"]
    for name, tensor in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][name], tensor, rtol=0, atol=1e-6, msg=name)
    assert len(a["optimizer_states"]) == len(b["optimizer_states"]) == 2
    for opt_a, opt_b in zip(a["optimizer_states"], b["optimizer_states"]):
        for key, state in opt_a["state"].items():
            torch.testing.assert_close(opt_b["state"][key]["exp_avg_sq"], state["exp_avg_sq"], rtol=0, atol=1e-6)
    # the retriever's StepLR stepped after each epoch its optimizer stepped in (1-3; epoch 4 is the last)
    assert a["lr_schedulers"] == b["lr_schedulers"] and a["lr_schedulers"][0]["last_epoch"] == 3
    assert b["optimizer_states"][1]["param_groups"][0]["lr"] == pytest.approx(1e-3 * 0.5 ** 3)
    assert callback(resumed, AdaptiveAlternating).statistics() == alternating.statistics()
    assert callback(resumed, TrainingStages).transitions == stages.transitions


def test_test_subcommand_scores_with_the_fused_model(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    if not (workdir / "checkpoints/straight/last.ckpt").exists():
        fit(workdir, "straight")
    cli = main(["test", "--config", str(REPO / "configs/ur4rec.yaml"), "--config", str(workdir / "stages.yaml"),
                f"--data.data_dir={workdir / 'data'}", f"--data.feature_cache_dir={workdir / 'cache'}",
                "--run_name=straight", "--data.num_sampled_negatives=20", "--model.sasrec.hidden_size=16",
                "--model.retriever.hidden_size=16", "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false",
                "--ckpt_path=last"])
    metrics = cli.trainer.callback_metrics
    assert cli.model.score_mode == "fused"
    assert {"test/ndcg@10", "test/hit@10_sampled", "test/router_preference", "test/router_image"} <= set(metrics)


def test_predict_explains_fused_recommendations(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    if not (workdir / "checkpoints/straight/last.ckpt").exists():
        fit(workdir, "straight")
    main(["predict", "--config", str(REPO / "configs/ur4rec.yaml"), "--config", str(workdir / "stages.yaml"),
          f"--data.data_dir={workdir / 'data'}", f"--data.feature_cache_dir={workdir / 'cache'}", "--run_name=straight",
          "--data.num_sampled_negatives=20", "--model.sasrec.hidden_size=16", "--model.retriever.hidden_size=16",
          "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false", "--ckpt_path=last", "--model.top_k=3",
          "--data.predict_users=[1, 2]", "--predictions.output_path=recs.jsonl"])
    rows = [json.loads(line) for line in (workdir / "recs.jsonl").read_text().splitlines()]
    assert len(rows) == 6
    for row in rows:
        assert row["sasrec_score"] + row["retriever_score"] == pytest.approx(row["score"], abs=1e-4)
        weights = [row[f"router_{e}"] for e in ("preference", "description", "image")]
        assert sum(weights) == pytest.approx(1.0, abs=1e-5)
    assert [r["score"] for r in rows[:3]] == sorted((r["score"] for r in rows[:3]), reverse=True)


def test_report_plots_and_tables_match_the_logs(workdir, monkeypatch):
    import pandas as pd
    from PIL import Image

    monkeypatch.chdir(workdir)
    if not (workdir / "checkpoints/straight/last.ckpt").exists():
        fit(workdir, "straight")
    assert main(["report", "--run_dir", "logs/straight", "--checkpoint", "checkpoints/straight/last.ckpt",
                 "--output_dir", "rep"]) == 0
    for name in ("loss.png", "validation.png", "alternating.png", "router.png"):
        with Image.open(workdir / "rep" / name) as image:
            assert image.format == "PNG" and image.size[0] > 100
    table = (workdir / "rep/report.md").read_text()
    metrics = pd.concat([pd.read_csv(p) for p in sorted((workdir / "logs/straight").glob("version_*/metrics.csv"))])
    for stage in ("pretrain_sasrec", "pretrain_retriever", "joint_finetune", "end_to_end"):
        best = metrics[f"val_{stage}/ndcg@10"].max()
        assert f"| {stage} |" in table and f"{best:.4f}" in table
    assert "| stage | first epoch |" in table and "| joint_finetune | 2 |" in table  # stages in epochs
    if not any(c.startswith("test/") for c in metrics.columns):  # the fit alone logs no test metrics: it says so
        assert "None logged for this run" in table and "--run_name straight" in table


def test_report_marks_the_switches_and_reads_epochs():
    import pandas as pd

    from ur4rec.run_report import _series, switch_epochs

    metrics = pd.DataFrame({"epoch": [0, 0, 0, 0, 1, 1], "step": [0, 1, 2, 3, 4, 5],
                            "alternating/active_is_sasrec": [1.0, 1.0, 0.0, 0.0, 1.0, None]})
    assert switch_epochs(metrics) == [0.5, 1.0]  # the two switches, at the epochs they came
    assert _series(metrics, "alternating/active_is_sasrec")["epoch"].tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]


@pytest.mark.parametrize("content", [b"\x00\x01garbage\n\xff\xfe", b"user,item\n1,2\n"], ids=["binary", "other-csv"])
def test_report_of_a_file_that_is_no_metrics_csv_names_it(tmp_path, content):
    from ur4rec.data.errors import DataFormatError
    from ur4rec.run_report import load_run

    metrics = tmp_path / "run/version_0/metrics.csv"
    metrics.parent.mkdir(parents=True)
    metrics.write_bytes(content)
    with pytest.raises(DataFormatError, match="not a metrics.csv written by a run") as info:  # was a traceback
        load_run(tmp_path / "run")
    assert info.value.path == metrics


def validated_straight_run(workdir: Path):
    """The ``straight`` run's config arguments, a ``validate`` CLI of its last checkpoint, and that
    checkpoint's validation NDCG@10 scored fused and scored by SASRec alone."""
    if not (workdir / "checkpoints/straight/last.ckpt").exists():
        fit(workdir, "straight")
    args = ["--config", str(REPO / "configs/ur4rec.yaml"), "--config", str(workdir / "stages.yaml"),
            f"--data.data_dir={workdir / 'data'}", f"--data.feature_cache_dir={workdir / 'cache'}",
            "--data.num_sampled_negatives=20", "--model.sasrec.hidden_size=16", "--model.retriever.hidden_size=16",
            "--trainer.accelerator=cpu"]
    cli = main(["validate", *args, "--ckpt_path=checkpoints/straight/last.ckpt", "--trainer.logger=false"])
    fused = float(cli.trainer.callback_metrics["val/ndcg@10"])
    cli.model.score_mode = "sasrec"
    sasrec = float(cli.trainer.validate(cli.model, cli.datamodule, verbose=False)[0]["val/ndcg@10"])
    return args, cli, fused, sasrec


def test_fusion_sweep_scores_each_weight_on_validation(workdir, monkeypatch, capsys):
    from benchmarks.fusion_sweep import sweep

    monkeypatch.chdir(workdir)
    args, cli, fused, sasrec = validated_straight_run(workdir)
    assert tools(["fusion_sweep", "--ckpt_path", "checkpoints/straight/last.ckpt", "--weights", "0.4", "1.0",
                 "--", *args]) == 0
    table = capsys.readouterr().out
    assert "| fusion_weight | val/ndcg@10" in table and "| 1.00" in table

    # weight 1.0 is SASRec alone and the configured weight the fused model, each validated directly
    rows = sweep(cli, "checkpoints/straight/last.ckpt", [cli.model.hparams.retriever["fusion_weight"], 1.0])
    assert [r["val/ndcg@10"] for r in rows] == pytest.approx([fused, sasrec], abs=1e-6)


def test_paired_scores_each_checkpoint_like_validate(workdir, monkeypatch, capsys):
    from benchmarks.paired import compare

    monkeypatch.chdir(workdir)
    args, cli, fused, sasrec = validated_straight_run(workdir)
    assert fused != pytest.approx(sasrec, abs=1e-6)  # the two ways of scoring differ, so the check below can fail

    # a checkpoint with SASRec weights only (a SASRec-only run's) scores as SASRec
    checkpoint = torch.load("checkpoints/straight/last.ckpt", map_location="cpu", weights_only=True)
    checkpoint = {"state_dict": {k: v for k, v in checkpoint["state_dict"].items() if k.startswith("net.sasrec.")}}
    torch.save(checkpoint, workdir / "sasrec_only.ckpt")
    rows = compare(cli.model, list(cli.datamodule.val_dataloader()), [str(workdir / "sasrec_only.ckpt")],
                   ["checkpoints/straight/last.ckpt"], draws=200)
    pair = next(r for r in rows if r["compared"] == "pair 0" and r["metric"] == "ndcg@10")
    assert (pair["baseline"], pair["candidate"]) == pytest.approx((sasrec, fused), abs=1e-6)
    assert pair["relative"] == pytest.approx(fused / sasrec - 1, abs=1e-5)
    assert pair["low"] <= pair["relative"] <= pair["high"]
    ensemble = next(r for r in rows if r["compared"] == "baseline ensemble" and r["metric"] == "ndcg@10")
    assert ensemble["candidate"] == pytest.approx(sasrec, abs=1e-6)  # an ensemble of one checkpoint is itself

    # per slice: the popularity slices partition the users, so their user-weighted means give the overall one
    rows = compare(cli.model, list(cli.datamodule.val_dataloader()), [str(workdir / "sasrec_only.ckpt")],
                   ["checkpoints/straight/last.ckpt"], draws=200, slices=True)
    popularity = [r for r in rows if r["compared"].startswith("slice pop_") and r["metric"] == "ndcg@10"]
    users = [int(r["compared"].split("(")[1].split()[0]) for r in popularity]
    assert len(popularity) == 4 and sum(users) == cli.datamodule.load().num_users
    for side, overall in (("baseline", sasrec), ("candidate", fused)):
        weighted = sum(n * r[side] for n, r in zip(users, popularity)) / sum(users)
        assert weighted == pytest.approx(overall, abs=1e-5)

    assert tools(["paired", "--split", "val", "--draws", "50", "--baseline", "checkpoints/straight/last.ckpt",
                 "--candidate", "checkpoints/straight/las*.ckpt", "--", *args]) == 0
    out = capsys.readouterr().out
    assert "pair 0: checkpoints/straight/last.ckpt vs checkpoints/straight/last.ckpt" in out  # the glob resolved
    assert "| pair 0 | ndcg@10 |" in out and "+0.0% | +0.0% .. +0.0% |" in out
    with pytest.raises(SystemExit):  # a pattern must name exactly one checkpoint
        tools(["paired", "--baseline", "checkpoints/straight/*.ckpt", "--candidate", "x.ckpt", "--", *args])
    assert "checkpoints/straight/*.ckpt: matches" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # pairs need as many baselines as candidates
        tools(["paired", "--baseline", "a.ckpt", "b.ckpt", "--candidate", "c.ckpt", "--", *args])
    assert "they are compared in pairs" in capsys.readouterr().err


def test_side_signal_ranks_with_each_input(workdir, monkeypatch, capsys):
    monkeypatch.chdir(workdir)
    args = ["--config", str(REPO / "configs/ur4rec.yaml"), f"--data.data_dir={workdir / 'data'}",
            f"--data.feature_cache_dir={workdir / 'cache'}", "--data.num_sampled_negatives=20"]
    assert tools(["side_signal", "--", *args]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert [r.split(" | ")[0] for r in rows[1:]] == ["| random (expected)", "| popularity", "| description",
                                                     "| poster", "| preference"]
    with pytest.raises(SystemExit, match="needs item features"):
        tools(["side_signal", "--", "--config", str(REPO / "configs/sasrec.yaml"),
              f"--data.data_dir={workdir / 'data'}"])


def test_sasrec_with_content_gets_the_item_texts_and_ranks_new_items_by_them(workdir, monkeypatch, recwarn):
    monkeypatch.chdir(workdir)
    cli = fit(workdir, "content", "--model.retriever=null", "--model.sasrec.content=true", "--model.sasrec.id_dropout=0.2",
              "--data.cold_item_fraction=0.2", "--stages.pretrain_sasrec=1")
    assert not [w for w in recwarn if "never trained" in str(w.message)]  # content, not untrained IDs
    sasrec, datamodule = cli.model.net.sasrec, cli.datamodule
    assert torch.equal(sasrec.item_known, datamodule.seen_item_mask())
    assert torch.equal(sasrec.item_content, datamodule.features.item_text)
    new = datamodule.new_item_mask()
    assert new.any() and not sasrec.item_known[new].any()  # every new item is ranked by its content alone


def test_sasrecs_new_item_map_ranks_new_items_by_content_and_its_penalty_is_swept_on_validation(
        workdir, monkeypatch, recwarn, capsys):
    monkeypatch.chdir(workdir)
    mapped = ["--model.retriever=null", "--model.sasrec.content=false", "--model.sasrec.new_item_ridge=10",
              "--data.cold_item_fraction=0.2"]
    cli = fit(workdir, "mapped", *mapped, "--stages.pretrain_sasrec=1")
    assert not [w for w in recwarn if "never trained" in str(w.message)]  # content, not untrained IDs
    sasrec, datamodule = cli.model.net.sasrec, cli.datamodule
    assert torch.equal(sasrec.item_content, datamodule.features.item_text)
    new, known = datamodule.new_item_mask(), datamodule.seen_item_mask()
    assert new.any() and torch.equal(known, ~new & (torch.arange(len(new)) > 0))
    table, ids = sasrec.eval().item_table(), sasrec.item_embedding.weight
    torch.testing.assert_close(table[known], ids[known])  # every item trained on keeps its ID embedding
    torch.testing.assert_close(table[new], sasrec.mapped_content(ids)[new])
    assert not torch.allclose(table[new], ids[new])

    args = ["--config", str(REPO / "configs/ur4rec.yaml"), f"--data.data_dir={workdir / 'data'}",
            f"--data.feature_cache_dir={workdir / 'cache'}", "--data.num_sampled_negatives=20",
            "--model.sasrec.hidden_size=16", "--trainer.accelerator=cpu", *mapped]
    assert tools(["ridge_sweep", "--ckpt_path", "checkpoints/mapped/last.ckpt", "--ridges", "1", "1000", "--",
                  *args]) == 0
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert rows[0][:2] == ["| new_item_ridge", "val/ndcg@10"] and "val_cold_new/ndcg@10" in rows[0][4]
    assert [r[0] for r in rows[1:]] == ["| 1", "| 1000"]
