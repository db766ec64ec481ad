"""``python -m benchmarks bad_input_corpus [--work_dir DIR] [--only SUBSTRING]``: every bad input of the corpus
(:mod:`benchmarks.bad_input_cases`, :mod:`benchmarks.bad_input_data_cases`) run through the real entry point,
``python cli.py ...``, and classified.

Each case is built in its own folder (the command's working directory) from small synthetic data written
here; a tiny trained checkpoint and a filled embedding cache are made once and shared. Outcomes:

* ``clear error``: the case's exit code (2 unless it says otherwise) and a last stderr line naming what the
  case says it must name (the file, line or setting);
* ``graceful``: exit 0 and an output line naming it (a counted warning, or the counts of a usable input);
* ``traceback``: a Python traceback in the output;
* ``silent``: anything else: a bad input accepted without a word (exit 0 where an error was due, or no
  warning), an error that does not name what it should, a wrong exit code, or a run that hangs.

Prints one line per case and a Markdown table of the counts; exits 1 when any case is a traceback, is
silent, or is not one of the outcomes it expects.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from benchmarks.bad_input_cases import (
    CLEAR_ERROR, GRACEFUL, OUTCOMES, SILENT, TRACEBACK, Case, checkpoint_cases, cli_cases, config_cases, sasrec_fit,
)
from benchmarks.bad_input_data_cases import features_cases, llm_cases, metadata_cases, ratings_cases
from benchmarks.bad_input_fixtures import write_datasets
from benchmarks.common import markdown_table

REPO = Path(__file__).resolve().parents[1]
CASE_TIMEOUT_S = 300
API_KEY_VARS = ("OPENAI_API_KEY", "DASHSCOPE_API_KEY")
COMMAND_ECHO = "python cli.py "  # the fit summary repeats the command line: it names every flag, warns of none


def all_cases() -> list[Case]:
    """Every case of the corpus; names are unique."""
    cases = config_cases() + ratings_cases() + metadata_cases() + llm_cases() + features_cases() + checkpoint_cases() \
        + cli_cases()
    names = [case.name for case in cases]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"bad-input cases with the same name: {repeated}")
    return cases


@dataclass(frozen=True)
class Result:
    case: Case
    folder: Path  # where the case ran: its bad input, command.txt, stdout.txt, stderr.txt
    returncode: int | None
    outcome: str
    evidence: str  # the line that shows the outcome: the error, the warning, the traceback's last line
    seconds: float

    @property
    def as_expected(self) -> bool:
        return self.outcome == self.case.expected


def without_warning_prefix(line: str) -> str:
    """A warning's message without the ``path/to/module.py:12: SomeWarning:`` that Python puts before it."""
    return re.sub(r"^\S+:\d+: \w+: ", "", line)


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def mention(output: str, text: str) -> str | None:
    """The first line of ``output`` that holds ``text``, other than an echo of the command line."""
    return next((without_warning_prefix(line.strip()) for line in output.splitlines()
                 if text in line and COMMAND_ECHO not in line), None)


def classify(case: Case, returncode: int | None, stdout: str, stderr: str) -> tuple[str, str]:
    """(outcome, the line that shows it) of one run of ``case``."""
    output = stdout + "\n" + stderr
    if "Traceback (most recent call last)" in output:
        return TRACEBACK, last_line(stderr) or last_line(stdout)
    if returncode == 0:
        warning = mention(output, case.names) if case.expected == GRACEFUL else None
        return (GRACEFUL, warning) if warning else (SILENT, last_line(stderr) or last_line(stdout))
    if returncode == case.exit_code and case.names in last_line(stderr):
        return CLEAR_ERROR, last_line(stderr)
    return SILENT, last_line(stderr) or last_line(stdout)


