"""Histograms of the router's per-user expert weights at each validation, for W&B dashboards."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.loggers import WandbLogger


class RouterHistograms(L.Callback):
    """Logs ``val/router_<expert>_hist``: a ``wandb.Histogram`` of every validation user's router weight
    for that expert (the module logs their means as ``val/router_<expert>``).

    The weights are read by a forward hook on the retriever during validation epochs, so nothing runs
    twice; epochs that score with SASRec alone (``pretrain_sasrec``) log no histogram. Only W&B loggers
    receive them, and only from rank 0 (which sees its own shard of users under DDP).
    """

    def __init__(self, num_bins: int = 32):
        self.num_bins = num_bins
        self._weights: list[torch.Tensor] = []
        self._hook = None

    @staticmethod
    def _wandb_loggers(trainer: L.Trainer) -> list[WandbLogger]:
        return [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._weights = []
        retriever = pl_module.net.retriever
        if retriever is None or trainer.sanity_checking or trainer.global_rank != 0 \
                or not self._wandb_loggers(trainer):
            return
        self._hook = retriever.register_forward_hook(
            lambda module, inputs, output: self._weights.append(output.weights.detach().float().cpu()))  # (B, E)

    def _remove_hook(self) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._remove_hook()

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._remove_hook()
        if not self._weights:
            return
        import wandb

        weights = torch.cat(self._weights)  # (users, E)
        self._weights = []
        histograms = {f"val/router_{expert}_hist": wandb.Histogram(weights[:, e].numpy(), num_bins=self.num_bins)
                      for e, expert in enumerate(pl_module.net.retriever.experts)}
        for logger in self._wandb_loggers(trainer):
            logger.log_metrics(histograms, step=trainer.global_step)
