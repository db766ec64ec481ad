"""SASRec: self-attentive sequential recommendation (Kang & McAuley, 2018) as a pure nn.Module."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ur4rec.models.dropout import Dropout, draws_cheap_masks, dropout
from ur4rec.models.precision import full_precision

NORMS = ("pre", "post")  # LayerNorm before each sublayer, or after each residual sum (RecBole)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor, p: float,
              training: bool) -> torch.Tensor:
    """Scaled dot-product attention with dropout ``p`` on the weights: q, k, v (B, H, L, Dh); allowed (B, 1, L, L)
    bool, True where a query may attend to a key -> (B, H, L, Dh).

    Training on a CPU, the weights are computed here and dropped with :func:`dropout`'s cheap masks (the
    fused kernel would draw them with ``bernoulli_``, the slowest part of a step); elsewhere the fused kernel."""
    if not (training and p > 0 and draws_cheap_masks(q)):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p if training else 0.0)
    weights = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(~allowed, float("-inf")).softmax(-1)
    return dropout(weights, p, True) @ v


def ridge_map(content: torch.Tensor, target: torch.Tensor, fitted: torch.Tensor, penalty: float) -> torch.Tensor:
    """A ridge regression (``penalty``) of ``target`` (N, T) on ``content`` (N, Dc), fitted on the rows marked
    ``fitted`` (N,) with both sides centred, in closed form; returns every row's prediction (N, T) in float64."""
    x, y = content.double(), target.double()
    x_mean, y_mean = x[fitted].mean(0), y[fitted].mean(0)
    centred = x[fitted] - x_mean  # (K, Dc)
    gram = centred.T @ centred + penalty * torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
    weights = torch.linalg.solve(gram, centred.T @ (y[fitted] - y_mean))  # (Dc, T)
    return y_mean + (x - x_mean) @ weights


