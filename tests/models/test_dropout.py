"""The CPU dropout masks: the drop rate, the scale, unbiased bits, and the attention that uses them."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ur4rec.models.dropout import LEVELS, Dropout, dropout, keep_mask
from ur4rec.models.retriever import projection
from ur4rec.models.sasrec import SASRec, attention


@pytest.mark.parametrize("p", [0.1, 0.2, 0.5])
def test_drop_rate_and_expectation(p):
    torch.manual_seed(0)
    out = dropout(torch.ones(1_000_000), p, training=True)
    dropped = (out == 0).float().mean().item()
    assert abs(dropped - p) < 5 * (p * (1 - p) / 1e6) ** 0.5
    assert abs(out.mean().item() - 1) < 5 * (p / (1 - p) / 1e6) ** 0.5  # inverted dropout keeps the mean


def test_kept_values_scale_by_the_rounded_keep_probability():
    torch.manual_seed(0)
    mask = keep_mask(torch.Size([1000]), 0.2, torch.float64, torch.device("cpu"))
    dropped_levels = round(0.2 * LEVELS)
    assert set(mask.unique().tolist()) == {0.0, LEVELS / (LEVELS - dropped_levels)}
    assert abs(dropped_levels / LEVELS - 0.2) <= 0.5 / LEVELS


def test_every_16_bit_lane_of_a_draw_is_unbiased():
    """At p = 0.5 an element is kept when its 16-bit lane's sign bit is 0; the lane holding a 64-bit word's
    top bit would be biased if the words did not cover the whole 64-bit range."""
    torch.manual_seed(0)
    kept = keep_mask(torch.Size([400_000, 4]), 0.5, torch.float32, torch.device("cpu")) > 0
    rates = kept.float().mean(0)
    assert (rates - 0.5).abs().max().item() < 5 * (0.25 / 400_000) ** 0.5


def test_identity_when_not_training_or_p_zero_and_zero_at_p_one():
    x = torch.randn(8, 5)
    assert dropout(x, 0.5, training=False) is x
    assert dropout(x, 0.0, training=True) is x
    assert torch.equal(dropout(x, 1.0, training=True), torch.zeros_like(x))
    layer = Dropout(0.5).eval()
    assert layer(x) is x


def test_same_seed_same_mask_and_gradient_through_the_kept_values():
    x = torch.randn(64, 32, requires_grad=True)
    torch.manual_seed(3)
    first = Dropout(0.3).train()(x)
    torch.manual_seed(3)
    second = Dropout(0.3).train()(x)
    torch.manual_seed(3)
    mask = keep_mask(x.shape, 0.3, x.dtype, x.device)
    assert torch.equal(first, second) and torch.equal(first, x * mask)
    first.sum().backward()
    assert torch.equal(x.grad, mask)  # d(x * mask)/dx


def _inputs():
    torch.manual_seed(0)
    q, k, v = (torch.randn(3, 2, 7, 4) for _ in range(3))
    allowed = torch.ones(7, 7, dtype=torch.bool).tril().expand(3, 1, 7, 7).clone()
    allowed[0, :, :, :3] = torch.eye(7, dtype=torch.bool)[:, :3]  # a row with padded keys
    return q, k, v, allowed


def test_attention_matches_the_fused_kernel_without_dropout():
    q, k, v, allowed = _inputs()
    fused = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    explicit = attention(q, k, v, allowed, p=0.1 / LEVELS, training=True)  # rounds to no drop: the explicit path
    assert torch.allclose(explicit, fused, atol=1e-6)
    assert torch.equal(attention(q, k, v, allowed, p=0.5, training=False), fused)


def test_attention_drops_weights_with_the_cheap_masks():
    q, k, v, allowed = _inputs()
    torch.manual_seed(1)
    out = attention(q, k, v, allowed, p=0.3, training=True)
    torch.manual_seed(1)
    weights = (q @ k.transpose(-2, -1) / 2).masked_fill(~allowed, float("-inf")).softmax(-1)
    expected = (weights * keep_mask(weights.shape, 0.3, weights.dtype, weights.device)) @ v
    assert torch.allclose(out, expected, atol=1e-6)


def test_the_models_draw_every_mask_with_the_cheap_dropout():
    modules = [*SASRec(num_items=20, dropout=0.3).modules(), *projection(8, 4, dropout=0.3).modules()]
    dropouts = [m for m in modules if isinstance(m, nn.Dropout)]
    assert len(dropouts) == 1 + 2 * 2 + 1 and all(type(m) is Dropout for m in dropouts)
