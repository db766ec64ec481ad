"""SASRec's content term and its new-item map: new items are ranked by their content, never by an untrained ID
embedding."""

import pytest
import torch

from ur4rec.errors import ConfigError
from ur4rec.models.configs import RetrieverConfig, SASRecConfig
from ur4rec.models.sasrec import SASRec
from ur4rec.models.ur4rec import UR4Rec

N, CONTENT = 20, 12
NEW = [4, 9]


def content_model(id_dropout: float = 0.0, new_item_ridge: float | None = None) -> SASRec:
    torch.manual_seed(0)
    model = SASRec(N, hidden_size=16, num_blocks=1, num_heads=2, dropout=0.0, max_seq_len=6, content_dim=CONTENT,
                   id_dropout=id_dropout, new_item_ridge=new_item_ridge)
    known = torch.ones(N + 1, dtype=torch.bool)
    known[0] = False
    known[NEW] = False
    model.set_item_content(torch.randn(N + 1, CONTENT, generator=torch.Generator().manual_seed(1)), known)
    return model.eval()


def test_a_new_items_id_embedding_never_changes_any_score():
    model = content_model()
    items = torch.tensor([[0, 1, 2, 3, 5, 6]])
    before = model.score_all(model.user_state(items))
    with torch.no_grad():
        model.item_embedding.weight[NEW] += 5 * torch.randn(len(NEW), 16)
    torch.testing.assert_close(model.score_all(model.user_state(items)), before)
    with torch.no_grad():  # a known item's ID embedding does take part
        model.item_embedding.weight[3] += torch.randn(16)
    assert not torch.allclose(model.score_all(model.user_state(items)), before)


def test_a_new_items_content_decides_its_score():
    model = content_model()
    state = model.user_state(torch.tensor([[0, 1, 2, 3, 5, 6]]))
    before = model.score_all(state)
    model.item_content[NEW[0]] = torch.randn(CONTENT)
    after = model.score_all(state)
    assert after[0, NEW[0]] != before[0, NEW[0]]
    keep = [i for i in range(N + 1) if i != NEW[0]]
    torch.testing.assert_close(after[:, keep], before[:, keep])


def test_id_dropout_drops_id_terms_in_training_only():
    model = content_model(id_dropout=0.5)
    with torch.no_grad():
        model.unknown_item.copy_(torch.randn(16))
    content_only = model.unknown_item + model.content_projection(model.item_content)  # (N + 1, D)
    torch.testing.assert_close(model.item_table(), model.item_table())  # evaluation: deterministic
    model.train()
    torch.manual_seed(3)
    table = model.item_table()
    dropped = torch.isclose(table, content_only).all(1)[1:]  # items whose row is the unknown vector + content
    assert 0 < dropped.sum() < N  # about half: some dropped, not all
    assert dropped[[i - 1 for i in NEW]].all()  # new items never have an ID term


def test_sasrec_content_trains_its_projection_through_the_loss():
    model = UR4Rec(N, 6, CONTENT, sasrec=SASRecConfig(hidden_size=16, content=True, id_dropout=0.3))
    known = torch.ones(N + 1, dtype=torch.bool)
    known[NEW] = False
    model.set_item_features(torch.randn(N + 1, CONTENT), torch.zeros(N + 1, 1), known.clone(), known)
    batch = {"input": torch.tensor([[0, 1, 2, 3, 5, 6]]), "target": torch.tensor([[0, 2, 3, 5, 6, 7]])}
    model.losses(batch, "sasrec")["total"].backward()
    assert model.sasrec.content_projection.weight.grad.abs().sum() > 0
    assert model.sasrec.unknown_item.grad.abs().sum() > 0  # learns from the new items' (and dropped IDs') scores


