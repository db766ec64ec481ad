"""benchmarks.llamarec_average and llamarec_lrurec: LlamaRec's averaging, its metrics, its user order, and the
harness around its own code."""

from __future__ import annotations

import math

import pytest
import torch

from benchmarks.llamarec_average import against_rows, averaging_rows, batch_mean, llamarec_order, user_metrics
from benchmarks.llamarec_lrurec import _cap_training, _link_data, label_ranks


def test_batch_mean_weighs_a_short_last_batch_like_a_full_one():
    per_user = torch.tensor([0.0] * 32 + [1.0, 1.0])  # two full batches of 16 misses, then 2 hits
    assert float(per_user.mean()) == pytest.approx(2 / 34)
    assert batch_mean(per_user) == pytest.approx(1 / 3)  # (0 + 0 + 1) / 3 batches
    assert batch_mean(torch.arange(32.0)) == pytest.approx(float(torch.arange(32.0).mean()))  # equal batches agree


def test_user_metrics_are_llamarecs_with_one_label():
    values = user_metrics(torch.tensor([0, 3, 7, 12]))  # 0-based ranks of each user's label
    assert values["Recall@10"].tolist() == [1.0, 1.0, 1.0, 0.0]
    assert values["NDCG@10"].tolist() == pytest.approx([1.0, 1 / math.log2(5), 1 / math.log2(9), 0.0])
    assert values["NDCG@5"].tolist() == pytest.approx([1.0, 1 / math.log2(5), 0.0, 0.0])
    assert values["MRR@10"].tolist() == pytest.approx([1.0, 0.25, 0.125, 0.0])


def test_llamarec_order_enumerates_a_set_of_the_raw_ids():
    raw = [610, 3, 77, 1, 12]
    order = llamarec_order(raw)
    assert [raw[i] for i in order] == list(set(raw))
    assert sorted(order.tolist()) == list(range(len(raw)))


def test_averaging_rows_give_both_figures_for_the_same_ranks():
    ranks = torch.tensor([20] * 16 + [0, 0])  # the 2 users of the last batch rank their label first
    user_mean, batches = averaging_rows("m", ranks)
    assert user_mean["NDCG@10"] == pytest.approx(2 / 18)
    assert batches["NDCG@10"] == pytest.approx(0.5)


def test_training_stops_at_the_first_validation_after_the_time_cap(monkeypatch):
    clock = iter([0.0, 30.0, 59.0, 61.0])  # the cap's start, then one reading per validation
    monkeypatch.setattr("benchmarks.llamarec_lrurec.time.monotonic", lambda: next(clock))

    class Trainer:
        def validate(self, epoch, accum_iter):
            return False  # its own early stopping never fires

    _cap_training(Trainer, minutes=1.0)
    assert [Trainer().validate(0, i) for i in range(3)] == [False, False, True]


def test_the_data_folder_links_the_csv_files_and_holds_the_files_llamarec_checks_for(tmp_path):
    source = tmp_path / "ml-latest-small"
    source.mkdir()
    for name in ("ratings.csv", "movies.csv"):
        (source / name).write_text(name)
    _link_data(source, tmp_path / "work")
    _link_data(source, tmp_path / "work")  # a second run reuses the folder
    folder = tmp_path / "work" / "data" / "ml-100k"
    assert (folder / "ratings.csv").read_text() == "ratings.csv" and (folder / "ratings.csv").is_symlink()
    assert (folder / "README").is_file() and (folder / "users.csv").is_file()


def test_lrurec_test_ranks_exclude_the_input_sequence_and_padding_as_llamarec_does():
    class FixedScores(torch.nn.Module):  # item i scores i at every position
        def forward(self, seqs):
            return torch.arange(6.0).expand(*seqs.shape, 6).clone()  # (B, L, N + 1)

    seqs = torch.tensor([[0, 5, 4], [0, 0, 1]])  # left-padded inputs
    labels = torch.tensor([[3], [3]])
    # user 0: items 5 and 4 are its inputs, so label 3 ranks first; user 1: items 5 and 4 rank above it
    assert label_ranks(FixedScores(), [(seqs, labels)]).tolist() == [0, 2]


def test_against_rows_pair_the_users_by_raw_id():
    raw = torch.arange(100, 120)
    reference = {"raw_user_ids": raw, "ranks": torch.where(raw % 2 == 0, 0, 50)}  # hits the even raw ids
    ours_order = raw.flip(0).tolist()  # our users come in another order
    same_users = torch.where(raw.flip(0) % 2 == 0, 0, 50)
    ndcg = next(r for r in against_rows(reference, ours_order, {"ours": same_users}, draws=50)
                if r["metric"] == "NDCG@10")
    assert (ndcg["baseline"], ndcg["candidate"], ndcg["low"], ndcg["high"]) == pytest.approx((0.5, 0.5, 0.0, 0.0))
    other_users = torch.where(raw.flip(0) % 2 == 1, 0, 50)  # as many hits, on the odd raw ids
    ndcg = next(r for r in against_rows(reference, ours_order, {"ours": other_users}, draws=50)
                if r["metric"] == "NDCG@10")
    assert ndcg["relative"] == pytest.approx(0.0) and ndcg["high"] - ndcg["low"] > 0.5  # unpaired users: wide


def test_against_rows_average_several_checkpoints_per_user_and_name_a_missing_user():
    reference = {"raw_user_ids": torch.tensor([1, 2]), "ranks": torch.tensor([0, 0])}
    rows = against_rows(reference, [1, 2], {"a": torch.tensor([0, 50]), "b": torch.tensor([50, 50])}, draws=20)
    mean = next(r for r in rows if r["compared"] == "mean of the checkpoints" and r["metric"] == "Recall@10")
    assert mean["candidate"] == pytest.approx(0.25) and mean["relative"] == pytest.approx(-0.75)
    with pytest.raises(ValueError, match="raw id 4"):
        against_rows(reference, [1, 4], {"a": torch.tensor([0, 0])})
