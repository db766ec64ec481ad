"""RecBole 1.2.1's SASRec on our exact split, several seeds: the reference beside issue 14's bar.

    python3 -m venv /tmp/recbole && /tmp/recbole/bin/pip install torch==2.13.0 recbole==1.2.1 \\
        "numpy<2" "pandas<2.3" "scipy<1.14" tensorboard    (RecBole 1.2.1 predates NumPy 2)
    python -m benchmarks recbole_sasrec --recbole_python /tmp/recbole/bin/python --workdir /tmp/recbole-run \\
        --seeds 2020 1 2 [--epochs 20] -- --config configs/sasrec.yaml --data.data_dir ../shared/data/ml-100k

The split comes from our DataModule (the configuration after ``--``): every user's items, in our order, are
written as RecBole atomic interactions whose timestamp is the item's position in that order. RecBole's
leave-one-out split (``LS: valid_and_test``, time order) then gives exactly our training sequences,
validation and test targets. RecBole ranks a sequential model's candidates without excluding the user's
history, so the ranking here excludes it as ours does (every item before the target; never the target),
for validation (which chooses the checkpoint) and for test alike. RecBole runs
in its own environment (its pinned dependencies are not ours), one seed at a time, with its SASRec
defaults: cross-entropy over all items, 64 dims, 2 blocks of 2 heads, feed-forward 256, dropout 0.5,
windows of 50, every prefix a training sample, Adam at 1e-3, batches of 2048 (``--batch_size``). The checkpoint chosen is the
best validation NDCG@10 (RecBole's own selection, early stopping after 10 epochs without a gain); it is
kept in memory, not written, and tested. Each validation's wall time since training began is recorded, so
``--reach`` reads the time to a bar as ``convergence`` does for our runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parent.parent
DATASET = "ur4rec-split"  # RecBole's name for the written atomic files
METRICS = ("ndcg@10", "hit@10", "mrr@10")


def write_atomic(cli_args: list[str], workdir: Path) -> int:
    """Write our split as ``<workdir>/ur4rec-split/ur4rec-split.inter``; returns the number of users."""
    import numpy as np

    from benchmarks.common import configured

    splits = configured(cli_args).datamodule.load()
    folder = workdir / DATASET
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f"{DATASET}.inter.partial"
    with open(partial, "w") as out:
        out.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for user, history in enumerate(splits.train):
            items = np.append(history, [splits.valid_target[user], splits.test_target[user]])
            out.writelines(f"{user}\t{item}\t{position}\n" for position, item in enumerate(items))
    partial.replace(folder / f"{DATASET}.inter")  # a fit already reading the file keeps its complete copy
    return splits.num_users


def recbole_config(workdir: Path, seed: int, epochs: int, batch_size: int) -> dict:
    return {
        "data_path": str(workdir), "checkpoint_dir": str(workdir / "saved"), "seed": seed, "reproducibility": True,
        "use_gpu": False, "show_progress": False, "epochs": epochs, "stopping_step": 10, "train_batch_size": batch_size,
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]}, "MAX_ITEM_LIST_LENGTH": 50,
        "train_neg_sample_args": None, "loss_type": "CE",
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
        "metrics": ["Hit", "NDCG", "MRR"], "topk": [10], "valid_metric": "NDCG@10",
    }


def visible_histories(dataset, workdir: Path):
    """(users, items) bool masks in RecBole's ids of the items each user has before the validation target
    and before the test target, read from the written atomic file."""
    import numpy as np
    import pandas as pd
    import torch

    table = pd.read_csv(workdir / DATASET / f"{DATASET}.inter", sep="\t", dtype=str)
    users = dataset.token2id("user_id", table["user_id:token"].to_numpy())
    items = dataset.token2id("item_id", table["item_id:token"].to_numpy())
    position = table["timestamp:float"].astype(float).to_numpy()  # 0, 1, ... within each user
    length = np.bincount(users)[users]  # (rows,) the user's number of items
    masks = []
    for held in (2, 1):  # before the validation target, before the test target
        mask = torch.zeros(dataset.user_num, dataset.item_num, dtype=torch.bool)
        rows = position < length - held
        mask[torch.as_tensor(users[rows]), torch.as_tensor(items[rows])] = True
        masks.append(mask)
    return masks


def run_recbole(workdir: Path, seed: int, epochs: int, batch_size: int) -> dict:
    """One RecBole fit and test (runs in RecBole's environment); returns its figures."""
    import copy
    import time

    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    class TimedTrainer(Trainer):
        """RecBole's trainer with the visible history excluded from every ranking, each validation's wall time
        kept, and the best weights kept in memory."""

        visible: torch.Tensor  # (users, items) bool, RecBole's ids: what the ranking being run must exclude

        def _full_sort_batch_eval(self, batched_data):
            interaction, scores, positive_u, positive_i = super()._full_sort_batch_eval(batched_data)
            excluded = self.visible[interaction[config["USER_ID_FIELD"]].long()]  # (B, items)
            excluded[positive_u, positive_i] = False  # never the target
            return interaction, scores.masked_fill(excluded.to(scores.device), float("-inf")), positive_u, positive_i

        def fit(self, *args, **kwargs):
            self.started, self.validations, self.best_weights = time.perf_counter(), [], None
            return super().fit(*args, **kwargs)

        def _valid_epoch(self, *args, **kwargs):
            score, result = super()._valid_epoch(*args, **kwargs)
            self.validations.append((time.perf_counter() - self.started, float(score)))
            return score, result

        def _save_checkpoint(self, epoch, verbose=True, **kwargs):
            self.best_weights = copy.deepcopy(self.model.state_dict())

    config = Config(model="SASRec", dataset=DATASET, config_dict=recbole_config(workdir, seed, epochs, batch_size))
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    valid_history, test_history = visible_histories(dataset, workdir)
    init_seed(config["seed"], config["reproducibility"])
    model = SASRec(config, train.dataset)
    trainer = TimedTrainer(config, model)
    trainer.visible = valid_history
    best_valid, _ = trainer.fit(train, valid, saved=True, show_progress=False)
    seconds = time.perf_counter() - trainer.started
    model.load_state_dict(trainer.best_weights)
    trainer.visible = test_history
    result = trainer.evaluate(test, load_best_model=False, show_progress=False)
    return {"seed": seed, "batch_size": batch_size, "best_valid": float(best_valid),
            "epochs": len(trainer.validations), "seconds": seconds, "validations": trainer.validations,
            "test": {name: float(result[name]) for name in METRICS}}


def best_epoch(validations: list) -> int:
    """The epoch RecBole keeps: the last one at the best score (its early stopping takes ties, ``>=``)."""
    return max(range(len(validations)), key=lambda epoch: (validations[epoch][1], epoch))


def seconds_to_reach(validations: list, bar: float) -> float:
    return next((seconds for seconds, score in validations if score >= bar), float("nan"))


def report(runs: list[dict], reach: float) -> str:
    from benchmarks.common import markdown_table, mean_std

    reach_column = f"seconds_to_reach {reach}"
    rows = [{"run": f"seed {r['seed']}, batch {r['batch_size']}", "best val/ndcg@10": r["best_valid"], "best_epoch": best_epoch(r["validations"]),
             "epochs": r["epochs"], "seconds": f"{r['seconds']:.1f}",
             reach_column: f"{seconds_to_reach(r['validations'], reach):.1f}",
             **{f"test/{m}": r["test"][m] for m in METRICS}} for r in runs]

    rows.append({"run": "mean ± std", "best val/ndcg@10": mean_std([r["best_valid"] for r in runs]),
                 **{f"test/{m}": mean_std([r["test"][m] for r in runs]) for m in METRICS}})
    columns = ["run", "best val/ndcg@10", "best_epoch", "epochs", "seconds", reach_column, *(f"test/{m}" for m in METRICS)]
    return markdown_table(columns, rows)


def main(argv: Sequence[str] | None = None) -> int:
    from benchmarks.common import split_at_dashes

    own, cli_args = split_at_dashes(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m benchmarks recbole_sasrec", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recbole_python", required=True, help="python of an environment with recbole==1.2.1")
    parser.add_argument("--workdir", type=Path, required=True, help="atomic files and one JSON per seed go here")
    parser.add_argument("--seeds", type=int, nargs="+", default=[2020])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch_size", type=int, default=2048, help="RecBole's train_batch_size (its default: 2048)")
    parser.add_argument("--reach", type=float, default=0.1009, help="validation NDCG@10 to time (RecBole's fair best)")
    args = parser.parse_args(own)
    args.workdir = args.workdir.resolve()
    users = write_atomic(cli_args, args.workdir)
    print(f"{users} users written to {args.workdir / DATASET}", flush=True)
    runs = []
    for seed in args.seeds:
        result_file = args.workdir / f"seed{seed}-batch{args.batch_size}.json"
        if not result_file.exists():  # a finished seed is not fitted again; RecBole writes its logs in its cwd
            subprocess.run([args.recbole_python, "-m", "benchmarks.recbole_sasrec", "--child", str(args.workdir),
                            str(seed), str(args.epochs), str(args.batch_size)], check=True, cwd=args.workdir,
                           env={**os.environ, "PYTHONPATH": str(REPO)})
        runs.append(json.loads(result_file.read_text()))
    print(report(runs, args.reach))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:  # inside RecBole's environment: no ur4rec import
        workdir, seed, epochs, batch_size = Path(sys.argv[2]), *map(int, sys.argv[3:6])
        outcome = run_recbole(workdir, seed, epochs, batch_size)
        (workdir / f"seed{seed}-batch{batch_size}.json").write_text(json.dumps(outcome, indent=1))
    else:
        sys.exit(main())
