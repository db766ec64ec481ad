"""Next-item losses over hidden states: full-softmax cross-entropy, BCE and BPR with sampled negatives."""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("ce", "bce", "bpr")


def next_item_loss(hidden: torch.Tensor, target: torch.Tensor, item_weight: torch.Tensor, kind: str = "ce",
                   negative: torch.Tensor | None = None, drop_padding: bool | None = None) -> torch.Tensor:
    """Mean loss over real positions (target > 0).

    hidden: (B, L, D) states; target: (B, L) next items (0 = padding); item_weight: (N + 1, D) item
    embeddings (row 0 = padding); negative: (B, L, K) sampled negatives, needed for ``bce``/``bpr``.
    ``drop_padding`` (default: on CPU only) indexes the padding rows away before the full-softmax
    logits, which saves work; otherwise they are masked out of the mean, so shapes never depend on the
    data (on an accelerator, indexing by a mask is a host-device synchronization).
    """
    if kind == "ce":
        if hidden.device.type == "cpu" if drop_padding is None else drop_padding:
            real = target > 0
            hidden, target = hidden[real], target[real]  # (P, D), (P,)
        logits = hidden @ item_weight.T  # (B, L, N + 1), or (P, N + 1) on CPU
        logits[..., 0] = float("-inf")  # padding is never a candidate
        return F.cross_entropy(logits.flatten(0, -2), target.flatten(), ignore_index=0)
    if kind not in LOSSES:
        raise ValueError(f"unknown loss {kind!r}; choose one of {LOSSES}")
    if negative is None:
        raise ValueError(f"loss {kind!r} needs sampled negatives (set data.train_negatives > 0)")
    real = (target > 0).to(hidden.dtype)  # (B, L)
    pos_logit = (hidden * item_weight[target]).sum(-1)  # (B, L)
    neg_logit = torch.einsum("bld,blkd->blk", hidden, item_weight[negative])  # (B, L, K)
    if kind == "bce":
        per_position = F.binary_cross_entropy_with_logits(pos_logit, torch.ones_like(pos_logit), reduction="none") \
            + F.binary_cross_entropy_with_logits(neg_logit, torch.zeros_like(neg_logit), reduction="none").mean(-1)
    else:
        per_position = -F.logsigmoid(pos_logit[..., None] - neg_logit).mean(-1)  # (B, L)
    return (per_position * real).sum() / real.sum().clamp(min=1)


def bidirectional_distillation(sasrec_scores: torch.Tensor, retriever_scores: torch.Tensor,
                               temperature: float = 2.0, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mutual distillation between the two score distributions over items 1..N.

    SASRec learns from the retriever's softened distribution (retriever detached as teacher) and the
    retriever from SASRec's (SASRec detached); scaled by T^2 as in Hinton et al. Inputs (P, N + 1);
    ``mask`` (P,) bool keeps the rows that are real transitions (default all); the loss is their mean.
    """
    s = (sasrec_scores[:, 1:] / temperature).clamp(min=-1e4)  # an item no expert scores is -inf
    r = (retriever_scores[:, 1:] / temperature).clamp(min=-1e4)
    to_sasrec = F.kl_div(s.log_softmax(-1), r.detach().log_softmax(-1), log_target=True, reduction="none")
    to_retriever = F.kl_div(r.log_softmax(-1), s.detach().log_softmax(-1), log_target=True, reduction="none")
    per_row = (to_sasrec + to_retriever).sum(-1)  # (P,)
    rows = torch.ones_like(per_row) if mask is None else mask.to(per_row.dtype)
    return temperature ** 2 * (per_row * rows).sum() / rows.sum().clamp(min=1)
