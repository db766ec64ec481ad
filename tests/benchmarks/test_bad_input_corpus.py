"""The bad-input corpus: enough distinct cases in every group, the classification of a run's output, and a
few cases run end to end through ``cli.py`` (one of them a deliberately wrong expectation, seen as silent)."""

from __future__ import annotations

import pytest

from benchmarks.bad_input_cases import CLEAR_ERROR, GRACEFUL, SILENT, TRACEBACK, Case, counts_of
from benchmarks.bad_input_corpus import all_cases, classify, counts_table, failed, main, run_corpus, select

GROUPS = {"config", "ratings", "metadata", "llm", "generate", "features", "checkpoint", "predict_users", "cli"}


def test_the_corpus_has_at_least_110_distinct_cases_in_every_group():
    cases = all_cases()
    names = [case.name for case in cases]
    assert len(set(names)) == len(names) >= 110
    assert {name.split()[0] for name in names} == GROUPS
    assert {case.expected for case in cases} == {CLEAR_ERROR, GRACEFUL}
    assert all(case.names for case in cases)  # every case says what it must name
    for layout_file in ("u.data", "ratings.dat", "ratings.csv"):
        assert len([n for n in names if n.startswith(f"ratings {layout_file} ")]) >= 10


@pytest.mark.parametrize("returncode, stdout, stderr, outcome", [
    (2, "", "a warning\nerror: data.batch_size: must be > 0, got 0\n", CLEAR_ERROR),
    (2, "", "error: data.batch_size: must be > 0\nsomething printed after it\n", SILENT),  # not the last line
    (2, "", "error: must be > 0\n", SILENT),  # an error that does not name the setting
    (1, "", "error: data.batch_size: must be > 0\n", SILENT),  # not the exit code of an expected failure
    (0, "fit finished\n", "", SILENT),  # the bad value was accepted without a word
    (0, "", "UserWarning: data.batch_size is odd\n", SILENT),  # a warning where an error was due
    (1, "", "Traceback (most recent call last):\n  File \"x.py\"\nValueError: data.batch_size\n", TRACEBACK),
])
def test_classify_an_expected_error(returncode, stdout, stderr, outcome):
    case = Case("config data.batch_size=0", CLEAR_ERROR, "data.batch_size", ())
    assert classify(case, returncode, stdout, stderr)[0] == outcome


def test_classify_a_degraded_input():
    case = Case("ratings u.data rating of 400", GRACEFUL, "u.data: 1 rating(s) above 5", ())
    warning = "/x/ur4rec/data/parsing.py:120: DataFormatWarning: data/u.data: 1 rating(s) above 5 (MovieLens)\n"
    assert classify(case, 0, "", warning) == (GRACEFUL, "data/u.data: 1 rating(s) above 5 (MovieLens)")
    echo = "  next: python cli.py test --data.data_dir=data/u.data: 1 rating(s) above 5\n"
    assert classify(case, 0, echo, "")[0] == SILENT  # the command line echoed back is not a warning
    assert classify(case, 2, "", "error: data/u.data: 1 rating(s) above 5\n")[0] == CLEAR_ERROR


def test_a_few_cases_run_through_the_cli_and_classify_as_expected(tmp_path):
    cases = select(all_cases(), ["config data.batch_size=0", "ratings u.data BOM and CRLF"])
    assert [c.name for c in cases] == ["config data.batch_size=0", "ratings u.data BOM and CRLF"]
    clean_called_broken = Case("clean data expected to fail", CLEAR_ERROR, "u.data", counts_of("{ml100k}"))
    results = run_corpus([*cases, clean_called_broken], tmp_path)
    assert [(r.outcome, r.returncode) for r in results] == [(CLEAR_ERROR, 2), (GRACEFUL, 0), (SILENT, 0)]
    assert results[0].evidence == "error: data.batch_size: must be > 0, got 0"
    assert [r.as_expected for r in results] == [True, True, False]
    assert counts_table(results).splitlines()[-1] == "| 3 | 1 | 1 | 0 | 1 |"
    assert failed(results) and not failed(results[:2])
    assert (tmp_path / "cases/001-ratings_u.data_BOM_and_CRLF/data/u.data").read_bytes().startswith(b"\xef\xbb\xbf")


def test_list_and_an_empty_selection(capsys):
    assert main(["--list", "--only", "checkpoint "]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) >= 10 and all(line.startswith("checkpoint ") for line in listed)
    with pytest.raises(SystemExit) as exit_info:
        main(["--only", "no case is called this"])
    assert exit_info.value.code == 2
