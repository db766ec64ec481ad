"""Torch datasets over :class:`SequenceSplits` and the collate function for evaluation batches."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from ur4rec.data.preprocessing import concatenated
from ur4rec.errors import ConfigError


def left_pad(sequence: np.ndarray, length: int) -> torch.Tensor:
    """The last ``length`` items of ``sequence``, left-padded with 0 to ``length``: (length,)."""
    out = torch.zeros(length, dtype=torch.long)
    tail = sequence[-length:] if length > 0 else sequence[:0]
    if len(tail):
        out[length - len(tail):] = torch.as_tensor(tail, dtype=torch.long)
    return out


def sample_negatives(positives: torch.Tensor, num_items: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Uniform item ids from 1..num_items excluding ``positives``, drawn from torch's global RNG.

    Exact and loop-free: draw the r-th non-positive item directly. With ``p`` the sorted unique
    positives, ``q[i] = p[i] - 1 - i`` counts the non-positives below ``p[i]``, so the r-th
    non-positive (0-based) is ``r + 1 + #{i : q[i] <= r}``.
    """
    p = torch.unique(positives)  # sorted
    p = p[(p >= 1) & (p <= num_items)]
    available = num_items - len(p)
    if available <= 0:
        raise ValueError("every item is a positive; no negative can be sampled")
    r = torch.randint(0, available, shape)
    q = p - 1 - torch.arange(len(p))
    return r + 1 + torch.searchsorted(q, r, right=True)


TRAIN_WINDOWS = ("last", "sliding", "random")


