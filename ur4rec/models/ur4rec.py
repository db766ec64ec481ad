"""UR4Rec as one plain ``nn.Module``: SASRec, the mixture-of-experts retriever, their fusion and the losses.

The model knows nothing of stages, optimizers or the Trainer: ``scores(batch, mode)`` ranks items
(``mode`` in ``vocabulary.SCORE_MODES``) and ``losses(batch, objective)`` computes one objective
(``vocabulary.OBJECTIVES``). Hyperparameters come in three groups, so a config reads as the model's
structure (``ur4rec.models.configs``): ``SASRecConfig``, ``RetrieverConfig`` (None = SASRec alone) and
``LossWeights``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ur4rec.errors import check
from ur4rec.models.configs import LossWeights, RetrieverConfig, SASRecConfig
from ur4rec.models.contrastive import MemoryBankContrastive
from ur4rec.models.fusion import ScoreFusion
from ur4rec.models.losses import bidirectional_distillation, next_item_loss
from ur4rec.models.retriever import MoERetriever, RetrieverOutput, load_balance_loss
from ur4rec.models.sasrec import SASRec
from ur4rec.vocabulary import (
    MODULES, OBJECTIVE_JOINT, OBJECTIVE_RETRIEVER, OBJECTIVE_SASREC, OBJECTIVES, RETRIEVER, SASREC, SCORE_MODES,
    SCORE_RETRIEVER, SCORE_SASREC,
)

IGNORE = -100  # target of a position that takes no part in a loss


def masked_cross_entropy(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy (P, N + 1) x (P,) averaged over targets other than ``IGNORE``; 0 when all are ignored."""
    total = F.cross_entropy(scores, targets, ignore_index=IGNORE, reduction="sum")
    return total / (targets != IGNORE).sum().clamp(min=1)


