"""UR4RecModule: the LightningModule that trains and evaluates the recommenders (manual optimization)."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import nn

from ur4rec.metrics import full_ranking_ranks, ranking_metrics, sampled_ranks
from ur4rec.models.losses import LOSSES, next_item_loss
from ur4rec.models.sasrec import SASRec


def _adam(params) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=1e-3)


class UR4RecModule(L.LightningModule):
    """Trains SASRec on next-item prediction and evaluates full-ranking and sampled metrics.

    Args:
        num_items: catalog size N (items are 1..N); linked from the DataModule.
        max_seq_len: input window length; linked from the DataModule.
        hidden_size, num_blocks, num_heads, dropout: SASRec architecture.
        loss: ``ce`` (full softmax), ``bce`` or ``bpr`` (sampled negatives from the DataModule).
        sasrec_optimizer: builds the SASRec optimizer from its parameters.
        gradient_clip_val: max gradient norm (None disables clipping).
        eval_ks: cut-offs for Hit@K and NDCG@K.
    """

    def __init__(
        self,
        num_items: int,
        max_seq_len: int = 50,
        hidden_size: int = 64,
        num_blocks: int = 2,
        num_heads: int = 2,
        dropout: float = 0.2,
        loss: str = "ce",
        sasrec_optimizer: OptimizerCallable = _adam,
        gradient_clip_val: float | None = 1.0,
        eval_ks: tuple[int, ...] = (5, 10, 20),
    ):
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"model.loss must be one of {LOSSES}, got {loss!r}")
        self.save_hyperparameters(ignore=["sasrec_optimizer"])
        self.automatic_optimization = False
        self.sasrec_optimizer = sasrec_optimizer
        self.sasrec = SASRec(num_items, hidden_size, num_blocks, num_heads, dropout, max_seq_len)
        self.val_metrics = nn.ModuleDict({**ranking_metrics(eval_ks), **ranking_metrics(eval_ks, "_sampled")})
        self.test_metrics = nn.ModuleDict({**ranking_metrics(eval_ks), **ranking_metrics(eval_ks, "_sampled")})

    def configure_optimizers(self):
        return [self.sasrec_optimizer(self.sasrec.parameters())]

    # ------------------------------------------------------------------------------------------ scoring

    def score_items(self, input_items: torch.Tensor) -> torch.Tensor:
        """Scores of every item for each user's visible window: (B, L) -> (B, N + 1); column 0 = padding."""
        return self.sasrec.score_all(self.sasrec.user_state(input_items))

    # ------------------------------------------------------------------------------------------ training

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        optimizer = self.optimizers()
        hidden = self.sasrec(batch["input"])  # (B, L, D)
        loss = next_item_loss(hidden, batch["target"], self.sasrec.item_embedding.weight, self.hparams.loss,
                              batch.get("negative"))
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if self.hparams.gradient_clip_val:
            self.clip_gradients(optimizer, gradient_clip_val=self.hparams.gradient_clip_val, gradient_clip_algorithm="norm")
        optimizer.step()
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["input"].shape[0])
        return loss

    # ------------------------------------------------------------------------------------------ evaluation

    def _evaluate(self, batch: dict[str, torch.Tensor], split: str, metrics: nn.ModuleDict) -> None:
        scores = self.score_items(batch["input"])  # (B, N + 1)
        full = full_ranking_ranks(scores, batch["target"], batch["history"])  # (B,)
        sampled = sampled_ranks(scores, batch["candidates"])  # (B,)
        for name, metric in metrics.items():
            metric.update(sampled if name.endswith("_sampled") else full)
            self.log(f"{split}/{name}", metric, batch_size=scores.shape[0])

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val", self.val_metrics)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test", self.test_metrics)