def test_fusion_keeps_sasrecs_score_of_new_items_when_sasrec_reads_content():
    with_content = UR4Rec(N, 6, CONTENT, 4, SASRecConfig(hidden_size=16, content=True), RetrieverConfig(hidden_size=16))
    without = UR4Rec(N, 6, CONTENT, 4, SASRecConfig(hidden_size=16), RetrieverConfig(hidden_size=16))
    mapped = UR4Rec(N, 6, CONTENT, 4, SASRecConfig(hidden_size=16, new_item_ridge=1.0), RetrieverConfig(hidden_size=16))
    assert with_content.fusion_seen() is None and mapped.fusion_seen() is None
    assert without.fusion_seen() is without.item_seen


def test_the_new_item_map_recovers_a_linear_content_to_embedding_relation():
    model = content_model(new_item_ridge=1e-6)
    assert model.content_projection is None and model.unknown_item is None  # no parameters beyond plain SASRec's
    relation, offset = torch.randn(CONTENT, 16), torch.randn(16)
    with torch.no_grad():  # every item's ID embedding is a linear function of its content: the map must find it
        model.item_embedding.weight.copy_(model.item_content @ relation + offset)
        wanted = model.item_embedding.weight[NEW].clone()
        model.item_embedding.weight[NEW] = 0.0  # what a new item's ID embedding holds is never read
    table = model.item_table()
    torch.testing.assert_close(table[NEW], wanted, atol=1e-3, rtol=1e-3)
    known = [i for i in range(1, N + 1) if i not in NEW]
    torch.testing.assert_close(table[known], model.item_embedding.weight[known])  # known items: plain SASRec


def test_the_new_item_map_leaves_training_to_the_id_embeddings():
    model = content_model(new_item_ridge=1.0)
    torch.testing.assert_close(model.train().item_table(), model.item_embedding.weight)
    assert not torch.allclose(model.eval().item_table()[NEW], model.item_embedding.weight[NEW])


def test_the_new_item_map_is_solved_again_only_after_a_change(monkeypatch):
    model = content_model(new_item_ridge=1.0)
    solved = []
    solve = model.mapped_content
    monkeypatch.setattr(model, "mapped_content", lambda ids: solved.append(1) or solve(ids))
    first = model.item_table()
    torch.testing.assert_close(model.item_table(), first)
    assert len(solved) == 1  # a second batch of the same evaluation reuses the map
    with torch.no_grad():
        model.item_embedding.weight[1] += 1.0  # as an optimizer step would
    assert not torch.allclose(model.item_table()[NEW], first[NEW]) and len(solved) == 2
    model.new_item_ridge = 100.0
    model.item_table()
    model.item_content[NEW[0]] = torch.randn(CONTENT)
    model.item_table()
    assert len(solved) == 4


def test_a_larger_ridge_shrinks_new_items_towards_the_mean_embedding():
    model = content_model(new_item_ridge=1e-3)
    known = [i for i in range(1, N + 1) if i not in NEW]
    mean = model.item_embedding.weight[known].mean(0)
    spread = [(content_model(new_item_ridge=ridge).item_table()[NEW] - mean).norm() for ridge in (1e-3, 1.0, 1e3)]
    assert spread[0] > spread[1] > spread[2]


@pytest.mark.parametrize("config, text_dim, key", [
    (SASRecConfig(new_item_ridge=0.0), CONTENT, "model.sasrec.new_item_ridge"),
    (SASRecConfig(content=True, new_item_ridge=1.0), CONTENT, "model.sasrec.new_item_ridge"),
    (SASRecConfig(new_item_ridge=1.0), 0, "model.sasrec.new_item_ridge"),
    (SASRecConfig(id_dropout=0.2), CONTENT, "model.sasrec.id_dropout"),
    (SASRecConfig(content=True, id_dropout=1.0), CONTENT, "model.sasrec.id_dropout"),
    (SASRecConfig(content=True), 0, "model.sasrec.content"),
])
def test_bad_content_settings_name_their_key(config, text_dim, key):
    with pytest.raises(ConfigError, match=key):
        UR4Rec(N, 6, text_dim, sasrec=config)
