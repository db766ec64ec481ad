"""Off the CPU, training and evaluation steps never synchronize with the host.

Tensors on the ``meta`` device carry shapes but no data, so anything that needs the data on the host
(``.item()``, ``bool(tensor)``, boolean-mask indexing, ``nonzero``) raises there; on a GPU each of those
is a sync. (On CPU the SASRec loss indexes padding away first, which costs nothing there.) By design the
training step has two syncs outside ``compute_losses``: whether the loss is finite (skip the step or
not) and the alternating rule's loss reduction (which optimizer steps next).
"""

from __future__ import annotations

import pytest
import torch

from ur4rec.metrics import full_ranking_ranks, sampled_ranks
from ur4rec.models.retriever import EXPERTS
from ur4rec.module import UR4RecModule

N, B, L = 30, 4, 12
META = torch.device("meta")


def module(**kwargs) -> UR4RecModule:
    torch.manual_seed(0)
    return UR4RecModule(num_items=N, max_seq_len=L, hidden_size=16, experts=EXPERTS, text_dim=8, image_dim=4,
                        retriever_hidden_size=16, retriever_positions=5, contrastive_queue_size=6, recent_content=3, **kwargs).to(META)


def training_batch(negatives: int = 0) -> dict[str, torch.Tensor]:
    items = torch.randint(1, N + 1, (B, L + 1))
    items[:, :3] = 0  # left padding
    batch = {"input": items[:, :-1], "target": items[:, 1:], "user_text": torch.randn(B, 8), "user": torch.arange(B)}
    if negatives:
        batch["negative"] = torch.randint(1, N + 1, (B, L, negatives))
    return {k: v.to(META) for k, v in batch.items()}


@pytest.mark.parametrize("stage", ["pretrain_sasrec", "pretrain_retriever", "joint_finetune", "end_to_end"])
@pytest.mark.parametrize("options", [{}, {"contrastive_weight": 0.1, "distill_weight": 0.1}, {"loss": "bce"},
                                     {"loss": "bpr"}], ids=["ce", "strategies", "bce", "bpr"])
def test_losses_and_backward_need_no_host_values(stage, options):
    model = module(**options)
    model.stage = stage
    batch = training_batch(negatives=3 if options.get("loss") in ("bce", "bpr") else 0)
    model.compute_losses(batch)["total"].backward()


def test_meta_tensors_catch_host_syncs():
    scores = torch.randn(3, device=META)
    with pytest.raises(RuntimeError):
        bool((scores > 0).any())
    with pytest.raises(NotImplementedError):
        scores[scores > 0]


@pytest.mark.parametrize("score_mode", ["sasrec", "retriever", "fused"])
def test_evaluation_needs_no_host_values(score_mode):
    model = module().eval()
    model.score_mode = score_mode
    batch = {"input": training_batch()["input"], "user_text": torch.randn(B, 8, device=META),
             "target": torch.randint(1, N + 1, (B,)).to(META), "history": torch.randint(0, N + 1, (B, L)).to(META),
             "candidates": torch.randint(1, N + 1, (B, 10)).to(META)}
    with torch.no_grad():
        scores, _ = model.score_batch(batch)
        full_ranking_ranks(scores, batch["target"], batch["history"])
        sampled_ranks(scores, batch["candidates"])
