"""Off the CPU, training and evaluation steps never synchronize with the host.

Tensors on the ``meta`` device carry shapes but no data, so anything that needs the data on the host
(``.item()``, ``bool(tensor)``, boolean-mask indexing, ``nonzero``) raises there; on a GPU each of those
is a sync. (On CPU the SASRec loss indexes padding away first, which costs nothing there.) By design the
training step has two syncs outside ``UR4Rec.losses``: whether the loss is finite (skip the step or
not) and the alternating rule's loss reduction (which optimizer steps next).
"""

from __future__ import annotations

import pytest
import torch

from ur4rec.metrics import full_ranking_ranks, sampled_ranks
from ur4rec.models.configs import LossWeights, RetrieverConfig, SASRecConfig
from ur4rec.models.ur4rec import UR4Rec
from ur4rec.vocabulary import STAGE_POLICY

N, B, L = 30, 4, 12
META = torch.device("meta")


def module(loss: str = "ce", **loss_weights) -> UR4Rec:
    torch.manual_seed(0)
    return UR4Rec(N, L, 8, 4, SASRecConfig(hidden_size=16, loss=loss),
                  RetrieverConfig(hidden_size=16, positions=5, recent_content=3),
                  LossWeights(contrastive_queue_size=6, **loss_weights)).to(META)


def training_batch(negatives: int = 0) -> dict[str, torch.Tensor]:
    items = torch.randint(1, N + 1, (B, L + 1))
    items[:, :3] = 0  # left padding
    batch = {"input": items[:, :-1], "target": items[:, 1:], "user_text": torch.randn(B, 8), "user": torch.arange(B)}
    if negatives:
        batch["negative"] = torch.randint(1, N + 1, (B, L, negatives))
    return {k: v.to(META) for k, v in batch.items()}


@pytest.mark.parametrize("stage", ["pretrain_sasrec", "pretrain_retriever", "joint_finetune", "end_to_end"])
@pytest.mark.parametrize("options", [{}, {"contrastive": 0.1, "distill": 0.1}, {"loss": "bce"},
                                     {"loss": "bpr"}], ids=["ce", "strategies", "bce", "bpr"])
def test_losses_and_backward_need_no_host_values(stage, options):
    model = module(**options)
    batch = training_batch(negatives=3 if options.get("loss") in ("bce", "bpr") else 0)
    model.losses(batch, STAGE_POLICY[stage].objective)["total"].backward()


def test_meta_tensors_catch_host_syncs():
    scores = torch.randn(3, device=META)
    with pytest.raises(RuntimeError):
        bool((scores > 0).any())
    with pytest.raises(NotImplementedError):
        scores[scores > 0]


@pytest.mark.parametrize("score_mode", ["sasrec", "retriever", "fused"])
def test_evaluation_needs_no_host_values(score_mode):
    model = module().eval()
    batch = {"input": training_batch()["input"], "user_text": torch.randn(B, 8, device=META),
             "target": torch.randint(1, N + 1, (B,)).to(META), "history": torch.randint(0, N + 1, (B, L)).to(META),
             "candidates": torch.randint(1, N + 1, (B, 10)).to(META)}
    with torch.no_grad():
        scores, _ = model.scores(batch, score_mode)
        full_ranking_ranks(scores, batch["target"], batch["history"])
        sampled_ranks(scores, batch["candidates"])
