"""The GPU check's child processes (``python -m scripts.gpu_check env|features|cli --json FILE ...``): each runs
one step in a fresh interpreter that sees the installed wheels, and writes its report as JSON.

* ``env``: python, torch, the GPU, the package versions, and whether the product imports;
* ``features --bundle B --expect SHA256 --scratch DIR``: the UR4Rec run's feature tables from the bundle alone;
* ``cli [--time-ranking] -- fit|test ARGS``: ``cli.py`` in this process, with its time, peak memory and metrics.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import shutil
import sys
import time
from pathlib import Path

from scripts.gpu_results import epoch_timings
from scripts.gpu_support import TEXT_PACKAGE, BundleLayout, feature_digest, installed_version, run_features

REPORTED_PACKAGES = ("lightning", "torchmetrics", "jsonargparse", "docstring-parser", "typeshed-client", "pandas",
                     "numpy", "pillow", "xlrd", "pyyaml", "sentence-transformers", "transformers", "pytest")


def write_report(path: str, report: dict) -> None:
    Path(path).write_text(json.dumps(report, indent=2, default=str) + "\n")


def environment_report(json_path: str) -> int:
    """What the later steps will see: python, torch and the GPU, the package versions, the product importing."""
    import platform

    import torch

    report = {"python": platform.python_version(), "executable": sys.executable, "torch": torch.__version__,
              "torch_cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available()}
    if report["cuda_available"]:
        properties = torch.cuda.get_device_properties(0)
        report.update(device_name=properties.name, capability=f"{properties.major}.{properties.minor}",
                      memory_gib=round(properties.total_memory / 2**30, 1),
                      multiprocessors=properties.multi_processor_count)
    report["packages"] = {name: installed_version(name) for name in REPORTED_PACKAGES}
    spec = importlib.util.find_spec(TEXT_PACKAGE)
    report["text_model_package"] = spec.origin if spec else None
    import ur4rec.cli  # noqa: F401  (the product imports with these packages)

    report["product_imports"] = True
    write_report(json_path, report)
    return 0


def features_report(json_path: str, bundle: str, expected: str, scratch: str) -> int:
    """Build the UR4Rec run's feature tables from the bundle (on a copy of its cache) and compare their checksum
    with the real data's; nothing may be embedded anew."""
    layout = BundleLayout(Path(bundle).resolve())
    cache = Path(scratch) / "feature_cache"
    shutil.copytree(layout.feature_cache, cache, dirs_exist_ok=True)
    start = time.perf_counter()
    _, tables = run_features(dataclasses.replace(layout.data_dirs(), feature_cache=cache))
    digest = feature_digest(tables)
    computed = {"texts_computed": tables.stats.get("texts_computed", 0),
                "images_computed": tables.stats.get("images_computed", 0)}
    spec = importlib.util.find_spec(TEXT_PACKAGE)
    ok = digest["sha256"] == expected and not any(computed.values())
    write_report(json_path, {"ok": ok, "digest": digest, "expected_sha256": expected, **computed,
                             "seconds": round(time.perf_counter() - start, 2),
                             "text_model_package": spec.origin if spec else None})
    return 0 if ok else 1


def scalar_metrics(metrics: dict) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if getattr(v, "numel", lambda: 1)() == 1}


def full_ranking_seconds(cli) -> float:
    """Best of 10 passes scoring and ranking every item for every test user, on the run's device and under its
    precision (bf16 autocast for bf16-mixed), as ``test`` computes them."""
    from benchmarks.bench import time_full_ranking

    trainer = cli.trainer
    with trainer.precision_plugin.test_step_context():
        return time_full_ranking(cli.model, cli.datamodule, trainer.strategy.root_device, repeats=10)


def cli_report(json_path: str, cli_args: list[str], time_ranking: bool) -> int:
    """Run ``cli.py``'s LightningCLI in this process and report its time, peak memory and metrics."""
    import math
    import resource

    import torch

    from ur4rec.callbacks.run_summary import FitSummary
    from ur4rec.cli import main

    start = time.perf_counter()
    cli = main(cli_args)
    trainer = cli.trainer
    device = trainer.strategy.root_device
    report = {"subcommand": cli_args[0], "cli_seconds": round(time.perf_counter() - start, 3), "device": str(device),
              "metrics": scalar_metrics(trainer.callback_metrics)}
    if cli_args[0] == "fit":
        summary = next(c for c in trainer.callbacks if isinstance(c, FitSummary))
        batches = trainer.num_training_batches
        report.update(best_validation=summary.best, best_checkpoint=trainer.checkpoint_callback.best_model_path,
                      log_dir=trainer.logger.log_dir,
                      batches_per_epoch=int(batches) if math.isfinite(batches) else None)
        report["timings"] = epoch_timings(Path(trainer.logger.log_dir) / "metrics.csv", report["batches_per_epoch"])
    else:
        report["checkpoint"] = trainer.ckpt_path
        report["users"] = cli.datamodule.num_users
    if device.type == "cuda":
        report["peak_cuda_allocated_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        report["peak_cuda_reserved_mib"] = torch.cuda.max_memory_reserved(device) / 2**20
    report["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if time_ranking:
        report["full_ranking_seconds"] = full_ranking_seconds(cli)
    write_report(json_path, report)
    return 0


def child_main(argv: list[str]) -> int:
    command, rest = argv[0], argv[1:]
    own, cli_args = (rest[:rest.index("--")], rest[rest.index("--") + 1:]) if "--" in rest else (rest, [])
    parser = argparse.ArgumentParser(prog=f"gpu_check {command}")
    parser.add_argument("--json", required=True)
    if command == "features":
        parser.add_argument("--bundle", required=True)
        parser.add_argument("--expect", required=True)
        parser.add_argument("--scratch", required=True)
    if command == "cli":
        parser.add_argument("--time-ranking", action="store_true")
    options = parser.parse_args(own)
    if command == "env":
        return environment_report(options.json)
    if command == "features":
        return features_report(options.json, options.bundle, options.expect, options.scratch)
    return cli_report(options.json, cli_args, options.time_ranking)
