"""The model's hyperparameters in three groups, so a config reads as the model's structure.

Each group checks its values in ``validate()`` (called when the model is built), so a value that cannot
work is one :class:`ur4rec.errors.ConfigError` naming its config key.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ur4rec.errors import check
from ur4rec.models.losses import LOSSES
from ur4rec.models.retriever import EXPERTS
from ur4rec.models.sasrec import NORMS


@dataclass
class SASRecConfig:
    """SASRec's architecture and loss (``ce`` full softmax, ``bce``/``bpr`` with sampled negatives);
    ``compile``: a ``torch.compile`` backend for the encoder (e.g. ``inductor``), None for eager mode.

    ``content``: an item is its ID embedding plus a projection of its description vector, and an item no
    training sequence holds (a new one) a learned unknown-item vector plus that projection; ``id_dropout``:
    the fraction of items given the unknown vector at each training step, so the projection learns to rank
    on its own. ``feedforward_size``: the inner width of each block's feed-forward layer (None: hidden_size;
    RecBole's SASRec uses 4x, 256). ``norm``: ``pre`` (LayerNorm before each sublayer) or ``post`` (RecBole's
    layout: after each residual sum, and on the embedding sum in place of the sqrt(D) scale).
    ``new_item_ridge``: instead of ``content``, items keep their ID embeddings alone and a new item is ranked
    by the ridge map (this penalty) of its description vector onto the trained ID embeddings; null = off.
    """

    hidden_size: int = 64
    num_blocks: int = 2
    num_heads: int = 2
    dropout: float = 0.5
    loss: str = "ce"
    compile: str | None = None
    content: bool = False
    id_dropout: float = 0.0
    feedforward_size: int | None = None
    norm: str = "pre"
    new_item_ridge: float | None = None

    @property
    def reads_content(self) -> bool:
        """Whether SASRec needs the item description vectors: its content term or the new-item map."""
        return self.content or self.new_item_ridge is not None

    def validate(self) -> None:
        check(self.hidden_size > 0, "model.sasrec.hidden_size", f"must be > 0, got {self.hidden_size}")
        check(self.num_blocks > 0, "model.sasrec.num_blocks", f"must be > 0, got {self.num_blocks}")
        check(self.num_heads > 0 and self.hidden_size % self.num_heads == 0, "model.sasrec.num_heads",
              f"must be > 0 and divide hidden_size {self.hidden_size}, got {self.num_heads}")
        check(self.feedforward_size is None or self.feedforward_size > 0, "model.sasrec.feedforward_size",
              f"must be > 0 (or null for hidden_size), got {self.feedforward_size}")
        check(self.norm in NORMS, "model.sasrec.norm", f"must be one of {NORMS}, got {self.norm!r}")
        check(0 <= self.dropout < 1, "model.sasrec.dropout", f"must be in [0, 1), got {self.dropout}")
        check(self.loss in LOSSES, "model.sasrec.loss", f"must be one of {LOSSES}, got {self.loss!r}")
        check(0 <= self.id_dropout < 1 and (self.content or self.id_dropout == 0), "model.sasrec.id_dropout",
              f"must be in [0, 1), and 0 without model.sasrec.content; got {self.id_dropout}")
        check(self.new_item_ridge is None or (self.new_item_ridge > 0 and not self.content),
              "model.sasrec.new_item_ridge", f"must be > 0 (or null), and null with model.sasrec.content "
              f"(its content term scores new items itself); got {self.new_item_ridge}")


@dataclass
class RetrieverConfig:
    """The mixture-of-experts retriever and its fusion with SASRec.

    ``positions``: the retriever and fused losses train on the latest this many transitions of each
    sequence, and user texts leave out the same latest training items (``data.retriever_positions``).
    ``recent_content``: the user context also sees the mean description vector of the latest this many
    items (0 = off). ``fusion_weight``: SASRec's share of the log-probability mixture (``learned_fusion``:
    learned from that start). ``content_for_unseen``: items no training sequence holds (new items) are
    ranked by the retriever's content experts alone, never by an untrained ID embedding.
    """

    experts: tuple[str, ...] = EXPERTS
    hidden_size: int = 64
    dropout: float = 0.1
    positions: int = 10
    recent_content: int = 5
    fusion_weight: float = 0.7
    learned_fusion: bool = False
    content_for_unseen: bool = True

    def __post_init__(self):
        self.experts = tuple(self.experts)

    def validate(self) -> None:
        unknown = [e for e in self.experts if e not in EXPERTS]
        check(bool(self.experts) and not unknown, "model.retriever.experts",
              f"must be a non-empty subset of {EXPERTS}, got {list(self.experts)}")
        check(self.hidden_size > 0, "model.retriever.hidden_size", f"must be > 0, got {self.hidden_size}")
        check(0 <= self.dropout < 1, "model.retriever.dropout", f"must be in [0, 1), got {self.dropout}")
        check(self.positions > 0, "model.retriever.positions", f"must be > 0, got {self.positions}")
        check(self.recent_content >= 0, "model.retriever.recent_content", f"must be >= 0 (0 = off), got "
              f"{self.recent_content}")
        check(0 <= self.fusion_weight <= 1, "model.retriever.fusion_weight", f"must be in [0, 1], got "
              f"{self.fusion_weight}")


@dataclass
class LossWeights:
    """The joint objective: ``fused + aux_scale * (sasrec * L_sasrec + retriever * L_retriever + balance * L_balance
    + contrastive * L_contrastive + distill * L_distill)``; a weight of 0 switches a strategy off."""

    fused: float = 1.0
    sasrec: float = 0.5
    retriever: float = 0.5
    balance: float = 0.01
    contrastive: float = 0.0
    contrastive_queue_size: int = 1024
    contrastive_temperature: float = 0.1
    distill: float = 0.0
    distill_temperature: float = 2.0

    def validate(self) -> None:
        for name in ("fused", "sasrec", "retriever", "balance", "contrastive", "distill"):
            check(getattr(self, name) >= 0, f"model.loss_weights.{name}", f"must be >= 0, got {getattr(self, name)}")
        for name in ("contrastive_temperature", "distill_temperature"):
            check(getattr(self, name) > 0, f"model.loss_weights.{name}", f"must be > 0, got {getattr(self, name)}")
        check(self.contrastive_queue_size > 0, "model.loss_weights.contrastive_queue_size",
              f"must be > 0, got {self.contrastive_queue_size}")


def plain(config) -> dict | None:
    """A config dataclass as a dict of plain types (checkpoints load with ``weights_only``)."""
    if config is None:
        return None
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}
