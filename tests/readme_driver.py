"""Run README commands for tests/test_readme.py: ``python tests/readme_driver.py JOBS_JSON RESULTS_JSON``.

Importing torch and Lightning takes 5-15 s on the CI machine, so this process imports them once and
then forks one child per command, which runs it like ``python`` would (``runpy``, ``sys.argv``,
exit handlers at the end). Every child starts from the same clean state, and its output goes to
the job's log file. Jobs run in order; the first failure stops the run (later commands may depend
on the files it should have written).

A job is ``{"text", "argv", "log"}`` (``argv`` is ``["cli.py", ...]`` or ``["-m", "module", ...]``)
or ``{"text", "env": {NAME: VALUE}}`` for an ``export`` line.
"""

from __future__ import annotations

import atexit
import json
import os
import runpy
import sys
import time
import traceback


def _child(argv: list[str], log: str) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    code = 0
    try:
        if argv[0] == "-m":
            sys.argv = [argv[1], *argv[2:]]
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        else:
            sys.argv = list(argv)
            runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as exit_info:
        code = exit_info.code if isinstance(exit_info.code, int) else (0 if exit_info.code is None else 1)
    except BaseException:  # noqa: BLE001 - report anything, as python would
        traceback.print_exc()
        code = 1
    try:
        atexit._run_exitfuncs()  # e.g. W&B closes its offline run here
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run(job: dict, timeout: float) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _child(job["argv"], job["log"])
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            with open(job["log"], "a") as log:
                log.write(f"\nreadme_driver: killed after {timeout:.0f} s\n")
            return 124
        time.sleep(0.05)


def main(jobs_path: str, results_path: str, timeout: float = 300.0) -> int:
    import lightning  # noqa: F401 - the slow imports, done once before forking
    import torch  # noqa: F401

    import ur4rec.cli  # noqa: F401

    jobs = json.loads(open(jobs_path).read())
    results = []
    for job in jobs:
        start = time.perf_counter()
        if "env" in job:
            os.environ.update(job["env"])
            rc = 0
        else:
            rc = run(job, timeout)
        results.append({"text": job["text"], "rc": rc, "seconds": round(time.perf_counter() - start, 2),
                        "log": job.get("log")})
        with open(results_path, "w") as out:
            json.dump(results, out, indent=1)
        if rc != 0:
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1], sys.argv[2]))
