"""The throughput benchmark: it trains the SASRec it was asked for and reports positive timings."""

from __future__ import annotations

import pytest

from benchmarks.bench import run_benchmark
from benchmarks.bench_scaling import write_movielens_like


@pytest.mark.parametrize("backend", [None, "eager"])
def test_bench_times_the_eager_or_compiled_sasrec_it_was_asked_for(tmp_path, backend):
    results = run_benchmark(str(write_movielens_like(tmp_path, scale=1)), epochs=2, window_stride=25,
                            compile_backend=backend)
    assert results["compiled"] is (backend is not None)
    assert results["users"] > 900 and results["epoch_s"] > 0 and results["eval_full_ranking_s"] > 0
