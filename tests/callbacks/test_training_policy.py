"""Stages, adaptive alternating and the two optimizers: who steps, when, and what survives a resume."""

from __future__ import annotations

import io

import lightning as L
import pytest
import torch

from feature_fixtures import HashTextEncoder
from synthetic import small_module
from writers import write_ml100k
from ur4rec.callbacks import AdaptiveAlternating, TrainingStages
from ur4rec.callbacks.alternating import relative_change
from ur4rec.callbacks.stages import current_stage
from ur4rec.datamodule import UR4RecDataModule
from ur4rec.errors import ConfigError
from ur4rec.features.tables import build_feature_tables
from ur4rec.checkpoint_io import sasrec_weights
from ur4rec.module import UR4RecModule
from ur4rec.vocabulary import STAGE_POLICY


@pytest.fixture
def datamodule(tmp_path):
    dm = UR4RecDataModule(str(write_ml100k(tmp_path / "data")), features=True, batch_size=8, num_sampled_negatives=20)
    splits = dm.load()
    tables = build_feature_tables(dm.raw, splits, text_model=HashTextEncoder(dim=16), image_encoder="descriptor")
    g = torch.Generator().manual_seed(0)
    tables.item_image = torch.randn(splits.num_items + 1, tables.image_dim, generator=g)
    tables.image_mask = torch.rand(splits.num_items + 1, generator=g) > 0.3  # some items lack a poster
    tables.image_mask[0] = False
    dm._features = tables
    return dm


def make_model(dm: UR4RecDataModule, retriever: dict | None = None, **kwargs) -> UR4RecModule:
    """A small UR4Rec with the DataModule's features loaded (recent_content off unless given)."""
    torch.manual_seed(0)
    model = small_module(dm.num_items, dm.text_dim, dm.image_dim, retriever={"recent_content": 0, **(retriever or {})},
                         **kwargs)
    model.setup = lambda stage: model.attach_item_features(dm)
    return model


def plain_stages(*epochs: int, **kwargs) -> TrainingStages:
    """Stages without the shipped extras (no plateau, no restoring, no SASRec learning rate change) unless given."""
    return TrainingStages(*epochs, **{"plateau_patience": None, "restore_best": False, "finetune_sasrec_lr": None,
                                      **kwargs})