def window_ends(lengths: np.ndarray, max_seq_len: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """(user, end) of every sliding window: a user with ``n`` items has ``n - 1`` transitions, and windows end
    at transition ``n - 1``, ``n - 1 - stride``, ... while any transition is left, so each window's latest
    ``stride`` transitions are new and the earliest window starts at the first. Vectorized: no per-user Python."""
    transitions = np.maximum(lengths - 1, 0)
    counts = -(-transitions // stride)  # (U,) windows per user (0 for a user with one item)
    users = np.repeat(np.arange(len(lengths)), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    ends = transitions[users] - stride * (np.arange(len(users)) - first)
    return users, ends


class TrainSequenceDataset(Dataset):
    """Training windows of ``max_seq_len`` transitions: ``input[t]`` predicts ``target[t]`` (the next item),
    both left-padded with 0.

    ``windows``: ``last`` (one sample per user, their latest ``max_seq_len`` transitions), ``sliding`` (every
    transition of every user exactly once per epoch: windows end ``stride`` apart, latest first, and a window
    trains only its latest ``stride`` targets, so each target reads at least ``max_seq_len - stride + 1``
    items where the history has them; ``stride`` 1 trains every prefix) or ``random`` (one sample
    per user per epoch, ending at a transition drawn uniformly from ``seed`` and the epoch: every prefix
    is equally likely, as when training on all prefixes). ``latest`` marks the windows that end at the
    user's latest transition (the retriever trains on those only: its user texts leave those items out).
    With ``num_negatives`` > 0, ``negative`` holds that many items per position that the user never
    trained on (for BCE/BPR losses); they are redrawn on every access.

    A batch is built at once (``__getitems__``, which the DataLoader calls with a batch's indices; pass
    ``collate_fn=already_batched``): its windows are gathered from one flat array of every user's items.
    """

    def __init__(self, train: list[np.ndarray], num_items: int, max_seq_len: int, num_negatives: int = 0,
                 user_text: torch.Tensor | None = None, windows: str = "last", stride: int | None = None,
                 seed: int = 0):
        if windows not in TRAIN_WINDOWS:
            raise ValueError(f"data.train_windows must be one of {TRAIN_WINDOWS}, got {windows!r}")
        self.windows, self.seed = windows, seed
        self.user_text = user_text  # (U, Dt) preference-text vectors, or None without features
        self.num_items, self.max_seq_len, self.num_negatives = num_items, max_seq_len, num_negatives
        self.positives = [torch.as_tensor(s, dtype=torch.long) for s in train]
        lengths = np.array([len(s) for s in train], dtype=np.int64)
        self.transitions = np.maximum(lengths - 1, 0)  # (U,)
        self.items = concatenated(train)  # (P,) every user's items
        self.first = np.cumsum(lengths) - lengths  # (U,) where each user's items start in ``items``
        self.stride = min(stride or max_seq_len, max_seq_len) if windows == "sliding" else max_seq_len
        if windows == "sliding":
            self.users, self.ends = window_ends(lengths, max_seq_len, self.stride)
        else:
            self.users, self.ends = np.arange(len(train)), self.transitions

    def __len__(self) -> int:
        return len(self.users)

    @property
    def target_positions(self) -> int:
        """Target positions of one epoch (``random``: those of the latest windows, the most it can be)."""
        return int(np.minimum(self.ends, self.stride).sum())

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """One window: the batch of ``[index]``, unstacked."""
        return {key: value[0] for key, value in self.__getitems__([index]).items()}

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        """The windows ``indices`` as one batch: user (B,), input and target (B, L), latest (B,), and
        user_text (B, Dt) and negative (B, L, K) where built. An index is ``epoch * len(self) + window``
        (:class:`EpochShuffleSampler` with ``tag_epoch``), so the epoch reaches worker processes too; a plain
        window index is epoch 0."""
        epochs, windows = np.divmod(np.asarray(indices, dtype=np.int64), len(self))
        users, ends = self.users[windows], self.ends[windows].copy()
        if self.windows == "random":
            for k in np.flatnonzero(self.transitions[users] > 0):
                draw = np.random.default_rng((self.seed, int(epochs[k]), int(users[k])))
                ends[k] = draw.integers(1, self.transitions[users[k]] + 1)
        L = self.max_seq_len
        offsets = ends[:, None] - L + np.arange(L)  # (B, L) index of each input item in its user's sequence
        real = offsets >= 0  # left padding where the window reaches before the first item
        at = np.where(real, self.first[users][:, None] + offsets, 0)  # (B, L) into ``items``
        target = np.where(real, self.items[at + real], 0)  # the item after each input
        target[:, :L - self.stride] = 0  # an earlier target: a later window trains it
        batch = {"user": torch.from_numpy(users), "input": torch.from_numpy(np.where(real, self.items[at], 0)),
                 "target": torch.from_numpy(target), "latest": torch.from_numpy(ends == self.transitions[users])}
        if self.user_text is not None:
            batch["user_text"] = self.user_text[batch["user"]]
        if self.num_negatives:
            shape = (L, self.num_negatives)
            batch["negative"] = torch.stack([sample_negatives(self.positives[u], self.num_items, shape) for u in users])
        return batch


def already_batched(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The DataLoader's collate for a dataset whose ``__getitems__`` returns a whole batch."""
    return batch


class EvalDataset(Dataset):
    """One sample per user: the visible history, the held-out target and the sampled candidates.

    ``input`` is the last ``max_seq_len`` visible items (left-padded); ``history`` is the whole
    visible history, masked out of full ranking; ``candidates`` is the target followed by the user's
    fixed sampled negatives.
    """

    def __init__(self, histories: list[np.ndarray], targets: np.ndarray, negatives: torch.Tensor, max_seq_len: int,
                 user_text: torch.Tensor | None = None, per_user: dict[str, torch.Tensor] | None = None):
        self.user_text = user_text  # (U, Dt) or None
        self.per_user = per_user or {}  # name -> (U,) values that go with each sample (slice membership)
        self.histories = [torch.as_tensor(h, dtype=torch.long) for h in histories]
        self.inputs = torch.stack([left_pad(h, max_seq_len) for h in histories])  # (U, L)
        self.targets = torch.as_tensor(targets, dtype=torch.long)  # (U,)
        self.candidates = torch.cat([self.targets[:, None], negatives], dim=1)  # (U, 1 + S)

    def __len__(self) -> int:
        return len(self.histories)

    def __getitem__(self, user: int) -> dict[str, torch.Tensor]:
        sample = {
            "user": torch.tensor(user),
            "input": self.inputs[user],
            "target": self.targets[user],
            "candidates": self.candidates[user],
            "history": self.histories[user],
        }
        if self.user_text is not None:
            sample["user_text"] = self.user_text[user]
        sample.update({name: values[user] for name, values in self.per_user.items()})
        return sample


class PredictDataset(Dataset):
    """One sample per requested user: everything they interacted with (train, validation and test
    items) as ``history`` (excluded from the recommendations), its last ``max_seq_len`` as ``input``."""

    def __init__(self, users: list[int], histories: list[np.ndarray], max_seq_len: int,
                 user_text: torch.Tensor | None = None):
        self.users = users
        self.histories = [torch.as_tensor(histories[u], dtype=torch.long) for u in users]
        self.inputs = torch.stack([left_pad(histories[u], max_seq_len) for u in users])  # (R, L)
        self.user_text = user_text

    def __len__(self) -> int:
        return len(self.users)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        user = self.users[index]
        sample = {"user": torch.tensor(user), "input": self.inputs[index], "history": self.histories[index]}
        if self.user_text is not None:
            sample["user_text"] = self.user_text[user]
        return sample


def collate_eval(samples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack fixed-size fields; right-pad ``history`` with 0 to the longest in the batch: (B, H)."""
    batch = {key: torch.stack([s[key] for s in samples]) for key in samples[0] if key != "history"}
    batch["history"] = torch.nn.utils.rnn.pad_sequence([s["history"] for s in samples], batch_first=True)
    return batch


OVERSAMPLING, EXTRA_DRAWS = 1.25, 16  # a first round draws this much more than a user is expected to need


def draw_sampled_negatives(user_items: list[np.ndarray], num_items: int, num_negatives: int, seed: int) -> torch.Tensor:
    """For each user, ``num_negatives`` distinct items of 1..num_items they never interacted with: (U, num_negatives).

    ``user_items[u]`` holds the items user ``u`` interacted with. Every ordered choice of a user's
    non-interacted items is equally likely. The draw depends on ``seed`` and the inputs only: all users are
    drawn in one vectorized pass (no chunking). Expected work is O(num_negatives) per user: each user draws a
    few more candidates than it needs at once, positives and repeats are rejected, and only users left short
    draw again (:func:`_reject_positives`). A user whose items fill half the catalog, or leave fewer than 2K
    non-interacted items, ranks random keys over the whole catalog instead (:func:`_rank_keys`): O(items) for
    that user, which is less than twice its own interactions (or than 4K when the catalog is smaller than 4K).
    """
    num_users = len(user_items)
    owners = np.repeat(np.arange(num_users), [len(items) for items in user_items])
    flat = concatenated(user_items)
    positive_keys = np.sort(owners * (num_items + 1) + flat)  # (P,) user * (N + 1) + item, sorted
    positive_keys = positive_keys[np.diff(positive_keys, prepend=-1) != 0]  # each pair once
    available = num_items - np.bincount(positive_keys // (num_items + 1), minlength=num_users)  # (U,)
    if (available < num_negatives).any():
        user = int(np.flatnonzero(available < num_negatives)[0])
        raise ConfigError(f"data.num_sampled_negatives: user {user} has fewer than {num_negatives} items they never "
                          "interacted with to sample from; lower it")
    rng = np.random.default_rng(seed)
    out = np.empty((num_users, num_negatives), dtype=np.int64)
    dense = (2 * available < num_items) | (available < 2 * num_negatives)  # (U,)
    if dense.any():
        out[dense] = _rank_keys(dense, positive_keys, num_items, num_negatives, rng)
    sparse = np.flatnonzero(~dense)
    out[sparse] = _reject_positives(sparse, available[sparse], positive_keys, num_items, num_negatives, rng)
    return torch.from_numpy(out)


def _rank_keys(dense: np.ndarray, positive_keys: np.ndarray, num_items: int, num_negatives: int,
               rng: np.random.Generator) -> np.ndarray:
    """Negatives of the D users that ``dense`` (U,) marks: the items with the K smallest random keys, positives
    keyed last, smallest first: (D, K)."""
    keys = rng.random((int(dense.sum()), num_items + 1))  # (D, N + 1)
    keys[:, 0] = np.inf  # padding
    owner, item = np.divmod(positive_keys, num_items + 1)
    mine = dense[owner]
    keys[(np.cumsum(dense) - 1)[owner[mine]], item[mine]] = np.inf
    chosen = np.argpartition(keys, num_negatives - 1, axis=1)[:, :num_negatives]  # (D, K) the K smallest keys
    order = np.argsort(np.take_along_axis(keys, chosen, axis=1), axis=1)  # by key: a random order
    return np.take_along_axis(chosen, order, axis=1)


def _reject_positives(users: np.ndarray, available: np.ndarray, positive_keys: np.ndarray, num_items: int,
                      num_negatives: int, rng: np.random.Generator) -> np.ndarray:
    """Negatives of ``users`` (S,), whose ``available`` (S,) non-positives are at least half the catalog and at
    least 2K: (S, K).

    Each user draws candidates uniformly from 1..num_items and keeps the first K that are neither a positive
    nor a repeat, in draw order; a user left with fewer draws its whole round again with twice as many
    candidates. The first K distinct non-positives of i.i.d. uniform draws are a uniformly random ordered
    sample of the non-positives, in a retry as in a first round.
    """
    out = np.empty((len(users), num_negatives), dtype=np.int64)
    # expected draws <= K * N / (available - K) <= 4K here
    bound = num_negatives * num_items / (available - num_negatives)
    draws = np.ceil(OVERSAMPLING * bound).astype(np.int64) + EXTRA_DRAWS  # (S,)
    todo = np.arange(len(users))  # rows of ``out`` still to fill
    while len(todo):
        counts = draws[todo]
        items = rng.integers(1, num_items + 1, size=int(counts.sum()))  # (C,) candidates, row after row
        keys = np.repeat(users[todo], counts) * (num_items + 1) + items
        fresh = _fresh(keys, positive_keys)
        running = np.cumsum(fresh)  # (C,)
        ends = np.cumsum(counts)
        before = np.concatenate([[0], running[ends[:-1] - 1]])  # (T,) fresh candidates of earlier rows
        full = running[ends - 1] - before >= num_negatives  # (T,)
        rank = running - np.repeat(before, counts)  # (C,) 1-based rank of a fresh candidate in its row
        take = fresh & (rank <= num_negatives) & np.repeat(full, counts)
        out[todo[full]] = items[take].reshape(-1, num_negatives)
        todo = todo[~full]
        draws[todo] *= 2
    return out


def _fresh(keys: np.ndarray, positive_keys: np.ndarray) -> np.ndarray:
    """(C,) bool: ``keys[i]`` is not in the sorted ``positive_keys`` and not in ``keys[:i]``. Sort-based (a hash
    table over millions of random keys is several times slower)."""
    order = np.argsort(keys, kind="stable")  # equal keys keep their draw order
    ordered = keys[order]
    seen = np.diff(ordered, prepend=-1) == 0  # an earlier draw of the same key
    if len(positive_keys):
        found = np.minimum(np.searchsorted(positive_keys, ordered), len(positive_keys) - 1)
        seen |= positive_keys[found] == ordered  # a positive of the user
    fresh = np.empty(len(keys), dtype=bool)
    fresh[order] = ~seen
    return fresh