class SelfAttentionBlock(nn.Module):
    """Multi-head self-attention + point-wise feed-forward (D -> feedforward_size -> D), both residual, with
    LayerNorm before each (``norm_first``, pre-norm) or after each residual sum (post-norm, as RecBole)."""

    def __init__(self, hidden_size: int, num_heads: int, dropout: float, feedforward_size: int, norm_first: bool = True):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.dropout = dropout
        self.norm_first = norm_first
        self.attn_norm = nn.LayerNorm(hidden_size)
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.out = nn.Linear(hidden_size, hidden_size)
        self.ffn_norm = nn.LayerNorm(hidden_size)
        self.ffn = nn.Sequential(
            nn.Linear(hidden_size, feedforward_size), nn.GELU(), Dropout(dropout),
            nn.Linear(feedforward_size, hidden_size),
        )
        self.residual_dropout = Dropout(dropout)

    def attend(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """x: (B, L, D); allowed: (B, 1, L, L) bool, True where a query may attend to a key -> (B, L, D)."""
        B, L, D = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.num_heads, D // self.num_heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, L, D/H)
        attended = attention(q, k, v, allowed, self.dropout, self.training)  # (B, H, L, D/H)
        return self.out(attended.transpose(1, 2).reshape(B, L, D))

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """x: (B, L, D); allowed: (B, 1, L, L) bool -> (B, L, D)."""
        if self.norm_first:
            x = x + self.residual_dropout(self.attend(self.attn_norm(x), allowed))
            return x + self.residual_dropout(self.ffn(self.ffn_norm(x)))
        x = self.attn_norm(x + self.residual_dropout(self.attend(x, allowed)))
        return self.ffn_norm(x + self.residual_dropout(self.ffn(x)))


class SASRec(nn.Module):
    """Causal transformer over item ids (1..num_items, 0 = padding).

    Positions count from the first real item, so the output does not depend on the padding side;
    a position attends to itself and earlier real items only, and padded positions output zeros.

    With ``content_dim > 0`` an item is represented, at the input and as a scoring target, by its ID
    embedding plus a linear projection of its content vector (``set_item_content``). An item outside
    ``item_known`` (never in training) has one learned "unknown item" vector in place of its ID
    embedding, so an untrained embedding never decides its rank. ``id_dropout`` gives that fraction of
    items the unknown vector at each training call, so the content term learns to rank an item on its
    own and the unknown vector learns how much probability such an item deserves.

    With ``new_item_ridge`` set (and ``content_dim > 0``) items keep their ID embeddings alone, and only
    when ranking does a new item get the ridge map of its content vector onto the trained ID embeddings
    (``mapped_content``), so a known item's score is plain SASRec's.

    ``norm="pre"`` scales item embeddings by sqrt(D), normalizes before each sublayer and once at the end;
    ``"post"`` is RecBole's layout: the embedding sum is normalized, and each residual sum after it.
    """

    def __init__(self, num_items: int, hidden_size: int = 64, num_blocks: int = 2, num_heads: int = 2,
                 dropout: float = 0.2, max_seq_len: int = 50, content_dim: int = 0, id_dropout: float = 0.0,
                 feedforward_size: int | None = None, norm: str = "pre", new_item_ridge: float | None = None):
        super().__init__()
        self.num_items = num_items
        self.id_dropout = id_dropout
        self.new_item_ridge = new_item_ridge
        self._mapped: tuple[tuple, torch.Tensor] | None = None  # (what it was computed from, the mapped table)
        self.item_embedding = nn.Embedding(num_items + 1, hidden_size, padding_idx=0)
        additive = content_dim > 0 and new_item_ridge is None  # the content term is part of every item
        self.content_projection = nn.Linear(content_dim, hidden_size, bias=False) if additive else None
        self.unknown_item = nn.Parameter(torch.zeros(hidden_size)) if additive else None
        # The content table and the items trained on come from the data: derived, not checkpointed.
        self.register_buffer("item_content", torch.zeros(num_items + 1, content_dim), persistent=False)
        self.register_buffer("item_known", torch.ones(num_items + 1, dtype=torch.bool), persistent=False)
        self.position_embedding = nn.Embedding(max_seq_len, hidden_size)
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        self.embedding_scale = math.sqrt(hidden_size) if norm == "pre" else 1.0
        self.input_norm = nn.LayerNorm(hidden_size) if norm == "post" else nn.Identity()
        self.embedding_dropout = Dropout(dropout)
        self.blocks = nn.ModuleList(
            SelfAttentionBlock(hidden_size, num_heads, dropout, feedforward_size or hidden_size, norm == "pre")
            for _ in range(num_blocks)
        )
        self.final_norm = nn.LayerNorm(hidden_size) if norm == "pre" else nn.Identity()
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.trunc_normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            nn.init.zeros_(module.weight[module.padding_idx])

    def set_item_content(self, content: torch.Tensor, known: torch.Tensor) -> None:
        """content: (N + 1, Dc) item vectors; known: (N + 1,) bool, the items some training sequence holds."""
        self.item_content.copy_(content)
        self.item_known.copy_(known)

    def item_table(self) -> torch.Tensor:
        """Every item's representation (N + 1, D): its ID embedding, plus its projected content when built
        with ``content_dim`` (then only known items keep their ID embedding, a fraction ``id_dropout`` fewer in
        training; the others have the unknown-item vector)."""
        ids = self.item_embedding.weight  # (N + 1, D)
        if self.new_item_ridge is not None and not self.training:  # new items are never targets in training
            return torch.where(self.item_known[:, None], ids, self.cached_mapped_content(ids))
        if self.content_projection is None:
            return ids
        keep = self.item_known
        if self.training and self.id_dropout > 0:
            keep = keep & (torch.rand(keep.shape, device=keep.device) >= self.id_dropout)
        return torch.where(keep[:, None], ids, self.unknown_item) + self.content_projection(self.item_content)

    def cached_mapped_content(self, ids: torch.Tensor) -> torch.Tensor:
        """``mapped_content(ids)``, computed again only when the embeddings, the content, the known items or the
        penalty changed since the last call (every in-place change bumps a tensor's version), so ranking
        in batches solves the regression once per evaluation, not once per batch."""
        key = tuple((t.data_ptr(), t._version) for t in (ids, self.item_content, self.item_known)) + (self.new_item_ridge,)
        if self._mapped is None or self._mapped[0] != key:
            self._mapped = key, self.mapped_content(ids)
        return self._mapped[1]

    @torch.no_grad()
    def mapped_content(self, ids: torch.Tensor) -> torch.Tensor:
        """Every item's content vector mapped onto the ID embedding space (N + 1, D): ``ridge_map`` of the
        known items' ID embedding rows ``ids`` (N + 1, D) on their content (Gantner et al., 2010,
        attribute-to-feature mapping)."""
        known = self.item_known.clone()
        known[0] = False  # padding
        return ridge_map(self.item_content, ids, known, self.new_item_ridge).to(ids.dtype)

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        """items: (B, L) ids with 0 as padding on either side -> hidden states (B, L, D), zero at padding."""
        real = items > 0  # (B, L)
        positions = (real.cumsum(1) - 1).clamp(min=0)  # (B, L) index among real items
        items_in = F.embedding(items, self.item_table(), padding_idx=0)  # (B, L, D)
        x = self.input_norm(items_in * self.embedding_scale + self.position_embedding(positions))
        x = self.embedding_dropout(x) * real[..., None]
        L = items.shape[1]
        causal = torch.ones(L, L, dtype=torch.bool, device=items.device).tril()  # (L, L)
        eye = torch.eye(L, dtype=torch.bool, device=items.device)
        allowed = (causal & real[:, None, :]) | eye  # (B, L, L): real keys up to the query, and itself
        allowed = allowed[:, None]  # (B, 1, L, L)
        for block in self.blocks:
            x = block(x, allowed) * real[..., None]
        return self.final_norm(x) * real[..., None]

    def user_state(self, items: torch.Tensor) -> torch.Tensor:
        """Hidden state at the last real position of each row: (B, L) -> (B, D)."""
        hidden = self(items)  # (B, L, D); through __call__ so a compiled forward is used
        last = torch.arange(items.shape[1], device=items.device).expand_as(items).masked_fill(items == 0, -1).amax(1)
        return hidden[torch.arange(items.shape[0], device=items.device), last.clamp(min=0)]

    def score_all(self, states: torch.Tensor) -> torch.Tensor:
        """Dot-product scores of states (..., D) against every item -> (..., num_items + 1); column 0 is padding.

        Always float32, also under autocast: bf16 products leave a few hundred distinct scores over the
        catalog, and the ties would count against every tied target."""
        with full_precision(states.device):
            return states.float() @ self.item_table().float().T