def make_trainer(callbacks, **kwargs) -> L.Trainer:
    defaults = dict(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                    enable_model_summary=False, num_sanity_val_steps=0)
    return L.Trainer(callbacks=callbacks, **{**defaults, **kwargs})


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def changed(before: dict[str, torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(before[k], v) for k, v in module.named_parameters())


class ForcePolicy(L.Callback):
    def __init__(self, stage, stepping):
        self.stage, self.stepping = stage, stepping

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        pl_module.objective, pl_module.stepping = STAGE_POLICY[self.stage].objective, self.stepping


@pytest.mark.parametrize("stepping", [("sasrec",), ("retriever",), ("sasrec", "retriever")])
def test_only_the_chosen_optimizer_changes_its_parameters(datamodule, stepping):
    model = make_model(datamodule)
    sasrec, retriever = snapshot(model.net.sasrec), snapshot(model.net.retriever)
    make_trainer([ForcePolicy("joint_finetune", stepping)], max_epochs=1, limit_train_batches=1,
                 limit_val_batches=0).fit(model, datamodule)
    assert changed(sasrec, model.net.sasrec) == ("sasrec" in stepping)
    assert changed(retriever, model.net.retriever) == ("retriever" in stepping)


def test_parameter_sets_are_disjoint_and_complete(datamodule):
    model = make_model(datamodule)
    sasrec, retriever = (set(map(id, model.net.module_parameters(n))) for n in ("sasrec", "retriever"))
    assert not sasrec & retriever
    assert sasrec | retriever == set(map(id, model.parameters()))


class StageProbe(L.Callback):
    """Per epoch: the stage and which modules' weights moved."""

    def __init__(self):
        self.epochs: list[tuple[str, bool, bool]] = []

    def on_train_epoch_start(self, trainer, pl_module):
        self._before = snapshot(pl_module.net.sasrec), snapshot(pl_module.net.retriever)

    def on_train_epoch_end(self, trainer, pl_module):
        self.epochs.append((current_stage(trainer), changed(self._before[0], pl_module.net.sasrec),
                            changed(self._before[1], pl_module.net.retriever)))


def test_stages_follow_their_epochs_and_optimizers(datamodule):
    model = make_model(datamodule)
    stages, probe = plain_stages(1, 1, 2, 1), StageProbe()
    alternating = AdaptiveAlternating(mode="fixed")
    trainer = make_trainer([stages, alternating, probe], max_epochs=-1)
    trainer.fit(model, datamodule)
    assert [t["stage"] for t in stages.transitions] == ["pretrain_sasrec", "pretrain_retriever", "joint_finetune",
                                                        "end_to_end"]
    assert [t["epoch"] for t in stages.transitions] == [0, 1, 2, 4]
    assert probe.epochs == [("pretrain_sasrec", True, False), ("pretrain_retriever", False, True),
                            ("joint_finetune", True, True), ("joint_finetune", True, True),
                            ("end_to_end", True, True)]
    assert trainer.current_epoch == 5  # training stopped after the last stage
    # fixed alternation: one switch per joint step, steps split evenly between the modules
    batches = len(datamodule.train_dataloader())
    assert alternating.switches == 2 * batches
    assert alternating.steps == {"sasrec": batches, "retriever": batches}
    assert set(stages.best) == {"pretrain_sasrec", "pretrain_retriever", "joint_finetune", "end_to_end"}


class DecreasingMetric(L.Callback):
    """Makes epoch 0 the best validation epoch (``fake`` = 10 - epoch) and snapshots SASRec per epoch."""

    def __init__(self):
        self.end_of_epoch, self.first_batch = {}, {}

    def on_validation_end(self, trainer, pl_module):
        trainer.callback_metrics["fake"] = torch.tensor(10.0 - trainer.current_epoch)

    def on_train_epoch_end(self, trainer, pl_module):
        self.end_of_epoch[trainer.current_epoch] = snapshot(pl_module.net.sasrec)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == 0:
            self.first_batch[trainer.current_epoch] = snapshot(pl_module.net.sasrec)


@pytest.mark.parametrize("restore_best", [False, True])
def test_next_stage_starts_from_the_best_epoch_when_asked(datamodule, tmp_path, restore_best):
    model = make_model(datamodule)
    probe = DecreasingMetric()
    stages = plain_stages(3, 1, 0, 0, monitor="fake", save_dir=str(tmp_path), restore_best=restore_best)
    make_trainer([probe, stages], max_epochs=-1).fit(model, datamodule)
    assert stages.best == {"pretrain_sasrec": 10.0, "pretrain_retriever": 7.0}
    expected = probe.end_of_epoch[0 if restore_best else 2]  # the best epoch of pretrain_sasrec, or its last
    assert all(torch.equal(expected[k], v) for k, v in probe.first_batch[3].items())
    assert not all(torch.equal(probe.end_of_epoch[0][k], v) for k, v in probe.end_of_epoch[2].items())


def test_a_pretrained_sasrec_skips_its_stage_and_starts_from_the_checkpoint(datamodule, tmp_path):
    pretrained = make_model(datamodule)
    trainer = make_trainer([plain_stages(1, 0, 0, 0)], max_epochs=-1)
    trainer.fit(pretrained, datamodule)
    trainer.save_checkpoint(tmp_path / "pretrained.ckpt")

    torch.manual_seed(1)
    model = make_model(datamodule, sasrec_checkpoint=str(tmp_path / "pretrained.ckpt"))
    stages, probe = plain_stages(5, 1, 0, 0), StageProbe()
    make_trainer([stages, probe], max_epochs=-1).fit(model, datamodule)
    assert stages.transitions == [{"stage": "pretrain_retriever", "epoch": 0, "step": 0}]
    assert probe.epochs == [("pretrain_retriever", False, True)]
    # SASRec did not train in pretrain_retriever, so it still holds the pretrained weights
    assert all(torch.equal(p, q) for p, q in zip(model.net.sasrec.parameters(), pretrained.net.sasrec.parameters()))
    torch.save({"state_dict": {"other.weight": torch.zeros(1)}}, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match="other.ckpt: no SASRec weights"):
        sasrec_weights(str(tmp_path / "other.ckpt"))


class LearningRates(L.Callback):
    """Each optimizer's learning rate at each training epoch's first batch."""

    def __init__(self):
        self.lrs: list[tuple] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == 0:
            self.lrs.append((current_stage(trainer), *(o.param_groups[0]["lr"] for o in trainer.optimizers)))


def test_finetune_sasrec_lr_applies_after_the_sasrec_stage_only(datamodule):
    model = make_model(datamodule)
    probe = LearningRates()
    make_trainer([plain_stages(1, 1, 1, 1, finetune_sasrec_lr=1e-5), probe], max_epochs=-1).fit(model, datamodule)
    assert [lrs[:2] for lrs in probe.lrs] == [("pretrain_sasrec", 1e-3), ("pretrain_retriever", 1e-5),
                                              ("joint_finetune", 1e-5), ("end_to_end", 1e-5)]
    with pytest.raises(ValueError, match="finetune_sasrec_lr"):
        TrainingStages(finetune_sasrec_lr=0)


def scheduled_model(dm: UR4RecDataModule, **schedulers) -> UR4RecModule:
    return make_model(dm, **schedulers)


def step_lr(gamma: float):
    """A scheduler factory as LightningCLI injects one: StepLR multiplying the lr by ``gamma`` per step."""
    return lambda optimizer: torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=gamma)


