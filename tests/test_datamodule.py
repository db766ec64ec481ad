"""UR4RecDataModule: sample layout, leakage-free evaluation inputs, sampled candidates, shuffling, features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from feature_fixtures import HashTextEncoder
from writers import write_ml100k
from ur4rec.data.datasets import sample_negatives, window_ends
from ur4rec.data.samplers import EpochShuffleSampler
from ur4rec.datamodule import UR4RecDataModule
from ur4rec.features.tables import build_feature_tables


@pytest.fixture
def dm(tmp_path):
    module = UR4RecDataModule(str(write_ml100k(tmp_path / "data", per_user=15)), max_seq_len=10, batch_size=8,
                              num_sampled_negatives=30)
    module.setup("fit")
    return module


def test_training_samples_shift_by_one_and_keep_the_latest_window(dm):
    s = dm.splits
    dm.hparams.train_windows = "last"
    dataset = dm.train_dataloader().dataset
    for user in range(3):
        train = s.train[user]  # 13 items: 15 minus validation and test
        sample = dataset[user]
        assert sample["input"].tolist() == train[-11:-1].tolist()
        assert sample["target"].tolist() == train[-10:].tolist()
    short = UR4RecDataModule(dm.hparams.data_dir, max_seq_len=20, num_sampled_negatives=30, train_windows="last")
    sample = short.train_dataloader().dataset[0]
    train = short.load().train[0]
    assert sample["input"].tolist() == [0] * 8 + train[:-1].tolist()  # left-padded
    assert sample["target"].tolist() == [0] * 8 + train[1:].tolist()


def transitions_of(dataset, epoch: int = 0) -> dict[int, list[tuple[int, int]]]:
    """user -> every (input item, target item) pair the epoch's windows train on (padding left out)."""
    seen: dict[int, list[tuple[int, int]]] = {}
    for index in range(len(dataset)):
        sample = dataset[epoch * len(dataset) + index]
        pairs = [(int(i), int(t)) for i, t in zip(sample["input"], sample["target"]) if t > 0]
        seen.setdefault(int(sample["user"]), []).extend(pairs)
    return seen


@pytest.mark.parametrize("stride", [None, 3, 1])
def test_sliding_windows_train_every_transition_of_every_user_once(dm, stride):
    """The default: no transition is thrown away (``last`` keeps only each user's latest window). A stride
    below ``max_seq_len`` overlaps the windows but still trains each transition once, in the window that
    gives it the most context."""
    dm.hparams.window_stride = stride
    dataset = dm.train_dataloader().dataset
    seen = transitions_of(dataset)
    L = dm.hparams.max_seq_len
    for user, train in enumerate(dm.splits.train):
        every = list(zip(train[:-1].tolist(), train[1:].tolist()))
        assert sorted(seen[user]) == sorted(every), user
    for index in range(len(dataset)):
        sample = dataset[index]
        train = dm.splits.train[int(sample["user"])].tolist()
        for position in torch.nonzero(sample["target"]).flatten().tolist():
            context = int((sample["input"][:position + 1] > 0).sum())  # items the target's state reads
            before = train.index(int(sample["target"][position]))  # items the user had before the target
            assert context >= min(before, L - (stride or L) + 1), (index, position)
    latest = [dataset[i] for i in range(len(dataset)) if dataset[i]["latest"]]
    assert len(latest) == len(dm.splits.train)  # one window per user ends at their latest transition
    assert all(int(s["target"][-1]) == dm.splits.train[int(s["user"])][-1] for s in latest)


def test_window_ends_match_a_plain_loop():
    lengths, L, stride = np.array([1, 2, 11, 12, 25]), 10, 4
    users, ends = window_ends(lengths, L, stride)
    expected = [(u, e) for u, n in enumerate(lengths) for e in range(n - 1, 0, -stride)]
    assert list(zip(users.tolist(), ends.tolist())) == expected


