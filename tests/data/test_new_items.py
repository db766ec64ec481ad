"""The new-item (cold-start) protocol: new items never reach training or any evaluation input."""

from __future__ import annotations

import numpy as np
import pytest

from writers import write_ml100k
from ur4rec.data.preprocessing import hold_out_new_items, prepare_splits
from ur4rec.data.readers import read_dataset
from ur4rec.datamodule import UR4RecDataModule


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    root = write_ml100k(tmp_path_factory.mktemp("data"), num_users=40, num_items=100, per_user=15)
    return prepare_splits(read_dataset(root).ratings)


def test_new_items_leave_training_and_every_evaluation_input(splits):
    held = hold_out_new_items(splits, 0.2, fold=1)
    new = held.new_items
    assert new.sum() == 20 and not new[0]
    assert held.num_users == splits.num_users  # no user lost all training items here
    for u in range(held.num_users):
        assert not new[held.train[u]].any()  # never an input or a target of training
        assert not new[held.valid_history(u)].any() and not new[held.test_history(u)].any()
        kept = splits.train[u][~new[splits.train[u]]]
        assert held.train[u].tolist() == kept.tolist()  # the rest of the sequence, order kept
    assert (held.valid_target == splits.valid_target).all() and (held.test_target == splits.test_target).all()
    cold = new[held.test_target]
    assert 0 < cold.sum() < held.num_users  # some users must rank an item no model trained on
    assert held.item_counts()[new].sum() == 0  # popularity counts training only: new items have none


def test_five_folds_of_a_fifth_make_every_item_new_once(splits):
    folds = np.stack([hold_out_new_items(splits, 0.2, fold).new_items for fold in range(5)])
    assert (folds[:, 1:].sum(0) == 1).all()
    assert not (hold_out_new_items(splits, 0.2, 0).new_items == hold_out_new_items(splits, 0.2, 1).new_items).all()


def test_users_left_without_training_items_are_dropped_with_a_warning(splits):
    with pytest.warns(UserWarning, match=r"data.cold_item_fraction=0.95: dropped \d+ user"):
        held = hold_out_new_items(splits, 0.95)
    assert all(len(t) for t in held.train) and held.num_users < splits.num_users
    assert len(held.valid_target) == len(held.test_target) == len(held.raw_user_ids) == held.num_users
    with pytest.raises(ValueError, match="cold_item_fraction"):
        hold_out_new_items(splits, 1.0)


def test_the_datamodule_serves_the_protocol_and_its_slices(tmp_path):
    root = write_ml100k(tmp_path / "data", num_users=40, num_items=100, per_user=15)
    dm = UR4RecDataModule(str(root), cold_item_fraction=0.2, cold_item_seed=2, num_sampled_negatives=20)
    dm.setup("fit")
    new = dm.new_item_mask()
    batch = next(iter(dm.test_dataloader()))
    assert (batch["target_new"] == new[batch["target"]]).all()
    assert not new[batch["input"]].any() and not new[batch["history"]].any()
    every = {u: set(s.tolist()) for u, s in enumerate(prepare_splits(read_dataset(root).ratings).train)}
    for user, candidates in zip(batch["user"].tolist(), batch["candidates"][:, 1:]):
        assert not set(candidates.tolist()) & every[user]  # negatives: never an item the user had, new or not
    assert (batch["target_count"] == torch_counts(dm)[batch["target"]]).all()
    assert (batch["history_length"] == (batch["history"] > 0).sum(1)).all()
    plain = UR4RecDataModule(str(root), num_sampled_negatives=20)
    assert plain.new_item_mask() is None and "target_new" not in next(iter(plain.test_dataloader()))


def torch_counts(dm):
    import torch

    return torch.from_numpy(dm.splits.item_counts())