class UR4Rec(nn.Module):
    """SASRec, optionally with the retriever, its fusion and the optional contrastive head.

    Args:
        num_items: catalog size N (items 1..N, 0 = padding).
        max_seq_len: input window length.
        text_dim, image_dim: sizes of the item/user feature vectors (needed with a retriever).
    """

    def __init__(self, num_items: int, max_seq_len: int = 50, text_dim: int = 0, image_dim: int = 0,
                 sasrec: SASRecConfig | None = None, retriever: RetrieverConfig | None = None,
                 loss_weights: LossWeights | None = None):
        super().__init__()
        sasrec, self.weights = sasrec or SASRecConfig(), loss_weights or LossWeights()
        for config in (sasrec, retriever, self.weights):
            if config is not None:
                config.validate()  # here, not in __post_init__: a bad value is one ConfigError naming its key
        self.sasrec_config, self.retriever_config = sasrec, retriever
        check(not sasrec.reads_content or text_dim > 0, "model.sasrec.new_item_ridge" if sasrec.new_item_ridge
              else "model.sasrec.content", "needs the item text vectors (data.features, linked by the CLI); got text_dim=0")
        self.sasrec = SASRec(num_items, sasrec.hidden_size, sasrec.num_blocks, sasrec.num_heads, sasrec.dropout,
                             max_seq_len, text_dim if sasrec.reads_content else 0, sasrec.id_dropout,
                             sasrec.feedforward_size, sasrec.norm, sasrec.new_item_ridge)
        if sasrec.compile:
            self.sasrec.compile(backend=sasrec.compile)
        self.retriever: MoERetriever | None = None
        self.fusion: ScoreFusion | None = None
        self.contrastive: MemoryBankContrastive | None = None
        if retriever is not None:
            check(text_dim > 0 and ("image" not in retriever.experts or image_dim > 0), "model.retriever",
                  f"needs feature dimensions (data.features, linked by the CLI); got text_dim={text_dim}, "
                  f"image_dim={image_dim}")
            self.retriever = MoERetriever(num_items, sasrec.hidden_size, text_dim, max(image_dim, 1),
                                          retriever.hidden_size, retriever.experts, retriever.dropout,
                                          recent_text=retriever.recent_content > 0)
            self.fusion = ScoreFusion(retriever.fusion_weight, retriever.learned_fusion)
            if self.weights.contrastive > 0:
                self.contrastive = MemoryBankContrastive(sasrec.hidden_size, text_dim, retriever.hidden_size,
                                                         self.weights.contrastive_queue_size,
                                                         self.weights.contrastive_temperature)
            # Item feature tables, set from the data (set_item_features); derived data, not checkpointed.
            self.register_buffer("item_text", torch.zeros(num_items + 1, text_dim), persistent=False)
            self.register_buffer("item_image", torch.zeros(num_items + 1, max(image_dim, 1)), persistent=False)
            self.register_buffer("image_mask", torch.zeros(num_items + 1, dtype=torch.bool), persistent=False)
            self.register_buffer("item_seen", torch.ones(num_items + 1, dtype=torch.bool), persistent=False)

    @property
    def needs_features(self) -> bool:
        """Whether the item feature tables take part (``set_item_features``): a retriever or SASRec's content."""
        return self.retriever is not None or self.sasrec_config.reads_content

    @property
    def module_names(self) -> tuple[str, ...]:
        """The modules that own parameters and an optimizer: SASRec, and the retriever when built."""
        return MODULES if self.retriever is not None else MODULES[:1]

    def module_parameters(self, name: str) -> list[nn.Parameter]:
        """Parameters of one module; the retriever's include the fusion and the contrastive head."""
        if name == SASREC:
            return list(self.sasrec.parameters())
        heads = [self.retriever, self.fusion] + ([self.contrastive] if self.contrastive is not None else [])
        return [p for head in heads for p in head.parameters()]

    def set_item_features(self, item_text: torch.Tensor, item_image: torch.Tensor, image_mask: torch.Tensor,
                          item_seen: torch.Tensor) -> None:
        """Copy the item tables (N + 1, Dt), (N + 1, Di), (N + 1,) and the items trained on (N + 1,) bool
        (used by SASRec's content term or new-item map, and when ``content_for_unseen``) into the model's buffers."""
        if self.sasrec_config.reads_content:
            self.sasrec.set_item_content(item_text, item_seen)
        if self.retriever is None:
            return
        self.item_text.copy_(item_text)
        self.item_image.copy_(item_image.reshape(self.item_image.shape))
        self.image_mask.copy_(image_mask)
        if self.retriever_config.content_for_unseen:
            self.item_seen.copy_(item_seen)

    # ------------------------------------------------------------------------------------------ scoring

    def recent_item_text(self, items: torch.Tensor, positions: int) -> torch.Tensor | None:
        """(B, L) item ids -> (B, positions, Dt): for each of the last ``positions`` columns, the mean text
        vector of the ``recent_content`` real items ending there (zeros if none); None when that is 0."""
        k = self.retriever_config.recent_content
        if not k:
            return None
        windows = F.pad(items, (k - 1, 0))[:, -(positions + k - 1):].unfold(1, k, 1)  # (B, positions, k)
        real = (windows > 0).unsqueeze(-1).to(self.item_text.dtype)  # (B, positions, k, 1)
        return (self.item_text[windows] * real).sum(2) / real.sum(2).clamp(min=1)

    def retrieve(self, states: torch.Tensor, user_text: torch.Tensor,
                 recent_text: torch.Tensor | None = None) -> RetrieverOutput:
        """Retriever scores for user states (B, D), preference vectors (B, Dt) and recent-item text (B, Dt)."""
        return self.retriever(states, user_text, self.item_text, self.item_image, self.image_mask, recent_text,
                              self.item_seen)

    def score_parts(self, batch: dict[str, torch.Tensor], mode: str
                    ) -> tuple[torch.Tensor, torch.Tensor, RetrieverOutput | None]:
        """The SASRec and retriever terms of each item's score under ``mode``, both (B, N + 1).

        Their sum is the ranking score; a term that takes no part in the mode is zero. Without a
        retriever every mode scores with SASRec alone.
        """
        if mode not in SCORE_MODES:
            raise ValueError(f"score mode must be one of {SCORE_MODES}, got {mode!r}")
        states = self.sasrec.user_state(batch["input"])  # (B, D)
        sasrec_scores = self.sasrec.score_all(states)  # (B, N + 1)
        if self.retriever is None or mode == SCORE_SASREC:
            return sasrec_scores, torch.zeros_like(sasrec_scores), None
        latest = self.recent_item_text(batch["input"], 1)  # (B, 1, Dt) or None
        out = self.retrieve(states, batch["user_text"], None if latest is None else latest[:, 0])
        if mode == SCORE_RETRIEVER:
            return torch.zeros_like(out.scores), out.scores, out
        return (*self.fusion.parts(sasrec_scores, out.scores, self.fusion_seen()), out)

    def fusion_seen(self) -> torch.Tensor | None:
        """The items whose SASRec score the fusion keeps: those trained on, or all (None) when SASRec's
        content term or new-item map scores the others itself."""
        return None if self.sasrec_config.reads_content else self.item_seen

    def scores(self, batch: dict[str, torch.Tensor], mode: str) -> tuple[torch.Tensor, RetrieverOutput | None]:
        """Scores of every item for each user's visible window: (B, N + 1), column 0 = padding; and the
        retriever's output when it took part."""
        sasrec, retriever, out = self.score_parts(batch, mode)
        return sasrec + retriever, out

    def recommend(self, batch: dict[str, torch.Tensor], mode: str, k: int) -> dict[str, torch.Tensor]:
        """The top ``k`` items per user, never one of ``history``: ``items`` and ``score`` (B, K), the score's
        ``sasrec`` and ``retriever`` terms (B, K), and the router's expert weights ``router`` (B, E) when the
        retriever takes part."""
        sasrec, retriever, out = self.score_parts(batch, mode)
        scores = (sasrec + retriever).scatter(1, batch["history"], float("-inf"))  # (B, N + 1)
        scores[:, 0] = float("-inf")
        top, items = scores.topk(k, dim=1)  # (B, K)
        result = {"items": items, "score": top, "sasrec": sasrec.gather(1, items), "retriever": retriever.gather(1, items)}
        if out is not None:
            result["router"] = out.weights
        return result

    # ------------------------------------------------------------------------------------------ losses

    def losses(self, batch: dict[str, torch.Tensor], objective: str, aux_scale: float = 1.0) -> dict[str, torch.Tensor]:
        """The losses of one objective; ``total`` is what the stepping optimizers minimize.

        ``aux_scale`` multiplies the auxiliary losses of the joint objective (curriculum weighting).
        Shapes never depend on the data: padding positions are masked, never indexed away.
        """
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        w, target = self.weights, batch["target"]  # (B, L)
        if objective == OBJECTIVE_RETRIEVER:  # SASRec is frozen input: clean states, no graph
            with torch.no_grad():
                was_training = self.sasrec.training
                hidden = self.sasrec.eval()(batch["input"])  # (B, L, D)
                self.sasrec.train(was_training)
        else:
            hidden = self.sasrec(batch["input"])  # (B, L, D)
        losses: dict[str, torch.Tensor] = {}
        if objective != OBJECTIVE_RETRIEVER:
            losses[SASREC] = next_item_loss(hidden, target, self.sasrec.item_table(),
                                            self.sasrec_config.loss, batch.get("negative"))
        if self.retriever is None or objective == OBJECTIVE_SASREC:
            losses["total"] = losses[SASREC]
            return losses
        # The retriever trains on the latest ``positions`` transitions; inputs are left-padded, so those
        # are the last columns.
        recent = min(self.retriever_config.positions, target.shape[1])
        states = hidden[:, -recent:].flatten(0, 1)  # (P, D), P = B * recent: each position predicts its next item
        positives = target[:, -recent:].flatten()  # (P,), 0 = padding
        latest = batch["latest"] if "latest" in batch else torch.ones_like(target[:, 0], dtype=torch.bool)  # (B,)
        # only windows that end at the user's latest transition: the user texts leave exactly those items out
        real = (positives > 0) & latest[:, None].expand(-1, recent).flatten()  # (P,)
        user_text = batch["user_text"][:, None, :].expand(-1, recent, -1).flatten(0, 1)  # (P, Dt)
        recent_text = self.recent_item_text(batch["input"], recent)  # (B, recent, Dt) or None
        out = self.retrieve(states, user_text, None if recent_text is None else recent_text.flatten(0, 1))
        # a target no active expert can score (no poster in an image-only ablation) has no retriever loss
        scorable = real & torch.isfinite(out.scores.gather(1, positives[:, None])).squeeze(1)  # (P,)
        targets = positives.masked_fill(~scorable, IGNORE)  # (P,)
        losses[RETRIEVER] = masked_cross_entropy(out.scores, targets)
        losses["balance"] = load_balance_loss(out.weights, real)
        if objective == OBJECTIVE_RETRIEVER:
            losses["total"] = losses[RETRIEVER] + w.balance * losses["balance"]
            return losses
        assert objective == OBJECTIVE_JOINT
        sasrec_scores = self.sasrec.score_all(states)  # (P, N + 1)
        fused = self.fusion(sasrec_scores, out.scores, self.fusion_seen())  # (P, N + 1)
        losses["fused"] = masked_cross_entropy(fused, targets)
        auxiliary = w.sasrec * losses[SASREC] + w.retriever * losses[RETRIEVER] + w.balance * losses["balance"]
        if self.contrastive is not None:
            last = hidden[:, -1]  # (B, D): inputs are left-padded, so the last column is the latest state
            losses["contrastive"] = self.contrastive(last, batch["user_text"], batch["user"])
            auxiliary = auxiliary + w.contrastive * losses["contrastive"]
        if w.distill > 0:
            losses["distill"] = bidirectional_distillation(sasrec_scores, out.scores, w.distill_temperature, real)
            auxiliary = auxiliary + w.distill * losses["distill"]
        losses["total"] = w.fused * losses["fused"] + aux_scale * auxiliary
        return losses
