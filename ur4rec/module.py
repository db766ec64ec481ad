"""UR4RecModule: the LightningModule that trains and evaluates SASRec, the retriever and their fusion.

Manual optimization with one optimizer per module (SASRec; retriever + fusion). What trains and which
optimizers step is policy, set from outside through three attributes (see ``ur4rec.callbacks``):

* ``stage``: which losses make the objective (``pretrain_sasrec``, ``pretrain_retriever``,
  ``joint_finetune``, ``end_to_end``);
* ``stepping``: the optimizers that step on this batch (``("sasrec",)``, ``("retriever",)`` or both);
* ``score_mode``: how validation/test/predict rank items (``sasrec``, ``retriever`` or ``fused``).

Without experts the module is plain SASRec and these keep their defaults.
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from ur4rec.metrics import full_ranking_ranks, ranking_metrics, sampled_ranks
from ur4rec.models.contrastive import MemoryBankContrastive
from ur4rec.models.fusion import ScoreFusion
from ur4rec.models.losses import LOSSES, bidirectional_distillation, next_item_loss
from ur4rec.models.retriever import MoERetriever, RetrieverOutput, load_balance_loss
from ur4rec.models.sasrec import SASRec

MODULES = ("sasrec", "retriever")
IGNORE = -100  # target of a position that takes no part in a loss
PER_STAGE_METRICS = ("ndcg@10", "hit@10")


def masked_cross_entropy(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy (P, N + 1) x (P,) averaged over targets other than ``IGNORE``; 0 when all are ignored."""
    total = F.cross_entropy(scores, targets, ignore_index=IGNORE, reduction="sum")
    return total / (targets != IGNORE).sum().clamp(min=1)


def sasrec_weights(path: str) -> dict[str, torch.Tensor]:
    """The SASRec weights (``sasrec.*`` without the prefix) of a Lightning checkpoint of this module."""
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    weights = {k.removeprefix("sasrec."): v for k, v in state.items() if k.startswith("sasrec.")}
    if not weights:
        raise ValueError(f"{path}: no SASRec weights (sasrec.*) in this checkpoint's state_dict")
    return weights


def _adam(params) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=1e-3)


def _adam_slow(params) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=1e-4)


