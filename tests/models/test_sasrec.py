"""SASRec: causality, padding isolation, padding-side independence, and the losses."""

import pytest
import torch
import torch.nn.functional as F

from ur4rec.data.datasets import sample_negatives
from ur4rec.errors import ConfigError
from ur4rec.models.configs import SASRecConfig
from ur4rec.models.losses import next_item_loss
from ur4rec.models.sasrec import SASRec
from ur4rec.models.ur4rec import UR4Rec


@pytest.fixture(params=["pre", "post"])
def model(request):
    torch.manual_seed(0)
    return SASRec(num_items=30, hidden_size=16, num_blocks=2, num_heads=2, dropout=0.3, max_seq_len=8,
                  norm=request.param).eval()


def test_user_state_is_the_same_for_left_and_right_padding(model):
    items = [4, 9, 2, 17, 5]
    left = torch.tensor([[0, 0, 0] + items])
    right = torch.tensor([items + [0, 0, 0]])
    torch.testing.assert_close(model.user_state(left), model.user_state(right))
    torch.testing.assert_close(model(left)[0, 3:], model(right)[0, :5])


def test_causal_outputs_ignore_later_items(model):
    a = torch.tensor([[3, 4, 5, 6, 7, 8, 9, 10]])
    b = a.clone()
    b[0, 5:] = torch.tensor([20, 21, 22])
    torch.testing.assert_close(model(a)[0, :5], model(b)[0, :5])
    assert not torch.allclose(model(a)[0, 5:], model(b)[0, 5:])


def test_padding_is_zero_and_does_not_leak(model):
    short = torch.tensor([[0, 0, 0, 0, 0, 0, 1, 2]])
    hidden = model(short)
    assert torch.all(hidden[0, :6] == 0)
    # The same two items without any padding give the same states.
    torch.testing.assert_close(hidden[0, 6:], model(torch.tensor([[1, 2]]))[0])


def test_dropout_only_in_training(model):
    items = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8]])
    torch.testing.assert_close(model(items), model(items))
    model.train()
    assert not torch.allclose(model(items), model(items))


@pytest.mark.parametrize("drop_padding", [True, False], ids=["indexed", "masked"])
def test_cross_entropy_matches_reference(model, drop_padding):
    items = torch.tensor([[0, 0, 3, 4, 5], [1, 2, 3, 4, 5]])
    target = torch.tensor([[0, 0, 4, 5, 6], [2, 3, 4, 5, 6]])
    hidden = model(items)
    loss = next_item_loss(hidden, target, model.item_embedding.weight, "ce", drop_padding=drop_padding)
    logits = hidden @ model.item_embedding.weight[1:].T  # padding excluded
    real = target > 0
    expected = F.cross_entropy(logits[real], target[real] - 1)
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("kind", ["bce", "bpr"])
def test_sampled_losses_train_only_on_real_positions(model, kind):
    items = torch.tensor([[0, 0, 3, 4, 5]])
    target = torch.tensor([[0, 0, 4, 5, 6]])
    negative = torch.randint(7, 31, (1, 5, 2))
    loss = next_item_loss(model(items), target, model.item_embedding.weight, kind, negative)
    loss.backward()
    # Negatives drawn at padded positions never receive gradient.
    padded_negatives = negative[0, :2].flatten().unique()
    real_negatives = negative[0, 2:].flatten().unique()
    only_padded = padded_negatives[~torch.isin(padded_negatives, real_negatives)]
    grad = model.item_embedding.weight.grad
    assert torch.all(grad[only_padded] == 0)
    assert torch.any(grad[real_negatives] != 0)
    with pytest.raises(ValueError, match="negatives"):
        next_item_loss(model(items), target, model.item_embedding.weight, kind, None)


def test_sample_negatives_avoids_positives():
    torch.manual_seed(0)
    positives = torch.arange(1, 46)  # 45 of 50 items are positives
    negatives = sample_negatives(positives, num_items=50, shape=(200, 3))
    assert negatives.min() >= 46 and negatives.max() <= 50


