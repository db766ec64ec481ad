"""Retriever (mixture of experts), router renormalization, load balance and score fusion."""

import math

import pytest
import torch

from ur4rec.models.fusion import ScoreFusion
from ur4rec.models.retriever import EXPERTS, MoERetriever, load_balance_loss

N, DS, DT, DI = 12, 8, 6, 5


def inputs(batch=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    image_mask = torch.ones(N + 1, dtype=torch.bool)
    image_mask[[0, 3, 7]] = False  # padding and two items without a poster
    return (torch.randn(batch, DS, generator=g), torch.randn(batch, DT, generator=g),
            torch.randn(N + 1, DT, generator=g), torch.randn(N + 1, DI, generator=g), image_mask)


@pytest.fixture
def retriever():
    torch.manual_seed(0)
    return MoERetriever(N, DS, DT, DI, hidden_size=16).eval()


def test_router_weights_sum_to_one(retriever):
    out = retriever(*inputs())
    assert out.weights.shape == (4, 3)
    torch.testing.assert_close(out.weights.sum(-1), torch.ones(4))
    assert torch.all(out.weights > 0)


def test_missing_image_drops_the_expert_and_renormalizes(retriever):
    out = retriever(*inputs())
    w = out.weights
    s = out.expert_scores
    full = (w[:, 0, None] * s["preference"] + w[:, 1, None] * s["description"] + w[:, 2, None] * s["image"])
    with_image = [i for i in range(1, N + 1) if i not in (3, 7)]
    torch.testing.assert_close(out.scores[:, with_image], full[:, with_image])
    text_only = (w[:, 0, None] * s["preference"] + w[:, 1, None] * s["description"]) / (w[:, 0] + w[:, 1])[:, None]
    torch.testing.assert_close(out.scores[:, [3, 7]], text_only[:, [3, 7]])
    assert torch.all(out.scores[:, 0] == float("-inf"))


def test_expert_scores_share_a_bounded_scale(retriever):
    out = retriever(*inputs())
    scale = retriever.log_scale.exp()
    for e, name in enumerate(EXPERTS):
        assert out.expert_scores[name].abs().max() <= scale[e] + 1e-5


def test_recent_text_enters_the_user_context():
    torch.manual_seed(0)
    retriever = MoERetriever(N, DS, DT, DI, hidden_size=16, recent_text=True).eval()
    args = inputs()
    recent = torch.randn(4, DT)
    first, second = retriever(*args, recent_text=recent), retriever(*args, recent_text=recent.flip(0))
    assert not torch.allclose(first.scores[:, 1:], second.scores[:, 1:]) and not torch.allclose(first.weights,
                                                                                                 second.weights)
    with pytest.raises(ValueError, match="built with recent_text=True"):
        retriever(*args)
    with pytest.raises(ValueError, match="built with recent_text=False"):
        MoERetriever(N, DS, DT, DI, hidden_size=16)(*args, recent_text=recent)


def test_switched_off_experts_are_not_built():
    text_only = MoERetriever(N, DS, DT, DI, experts=("preference", "description"))
    assert text_only.experts == ("preference", "description")
    assert not hasattr(text_only, "image_items") and text_only.router.out_features == 2
    out = text_only(*inputs())
    assert set(out.expert_scores) == {"preference", "description"}
    image_only = MoERetriever(N, DS, DT, DI, experts=("image",))
    scores = image_only(*inputs()).scores
    assert torch.all(scores[:, [0, 3, 7]] == float("-inf"))  # no expert covers items without posters
    assert torch.isfinite(scores[:, [1, 2, 4]]).all()
    with pytest.raises(ValueError, match="subset"):
        MoERetriever(N, DS, DT, DI, experts=("audio",))


def test_scoring_is_batched_not_per_user(retriever):
    """One pass scores the whole batch: each item projection runs once for 5 users (a per-user loop would
    run it 5 times), and a user's scores do not depend on the other users in the batch."""
    args = inputs(batch=5)
    calls = []
    hooks = [getattr(retriever, name).register_forward_hook(lambda *_: calls.append(1))
             for name in ("preference_items", "description_items", "image_items")]
    together = retriever(*args).scores
    for hook in hooks:
        hook.remove()
    assert len(calls) == 3  # one call per expert for the whole batch
    alone = torch.cat([retriever(args[0][i:i + 1], args[1][i:i + 1], *args[2:]).scores for i in range(5)])
    torch.testing.assert_close(together, alone)


def test_load_balance_loss():
    assert load_balance_loss(torch.full((6, 3), 1 / 3)).item() == pytest.approx(0.0, abs=1e-6)
    collapsed = torch.tensor([[1.0, 0.0, 0.0]] * 6)
    assert load_balance_loss(collapsed).item() == pytest.approx(2.0)
    weights = torch.tensor([[0.8, 0.1, 0.1]], requires_grad=True)
    load_balance_loss(weights).backward()
    assert weights.grad[0, 0] > weights.grad[0, 1]  # pushes weight away from the dominant expert


def test_fusion_is_a_weighted_sum_of_log_probabilities():
    sasrec, retriever_scores = torch.randn(3, N + 1), 5 * torch.randn(3, N + 1)
    fusion = ScoreFusion(0.4)
    fused = fusion(sasrec, retriever_scores)
    expected = 0.4 * sasrec[:, 1:].log_softmax(-1) + 0.6 * retriever_scores[:, 1:].log_softmax(-1)
    torch.testing.assert_close(fused[:, 1:], expected)
    assert torch.all(fused[:, 0] == float("-inf"))
    assert list(fusion.parameters()) == []  # fixed weight: nothing to learn


def test_learned_fusion_weight_gets_gradient():
    fusion = ScoreFusion(0.4, learned=True)
    assert fusion.sasrec_weight.item() == pytest.approx(0.4)
    loss = -fusion(torch.randn(2, N + 1), torch.randn(2, N + 1))[:, 1:].logsumexp(-1).sum()
    loss.backward()
    grad = fusion.weight_logit.grad
    assert grad is not None and math.isfinite(grad.item()) and grad.item() != 0.0
    with pytest.raises(ValueError):
        ScoreFusion(1.5)


def test_items_never_trained_on_are_ranked_by_content_alone():
    """A new item's untrained ID embedding (SASRec's, or the preference expert's) must not decide its rank."""
    fusion = ScoreFusion(0.7)
    sasrec, retriever_scores = torch.randn(3, N + 1), torch.randn(3, N + 1)
    seen = torch.ones(N + 1, dtype=torch.bool)
    seen[[0, 4, 9]] = False
    fused = fusion(sasrec, retriever_scores, seen)
    retriever_log_prob = retriever_scores[:, 1:].log_softmax(-1)
    torch.testing.assert_close(fused[:, [4, 9]], retriever_log_prob[:, [3, 8]])  # unseen: the retriever's alone
    torch.testing.assert_close(fused[:, 1], 0.7 * sasrec[:, 1:].log_softmax(-1)[:, 0] + 0.3 * retriever_log_prob[:, 0])
    shuffled = sasrec.clone()
    shuffled[:, [4, 9]] = torch.randn(3, 2) * 100  # whatever SASRec says of the unseen items
    assert torch.equal(fusion(shuffled, retriever_scores, seen)[:, [4, 9]], fused[:, [4, 9]])

    torch.manual_seed(0)
    model = MoERetriever(N, DS, DT, DI, hidden_size=16, experts=("preference",)).eval()
    args = inputs()
    before = model(*args, item_seen=seen).scores
    with torch.no_grad():
        model.item_embedding.weight[[4, 9]] += 5.0  # the untrained IDs move
    after = model(*args, item_seen=seen).scores
    assert torch.equal(after[:, [4, 9]], before[:, [4, 9]]) and not torch.equal(model(*args).scores, after)
