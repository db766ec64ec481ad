"""``predict``: top-K unseen items per user, matching the model's own full-ranking scores."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from writers import write_ml100k
from ur4rec.cli import main

REPO = Path(__file__).resolve().parents[1]
COMMON = ["--config", str(REPO / "configs/sasrec.yaml"), "--data.data_dir=data", "--run_name=p",
          "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
          "--model.sasrec.hidden_size=16", "--data.num_sampled_negatives=20"]


@pytest.fixture
def trained(tmp_path, monkeypatch):
    write_ml100k(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    main(["fit", *COMMON, "--trainer.max_epochs=2"])
    return tmp_path


def test_predict_writes_top_k_unseen_items_that_match_full_ranking(trained):
    cli = main(["predict", *COMMON, "--ckpt_path=last", "--model.top_k=5", "--data.predict_users=[3, 17]",
                "--predictions.output_path=out/recs.jsonl"])
    rows = [json.loads(line) for line in (trained / "out/recs.jsonl").read_text().splitlines()]
    assert [(r["user"], r["rank"]) for r in rows] == [(u, k) for u in (3, 17) for k in range(1, 6)]
    dm, model = cli.datamodule, cli.model.eval()
    splits, index = dm.load(), dm.load().user_index()
    titles = dm.item_titles()
    item_index = splits.item_index()
    for raw_user in (3, 17):
        user = index[raw_user]
        seen = set(splits.test_history(user).tolist()) | {int(splits.test_target[user])}
        history = list(splits.test_history(user)) + [int(splits.test_target[user])]
        window = torch.zeros(1, 50, dtype=torch.long)
        window[0, -min(50, len(history)):] = torch.tensor(history[-50:])
        with torch.no_grad():
            scores = model.net.scores({"input": window}, model.score_mode)[0][0]
        scores[0] = float("-inf")
        scores[list(seen)] = float("-inf")
        expected = scores.topk(5)
        mine = [r for r in rows if r["user"] == raw_user]
        assert [item_index[r["item"]] for r in mine] == expected.indices.tolist()
        assert [r["score"] for r in mine] == pytest.approx(expected.values.tolist(), abs=1e-5)
        assert all(item_index[r["item"]] not in seen for r in mine)
        assert [r["title"] for r in mine] == [titles[item_index[r["item"]]] for r in mine]
        assert all(r["retriever_score"] == 0 and r["sasrec_score"] == r["score"] for r in mine)


def test_predict_csv_for_all_users_and_unknown_ids_fail_clearly(trained):
    main(["predict", *COMMON, "--ckpt_path=last", "--predictions.output_path=out/recs.csv"])
    rows = list(csv.DictReader((trained / "out/recs.csv").open()))
    assert len(rows) == 40 * 10 and {"user", "rank", "item", "title", "score"} <= set(rows[0])
    with pytest.raises(ValueError, match=r"unknown raw user id\(s\) \[9999\]"):
        main(["predict", *COMMON, "--ckpt_path=last", "--data.predict_users=[1, 9999]"])