def test_sample_negatives_is_uniform_over_the_complement():
    torch.manual_seed(0)
    negatives = sample_negatives(torch.tensor([4, 2, 2]), num_items=6, shape=(40_000,))
    counts = torch.bincount(negatives, minlength=7)
    assert counts[[0, 2, 4]].sum() == 0
    assert torch.allclose(counts[[1, 3, 5, 6]].float() / 10_000, torch.ones(4), atol=0.05)


@pytest.mark.slow
def test_compiled_sasrec_matches_eager_outputs_and_gradients():
    torch.manual_seed(0)
    eager = UR4Rec(30, 12, sasrec=SASRecConfig(hidden_size=16, dropout=0.0))
    compiled = UR4Rec(30, 12, sasrec=SASRecConfig(hidden_size=16, dropout=0.0, compile="inductor"))
    compiled.load_state_dict(eager.state_dict())
    assert compiled.sasrec._compiled_call_impl is not None and eager.sasrec._compiled_call_impl is None
    assert list(compiled.state_dict()) == list(eager.state_dict())  # checkpoints stay interchangeable
    items = torch.randint(0, 31, (6, 12))
    items[:, -1] = torch.randint(1, 31, (6,))
    batch = {"input": items, "target": torch.randint(1, 31, (6, 12))}
    for module in (eager, compiled):
        module.losses(batch, "sasrec")["total"].backward()
    assert torch.allclose(compiled.scores(batch, "sasrec")[0], eager.scores(batch, "sasrec")[0], atol=1e-5)
    for (name, p), q in zip(eager.named_parameters(), compiled.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-5), name


def test_scores_stay_float32_and_distinct_under_bf16_autocast(model):
    states = model.user_state(torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8]]))
    exact = model.score_all(states)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scores = model.score_all(states)
    assert scores.dtype == torch.float32  # bf16 would leave a few hundred distinct values over a catalog
    torch.testing.assert_close(scores, exact)


def test_feedforward_size_sets_the_inner_width_and_defaults_to_hidden_size():
    wide = SASRec(num_items=30, hidden_size=16, num_blocks=2, num_heads=2, max_seq_len=8, feedforward_size=64)
    default = SASRec(num_items=30, hidden_size=16, num_blocks=2, num_heads=2, max_seq_len=8)
    assert [tuple(block.ffn[0].weight.shape) for block in wide.blocks] == [(64, 16)] * 2
    assert [tuple(block.ffn[3].weight.shape) for block in wide.blocks] == [(16, 64)] * 2
    assert tuple(default.blocks[0].ffn[0].weight.shape) == (16, 16)
    assert wide.eval()(torch.tensor([[0, 3, 4, 5]])).shape == (1, 4, 16)


@pytest.mark.parametrize("config, key", [
    (SASRecConfig(hidden_size=16, feedforward_size=0), "model.sasrec.feedforward_size"),
    (SASRecConfig(hidden_size=16, norm="middle"), "model.sasrec.norm"),
])
def test_bad_architecture_settings_name_their_key(config, key):
    with pytest.raises(ConfigError, match=key):
        UR4Rec(30, 12, sasrec=config)


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_norm_layouts_match_their_reference(norm):
    """pre: x + f(LN(x)), sqrt(D)-scaled embeddings, a final LN; post (RecBole): LN(x + f(x)), LN on the embeddings."""
    torch.manual_seed(0)
    model = SASRec(num_items=30, hidden_size=16, num_blocks=1, num_heads=2, dropout=0.0, max_seq_len=8, norm=norm).eval()
    items = torch.tensor([[3, 4, 5]])
    block = model.blocks[0]
    allowed = torch.ones(3, 3, dtype=torch.bool).tril()[None, None]
    embedded, positions = model.item_embedding(items), model.position_embedding(torch.arange(3))[None]
    if norm == "pre":
        x = embedded * 4.0 + positions  # sqrt(16)
        x = x + block.attend(block.attn_norm(x), allowed)
        expected = model.final_norm(x + block.ffn(block.ffn_norm(x)))
    else:
        x = model.input_norm(embedded + positions)
        x = block.attn_norm(x + block.attend(x, allowed))
        expected = block.ffn_norm(x + block.ffn(x))
    torch.testing.assert_close(model(items), expected)
