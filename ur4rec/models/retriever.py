"""Multimodal retriever: three experts (preference text, description text, poster image) and a router."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ur4rec.models.dropout import Dropout
from ur4rec.models.precision import full_precision

EXPERTS = ("preference", "description", "image")


def projection(in_dim: int, out_dim: int, dropout: float) -> nn.Module:
    """Two-layer MLP mapping a frozen feature (text or image vector) into the retriever space."""
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), Dropout(dropout), nn.Linear(out_dim, out_dim))


@dataclass
class RetrieverOutput:
    scores: torch.Tensor  # (B, N + 1) mixture score; column 0 (padding) is -inf
    weights: torch.Tensor  # (B, E) router weights before per-item renormalization
    expert_scores: dict[str, torch.Tensor]  # name -> (B, N + 1) scaled cosine scores


class MoERetriever(nn.Module):
    """Scores every item for a batch of users as a router-weighted sum of expert scores.

    * ``preference``: the user's preference-text vector against the item (text projection + id embedding);
    * ``description``: the user context (SASRec state + preference vector, optionally the mean text vector of
      the latest items) against the item's description vector;
    * ``image``: the user context against the item's poster vector.

    Each expert score is a cosine similarity times a learned scale, so experts share one range. An
    expert whose input is missing for an item (no poster) drops out for that item and the router's
    weights renormalize over the rest. Experts left out of ``experts`` are not built (ablations).
    """

    def __init__(self, num_items: int, state_dim: int, text_dim: int, image_dim: int, hidden_size: int = 64,
                 experts: tuple[str, ...] = EXPERTS, dropout: float = 0.1, init_scale: float = 10.0,
                 recent_text: bool = False):
        super().__init__()
        unknown = set(experts) - set(EXPERTS)
        if unknown or not experts:
            raise ValueError(f"experts must be a non-empty subset of {EXPERTS}, got {experts}")
        self.experts = tuple(e for e in EXPERTS if e in experts)
        self.user_preference = projection(text_dim, hidden_size, dropout)
        self.user_recent = projection(text_dim, hidden_size, dropout) if recent_text else None
        self.user_context = projection(state_dim + hidden_size * (2 if recent_text else 1), hidden_size, dropout)
        self.router = nn.Linear(hidden_size, len(self.experts))
        if "preference" in self.experts:
            self.preference_items = projection(text_dim, hidden_size, dropout)
            self.item_embedding = nn.Embedding(num_items + 1, hidden_size, padding_idx=0)
            nn.init.normal_(self.item_embedding.weight, std=0.02)
        if "description" in self.experts:
            self.description_items = projection(text_dim, hidden_size, dropout)
        if "image" in self.experts:
            self.image_items = projection(image_dim, hidden_size, dropout)
        self.log_scale = nn.Parameter(torch.full((len(self.experts),), math.log(init_scale)))

    def forward(self, state: torch.Tensor, user_text: torch.Tensor, item_text: torch.Tensor,
                item_image: torch.Tensor, image_mask: torch.Tensor,
                recent_text: torch.Tensor | None = None, item_seen: torch.Tensor | None = None) -> RetrieverOutput:
        """state: (B, Ds) SASRec user state; user_text: (B, Dt); item_text: (N + 1, Dt);
        item_image: (N + 1, Di); image_mask: (N + 1,) bool, True where the item has a poster;
        recent_text: (B, Dt) mean text vector of the user's latest items (when built with ``recent_text``);
        item_seen: (N + 1,) bool, the items trained on: the others' ID embeddings never trained, so the
        preference expert scores them from their text alone."""
        preference = self.user_preference(user_text)  # (B, H)
        if (self.user_recent is None) != (recent_text is None):
            raise ValueError(f"this retriever was built with recent_text={self.user_recent is not None}; "
                             f"got recent_text={None if recent_text is None else tuple(recent_text.shape)}")
        parts = [state, preference] + ([self.user_recent(recent_text)] if self.user_recent is not None else [])
        context = self.user_context(torch.cat(parts, dim=-1))  # (B, H)
        weights = self.router(context).softmax(-1)  # (B, E)
        num_rows = item_text.shape[0]
        has_item = torch.ones(num_rows, dtype=torch.bool, device=item_text.device)
        has_item[0] = False
        scales = self.log_scale.clamp(max=math.log(100.0)).exp()  # (E,)
        expert_scores, available = {}, []
        for e, name in enumerate(self.experts):
            if name == "preference":
                ids = self.item_embedding.weight if item_seen is None else self.item_embedding.weight * item_seen[:, None]
                items = self.preference_items(item_text) + ids  # (N + 1, H)
                query, present = preference, has_item
            elif name == "description":
                items, query, present = self.description_items(item_text), context, has_item
            else:
                items, query, present = self.image_items(item_image), context, has_item & image_mask
            with full_precision(query.device):  # float32 scores: bf16 would tie most targets
                cosine = F.normalize(query.float(), dim=-1) @ F.normalize(items.float(), dim=-1).T  # (B, N + 1)
            expert_scores[name] = scales[e] * cosine
            available.append(present)
        available = torch.stack(available).to(weights.dtype)  # (E, N + 1)
        norm = weights @ available  # (B, N + 1) total weight of the experts present for each item
        mixed = sum(weights[:, e, None] * available[e] * expert_scores[name] for e, name in enumerate(self.experts))
        scores = (mixed / norm.clamp(min=1e-12)).masked_fill(norm == 0, float("-inf"))  # (B, N + 1)
        return RetrieverOutput(scores, weights, expert_scores)


def load_balance_loss(weights: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """0 when the batch-mean router weights are uniform, up to E - 1 when one expert takes everything.

    weights: (B, E), mask: (B,) bool rows to count (default all) -> scalar ``E * sum_e mean_b(w)^2 - 1``
    (the Switch-Transformer importance loss).
    """
    if mask is None:
        mask = torch.ones(weights.shape[0], dtype=torch.bool, device=weights.device)
    rows = mask.to(weights.dtype)[:, None]  # (B, 1)
    mean = (weights * rows).sum(0) / rows.sum().clamp(min=1)  # (E,)
    return (weights.shape[1] * (mean * mean).sum() - 1) * (rows.sum() > 0)  # 0 when no row counts
