"""Training strategies: each changes the gradients it should and no others."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from ur4rec.callbacks.curriculum import CurriculumWeights
from ur4rec.callbacks.stages import TrainingStages
from ur4rec.models.contrastive import MemoryBankContrastive
from ur4rec.models.losses import bidirectional_distillation
from ur4rec.models.configs import LossWeights, RetrieverConfig, SASRecConfig
from ur4rec.models.ur4rec import UR4Rec
from ur4rec.vocabulary import OBJECTIVE_JOINT

N, TEXT, IMAGE = 30, 12, 7


def make_module(**loss_weights) -> UR4Rec:
    """A small UR4Rec with random item features; ``loss_weights`` are LossWeights fields."""
    torch.manual_seed(0)
    module = UR4Rec(N, 6, TEXT, IMAGE, SASRecConfig(hidden_size=16), RetrieverConfig(hidden_size=16, recent_content=0),
                    LossWeights(**loss_weights))
    g = torch.Generator().manual_seed(1)
    mask = torch.ones(N + 1, dtype=torch.bool)
    mask[0] = False
    module.set_item_features(torch.randn(N + 1, TEXT, generator=g), torch.randn(N + 1, IMAGE, generator=g), mask,
                             mask)
    return module


def joint_losses(module: UR4Rec, data: dict, aux_scale: float = 1.0) -> dict[str, torch.Tensor]:
    return module.losses(data, OBJECTIVE_JOINT, aux_scale)


def batch():
    g = torch.Generator().manual_seed(2)
    items = torch.randint(1, N + 1, (4, 7), generator=g)
    items[0, :3] = 0
    return {"input": items[:, :-1], "target": items[:, 1:].masked_fill(items[:, :-1] == 0, 0),
            "user_text": torch.randn(4, TEXT, generator=g), "user": torch.arange(4)}


def grads_of(module: UR4Rec, loss: torch.Tensor) -> dict[str, bool]:
    module.zero_grad(set_to_none=True)
    loss.backward()
    return {name: p.grad is not None and bool(p.grad.abs().sum() > 0) for name, p in module.named_parameters()}


def group(flags: dict[str, bool], prefix: str) -> bool:
    return any(v for k, v in flags.items() if k.startswith(prefix))


def test_contrastive_loss_reaches_sasrec_and_its_heads_only():
    module = make_module(contrastive=1.0)
    losses = joint_losses(module, batch())
    flags = grads_of(module, losses["contrastive"])
    assert group(flags, "sasrec.") and group(flags, "contrastive.")
    assert not group(flags, "retriever.")  # experts, router and projections are untouched
    assert {id(p) for p in module.contrastive.parameters()} <= {id(p) for p in module.module_parameters("retriever")}


def test_memory_bank_is_fifo_and_gradient_free():
    bank = MemoryBankContrastive(state_dim=4, text_dim=3, dim=5, queue_size=6)
    for step in range(4):
        bank(torch.randn(4, 4), torch.full((4, 3), float(step)), torch.arange(4) + 4 * step)
    assert int(bank.queue_filled) == 6 and int(bank.queue_pointer) == 16 % 6
    assert not bank.queue.requires_grad
    # the queue holds the last 6 keys: two from step 2 and four from step 3, in ring order
    newest = torch.nn.functional.normalize(bank.text_projection(torch.full((1, 3), 3.0)), dim=-1)
    matches = torch.isclose(bank.queue, newest.detach()).all(-1)
    assert int(matches.sum()) == 4


def test_memory_bank_never_uses_a_users_own_key_as_negative():
    torch.manual_seed(0)
    bank = MemoryBankContrastive(state_dim=4, text_dim=3, dim=5, queue_size=8, temperature=1.0)
    state, text, users = torch.randn(1, 4), torch.randn(1, 3), torch.tensor([7])
    first = bank(state, text, users)  # empty queue, no other user: only the positive; then user 7 is queued
    again = bank(state, text, users)  # user 7's queued key is masked out, so still only the positive
    assert first.item() == again.item() == 0.0
    bank.queue_users.fill_(-1)  # pretend the queued keys came from other users
    assert bank(state, text, users) > again  # unmasked, the user's own key competes as a negative


def test_distillation_teaches_each_side_with_the_other_detached():
    s = torch.randn(5, N + 1, requires_grad=True)
    r = torch.randn(5, N + 1, requires_grad=True)
    bidirectional_distillation(s, r).backward()
    assert s.grad[:, 1:].abs().sum() > 0 and r.grad[:, 1:].abs().sum() > 0
    assert torch.all(s.grad[:, 0] == 0) and torch.all(r.grad[:, 0] == 0)  # padding column never enters
    # the SASRec side's gradient equals that of KL(teacher=r.detach() || s) alone
    s2 = s.detach().clone().requires_grad_(True)
    teacher = (r.detach()[:, 1:] / 2).log_softmax(-1)
    (4 * torch.nn.functional.kl_div((s2[:, 1:] / 2).log_softmax(-1), teacher, log_target=True,
                                    reduction="batchmean")).backward()
    torch.testing.assert_close(s.grad, s2.grad)
    identical = torch.randn(3, N + 1)
    assert bidirectional_distillation(identical, identical).item() == pytest.approx(0.0, abs=1e-6)


def test_distillation_averages_only_the_masked_rows():
    torch.manual_seed(0)
    s, r = torch.randn(5, N + 1), torch.randn(5, N + 1)
    keep = torch.tensor([True, False, True, True, False])
    torch.testing.assert_close(bidirectional_distillation(s, r, mask=keep), bidirectional_distillation(s[keep], r[keep]))
    assert bidirectional_distillation(s, r, mask=torch.zeros(5, dtype=torch.bool)).item() == 0.0


def test_distillation_in_the_module_changes_both_sides():
    module = make_module(distill=1.0)
    flags = grads_of(module, joint_losses(module, batch())["distill"])
    assert group(flags, "sasrec.") and group(flags, "retriever.")


def test_curriculum_ramps_only_the_auxiliary_losses():
    callback = CurriculumWeights(start=0.0, end=1.0, ramp_steps=4)
    stages = TrainingStages(0, 0, 3, 0)  # in joint_finetune

    class Probe:
        aux_loss_scale = 1.0

        def log(self, *args, **kwargs):
            pass

    trainer = SimpleNamespace(callbacks=[stages])
    probe, scales = Probe(), []
    for _ in range(6):
        callback.on_train_batch_start(trainer, probe, None, 0)
        scales.append(probe.aux_loss_scale)
    assert scales == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    callback.on_train_batch_start(SimpleNamespace(callbacks=[TrainingStages(2, 0, 0, 0)]), probe, None, 0)
    assert probe.aux_loss_scale == 1.0  # pretrain_sasrec: no ramp

    module, data = make_module(), batch()
    losses = joint_losses(module, data, aux_scale=0.0)
    torch.testing.assert_close(losses["total"], losses["fused"])  # only the fused loss remains
    full = joint_losses(module, data, aux_scale=1.0)
    assert full["total"] > full["fused"]


def test_strategies_are_off_by_default():
    module = make_module()
    losses = joint_losses(module, batch())
    assert module.contrastive is None and "contrastive" not in losses and "distill" not in losses


def test_the_retriever_trains_only_on_windows_ending_at_the_latest_transition():
    """Earlier windows name their targets in the user's text (which leaves out only the latest items), so
    their positions must not train the retriever; SASRec's loss uses every window."""
    module, data = make_module().eval(), batch()  # no dropout: the same positions give the same losses
    every = joint_losses(module, {**data, "latest": torch.ones(4, dtype=torch.bool)})
    one = joint_losses(module, {**data, "latest": torch.tensor([True, False, False, False])})
    none = joint_losses(module, {**data, "latest": torch.zeros(4, dtype=torch.bool)})
    torch.testing.assert_close(every["sasrec"], one["sasrec"])
    only_first = joint_losses(module, {k: v[:1] for k, v in data.items()})
    torch.testing.assert_close(one["retriever"], only_first["retriever"])  # the masked users count for nothing
    assert none["retriever"].item() == 0.0 and every["retriever"].item() > 0