def test_each_scheduler_steps_after_the_epochs_its_optimizer_stepped_in(datamodule):
    model = scheduled_model(datamodule, sasrec_scheduler=step_lr(0.1), retriever_scheduler=step_lr(0.5))
    probe = LearningRates()
    make_trainer([plain_stages(1, 1, 0, 1), probe], max_epochs=-1).fit(model, datamodule)
    expected = [("pretrain_sasrec", 1e-3, 1e-3), ("pretrain_retriever", 1e-4, 1e-3), ("end_to_end", 1e-4, 5e-4)]
    assert [(stage, pytest.approx(a), pytest.approx(b)) for stage, a, b in probe.lrs] == expected
    assert model.stepped_this_epoch == {"sasrec", "retriever"}  # stepped at the next epoch's start (none here)


def test_schedulers_that_cannot_work_here_are_refused(datamodule):
    plateau = scheduled_model(datamodule, retriever_scheduler=torch.optim.lr_scheduler.ReduceLROnPlateau)
    with pytest.raises(ValueError, match="ReduceLROnPlateau is not supported"):
        make_trainer([plain_stages(1, 0, 0, 0)], max_epochs=-1).fit(plateau, datamodule)
    both = scheduled_model(datamodule, sasrec_scheduler=torch.optim.lr_scheduler.ConstantLR)
    with pytest.raises(ValueError, match="finetune_sasrec_lr and model.sasrec_scheduler"):
        make_trainer([plain_stages(1, 0, 0, 0, finetune_sasrec_lr=1e-4)], max_epochs=-1).fit(both, datamodule)


def test_recent_item_text_is_the_mean_over_each_window(datamodule):
    model = make_model(datamodule, retriever={"recent_content": 3})
    model.attach_item_features(datamodule)
    items = torch.tensor([[0, 0, 0, 5, 2], [1, 2, 3, 4, 6]])  # left-padded like the training inputs
    got = model.net.recent_item_text(items, positions=3)  # windows ending at the last 3 columns
    text = model.net.item_text
    expected = torch.stack([
        torch.stack([torch.zeros_like(text[0]), text[5], (text[5] + text[2]) / 2]),
        torch.stack([(text[1] + text[2] + text[3]) / 3, (text[2] + text[3] + text[4]) / 3,
                     (text[3] + text[4] + text[6]) / 3]),
    ])
    torch.testing.assert_close(got, expected)
    assert make_model(datamodule).net.recent_item_text(items, 3) is None  # off at 0


