"""LlamaRec's own LRURec retriever, trained and tested by LlamaRec's code on the ml-latest-small files.

    git clone https://github.com/Yueeeeeeee/LlamaRec /tmp/LlamaRec    (commit 48b288b)
    python -m benchmarks llamarec_lrurec --llamarec_dir /tmp/LlamaRec --data_dir ../shared/data/ml-latest-small \\
        --workdir /tmp/llamarec-run [--seed 42] [--max_minutes M] [--test_only] [--save_ranks ranks.pt]

This runs ``train_retriever.py``'s ``main`` (up to its test: the candidates it then writes for the Llama
re-ranker are not needed) with LlamaRec's modules unchanged and the settings its ``set_template`` gives the
dataset it calls "ml-100k" (ml-latest-small): LRURec, 64 dims, 2 blocks, dropout 0.2, AdamW at 1e-3 with
weight decay 0.01, batches of 16, windows of 200, validation every 500 steps on Recall@10 (history not
excluded), early stopping after 20 validations without a gain, test on the best one with the history
excluded. ``--max_minutes`` ends training at the first validation after that much wall time, as its
early stopping would, so the best validation checkpoint so far is tested. Three things stand in for
packages the retriever does not use, so that its modules import: empty modules for the Llama re-ranker
(``model.llm``, ``dataloader.llm``, ``trainer.llm``), Lightning's ``seed_everything`` for
``pytorch_lightning``'s, and a writer that drops its scalars when TensorBoard is not installed. The data folder ``<workdir>/data/ml-100k`` links to ``ratings.csv`` and ``movies.csv``
(its ``README`` and ``users.csv``, which the download check asks for and nothing reads, are empty files).

LlamaRec's trainer tests with the mean of per-batch means (its ``AverageMeterSet``): with 610 users in
batches of 16 the last batch holds 2 users and weighs as much as a full one. The table prints that
figure beside the mean over users of the same model's ranks (what LlamaRec's candidate step prints).
``llamarec_average`` averages our checkpoints both ways.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import types
from pathlib import Path
from typing import Sequence

import torch

from benchmarks.common import markdown_table
from benchmarks.llamarec_average import LLAMAREC_BATCH, METRIC_NAMES, batch_mean, user_metrics

BEST_CHECKPOINT = "experiments/lru/ml-100k/models/best_acc_model.pth"  # where LlamaRec's trainer keeps it


def _install_stand_ins() -> None:
    """Modules the LRURec path imports but never uses, as described in the module docstring."""
    for name in ("model.llm", "dataloader.llm", "trainer.llm"):
        sys.modules[name] = types.ModuleType(name)
    from lightning.pytorch import seed_everything
    sys.modules["pytorch_lightning"] = types.SimpleNamespace(seed_everything=seed_everything)
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        class DroppingWriter:
            def __init__(self, *args, **kwargs) -> None: ...
            def add_scalar(self, *args, **kwargs) -> None: ...
            def close(self) -> None: ...
        sys.modules["torch.utils.tensorboard"] = types.SimpleNamespace(SummaryWriter=DroppingWriter)


def _link_data(data_dir: Path, workdir: Path) -> None:
    folder = workdir / "data" / "ml-100k"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("ratings.csv", "movies.csv"):
        link = folder / name
        if not link.exists():
            link.symlink_to((data_dir / name).resolve())
    for name in ("README", "users.csv"):
        (folder / name).touch()


def _cap_training(trainer_class: type, minutes: float) -> None:
    """Make ``trainer_class.validate`` also ask to stop once ``minutes`` of wall time have passed."""
    validate, start = trainer_class.validate, time.monotonic()

    def validate_then_check_time(self, epoch, accum_iter):
        stop = validate(self, epoch, accum_iter)
        return stop or time.monotonic() - start > 60 * minutes
    trainer_class.validate = validate_then_check_time


@torch.no_grad()
def label_ranks(model: torch.nn.Module, test_loader) -> torch.Tensor:
    """(U,) 0-based rank of each test user's label, scored as LlamaRec's ``LRUTrainer.calculate_metrics`` scores
    it (the last position's scores, the input sequence and the padding item set to -1e9)."""
    model.eval()
    ranks = []
    for seqs, labels in test_loader:  # (B, L), (B, 1)
        scores = model(seqs)[:, -1, :]  # (B, N + 1)
        scores.scatter_(1, seqs, -1e9)
        scores[:, 0] = -1e9
        ranks.append((scores > scores.gather(1, labels)).sum(1))
    return torch.cat(ranks)


def run(llamarec_dir: Path, data_dir: Path, workdir: Path, seed: int, max_minutes: float | None = None,
        test_only: bool = False, save_ranks: Path | None = None) -> list[dict[str, object]]:
    """Train (unless ``test_only``) and test LRURec with LlamaRec's code; rows of the test metrics under both
    averagings. ``save_ranks``: also write {"raw_user_ids": (U,), "ranks": (U,)} there, for ``llamarec_average``."""
    workdir.mkdir(parents=True, exist_ok=True)
    _link_data(data_dir, workdir)
    _install_stand_ins()
    sys.argv = ["train_retriever.py", "--dataset_code", "ml-100k", "--seed", str(seed), "--num_workers", "0"]
    sys.path.insert(0, str(llamarec_dir.resolve()))
    os.chdir(workdir)
    import config  # parses sys.argv into config.args, as train_retriever.py does
    from dataloader import dataloader_factory
    from datasets import dataset_factory
    from model import LRURec
    from trainer import LRUTrainer
    args = config.args
    args.model_code = "lru"
    config.set_template(args)
    if max_minutes is not None:
        _cap_training(LRUTrainer, max_minutes)
    # train_retriever.py's main, up to its test (its candidate generation for the re-ranker is not needed)
    sys.modules["pytorch_lightning"].seed_everything(args.seed)
    train_loader, val_loader, test_loader = dataloader_factory(args)
    trainer = LRUTrainer(args, LRURec(args), train_loader, val_loader, test_loader,
                         str(Path(BEST_CHECKPOINT).parents[1]), args.use_wandb)
    if not test_only:
        trainer.train()
    reported = trainer.test()  # loads the best validation checkpoint; LlamaRec's figures
    ranks = label_ranks(trainer.model, test_loader)
    raw_of_dense = {dense: raw for raw, dense in dataset_factory(args).load_dataset()["umap"].items()}
    raw_user_ids = torch.tensor([raw_of_dense[u] for u in test_loader.dataset.users])
    if save_ranks is not None:
        torch.save({"raw_user_ids": raw_user_ids, "ranks": ranks}, save_ranks)
    last = len(ranks) - (len(ranks) % LLAMAREC_BATCH or LLAMAREC_BATCH)
    print(f"LlamaRec's last test batch: raw user ids {raw_user_ids[last:].tolist()}, "
          f"0-based ranks of their test items {ranks[last:].tolist()}")
    per_user = user_metrics(ranks)
    return [{"averaging": "LlamaRec's own (mean of batch means)", **{m: reported[m] for m in METRIC_NAMES}},
            {"averaging": "recomputed: mean of batch means of 16", **{m: batch_mean(per_user[m]) for m in METRIC_NAMES}},
            {"averaging": "mean over users", **{m: float(per_user[m].mean()) for m in METRIC_NAMES}},
            {"averaging": "mean over users, the last batch left out",
             **{m: float(per_user[m][:last].mean()) for m in METRIC_NAMES}}]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks llamarec_lrurec", description=__doc__.split("\n\n")[0])
    parser.add_argument("--llamarec_dir", type=Path, required=True, help="a checkout of github.com/Yueeeeeeee/LlamaRec")
    parser.add_argument("--data_dir", type=Path, required=True, help="the ml-latest-small folder (ratings.csv, movies.csv)")
    parser.add_argument("--workdir", type=Path, required=True, help="where LlamaRec's data/ and experiments/ go")
    parser.add_argument("--seed", type=int, default=42, help="LlamaRec's default seed is 42")
    parser.add_argument("--max_minutes", type=float, default=None, help="stop at the first validation after this")
    parser.add_argument("--test_only", action="store_true", help="test the best checkpoint of a run in --workdir")
    parser.add_argument("--save_ranks", type=Path, default=None, help="write each test user's rank here (.pt)")
    args = parser.parse_args(list(argv or []))
    if not (args.llamarec_dir / "train_retriever.py").is_file():
        parser.error(f"--llamarec_dir {args.llamarec_dir}: no train_retriever.py there")
    if not (args.data_dir / "ratings.csv").is_file():
        parser.error(f"--data_dir {args.data_dir}: no ratings.csv there")
    if args.test_only and not (args.workdir / BEST_CHECKPOINT).is_file():
        parser.error(f"--test_only: no {BEST_CHECKPOINT} in --workdir {args.workdir}; train first")
    rows = run(args.llamarec_dir, args.data_dir.resolve(), args.workdir.resolve(), args.seed, args.max_minutes,
               args.test_only, args.save_ranks and args.save_ranks.resolve())
    print(f"LRURec by LlamaRec's code, seed {args.seed}, test split")
    print(markdown_table(("averaging", *METRIC_NAMES), rows))
    return 0