def subprocess_env(extra: dict) -> dict:
    """One thread per process, no network for models or W&B, no API key unless the case sets one."""
    env = {k: v for k, v in os.environ.items() if k not in API_KEY_VARS}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", WANDB_MODE="disabled", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def run_cli(argv: Sequence[str], cwd: Path, env: dict, timeout: float,
            terminate_when: Path | None = None) -> tuple[int | None, str, str]:
    """``python cli.py *argv`` in ``cwd``: (exit code or None on timeout, stdout, stderr). With
    ``terminate_when``, SIGTERM is sent as soon as that file exists."""
    out_path, err_path = cwd / "stdout.txt", cwd / "stderr.txt"
    deadline = time.monotonic() + timeout
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        process = subprocess.Popen([sys.executable, str(REPO / "cli.py"), *argv], cwd=cwd, env=env, stdout=out,
                                   stderr=err)
        try:
            if terminate_when is not None:
                while not terminate_when.exists() and process.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.05)
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            returncode = process.wait(timeout=max(deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            returncode = None
    return returncode, read_text(out_path), read_text(err_path)


def read_text(path: Path) -> str:
    return path.read_bytes().decode("utf-8", errors="replace")


def run_case(case: Case, case_dir: Path, fixtures: dict[str, str], timeout: float = CASE_TIMEOUT_S) -> Result:
    """Build the case's bad input in ``case_dir``, run its command there and classify what happened."""
    shutil.rmtree(case_dir, ignore_errors=True)
    case_dir.mkdir(parents=True)
    if case.setup is not None:
        case.setup(case_dir, fixtures)
    argv = [arg.format_map(fixtures) for arg in case.argv]
    (case_dir / "command.txt").write_text(shlex.join([sys.executable, str(REPO / "cli.py"), *argv]) + "\n")
    start = time.perf_counter()
    terminate_when = case_dir / case.terminate_when if case.terminate_when else None
    returncode, stdout, stderr = run_cli(argv, case_dir, subprocess_env(case.env), timeout, terminate_when)
    seconds = time.perf_counter() - start
    if returncode is None:
        return Result(case, case_dir, None, SILENT, f"timed out after {timeout:.0f} s", seconds)
    return Result(case, case_dir, returncode, *classify(case, returncode, stdout, stderr), seconds)


def dead_url() -> str:
    """An OpenAI-style base URL on a loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def prepare(root: Path, needs: set[str], jobs: int = 2) -> dict[str, str]:
    """The shared good inputs under ``root``: the datasets, and (when ``needs`` names them) a checkpoint
    trained for one epoch (``ckpt``) and an embedding cache filled by the features command (``cache``)."""
    shutil.rmtree(root, ignore_errors=True)
    fixtures = {"repo": str(REPO), "dead_url": dead_url(), **write_datasets(root / "data")}
    runs = {
        "ckpt": ([a.format_map(fixtures) for a in sasrec_fit("{ml100k}")], root / "run",
                 root / "run/checkpoints/case/last.ckpt"),
        "cache": (["features", "--data_dir", fixtures["mml"], "--llm_dir", fixtures["llm"], "--cache_dir",
                   str(root / "cache")], root, root / "cache"),
    }

    def make(name: str) -> None:
        argv, cwd, made = runs[name]
        cwd.mkdir(parents=True, exist_ok=True)
        returncode, stdout, stderr = run_cli(argv, cwd, subprocess_env({}), CASE_TIMEOUT_S)
        if returncode != 0 or not made.exists():
            raise RuntimeError(f"preparing the {name} fixture failed (exit {returncode}):\n{(stdout + stderr)[-3000:]}")
        fixtures[name] = str(made)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for future in [pool.submit(make, name) for name in runs if name in needs]:
            future.result()
    return fixtures


def case_folder(index: int, case: Case) -> str:
    slug = "".join(c if c.isalnum() or c in "._-" else "_" for c in case.name)[:70]
    return f"{index:03d}-{slug}"


def run_corpus(cases: Sequence[Case], work_dir: Path, jobs: int = 2, timeout: float = CASE_TIMEOUT_S,
               report: Callable[[Result], None] | None = None) -> list[Result]:
    """Prepare what ``cases`` need under ``work_dir`` and run them ``jobs`` at a time; results in case order."""
    needs = set().union(*(case.required_fixtures() for case in cases))
    fixtures = prepare(work_dir / "prepared", needs, jobs)
    results: dict[int, Result] = {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(run_case, case, work_dir / "cases" / case_folder(i, case), fixtures, timeout): i
                   for i, case in enumerate(cases)}
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            if report is not None:
                report(results[futures[future]])
    return [results[i] for i in range(len(cases))]


def select(cases: Sequence[Case], only: Sequence[str] | None) -> list[Case]:
    """The cases whose name holds any of the substrings in ``only`` (all cases without it)."""
    return [c for c in cases if not only or any(part in c.name for part in only)]


def result_line(result: Result) -> str:
    flag = "  " if result.as_expected else "!!"
    return (f"{flag} {result.case.name:<58} {result.case.expected:<11} {result.outcome:<11} "
            f"{result.seconds:5.1f}s  {result.evidence[:110]}")


def counts_table(results: Sequence[Result]) -> str:
    row = {"cases tried": len(results), **{o: sum(r.outcome == o for r in results) for o in OUTCOMES}}
    return markdown_table(["cases tried", *OUTCOMES], [row])


def failed(results: Sequence[Result]) -> bool:
    """Whether any case is a traceback, is silent, or is not an outcome it expects."""
    return any(r.outcome in (TRACEBACK, SILENT) or not r.as_expected for r in results)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks bad_input_corpus", description=__doc__.split("\n\n")[0])
    parser.add_argument("--work_dir", default=None, help="where the cases are built and kept (default: a temporary "
                        "folder, removed at the end)")
    parser.add_argument("--only", action="append", help="run the cases whose name holds this text (repeatable)")
    parser.add_argument("--jobs", type=int, default=2, help="cases run at the same time")
    parser.add_argument("--timeout", type=float, default=CASE_TIMEOUT_S, help="seconds one case may run")
    parser.add_argument("--list", action="store_true", help="print the case names and expectations; run nothing")
    args = parser.parse_args(argv)
    cases = select(all_cases(), args.only)
    if not cases:
        parser.error(f"no case name holds any of {args.only}")
    if args.list:
        for case in cases:
            print(f"{case.name:<58} {case.expected:<11} names {case.names!r}")
        return 0

    work_dir = Path(args.work_dir or tempfile.mkdtemp(prefix="bad-input-corpus-")).resolve()
    started, start = datetime.datetime.now(), time.perf_counter()
    print(f"bad-input corpus: {len(cases)} cases, {args.jobs} at a time, in {work_dir}", flush=True)
    results = run_corpus(cases, work_dir, args.jobs, args.timeout, report=lambda r: print(result_line(r), flush=True))
    wall = time.perf_counter() - start

    print("\n" + counts_table(results))
    print(f"\nwall time {wall:.0f} s ({started:%Y-%m-%d %H:%M}, {args.jobs} cases at a time)")
    unexpected = [r for r in results if not r.as_expected]
    if unexpected:
        print(f"\n{len(unexpected)} case(s) not as expected:")
        for result in unexpected:
            print(f"  {result.case.name}: expected {result.case.expected}, got {result.outcome} "
                  f"(exit {result.returncode}): {result.evidence[:200]}")
            if args.work_dir is not None:
                print(f"    in {result.folder} (command.txt, stdout.txt, stderr.txt)")
    if args.work_dir is None:
        shutil.rmtree(work_dir, ignore_errors=True)
    return 1 if failed(results) else 0