def test_zero_epoch_stages_are_skipped():
    stages = TrainingStages(pretrain_sasrec=0, pretrain_retriever=0, joint_finetune=3, end_to_end=0)
    assert stages.stage == "joint_finetune" and stages.total_epochs == 3
    with pytest.raises(ValueError):
        TrainingStages(0, 0, 0, 0)


def test_adaptive_switch_triggers_exactly_where_the_loss_flattens():
    alternating = AdaptiveAlternating(min_steps=5, switch_threshold=0.01, window=5)
    curve = [10, 9, 8.1, 7.29, 6.561, 6.5, 6.5, 6.5, 6.5, 6.5]
    active = []
    for step, loss in enumerate(curve, start=1):
        active.append(alternating.active)
        alternating.record(loss, step)
    # window relative changes at steps 5..9: 0.34, 0.28, 0.20, 0.11, 0.0093 -> switch after step 9
    assert relative_change([6.561, 6.5, 6.5, 6.5, 6.5]) < 0.01 < relative_change([7.29, 6.561, 6.5, 6.5, 6.5])
    assert active == ["sasrec"] * 9 + ["retriever"]
    assert alternating.switch_log == [{"step": 9, "from": "sasrec", "to": "retriever"}]
    assert alternating.steps == {"sasrec": 9, "retriever": 1}
    # the new module starts with an empty window: a flat loss needs min_steps before switching back
    for step in range(11, 14):  # retriever steps 2..4 (its first was step 10)
        alternating.record(6.5, step)
    assert alternating.active == "retriever"
    alternating.record(6.5, 14)
    assert alternating.active == "sasrec" and alternating.switches == 2


def test_min_steps_holds_even_when_the_loss_is_flat():
    alternating = AdaptiveAlternating(min_steps=8, window=3)
    for step in range(7):
        alternating.record(1.0, step)
    assert alternating.switches == 0
    alternating.record(1.0, 7)
    assert alternating.switches == 1


@pytest.mark.parametrize("threshold", [-0.01, float("nan")])
def test_a_negative_or_nan_switch_threshold_is_refused(threshold):
    with pytest.raises(ConfigError, match=r"alternating\.switch_threshold: must be >= 0"):
        AdaptiveAlternating(switch_threshold=threshold)


def test_both_mode_never_switches_and_counts_both():
    alternating = AdaptiveAlternating(mode="both")
    for step in range(6):
        alternating.record(1.0, step)
    assert alternating.stepping() == ("sasrec", "retriever") and alternating.switches == 0
    assert alternating.steps == {"sasrec": 6, "retriever": 6}


def test_callback_state_round_trips_through_plain_types():
    alternating = AdaptiveAlternating(min_steps=2, window=2)
    for step, loss in enumerate([5.0, 4.0, 4.0, 3.9]):
        alternating.record(loss, step)
    restored = AdaptiveAlternating(min_steps=2, window=2)
    restored.load_state_dict(alternating.state_dict())
    assert restored.statistics() == alternating.statistics()
    for step, loss in enumerate([3.9, 3.9, 3.9], start=4):
        alternating.record(loss, step)
        restored.record(loss, step)
    assert restored.statistics() == alternating.statistics()
    stages = TrainingStages(1, 2, 3, 4)
    stages.stage_index, stages.best = 2, {"pretrain_sasrec": 0.1}
    other = TrainingStages(1, 2, 3, 4)
    other.load_state_dict(stages.state_dict())
    assert other.stage == "joint_finetune" and other.best == {"pretrain_sasrec": 0.1}

    def plain(value) -> bool:  # what torch.load(weights_only=True) reads back
        if isinstance(value, dict):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        if isinstance(value, list):
            return all(plain(v) for v in value)
        return value is None or type(value) in (int, float, str, bool)

    for state in (alternating.state_dict(), stages.state_dict()):
        assert plain(state), state
        buffer = io.BytesIO()
        torch.save(state, buffer)
        buffer.seek(0)
        assert torch.load(buffer, weights_only=True) == state
