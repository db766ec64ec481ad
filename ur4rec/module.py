"""UR4RecModule: the LightningModule that optimizes and evaluates a :class:`ur4rec.models.ur4rec.UR4Rec`.

It owns optimization (manual, one optimizer per module), schedulers, the non-finite guard, logging and
metrics. What trains and how validation scores is policy, set from outside through neutral switches
(the callbacks in ``ur4rec.callbacks`` own the policy and its checkpointed state):

* ``objective``: which losses make the training loss (``vocabulary.OBJECTIVES``);
* ``stepping``: the modules whose optimizer steps on this batch;
* ``score_mode``: how validation/test/predict rank items (``vocabulary.SCORE_MODES``);
* ``aux_loss_scale``: weight of the auxiliary losses in the joint objective;
* ``curve_prefix``: when set, validation NDCG@10 and Hit@10 are also logged as ``<curve_prefix>/...``.
"""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from ur4rec.checkpoint_io import sasrec_weights, upgrade_checkpoint
from ur4rec.errors import CheckpointError, ConfigError, check
from ur4rec.evaluation import SplitEvaluation
from ur4rec.models.configs import LossWeights, RetrieverConfig, SASRecConfig, plain
from ur4rec.models.ur4rec import UR4Rec
from ur4rec.slices import NEW_ITEM_SLICES, SLICES
from ur4rec.vocabulary import OBJECTIVE_SASREC, SASREC, SCORE_FUSED, SCORE_MODES, SCORE_SASREC

CURVE_METRICS = ("ndcg@10", "hit@10")
SLICES_OF = {"val": NEW_ITEM_SLICES, "test": SLICES}  # validation: the new-item slices only
# words of torch.optim's ValueError -> the init_args key it refuses
TORCH_OPTIMIZER_ARGS = (("learning rate", "lr"), ("epsilon", "eps"), ("beta", "betas"), ("weight_decay", "weight_decay"),
                        ("momentum", "momentum"))


def _adamw(params) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0)


def _as(config_type, value):
    """A config dataclass from itself or from its dict (hyperparameters read back from a checkpoint)."""
    return config_type(**value) if isinstance(value, dict) else value


