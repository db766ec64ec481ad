"""benchmarks.convergence: best validation epoch and the training seconds to it and to a bar."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from benchmarks.convergence import convergence


def test_best_epoch_its_time_and_the_time_to_reach_a_bar():
    metrics = pd.DataFrame({
        "epoch": [0, 0, 1, 1, 2, 2, 3],
        "step": [4, 4, 9, 9, 14, 14, 19],
        "train/loss": [5.0, None, 4.0, None, 3.0, None, None],
        "val/ndcg@10": [None, 0.05, None, 0.09, None, 0.08, 0.11],
        "time/fit_seconds": [None, 1.5, None, 3.0, None, 4.5, 6.0],
    })
    result = convergence(metrics, reach=0.085)
    assert result == {"best": 0.11, "best_epoch": 3, "seconds_to_best": 6.0, "epochs": 4, "seconds": 6.0,
                      "seconds_to_reach": 3.0}
    assert math.isnan(convergence(metrics, reach=0.5)["seconds_to_reach"])  # never reached
    with pytest.raises(ValueError, match="time/fit_seconds"):
        convergence(metrics.drop(columns="time/fit_seconds"))


def test_other_validation_metrics_are_read_at_the_best_epoch():
    metrics = pd.DataFrame({"epoch": [0, 1, 2], "val/ndcg@10": [0.05, 0.09, 0.08],
                            "val_warm/ndcg@10": [0.5, 0.7, 0.9], "time/fit_seconds": [1.0, 2.0, 3.0]})
    result = convergence(metrics, at_best=["val_warm/ndcg@10", "val_cold/ndcg@10"])
    assert result["val_warm/ndcg@10"] == 0.7  # epoch 1's, not the slice's own best (0.9)
    assert math.isnan(result["val_cold/ndcg@10"])  # not logged by this run