class UR4RecModule(L.LightningModule):
    """SASRec, optionally with the mixture-of-experts retriever and score fusion.

    Args:
        num_items: catalog size N (items 1..N); linked from the DataModule.
        max_seq_len: input window length; linked from the DataModule.
        hidden_size, num_blocks, num_heads, dropout: SASRec architecture.
        loss: SASRec loss, ``ce`` (full softmax), ``bce`` or ``bpr`` (sampled negatives).
        experts: retriever experts among ``preference``, ``description``, ``image``; empty = SASRec only.
        text_dim, image_dim: feature sizes; linked from the DataModule.
        retriever_hidden_size, retriever_dropout: retriever width and dropout.
        retriever_positions: the retriever and fused losses train on the last this many positions of
            each sequence (SASRec's loss uses all), which keeps the (P, N + 1) expert scores small.
        fusion_weight, learned_fusion: SASRec share of the fused score, fixed or learned from it.
        fused_loss_weight, sasrec_loss_weight, retriever_loss_weight, balance_loss_weight: loss mix in
            the joint stages (the pretraining stages use their own module's loss).
        contrastive_weight, contrastive_queue_size, contrastive_temperature: memory-bank InfoNCE
            between the SASRec state and the preference-text vector in the joint stages (0 = off).
        distill_weight, distill_temperature: bidirectional distillation between the SASRec and
            retriever score distributions in the joint stages (0 = off).
        sasrec_optimizer, retriever_optimizer: build each module's optimizer from its parameters.
        sasrec_scheduler, retriever_scheduler: optional learning-rate schedulers of those optimizers
            (epoch-based, e.g. ``StepLR``, ``CosineAnnealingLR``); each steps once after every epoch in
            which its optimizer stepped, so a module's schedule pauses while the module is frozen.
        gradient_clip_val: max gradient norm per optimizer (None disables clipping).
        eval_ks: cut-offs for Hit@K and NDCG@K.
        top_k: recommendations per user from ``predict``.
        max_nonfinite_steps: a batch whose loss is NaN/inf is skipped (no optimizer steps); this many
            in a row stop the run (the on-exception checkpoint then holds the last good weights).
        sasrec_checkpoint: a fresh fit (not a resumed one) starts SASRec from the ``sasrec.*`` weights of
            this checkpoint (e.g. another run's ``best-pretrain_sasrec.ckpt``); ``TrainingStages`` then
            skips ``pretrain_sasrec``. Other commands never read it.
        recent_content: the retriever's user context also sees the mean description vector of the user's
            last this many items (0 = off): content of the latest items, which the preference profile
            (built without the latest training items) lacks.
        compile_sasrec: a ``torch.compile`` backend (e.g. ``inductor``) for the SASRec encoder, or None
            for eager mode. Compiled in place: parameter names and checkpoints are unchanged.
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
        experts: tuple[str, ...] = (),
        text_dim: int = 0,
        image_dim: int = 0,
        retriever_hidden_size: int = 64,
        retriever_dropout: float = 0.1,
        retriever_positions: int = 10,
        fusion_weight: float = 0.4,
        learned_fusion: bool = False,
        fused_loss_weight: float = 1.0,
        sasrec_loss_weight: float = 0.5,
        retriever_loss_weight: float = 0.5,
        balance_loss_weight: float = 0.01,
        contrastive_weight: float = 0.0,
        contrastive_queue_size: int = 1024,
        contrastive_temperature: float = 0.1,
        distill_weight: float = 0.0,
        distill_temperature: float = 2.0,
        sasrec_optimizer: OptimizerCallable = _adam,
        retriever_optimizer: OptimizerCallable = _adam_slow,
        sasrec_scheduler: LRSchedulerCallable | None = None,
        retriever_scheduler: LRSchedulerCallable | None = None,
        gradient_clip_val: float | None = 1.0,
        eval_ks: tuple[int, ...] = (5, 10, 20),
        top_k: int = 10,
        max_nonfinite_steps: int = 10,
        sasrec_checkpoint: str | None = None,
        compile_sasrec: str | None = None,
        recent_content: int = 0,
    ):
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"model.loss must be one of {LOSSES}, got {loss!r}")
        if recent_content < 0:
            raise ValueError(f"model.recent_content must be >= 0 (0 = off), got {recent_content}")
        experts = tuple(experts)
        self.save_hyperparameters(ignore=["sasrec_optimizer", "retriever_optimizer", "sasrec_scheduler",
                                          "retriever_scheduler"])
        self.automatic_optimization = False
        self.optimizer_factories = {"sasrec": sasrec_optimizer, "retriever": retriever_optimizer}
        self.scheduler_factories = {"sasrec": sasrec_scheduler, "retriever": retriever_scheduler}
        self.stepped_this_epoch: set[str] = set()  # modules whose optimizer stepped in the current epoch
        self.sasrec = SASRec(num_items, hidden_size, num_blocks, num_heads, dropout, max_seq_len)
        if compile_sasrec:
            self.sasrec.compile(backend=compile_sasrec)
        self.retriever: MoERetriever | None = None
        self.fusion: ScoreFusion | None = None
        self.contrastive: MemoryBankContrastive | None = None
        if experts:
            if text_dim <= 0 or ("image" in experts and image_dim <= 0):
                raise ValueError("the retriever needs feature dimensions: enable data.features (linked automatically "
                                 f"by the CLI); got text_dim={text_dim}, image_dim={image_dim}")
            self.retriever = MoERetriever(num_items, hidden_size, text_dim, max(image_dim, 1), retriever_hidden_size,
                                          experts, retriever_dropout, recent_text=recent_content > 0)
            self.fusion = ScoreFusion(fusion_weight, learned_fusion)
            if contrastive_weight > 0:
                self.contrastive = MemoryBankContrastive(hidden_size, text_dim, retriever_hidden_size,
                                                         contrastive_queue_size, contrastive_temperature)
            # Item feature tables, filled from the DataModule in setup(); derived data, not checkpointed.
            self.register_buffer("item_text", torch.zeros(num_items + 1, text_dim), persistent=False)
            self.register_buffer("item_image", torch.zeros(num_items + 1, max(image_dim, 1)), persistent=False)
            self.register_buffer("image_mask", torch.zeros(num_items + 1, dtype=torch.bool), persistent=False)
        self.stage = "pretrain_sasrec"
        self.stepping: tuple[str, ...] = ("sasrec",)
        self.score_mode = "sasrec"
        self.aux_loss_scale = 1.0  # set by CurriculumWeights
        self.last_losses: dict[str, torch.Tensor] = {}  # each module's own loss on the last batch
        self.nonfinite_steps = 0  # skipped batches so far
        self.consecutive_nonfinite = 0
        self.val_metrics = nn.ModuleDict({**ranking_metrics(eval_ks), **ranking_metrics(eval_ks, "_sampled")})
        self.test_metrics = nn.ModuleDict({**ranking_metrics(eval_ks), **ranking_metrics(eval_ks, "_sampled")})

    # ------------------------------------------------------------------------------------------ setup

    @property
    def module_names(self) -> tuple[str, ...]:
        return MODULES if self.retriever is not None else MODULES[:1]

    def module_parameters(self, name: str) -> list[nn.Parameter]:
        if name == "sasrec":
            return list(self.sasrec.parameters())
        heads = [self.retriever, self.fusion] + ([self.contrastive] if self.contrastive is not None else [])
        return [p for head in heads for p in head.parameters()]

    def configure_optimizers(self):
        """One optimizer per module, always in the order of ``module_names`` (restored by position), and
        the configured schedulers (each names its optimizer)."""
        groups = {name: self.module_parameters(name) for name in self.module_names}
        ids = [{id(p) for p in params} for params in groups.values()]
        assert not (len(ids) == 2 and ids[0] & ids[1]), "SASRec and retriever parameter sets overlap"
        assert sum(map(len, ids)) == len(list(self.parameters())), "a parameter belongs to no optimizer"
        optimizers = {name: self.optimizer_factories[name](params) for name, params in groups.items()}
        schedulers = [self.scheduler_factories[name](optimizer) for name, optimizer in optimizers.items()
                      if self.scheduler_factories[name] is not None]
        for scheduler in schedulers:
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                raise ValueError("model.*_scheduler: ReduceLROnPlateau is not supported; use an epoch-based scheduler "
                                 "(TrainingStages.plateau_patience ends a stage on a plateau)")
        return list(optimizers.values()), schedulers

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if self.retriever is not None and datamodule is not None:
            tables = datamodule.features
            self.load_item_features(tables)
            if self.logger is not None:  # which encoders produced this run's features
                self.logger.log_hyperparams({"features/text_model": tables.text_model,
                                             "features/image_encoder": tables.image_encoder})

    def load_item_features(self, tables) -> None:
        """Copy the DataModule's item tables (text, image, mask) into the module's buffers."""
        self.item_text.copy_(tables.item_text)
        self.item_image.copy_(tables.item_image.reshape(self.item_image.shape))
        self.image_mask.copy_(tables.image_mask)

    def on_fit_start(self) -> None:
        if self.hparams.sasrec_checkpoint and self.trainer.ckpt_path is None:
            self.sasrec.load_state_dict(sasrec_weights(self.hparams.sasrec_checkpoint))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["ur4rec_state"] = {"stage": self.stage, "stepping": list(self.stepping), "score_mode": self.score_mode,
                                      "stepped_this_epoch": sorted(self.stepped_this_epoch)}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("ur4rec_state")
        if state:
            self.stage, self.stepping, self.score_mode = state["stage"], tuple(state["stepping"]), state["score_mode"]
            self.stepped_this_epoch = set(state.get("stepped_this_epoch", ()))

    # ------------------------------------------------------------------------------------------ scoring

    def retrieve(self, states: torch.Tensor, user_text: torch.Tensor,
                 recent_text: torch.Tensor | None = None) -> RetrieverOutput:
        """Retriever scores for user states (B, D), preference vectors (B, Dt) and recent-item text (B, Dt)."""
        return self.retriever(states, user_text, self.item_text, self.item_image, self.image_mask, recent_text)

    def recent_item_text(self, items: torch.Tensor, positions: int) -> torch.Tensor | None:
        """(B, L) item ids -> (B, positions, Dt): for each of the last ``positions`` columns, the mean text
        vector of the ``recent_content`` real items ending there (zeros if none); None when that is 0."""
        k = self.hparams.recent_content
        if not k:
            return None
        windows = F.pad(items, (k - 1, 0))[:, -(positions + k - 1):].unfold(1, k, 1)  # (B, positions, k)
        real = (windows > 0).unsqueeze(-1).to(self.item_text.dtype)  # (B, positions, k, 1)
        return (self.item_text[windows] * real).sum(2) / real.sum(2).clamp(min=1)

    def score_parts(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, RetrieverOutput | None]:
        """The SASRec and retriever terms of each item's score per ``score_mode``, both (B, N + 1).

        Their sum is the ranking score; a term that takes no part in the current mode is zero.
        """
        states = self.sasrec.user_state(batch["input"])  # (B, D)
        sasrec_scores = self.sasrec.score_all(states)  # (B, N + 1)
        if self.retriever is None or self.score_mode == "sasrec":
            return sasrec_scores, torch.zeros_like(sasrec_scores), None
        latest = self.recent_item_text(batch["input"], 1)  # (B, 1, Dt) or None
        out = self.retrieve(states, batch["user_text"], None if latest is None else latest[:, 0])
        if self.score_mode == "retriever":
            return torch.zeros_like(out.scores), out.scores, out
        return (*self.fusion.parts(sasrec_scores, out.scores), out)

    def score_batch(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, RetrieverOutput | None]:
        """Scores of every item for each user's visible window: (B, N + 1); column 0 = padding."""
        sasrec, retriever, out = self.score_parts(batch)
        return sasrec + retriever, out

    # ------------------------------------------------------------------------------------------ training

    def compute_losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The losses of the current stage; ``total`` is what the stepping optimizers minimize."""
        hp = self.hparams
        target = batch["target"]  # (B, L)
        if self.stage == "pretrain_retriever":  # SASRec is frozen input: clean states, no graph
            with torch.no_grad():
                was_training = self.sasrec.training
                hidden = self.sasrec.eval()(batch["input"])  # (B, L, D)
                self.sasrec.train(was_training)
        else:
            hidden = self.sasrec(batch["input"])  # (B, L, D)
        losses: dict[str, torch.Tensor] = {}
        if self.stage != "pretrain_retriever":
            losses["sasrec"] = next_item_loss(hidden, target, self.sasrec.item_embedding.weight, hp.loss,
                                              batch.get("negative"))
        if self.retriever is None or self.stage == "pretrain_sasrec":
            losses["total"] = losses["sasrec"]
            return losses
        # The retriever trains on the latest ``retriever_positions`` transitions; inputs are left-padded,
        # so those are the last columns. Fixed shapes: padding rows are masked, never indexed away.
        recent = min(hp.retriever_positions, target.shape[1])
        states = hidden[:, -recent:].flatten(0, 1)  # (P, D), P = B * recent: each position predicts its next item
        positives = target[:, -recent:].flatten()  # (P,), 0 = padding
        real = positives > 0  # (P,)
        user_text = batch["user_text"][:, None, :].expand(-1, recent, -1).flatten(0, 1)  # (P, Dt)
        recent_text = self.recent_item_text(batch["input"], recent)  # (B, recent, Dt) or None
        out = self.retrieve(states, user_text, None if recent_text is None else recent_text.flatten(0, 1))
        # a target no active expert can score (no poster in an image-only ablation) has no retriever loss
        scorable = real & torch.isfinite(out.scores.gather(1, positives[:, None])).squeeze(1)  # (P,)
        targets = positives.masked_fill(~scorable, IGNORE)  # (P,)
        losses["retriever"] = masked_cross_entropy(out.scores, targets)
        losses["balance"] = load_balance_loss(out.weights, real)
        if self.stage == "pretrain_retriever":
            losses["total"] = losses["retriever"] + hp.balance_loss_weight * losses["balance"]
            return losses
        sasrec_scores = self.sasrec.score_all(states)  # (P, N + 1)
        fused = self.fusion(sasrec_scores, out.scores)  # (P, N + 1)
        losses["fused"] = masked_cross_entropy(fused, targets)
        auxiliary = (hp.sasrec_loss_weight * losses["sasrec"] + hp.retriever_loss_weight * losses["retriever"]
                     + hp.balance_loss_weight * losses["balance"])
        if self.contrastive is not None:
            last = hidden[:, -1]  # (B, D): inputs are left-padded, so the last column is the latest state
            losses["contrastive"] = self.contrastive(last, batch["user_text"], batch["user"])
            auxiliary = auxiliary + hp.contrastive_weight * losses["contrastive"]
        if hp.distill_weight > 0:
            losses["distill"] = bidirectional_distillation(sasrec_scores, out.scores, hp.distill_temperature, real)
            auxiliary = auxiliary + hp.distill_weight * losses["distill"]
        losses["total"] = hp.fused_loss_weight * losses["fused"] + self.aux_loss_scale * auxiliary
        return losses

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        optimizers = self.optimizers()
        optimizers = dict(zip(self.module_names, optimizers if isinstance(optimizers, list) else [optimizers]))
        losses = self.compute_losses(batch)
        batch_size = batch["input"].shape[0]
        if not self._all_ranks_finite(losses["total"]):
            self._skip_nonfinite(batch_idx, batch_size)
            return losses["total"]
        self.consecutive_nonfinite = 0
        for optimizer in optimizers.values():
            optimizer.zero_grad(set_to_none=True)
        self.manual_backward(losses["total"])
        for name in self.stepping:
            optimizers[name].step()  # gradients are clipped in on_before_optimizer_step
            self.stepped_this_epoch.add(name)
        self.last_losses = {name: losses[name].detach() for name in self.module_names if name in losses}
        self.log("train/loss", losses["total"], prog_bar=True, batch_size=batch_size)
        self.log_dict({f"train/loss_{k}": v for k, v in losses.items() if k != "total"}, batch_size=batch_size)
        if self.fusion is not None:
            self.log("train/fusion_weight", self.fusion.sasrec_weight, batch_size=batch_size)
        return losses["total"]

    def on_train_epoch_start(self) -> None:
        """Step the scheduler of every module whose optimizer stepped in the previous epoch.

        Stepping here rather than at that epoch's end keeps resuming exact: an epoch's last checkpoint is
        written at its validation, before the epoch-end hooks, and carries ``stepped_this_epoch``.
        """
        schedulers = self.lr_schedulers()
        schedulers = schedulers if isinstance(schedulers, list) else [schedulers] if schedulers else []
        optimizers = self.trainer.optimizers
        for scheduler in schedulers:
            module = self.module_names[next(i for i, o in enumerate(optimizers) if o is scheduler.optimizer)]
            if module in self.stepped_this_epoch:
                scheduler.step()
        self.stepped_this_epoch = set()

    def _all_ranks_finite(self, loss: torch.Tensor) -> bool:
        """True when the loss is finite on every rank (all ranks then skip or step together)."""
        finite = torch.isfinite(loss.detach()).float()
        return bool(self.all_gather(finite).min() > 0) if self.trainer.world_size > 1 else bool(finite)

    def _skip_nonfinite(self, batch_idx: int, batch_size: int) -> None:
        self.nonfinite_steps += 1
        self.consecutive_nonfinite += 1
        self.log("train/nonfinite_steps", float(self.nonfinite_steps), batch_size=batch_size)
        if self.consecutive_nonfinite >= self.hparams.max_nonfinite_steps:
            raise FloatingPointError(
                f"{self.consecutive_nonfinite} consecutive batches had a non-finite loss (epoch "
                f"{self.current_epoch}, batch {batch_idx}, stage {self.stage}); stopping. The weights are those "
                "of the last finite step: see checkpoints/<run_name>/on_exception.ckpt")

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Clip here, after mixed-precision unscaling, rather than before ``step()``."""
        if self.hparams.gradient_clip_val:
            self.clip_gradients(optimizer, gradient_clip_val=self.hparams.gradient_clip_val,
                                gradient_clip_algorithm="norm")

    # ------------------------------------------------------------------------------------------ evaluation

    def _evaluate(self, batch: dict[str, torch.Tensor], split: str, metrics: nn.ModuleDict) -> None:
        scores, out = self.score_batch(batch)  # (B, N + 1)
        full = full_ranking_ranks(scores, batch["target"], batch["history"])  # (B,)
        sampled = sampled_ranks(scores, batch["candidates"])  # (B,)
        batch_size = scores.shape[0]
        for name, metric in metrics.items():
            metric.update(sampled if name.endswith("_sampled") else full)
            self.log(f"{split}/{name}", metric, batch_size=batch_size)
            if split == "val" and self.retriever is not None and name in PER_STAGE_METRICS:
                self.log(f"val_{self.stage}/{name}", metric, batch_size=batch_size)  # one curve per stage
        if out is not None:
            for e, expert in enumerate(self.retriever.experts):
                self.log(f"{split}/router_{expert}", out.weights[:, e].mean(), batch_size=batch_size)

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        """Top-``top_k`` items per user, never one already seen, with the score split into its SASRec and
        retriever terms and the router's expert weights (B, E) when a retriever takes part."""
        sasrec, retriever, out = self.score_parts(batch)
        scores = (sasrec + retriever).scatter(1, batch["history"], float("-inf"))  # (B, N + 1)
        scores[:, 0] = float("-inf")
        top, items = scores.topk(self.hparams.top_k, dim=1)  # (B, K)
        prediction = {"user": batch["user"], "items": items, "score": top, "sasrec": sasrec.gather(1, items),
                      "retriever": retriever.gather(1, items)}
        if out is not None:
            prediction["router"] = out.weights
        return prediction

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val", self.val_metrics)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test", self.test_metrics)
