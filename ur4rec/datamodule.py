"""UR4RecDataModule: MovieLens splits, leave-one-out, and their side features as train/val/test dataloaders.

It sits above ``ur4rec.data`` (readers, preprocessing, datasets) and ``ur4rec.features`` (texts and
embeddings), which never import each other's way up.
"""

from __future__ import annotations


import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from ur4rec.data.datasets import (
    TRAIN_WINDOWS, EvalDataset, PredictDataset, TrainSequenceDataset, already_batched, collate_eval,
    draw_sampled_negatives,
)
from ur4rec.data.download import ML100K_MD5, ML100K_URL, ensure_dataset, needs_download
from ur4rec.data.errors import DataFormatError
from ur4rec.data.preprocessing import TIE_ORDERS, SequenceSplits, hold_out_new_items, prepare_splits
from ur4rec.data.readers import RawDataset, read_dataset
from ur4rec.data.samplers import EpochShuffleSampler, ShardSampler
from ur4rec.errors import ConfigError, check
from ur4rec.features.tables import FeatureTables, build_feature_tables
from ur4rec.features.image_encoders import make_image_encoder
from ur4rec.features.text_embeddings import DEFAULT_TEXT_MODEL, TextEncoder
from ur4rec.features.texts import build_texts


DEFAULT_DATA_DIR = "data/ml-100k"


