"""Stages and the two optimizers in a fit: who steps in which stage, where each stage starts from, and the
learning rates and schedulers. Adaptive alternating's own rule is tested in test_alternating.py."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from feature_fixtures import HashTextEncoder
from synthetic import small_module
from writers import write_ml100k
from ur4rec.callbacks import AdaptiveAlternating, TrainingStages
from ur4rec.callbacks.stages import current_stage
from ur4rec.datamodule import UR4RecDataModule
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
