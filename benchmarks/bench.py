"""Benchmark: data preparation, training throughput, seconds per epoch, full-ranking evaluation, memory.

    python -m benchmarks bench --data_dir ../shared/data/ml-100k [--epochs 5] [--batch_size 128] [--loss ce]
                               [--window_stride 10] [--compile inductor]

Training runs through a real ``Trainer`` (the same code path as ``cli.py fit``), without validation;
the first epoch is a warm-up and excluded from the per-epoch figure.
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import time

import lightning as L
import torch

from ur4rec.cli import negatives_for_loss
from ur4rec.datamodule import UR4RecDataModule
from ur4rec.metrics import full_ranking_ranks
from ur4rec.models.configs import SASRecConfig
from ur4rec.module import UR4RecModule


class EpochTimer(L.Callback):
    """Wall-clock seconds of every training epoch."""

    def __init__(self):
        self.seconds: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module):
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        self.seconds.append(time.perf_counter() - self._start)


@torch.no_grad()
def time_full_ranking(model: UR4RecModule, datamodule: UR4RecDataModule, device: torch.device,
                      repeats: int = 3) -> float:
    """Best-of-``repeats`` seconds to score and rank every item for every user (test split) on ``device``."""
    model.eval().to(device)
    batches = [{k: v.to(device) for k, v in batch.items()} for batch in datamodule.test_dataloader()]
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for batch in batches:
            ranks = full_ranking_ranks(model.net.scores(batch, model.score_mode)[0], batch["target"], batch["history"])
        ranks.sum().item()  # wait for the device
        best = min(best, time.perf_counter() - start)
    return best


def run_benchmark(data_dir: str, epochs: int = 5, batch_size: int = 128, min_rating: float = 4,
                  min_user_interactions: int = 5, accelerator: str = "cpu", loss: str = "ce",
                  eval_batch_size: int = 1024, window_stride: int | None = None,
                  compile_backend: str | None = None) -> dict[str, float]:
    """Prepare the data, train ``epochs`` epochs of SASRec with ``loss``, time a full-ranking test pass."""
    start = time.perf_counter()
    datamodule = UR4RecDataModule(data_dir, min_rating=min_rating, min_user_interactions=min_user_interactions,
                                  batch_size=batch_size, eval_batch_size=eval_batch_size,
                                  train_negatives=negatives_for_loss(loss), window_stride=window_stride)
    splits = datamodule.load()
    results: dict[str, float] = {"prepare_s": time.perf_counter() - start, "users": splits.num_users,
                                 "items": splits.num_items, "interactions": splits.num_interactions}

    L.seed_everything(0, verbose=False)
    model = UR4RecModule(num_items=splits.num_items, sasrec=SASRecConfig(loss=loss, compile=compile_backend))
    timer = EpochTimer()
    trainer = L.Trainer(max_epochs=epochs, accelerator=accelerator, devices=1, limit_val_batches=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[timer])
    trainer.fit(model, datamodule)
    epoch_s = statistics.median(timer.seconds[1:] or timer.seconds)
    positions = datamodule.train_dataloader().dataset.target_positions
    results.update(compiled=model.net.sasrec._compiled_call_impl is not None, epoch_s=epoch_s, sequences_per_s=splits.num_users / epoch_s, positions_per_s=positions / epoch_s,
                   eval_full_ranking_s=time_full_ranking(model, datamodule, trainer.strategy.root_device),
                   peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if torch.cuda.is_available() and accelerator != "cpu":
        results["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--min_rating", type=float, default=4)
    parser.add_argument("--min_user_interactions", type=int, default=5)
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--loss", default="ce", choices=("ce", "bce", "bpr"))
    parser.add_argument("--window_stride", type=int, default=None, help="sliding-window stride (default max_seq_len)")
    parser.add_argument("--compile", default=None, help="a torch.compile backend for SASRec (e.g. inductor)")
    args = parser.parse_args(argv)
    results = run_benchmark(args.data_dir, args.epochs, args.batch_size, args.min_rating, args.min_user_interactions,
                            args.accelerator, args.loss, window_stride=args.window_stride, compile_backend=args.compile)
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}")
    print(f"data: {args.data_dir}: {results['users']} users, {results['items']} items, "
          f"{results['interactions']} interactions")
    print(f"data preparation:        {results['prepare_s']:.2f} s")
    print(f"SASRec:                  {'compiled (' + args.compile + ')' if results['compiled'] else 'eager'}")
    print(f"seconds per epoch:       {results['epoch_s']:.2f} s (median of epochs 2..{args.epochs})")
    print(f"training throughput:     {results['sequences_per_s']:.0f} sequences/s, "
          f"{results['positions_per_s']:.0f} target positions/s")
    print(f"full-ranking evaluation: {results['eval_full_ranking_s']:.3f} s for all {results['users']} users")
    print(f"peak memory:             {results['peak_rss_mib']:.0f} MiB RSS"
          + (f", {results['peak_cuda_mib']:.0f} MiB CUDA" if "peak_cuda_mib" in results else ""))


if __name__ == "__main__":
    main()
