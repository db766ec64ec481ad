"""A child process of the GPU check under a deadline: its output echoed line by line and its last lines kept;
past the deadline its whole process group is stopped (SIGTERM, so a fit saves ``on_exception.ckpt``).

Only the standard library: the check runs children before anything is installed on the device.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

TAIL_LINES = 40


@dataclass
class ChildOutcome:
    returncode: int | None
    seconds: float
    timed_out: bool
    tail: list[str]

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def stop_group(process: subprocess.Popen) -> None:
    """SIGTERM to the child's own process group (a fit then saves on_exception.ckpt), SIGKILL after 15 s."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def run_child(command: list[str], cwd: Path, env: dict, timeout: float) -> ChildOutcome:
    """Run ``command``, echoing its output line by line and keeping its last lines; stop it after ``timeout``."""
    start = time.perf_counter()
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               errors="replace", bufsize=1, start_new_session=True)

    def pump() -> None:
        for line in process.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            tail.append(line.rstrip("\n"))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    timed_out = False
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        stop_group(process)
    reader.join(timeout=10)
    return ChildOutcome(process.returncode, time.perf_counter() - start, timed_out, list(tail))
