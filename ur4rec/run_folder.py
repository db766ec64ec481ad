"""A run's folder ``checkpoints/<run_name>/``: where it is, its best checkpoint, the lock of the fit that
writes it, and the W&B run id a resumed fit continues."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from ur4rec.atomic_files import pid_alive
from ur4rec.checkpoint_io import load_checkpoint_file
from ur4rec.errors import CheckpointError, ConfigError

CHECKPOINT_ROOT = "checkpoints"


def checkpoint_dir(run_name: str) -> str:
    return f"{CHECKPOINT_ROOT}/{run_name}"


def best_checkpoint(directory: str | Path) -> Path:
    """The run's best checkpoint by its monitored metric among ``best-epoch*.ckpt`` in ``directory``."""
    candidates = sorted(Path(directory).glob("best-epoch*.ckpt"))
    if not candidates:
        raise CheckpointError(f"--ckpt_path best: no best-epoch*.ckpt in {directory} (has this run been fit? "
                              "check --run_name)")

    def score(path: Path) -> float:
        states = load_checkpoint_file(path).get("callbacks", {})
        values = [s.get("best_model_score") for k, s in states.items() if k.startswith("ModelCheckpoint")]
        return float(values[0]) if values and values[0] is not None else float("-inf")

    return max(candidates, key=score) if len(candidates) > 1 else candidates[0]


class FitLock:
    """``checkpoints/<run_name>.fit.lock`` holding the pid of the live fit that writes ``checkpoints/<run_name>/``
    (beside the folder, not in it, so a new run's folder starts empty)."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.path = Path(f"{directory}.fit.lock")

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            text = self.path.read_text().strip()
            if text.isdigit() and int(text) != os.getpid() and pid_alive(int(text)):
                raise ConfigError(f"run_name: another fit (pid {text}) is writing {self.directory}; wait for it, "
                                  "stop it, or choose another --run_name")
        self.path.write_text(f"{os.getpid()}\n")  # absent, stale (its process is gone) or ours

    def release(self) -> None:
        if self.path.exists() and self.path.read_text().strip() == str(os.getpid()):
            self.path.unlink()


def wandb_run_id(directory: Path, resuming: bool) -> str:
    """The W&B run id stored in ``directory/wandb_id`` when resuming, else a new one (then stored).

    DDP ranks other than 0 start after rank 0 and read the id it stored."""
    path = directory / "wandb_id"
    if (resuming or launched_rank()) and path.exists():
        return path.read_text().strip()
    run_id = secrets.token_hex(4)
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(run_id + "\n")
    return run_id


def launched_rank() -> bool:
    """True in a DDP process started by rank 0 (not the one the user ran)."""
    return os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("NODE_RANK", "0") != "0"