class UR4RecDataModule(L.LightningDataModule):
    """Reads any supported layout in ``data_dir``, filters, splits leave-one-out and serves batches.

    Args:
        data_dir: folder holding MovieLens-100K, M_ML-100K or MovieLens-1M.
        download: fetch the archive at ``download_url`` (checked against ``download_md5``) into a missing or
            empty ``data_dir``; None (default) downloads only into the default folder ``data/ml-100k``, so
            a mistyped folder is an error, never a download.
        min_rating: keep ratings >= this (0 keeps all).
        min_user_interactions: then keep users with at least this many ratings (>= 3).
        min_item_interactions: and items with at least this many (0 = off); with it the two rules are applied
            in turn until both hold (the k-core of LlamaRec's protocol).
        tie_order: equal timestamps keep the ``file`` order (default) or go by raw ``item`` id.
        cold_item_fraction: the new-item protocol (0 = off): this fraction of the items is new, never seen in
            training or in any evaluation input; users whose target is new form the ``cold`` slice.
        cold_item_seed: which fold of new items (folds 0..1/fraction - 1 make every item new once).
        max_seq_len: length of the input window fed to the sequence model.
        batch_size: training users per batch.
        eval_batch_size: users per validation/test batch.
        train_negatives: negatives per training position (for BCE/BPR; 0 for cross-entropy).
        train_windows: which training windows an epoch holds: ``sliding`` (every transition of every user, in
            windows ``window_stride`` apart), ``random`` (one window per user, ending at a random transition)
            or ``last`` (each user's latest ``max_seq_len`` transitions only).
        window_stride: step between sliding windows, 1..``max_seq_len`` (default ``max_seq_len``). Each
            transition is a target once per epoch either way; a smaller stride lets each target read at least
            ``max_seq_len - window_stride + 1`` items, at ``max_seq_len / window_stride`` times the
            cost (1 trains every prefix, as RecBole does). The retriever's latest positions are trained only
            where they are among a window's latest ``window_stride``.
        num_sampled_negatives: negatives per user for the sampled evaluation protocol.
        seed: shuffling seed (with the epoch); the CLI links it to ``seed_everything``.
        sampled_negatives_seed: seed of the sampled-protocol negatives, kept fixed across runs and seeds.
        num_workers: dataloader worker processes.
        features: build the text and image feature tables (needed by the retriever; linked by the CLI).
        llm_dir: folder with ``user_preferences.json`` / ``item_descriptions.json`` from ``cli.py generate``.
        text_model: sentence-transformers model (hub name or folder) for user and item texts.
        image_encoder: ``descriptor`` (no weights needed) or ``clip`` (with ``image_model``, a hub name or folder).
        feature_cache_dir: embedding cache; rebuilding after a text change re-embeds only that text.
        retriever_positions: user texts describe the training items before the latest this many, the
            transitions the retriever trains on (linked from ``model.retriever.positions``).
        predict_users: raw user ids to recommend for with ``predict`` (default: every user).

    The loaders shard users across DDP ranks themselves (the CLI sets ``use_distributed_sampler=False``):
    training pads to equal batch counts, evaluation counts every user exactly once.
    """

    def __init__(
        self,
        data_dir: str = DEFAULT_DATA_DIR,
        min_rating: float = 4,
        min_user_interactions: int = 5,
        min_item_interactions: int = 0,
        tie_order: str = "file",
        cold_item_fraction: float = 0.0,
        cold_item_seed: int = 0,
        max_seq_len: int = 50,
        batch_size: int = 128,
        eval_batch_size: int = 1024,
        train_negatives: int = 0,
        train_windows: str = "sliding",
        window_stride: int | None = None,
        num_sampled_negatives: int = 99,
        seed: int = 42,
        sampled_negatives_seed: int = 0,
        num_workers: int = 0,
        download: bool | None = None,
        download_url: str = ML100K_URL,
        download_md5: str | None = ML100K_MD5,
        features: bool = False,
        llm_dir: str | None = None,
        text_model: str = DEFAULT_TEXT_MODEL,
        image_encoder: str = "descriptor",
        image_model: str | None = None,
        feature_cache_dir: str = ".cache/features",
        retriever_positions: int = 10,
        predict_users: list[int] | None = None,
    ):
        super().__init__()
        check(min_user_interactions >= 3, "data.min_user_interactions",
              f"must be >= 3 (leave-one-out needs a train, a validation and a test item), got {min_user_interactions}")
        check(max_seq_len > 0, "data.max_seq_len", f"must be > 0, got {max_seq_len}")
        check(min_item_interactions >= 0, "data.min_item_interactions", f"must be >= 0, got {min_item_interactions}")
        check(tie_order in TIE_ORDERS, "data.tie_order", f"must be one of {TIE_ORDERS}, got {tie_order!r}")
        check(0 <= cold_item_fraction < 1, "data.cold_item_fraction", f"must be in [0, 1), got {cold_item_fraction}")
        check(cold_item_seed >= 0, "data.cold_item_seed", f"must be >= 0, got {cold_item_seed}")
        check(batch_size > 0, "data.batch_size", f"must be > 0, got {batch_size}")
        check(eval_batch_size > 0, "data.eval_batch_size", f"must be > 0, got {eval_batch_size}")
        check(num_sampled_negatives > 0, "data.num_sampled_negatives", f"must be > 0, got {num_sampled_negatives}")
        check(retriever_positions >= 0, "data.retriever_positions", f"must be >= 0, got {retriever_positions}")
        check(train_windows in TRAIN_WINDOWS, "data.train_windows", f"must be one of {TRAIN_WINDOWS}, got {train_windows!r}")
        check(window_stride is None or 0 < window_stride <= max_seq_len, "data.window_stride",
              f"must be in 1..data.max_seq_len ({max_seq_len}), got {window_stride}")
        check(num_workers >= 0, "data.num_workers", f"must be >= 0 (0 loads in the main process), got {num_workers}")
        self.save_hyperparameters()
        self.raw: RawDataset | None = None
        self.splits: SequenceSplits | None = None
        self.sampled_negatives: torch.Tensor | None = None
        self._features: FeatureTables | None = None

    # ------------------------------------------------------------------------------------------ loading

    def prepare_data(self) -> None:
        """Download if needed and fill the embedding cache (once per machine, not per DDP rank)."""
        self.dataset_dir()
        if self.hparams.features:
            self.build_features()

    def load(self) -> SequenceSplits:
        """Read and split the data once (idempotent); also used before the model is built."""
        if self.splits is None:
            hp = self.hparams
            self.raw = read_dataset(self.dataset_dir())
            splits = prepare_splits(self.raw.ratings, hp.min_rating, hp.min_user_interactions, hp.min_item_interactions,
                                    hp.tie_order)
            # negatives are items the user never interacted with, new ones included: drawn before holding out
            every_item = [np.append(h, [v, t]) for h, v, t in zip(splits.train, splits.valid_target, splits.test_target)]
            self.sampled_negatives = draw_sampled_negatives(
                every_item, splits.num_items, hp.num_sampled_negatives, hp.sampled_negatives_seed)
            if hp.cold_item_fraction > 0:
                held = hold_out_new_items(splits, hp.cold_item_fraction, hp.cold_item_seed)
                self.sampled_negatives = self.sampled_negatives[np.isin(splits.raw_user_ids, held.raw_user_ids)]
                splits = held
            self.splits = splits
        return self.splits

    def dataset_dir(self):
        """``data_dir``, downloaded first when it is missing or empty and downloading was asked for."""
        hp = self.hparams
        if needs_download(hp.data_dir) and not (hp.download or (hp.download is None and hp.data_dir == DEFAULT_DATA_DIR)):
            raise DataFormatError(hp.data_dir, "data folder is missing or empty: expected MovieLens-100K (u.data, "
                                  "u.item, u.user), M_ML-100K (ratings.dat, movies.dat, user.dat) or MovieLens-1M "
                                  "(ratings.dat, movies.dat, users.dat) files; check --data.data_dir, or pass "
                                  "--data.download true to fetch MovieLens-100K into it")
        return ensure_dataset(hp.data_dir, hp.download_url, hp.download_md5)

    def setup(self, stage: str | None = None) -> None:
        """Load what ``prepare_data`` prepared: the splits, and the feature tables from the embedding cache."""
        self.load()
        if self.hparams.features:
            self.build_features()

    @property
    def num_items(self) -> int:
        return self.load().num_items

    @property
    def num_users(self) -> int:
        return self.load().num_users

    @property
    def features(self) -> FeatureTables:
        return self.build_features()

    def build_features(self) -> FeatureTables:
        """Text and image tables aligned with the remapped ids (built once, embeddings cached on disk)."""
        if not self.hparams.features:
            raise ConfigError("data.features is false: the item features need it (the CLI sets it when model.retriever is set)")
        if self._features is None:
            splits, hp = self.load(), self.hparams
            texts = build_texts(self.raw, splits.user_text_view(hp.retriever_positions), hp.llm_dir)
            self._features = build_feature_tables(
                self.raw, splits, text_model=hp.text_model, image_encoder=hp.image_encoder,
                image_model=hp.image_model, cache_dir=hp.feature_cache_dir, texts=texts)
        return self._features

    @property
    def text_dim(self) -> int:
        """The text vector size, from the model's configs (nothing is embedded to learn it)."""
        if not self.hparams.features:
            return 0
        return self._features.text_dim if self._features is not None else TextEncoder(self.hparams.text_model).dim

    @property
    def image_dim(self) -> int:
        """The poster vector size, from the encoder's configuration (no image is read to learn it)."""
        if not self.hparams.features:
            return 0
        if self._features is not None:
            return self._features.image_dim
        return make_image_encoder(self.hparams.image_encoder, self.hparams.image_model).dim

    def _user_text(self) -> torch.Tensor | None:
        return self.features.user_text if self.hparams.features else None

    # ------------------------------------------------------------------------------------------ loaders

    def _ranks(self) -> tuple[int, int]:
        """(rank, world size) of the attached trainer; (0, 1) outside one."""
        trainer = getattr(self, "trainer", None)
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def train_dataloader(self) -> DataLoader:
        s, hp = self.load(), self.hparams
        dataset = TrainSequenceDataset(s.train, s.num_items, hp.max_seq_len, hp.train_negatives, self._user_text(),
                                       hp.train_windows, hp.window_stride, hp.seed)
        # The loader's own generator keeps iterator creation from drawing on the global RNG, which is
        # checkpointed for dropout and negatives (see RNGStateCheckpoint).
        sampler = EpochShuffleSampler(len(dataset), hp.seed, *self._ranks(), tag_epoch=True)
        return DataLoader(dataset, batch_size=hp.batch_size, sampler=sampler, collate_fn=already_batched,
                          num_workers=hp.num_workers, persistent_workers=hp.num_workers > 0,
                          generator=torch.Generator().manual_seed(hp.seed))

    def val_dataloader(self) -> DataLoader:
        s = self.load()
        return self._eval_loader([s.valid_history(u) for u in range(s.num_users)], s.valid_target)

    def test_dataloader(self) -> DataLoader:
        s = self.load()
        return self._eval_loader([s.test_history(u) for u in range(s.num_users)], s.test_target)

    def seen_item_mask(self) -> torch.Tensor:
        """(N + 1,) bool: the items some training sequence holds (padding is not one)."""
        seen = torch.from_numpy(self.load().item_counts() > 0)
        seen[0] = False
        return seen

    def new_item_mask(self) -> torch.Tensor | None:
        """(N + 1,) bool: the items held out as new under ``cold_item_fraction`` (None when off)."""
        s = self.load()
        return None if s.new_items is None else torch.from_numpy(s.new_items)

    def predict_dataloader(self) -> DataLoader:
        """Every requested user with all their known interactions (recommend what comes next)."""
        s, hp = self.load(), self.hparams
        if hp.predict_users is None:
            users = list(range(s.num_users))
        else:
            index = s.user_index()
            unknown = [u for u in hp.predict_users if u not in index]
            if unknown:
                raise ConfigError(f"data.predict_users: unknown raw user id(s) {unknown[:10]} in {hp.data_dir} "
                                 f"(after filtering with min_rating={hp.min_rating}, "
                                 f"min_user_interactions={hp.min_user_interactions})")
            users = [index[u] for u in hp.predict_users]
        histories = [np.append(s.test_history(u), s.test_target[u]) for u in range(s.num_users)]
        dataset = PredictDataset(users, histories, hp.max_seq_len, self._user_text())
        return DataLoader(dataset, batch_size=hp.eval_batch_size, shuffle=False, collate_fn=collate_eval,
                          num_workers=hp.num_workers)

    def item_titles(self) -> list[str]:
        """Title of every remapped item (index 0 = padding, ``""``)."""
        s = self.load()
        titles = dict(zip(self.raw.items["item"].tolist(), self.raw.items["title"].tolist()))
        return [""] + [str(titles.get(int(raw), "")) for raw in s.raw_item_ids[1:]]

    def _eval_loader(self, histories: list[np.ndarray], targets: np.ndarray) -> DataLoader:
        hp, s = self.hparams, self.load()
        per_user = {"target_count": torch.from_numpy(s.item_counts()[targets]),  # training popularity of the target
                    "history_length": torch.tensor([len(h) for h in histories])}
        if s.new_items is not None:
            per_user["target_new"] = torch.from_numpy(s.new_items[targets])
        dataset = EvalDataset(histories, targets, self.sampled_negatives, hp.max_seq_len, self._user_text(), per_user)
        # each user on exactly one rank (Lightning's DistributedSampler would pad with duplicates)
        return DataLoader(dataset, batch_size=hp.eval_batch_size, sampler=ShardSampler(len(dataset), *self._ranks()),
                          collate_fn=collate_eval, num_workers=hp.num_workers)