class UR4RecModule(L.LightningModule):
    """Trains the UR4Rec model built from ``sasrec``, ``retriever`` (None = SASRec alone) and ``loss_weights``.

    Args (``num_items``, ``max_seq_len``, ``text_dim``, ``image_dim`` are linked from the DataModule):
        sasrec_optimizer, retriever_optimizer: build each module's optimizer from its parameters.
        sasrec_scheduler, retriever_scheduler: optional epoch-based schedulers, each stepped after every epoch
            in which its optimizer stepped (a frozen module's schedule pauses).
        gradient_clip_val: max gradient norm per optimizer (None: no clipping). eval_ks: Hit@K/NDCG@K cut-offs.
        top_k: recommendations per user. max_nonfinite_steps: NaN/inf batches in a row that stop the run.
        sasrec_checkpoint: a fresh fit starts SASRec from this checkpoint (``pretrain_sasrec`` is skipped).
        score_mode: how ``test``/``predict`` rank; None = the mode the loaded checkpoint was validated with,
            else ``fused`` with a retriever and ``sasrec`` without.
    """

    def __init__(
        self,
        num_items: int,
        max_seq_len: int = 50,
        text_dim: int = 0,
        image_dim: int = 0,
        sasrec: SASRecConfig = SASRecConfig(),
        retriever: RetrieverConfig | None = None,
        loss_weights: LossWeights = LossWeights(),
        sasrec_optimizer: OptimizerCallable = _adamw,
        retriever_optimizer: OptimizerCallable = _adamw,
        sasrec_scheduler: LRSchedulerCallable | None = None,
        retriever_scheduler: LRSchedulerCallable | None = None,
        gradient_clip_val: float | None = 1.0,
        eval_ks: tuple[int, ...] = (5, 10, 20),
        top_k: int = 10,
        max_nonfinite_steps: int = 10,
        sasrec_checkpoint: str | None = None,
        score_mode: str | None = None,
    ):
        super().__init__()
        sasrec, retriever, loss_weights = _as(SASRecConfig, sasrec), _as(RetrieverConfig, retriever), \
            _as(LossWeights, loss_weights)
        check(max_seq_len > 0, "model.max_seq_len (data.max_seq_len)", f"must be > 0, got {max_seq_len}")
        check(gradient_clip_val is None or gradient_clip_val > 0, "model.gradient_clip_val", "must be > 0 or null")
        check(bool(eval_ks) and all(k > 0 for k in eval_ks), "model.eval_ks", f"must be > 0, got {list(eval_ks)}")
        check(top_k > 0, "model.top_k", f"must be > 0, got {top_k}")
        check(max_nonfinite_steps > 0, "model.max_nonfinite_steps", f"must be > 0, got {max_nonfinite_steps}")
        check(score_mode is None or score_mode in SCORE_MODES, "model.score_mode",
              f"must be one of {SCORE_MODES} or null, got {score_mode!r}")
        self.save_hyperparameters({
            "num_items": num_items, "max_seq_len": max_seq_len, "text_dim": text_dim, "image_dim": image_dim,
            "sasrec": plain(sasrec), "retriever": plain(retriever), "loss_weights": plain(loss_weights),
            "gradient_clip_val": gradient_clip_val, "eval_ks": list(eval_ks), "top_k": top_k,
            "max_nonfinite_steps": max_nonfinite_steps, "sasrec_checkpoint": sasrec_checkpoint,
            "score_mode": score_mode})
        self.automatic_optimization = False
        self.net = UR4Rec(num_items, max_seq_len, text_dim, image_dim, sasrec, retriever, loss_weights)
        self.optimizer_factories = {"sasrec": sasrec_optimizer, "retriever": retriever_optimizer}
        self.scheduler_factories = {"sasrec": sasrec_scheduler, "retriever": retriever_scheduler}
        self.stepped_this_epoch: set[str] = set()  # modules whose optimizer stepped in the current epoch
        self.objective, self.stepping = OBJECTIVE_SASREC, (SASREC,)
        self.score_mode = score_mode or (SCORE_FUSED if retriever is not None else SCORE_SASREC)
        self.aux_loss_scale = 1.0
        self.curve_prefix: str | None = None
        self.last_losses: dict[str, torch.Tensor] = {}  # each module's own loss on the last batch
        self.nonfinite_steps = self.consecutive_nonfinite = 0
        self.evaluation = nn.ModuleDict({split: SplitEvaluation(eval_ks, names) for split, names in SLICES_OF.items()})
        self.register_buffer("new_items", torch.zeros(num_items + 1, dtype=torch.bool), persistent=False)

    # ------------------------------------------------------------------------------------------ setup

    def configure_optimizers(self):
        """One optimizer per module in the order of ``net.module_names`` (restored by position), and the
        configured schedulers."""
        groups = {name: self.net.module_parameters(name) for name in self.net.module_names}
        ids = [{id(p) for p in params} for params in groups.values()]
        assert not (len(ids) == 2 and ids[0] & ids[1]), "SASRec and retriever parameter sets overlap"
        assert sum(map(len, ids)) == len(list(self.parameters())), "a parameter belongs to no optimizer"
        optimizers = {name: self.build_optimizer(name, params) for name, params in groups.items()}
        schedulers = [self.scheduler_factories[name](optimizer) for name, optimizer in optimizers.items()
                      if self.scheduler_factories[name] is not None]
        check(not any(isinstance(s, torch.optim.lr_scheduler.ReduceLROnPlateau) for s in schedulers),
              "model.*_scheduler", "ReduceLROnPlateau is not supported; use an epoch-based scheduler "
              "(stages.plateau_patience ends a stage on a plateau)")
        return list(optimizers.values()), schedulers

    def build_optimizer(self, module: str, params: list) -> torch.optim.Optimizer:
        """The configured optimizer of ``module``; a value torch refuses (e.g. a negative lr) names its key."""
        try:
            return self.optimizer_factories[module](params)
        except ValueError as err:
            arg = next((name for words, name in TORCH_OPTIMIZER_ARGS if words in str(err)), None)
            raise ConfigError(f"model.{module}_optimizer{f'.init_args.{arg}' if arg else ''}: {err}") from None

    def optimizer_of(self, module: str) -> torch.optim.Optimizer:
        """The optimizer of ``module`` (``sasrec`` or ``retriever``) once the Trainer has built them."""
        return self.trainer.optimizers[self.net.module_names.index(module)]

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        new_items = datamodule.new_item_mask() if datamodule is not None else None
        if new_items is not None:  # the new-item protocol: the cold users are also ranked among new items only
            self.new_items.copy_(new_items)
            if self.net.retriever is None and not self.net.sasrec_config.reads_content:
                rank_zero_warn("data.cold_item_fraction > 0 with model.retriever null: new items are scored by SASRec "
                               "item embeddings that never trained (expect near-random ranks for them)")
        if self.net.needs_features and datamodule is not None:
            tables = self.attach_item_features(datamodule)
            if self.logger is not None:  # which encoders produced this run's features
                self.logger.log_hyperparams({"features/text_model": tables.text_model,
                                             "features/image_encoder": tables.image_encoder})

    def attach_item_features(self, datamodule):
        """Copy the DataModule's item feature tables and its trained-on items into the model; returns the tables."""
        tables = datamodule.features
        self.net.set_item_features(tables.item_text, tables.item_image, tables.image_mask, datamodule.seen_item_mask())
        return tables

    def on_fit_start(self) -> None:
        if self.hparams.sasrec_checkpoint and self.trainer.ckpt_path is None:
            self.net.sasrec.load_state_dict(sasrec_weights(self.hparams.sasrec_checkpoint))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["stepped_this_epoch"] = sorted(self.stepped_this_epoch)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        upgrade_checkpoint(checkpoint)  # older layouts, in place, before Lightning loads the weights
        trained_on = checkpoint.get("hyper_parameters", {}).get("num_items", self.hparams.num_items)
        if trained_on != self.hparams.num_items:
            raise CheckpointError(f"the checkpoint was trained on a catalog of {trained_on} items; this data has "
                                  f"{self.hparams.num_items}: use the data.data_dir and filters it was trained with")
        self.stepped_this_epoch = set(checkpoint.get("stepped_this_epoch", ()))
        if self.hparams.score_mode is None and checkpoint.get("score_mode"):
            self.score_mode = checkpoint["score_mode"]  # the mode this checkpoint was validated with

    # ------------------------------------------------------------------------------------------ training

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        optimizers = self.optimizers()
        optimizers = dict(zip(self.net.module_names, optimizers if isinstance(optimizers, list) else [optimizers]))
        losses = self.net.losses(batch, self.objective, self.aux_loss_scale)
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
        self.last_losses = {name: losses[name].detach() for name in self.net.module_names if name in losses}
        self.log("train/loss", losses["total"], prog_bar=True, batch_size=batch_size)
        self.log_dict({f"train/loss_{k}": v for k, v in losses.items() if k != "total"}, batch_size=batch_size)
        if self.net.fusion is not None:
            self.log("train/fusion_weight", self.net.fusion.sasrec_weight, batch_size=batch_size)
        return losses["total"]

    def on_train_epoch_start(self) -> None:
        """Step the scheduler of every module whose optimizer stepped in the previous epoch (here rather
        than at that epoch's end, so resuming from its checkpoint, written before the end hooks, is exact)."""
        schedulers = self.lr_schedulers()
        schedulers = schedulers if isinstance(schedulers, list) else [schedulers] if schedulers else []
        for scheduler in schedulers:
            module = self.net.module_names[next(i for i, o in enumerate(self.trainer.optimizers)
                                                if o is scheduler.optimizer)]
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
                f"{self.consecutive_nonfinite} consecutive batches had a non-finite loss (epoch {self.current_epoch}, "
                f"batch {batch_idx}, objective {self.objective}); stopping. The weights are those of the last finite "
                "step: see checkpoints/<run_name>/on_exception.ckpt")

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Clip here, after mixed-precision unscaling, rather than before ``step()``."""
        if self.hparams.gradient_clip_val:
            self.clip_gradients(optimizer, gradient_clip_val=self.hparams.gradient_clip_val,
                                gradient_clip_algorithm="norm")

    # ------------------------------------------------------------------------------------------ evaluation

    def _evaluate(self, batch: dict[str, torch.Tensor], split: str) -> None:
        scores, out = self.net.scores(batch, self.score_mode)  # (B, N + 1)
        overall, sliced = self.evaluation[split].update(scores, batch, self.new_items)
        batch_size = scores.shape[0]
        for name, metric in overall.items():
            self.log(f"{split}/{name}", metric, batch_size=batch_size, prog_bar=split == "val" and name == "ndcg@10")
            if split == "val" and self.curve_prefix and name in CURVE_METRICS:
                self.log(f"{self.curve_prefix}/{name}", metric, batch_size=batch_size)
        for slice_name, metrics in sliced.items():
            for name, metric in metrics.items():
                self.log(f"{split}_{slice_name}/{name}", metric, batch_size=batch_size)
        if out is not None:
            for e, expert in enumerate(self.net.retriever.experts):
                self.log(f"{split}/router_{expert}", out.weights[:, e].mean(), batch_size=batch_size)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        return {"user": batch["user"], **self.net.recommend(batch, self.score_mode, self.hparams.top_k)}
