"""benchmarks.recbole_sasrec: the atomic file RecBole reads holds our split; the report's figures."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd

from benchmarks.common import configured
from benchmarks.recbole_sasrec import DATASET, best_epoch, report, seconds_to_reach, visible_histories, write_atomic
from paths import REPO
from writers import write_ml100k


def test_recbole_leave_one_out_of_the_written_file_is_our_split(tmp_path):
    args = ["--config", str(REPO / "configs" / "sasrec.yaml"),
            "--data.data_dir", str(write_ml100k(tmp_path / "ml", num_users=30, num_items=150, per_user=10))]
    users = write_atomic(args, tmp_path / "recbole")
    table = pd.read_csv(tmp_path / "recbole" / DATASET / f"{DATASET}.inter", sep="\t")
    splits = configured(args).datamodule.load()
    assert users == splits.num_users == table["user_id:token"].nunique() == 30
    for user, rows in table.groupby("user_id:token"):
        items = rows.sort_values("timestamp:float")["item_id:token"].tolist()  # RecBole's "TO" order
        # "LS: valid_and_test": the last item is the test target, the one before the validation target
        assert items[:-2] == splits.train[user].tolist()
        assert (items[-2], items[-1]) == (splits.valid_target[user], splits.test_target[user])


def test_the_rankings_exclude_what_each_user_has_before_its_target(tmp_path):
    folder = tmp_path / DATASET
    folder.mkdir()
    rows = [(0, 5, 0), (0, 3, 1), (0, 7, 2), (0, 2, 3), (1, 4, 0), (1, 6, 1), (1, 1, 2)]  # user, item, position
    (folder / f"{DATASET}.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\n"
                                              + "".join(f"{u}\t{i}\t{p}\n" for u, i, p in reversed(rows)))
    # RecBole's ids: 0 is padding, a token t becomes t + 1 here
    dataset = SimpleNamespace(user_num=3, item_num=9,
                              token2id=lambda field, tokens: np.array([int(t) + 1 for t in tokens]))
    valid, test = visible_histories(dataset, tmp_path)
    assert valid.nonzero().tolist() == [[1, 4], [1, 6], [2, 5]]  # user 0: items 5, 3; user 1: item 4
    assert test.nonzero().tolist() == [[1, 4], [1, 6], [1, 8], [2, 5], [2, 7]]  # and the validation targets


def test_the_best_epoch_is_the_last_at_the_best_score_as_recbole_keeps_it():
    assert best_epoch([(1.0, 0.05), (2.0, 0.09), (3.0, 0.08), (4.0, 0.09), (5.0, 0.07)]) == 3


def test_time_to_reach_is_the_first_validation_at_or_above_the_bar():
    validations = [(10.0, 0.05), (20.0, 0.1009), (30.0, 0.1020)]
    assert seconds_to_reach(validations, 0.1009) == 20.0
    assert math.isnan(seconds_to_reach(validations, 0.2))


def test_the_report_gives_each_seed_and_the_mean_with_the_sample_std():
    run = lambda seed, ndcg: {"seed": seed, "batch_size": 2048, "best_valid": 0.1, "epochs": 5, "seconds": 50.0,  # noqa: E731
                              "validations": [(10.0, 0.05), (20.0, 0.1), (30.0, 0.1), (40.0, 0.1), (50.0, 0.09)], "test": {"ndcg@10": ndcg, "hit@10": 0.2, "mrr@10": 0.05}}
    lines = report([run(1, 0.09), run(2, 0.11)], 0.1009).splitlines()
    assert lines[2].startswith("| seed 1, batch 2048 | 0.1000 | 3 | 5 | 50.0 | nan | 0.0900 |")
    assert "| 0.1000 ± 0.0141 |" in lines[-1] and lines[-1].startswith("| mean ± std |")
