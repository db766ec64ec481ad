"""Training strategies: each changes the gradients it should and no others."""

from __future__ import annotations

import pytest
import torch

from ur4rec.callbacks.curriculum import CurriculumWeights
from ur4rec.models.contrastive import MemoryBankContrastive
from ur4rec.models.losses import bidirectional_distillation
from ur4rec.models.retriever import EXPERTS
from ur4rec.module import UR4RecModule

N, TEXT, IMAGE = 30, 12, 7


def make_module(**kwargs) -> UR4RecModule:
    torch.manual_seed(0)
    module = UR4RecModule(num_items=N, max_seq_len=6, hidden_size=16, experts=EXPERTS, text_dim=TEXT,
                          image_dim=IMAGE, retriever_hidden_size=16, **kwargs)
    g = torch.Generator().manual_seed(1)
    module.item_text.copy_(torch.randn(N + 1, TEXT, generator=g))
    module.item_image.copy_(torch.randn(N + 1, IMAGE, generator=g))
    module.image_mask.fill_(True)
    module.image_mask[0] = False
    module.stage = "joint_finetune"
    return module


def batch():
    g = torch.Generator().manual_seed(2)
    items = torch.randint(1, N + 1, (4, 7), generator=g)
    items[0, :3] = 0
    return {"input": items[:, :-1], "target": items[:, 1:].masked_fill(items[:, :-1] == 0, 0),
            "user_text": torch.randn(4, TEXT, generator=g), "user": torch.arange(4)}


def grads_of(module: UR4RecModule, loss: torch.Tensor) -> dict[str, bool]:
    module.zero_grad(set_to_none=True)
    loss.backward()
    return {name: p.grad is not None and bool(p.grad.abs().sum() > 0) for name, p in module.named_parameters()}


def group(flags: dict[str, bool], prefix: str) -> bool:
    return any(v for k, v in flags.items() if k.startswith(prefix))


def test_contrastive_loss_reaches_sasrec_and_its_heads_only():
    module = make_module(contrastive_weight=1.0)
    losses = module.compute_losses(batch())
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
    module = make_module(distill_weight=1.0)
    flags = grads_of(module, module.compute_losses(batch())["distill"])
    assert group(flags, "sasrec.") and group(flags, "retriever.")


def test_curriculum_ramps_only_the_auxiliary_losses():
    callback = CurriculumWeights(start=0.0, end=1.0, ramp_steps=4)

    class Probe:
        stage = "joint_finetune"
        aux_loss_scale = 1.0

        def log(self, *args, **kwargs):
            pass

    probe, scales = Probe(), []
    for _ in range(6):
        callback.on_train_batch_start(None, probe, None, 0)
        scales.append(probe.aux_loss_scale)
    assert scales == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    probe.stage = "pretrain_sasrec"
    callback.on_train_batch_start(None, probe, None, 0)
    assert probe.aux_loss_scale == 1.0

    module = make_module()
    data = batch()
    module.aux_loss_scale = 0.0
    losses = module.compute_losses(data)
    torch.testing.assert_close(losses["total"], losses["fused"])  # only the fused loss remains
    module.aux_loss_scale = 1.0
    full = module.compute_losses(data)
    assert full["total"] > full["fused"]


def test_strategies_are_off_by_default():
    module = make_module()
    losses = module.compute_losses(batch())
    assert module.contrastive is None and "contrastive" not in losses and "distill" not in losses
