"""UR4RecDataModule: sample layout, leakage-free evaluation inputs, sampled candidates, shuffling, features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from feature_fixtures import HashTextEncoder
from synthetic import write_ml100k
from ur4rec.datamodule import EpochShuffleSampler, UR4RecDataModule
from ur4rec.features.tables import build_feature_tables


@pytest.fixture
def dm(tmp_path):
    module = UR4RecDataModule(str(write_ml100k(tmp_path / "data", per_user=15)), max_seq_len=10, batch_size=8,
                              num_sampled_negatives=30)
    module.setup("fit")
    return module


def test_training_samples_shift_by_one_and_keep_the_latest_window(dm):
    s = dm.splits
    dataset = dm.train_dataloader().dataset
    for user in range(3):
        train = s.train[user]  # 13 items: 15 minus validation and test
        sample = dataset[user]
        assert sample["input"].tolist() == train[-11:-1].tolist()
        assert sample["target"].tolist() == train[-10:].tolist()
    short = UR4RecDataModule(dm.hparams.data_dir, max_seq_len=20, num_sampled_negatives=30)
    sample = short.train_dataloader().dataset[0]
    train = short.load().train[0]
    assert sample["input"].tolist() == [0] * 8 + train[:-1].tolist()  # left-padded
    assert sample["target"].tolist() == [0] * 8 + train[1:].tolist()


def test_evaluation_inputs_never_contain_their_target(dm):
    s = dm.splits
    for split, loader in (("val", dm.val_dataloader()), ("test", dm.test_dataloader())):
        batch = next(iter(loader))
        for row, user in enumerate(batch["user"].tolist()):
            target = int(batch["target"][row])
            history = batch["history"][row][batch["history"][row] > 0].tolist()
            expected = s.valid_history(user) if split == "val" else s.test_history(user)
            assert history == expected.tolist()
            assert target not in history and target not in batch["input"][row].tolist()
            assert batch["input"][row][-1].item() == expected[-1]  # the latest visible item is last
            if split == "test":
                assert s.valid_target[user] in history  # the validation item is visible at test time
            assert batch["candidates"][row, 0].item() == target


def test_sampled_candidates_are_fixed_and_never_interacted(dm):
    s = dm.splits
    negatives = dm.sampled_negatives
    assert negatives.shape == (s.num_users, 30)
    for user in range(s.num_users):
        seen = set(s.test_history(user).tolist()) | {int(s.test_target[user])}
        row = negatives[user].tolist()
        assert len(set(row)) == 30 and not seen & set(row) and 0 not in row
    again = UR4RecDataModule(dm.hparams.data_dir, max_seq_len=10, num_sampled_negatives=30)
    again.setup("fit")
    assert torch.equal(again.sampled_negatives, negatives)  # drawn once from the seed


def test_shuffling_depends_only_on_seed_and_epoch():
    a, b = EpochShuffleSampler(50, seed=3), EpochShuffleSampler(50, seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    assert list(a) == list(b) and sorted(a) == list(range(50))
    b.set_epoch(3)
    assert list(a) != list(b)


def test_batches_carry_aligned_user_text_vectors(tmp_path):
    module = UR4RecDataModule(str(write_ml100k(tmp_path / "data")), features=True, batch_size=8,
                              num_sampled_negatives=30)
    splits = module.load()
    module._features = build_feature_tables(module.raw, splits, text_model=HashTextEncoder(dim=12),
                                            image_encoder="descriptor")
    assert module.text_dim == 12 and module.image_dim == module.features.image_dim
    for loader in (module.train_dataloader(), module.val_dataloader()):
        batch = next(iter(loader))
        torch.testing.assert_close(batch["user_text"], module.features.user_text[batch["user"]])
    assert module.features.item_text.shape == (splits.num_items + 1, 12)
    np.testing.assert_array_equal(module.features.raw_item_ids, splits.raw_item_ids)
    with pytest.raises(RuntimeError, match="features are disabled"):
        UR4RecDataModule(str(tmp_path / "data")).build_features()


def test_rank_shards_cover_every_user_once_in_evaluation_and_pad_in_training():
    from ur4rec.datamodule import ShardSampler

    shards = [list(ShardSampler(11, rank, 3)) for rank in range(3)]
    assert sorted(i for shard in shards for i in shard) == list(range(11))
    train = [EpochShuffleSampler(11, seed=5, rank=rank, world_size=3) for rank in range(3)]
    orders = [list(s) for s in train]
    assert [len(o) for o in orders] == [4, 4, 4] and set(sum(orders, [])) == set(range(11))
    assert sorted(sum(orders, [])) != list(range(11))  # one index repeats to even out the ranks