def test_random_windows_are_one_per_user_drawn_from_seed_and_epoch(dm):
    dm.hparams.train_windows = "random"
    dataset = dm.train_dataloader().dataset
    assert len(dataset) == len(dm.splits.train)
    first, again, second = transitions_of(dataset, 0), transitions_of(dataset, 0), transitions_of(dataset, 1)
    assert first == again and first != second  # fixed per epoch (so resuming redraws the same), new each epoch
    ends = []
    for epoch in range(200):
        sample = dataset[epoch * len(dataset)]  # user 0's window in each epoch
        train = dm.splits.train[int(sample["user"])]
        end = list(train).index(int(sample["target"][-1]))  # the window ends at target train[end]
        ends.append(end)
        assert bool(sample["latest"]) == (end == len(train) - 1)
    assert set(ends) == set(range(1, len(dm.splits.train[0])))  # every prefix of user 0 was drawn


def one_window(dataset, train: list[np.ndarray], index: int) -> dict[str, torch.Tensor]:
    """A window as the definition reads, one at a time: the sequence's slice before ``end``, left-padded."""
    epoch, window = divmod(index, len(dataset))
    user, end = int(dataset.users[window]), int(dataset.ends[window])
    if dataset.windows == "random" and dataset.transitions[user] > 0:
        end = int(np.random.default_rng((dataset.seed, epoch, user)).integers(1, dataset.transitions[user] + 1))
    sequence, start, L = train[user], max(0, end - dataset.max_seq_len), dataset.max_seq_len

    def left_padded(items):
        return torch.tensor([0] * (L - len(items)) + items.tolist(), dtype=torch.long)

    target = left_padded(sequence[start + 1:end + 1])
    target[:L - dataset.stride] = 0
    sample = {"user": torch.tensor(user), "input": left_padded(sequence[start:end]), "target": target,
              "latest": torch.tensor(end == dataset.transitions[user])}
    if dataset.num_negatives:
        sample["negative"] = sample_negatives(dataset.positives[user], dataset.num_items, (L, dataset.num_negatives))
    return sample


@pytest.mark.parametrize("windows, stride, negatives", [("sliding", 3, 0), ("sliding", None, 2), ("last", None, 0),
                                                        ("random", None, 2)])
def test_a_loader_batch_is_its_windows_built_one_by_one(dm, windows, stride, negatives):
    """Batches are gathered at once from a flat item array; each must be the stack of its windows as built
    singly (the same items, dtypes and, with negatives, the same draws from the same RNG state)."""
    dm.hparams.train_windows, dm.hparams.window_stride, dm.hparams.train_negatives = windows, stride, negatives
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(1)
    indices = list(loader.sampler)[:dm.hparams.batch_size]
    torch.manual_seed(0)
    batch = next(iter(loader))
    torch.manual_seed(0)
    singly = [one_window(loader.dataset, dm.splits.train, index) for index in indices]
    assert batch.keys() == singly[0].keys()
    for key in batch:
        expected = torch.stack([sample[key] for sample in singly])
        assert batch[key].dtype == expected.dtype, key
        assert torch.equal(batch[key], expected), key


def test_worker_processes_build_the_same_batches(dm):
    """``data.num_workers`` > 0 builds each batch in a worker process, with the epoch carried by the index."""
    dm.hparams.window_stride = 3
    in_process = dm.train_dataloader()
    dm.hparams.num_workers = 1
    in_worker = dm.train_dataloader()
    for loader in (in_process, in_worker):
        loader.sampler.set_epoch(2)
    pairs = list(zip(in_process, in_worker))
    assert len(pairs) == len(in_process) > 1
    for ours, theirs in pairs:
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[key], theirs[key]) for key in ours)


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
    with pytest.raises(ValueError, match="data.features is false"):
        UR4RecDataModule(str(tmp_path / "data")).build_features()


def test_rank_shards_cover_every_user_once_in_evaluation_and_pad_in_training():
    from ur4rec.data.samplers import ShardSampler

    shards = [list(ShardSampler(11, rank, 3)) for rank in range(3)]
    assert sorted(i for shard in shards for i in shard) == list(range(11))
    train = [EpochShuffleSampler(11, seed=5, rank=rank, world_size=3) for rank in range(3)]
    orders = [list(s) for s in train]
    assert [len(o) for o in orders] == [4, 4, 4] and set(sum(orders, [])) == set(range(11))
    assert sorted(sum(orders, [])) != list(range(11))  # one index repeats to even out the ranks
