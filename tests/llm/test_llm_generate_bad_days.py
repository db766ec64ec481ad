"""``generate`` on bad days: earlier outputs kept, a dead server, a broken cache, two runs sharing one cache."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from generate_setup import ITEM_IDS, N_CALLS, TITLES, USER_IDS, FakeLLMServer, load, rows, run


def test_existing_outputs_are_merged_never_dropped(data_dir, tmp_path, env, capsys):
    """A run over 5 items once rewrote a file of 1,659 descriptions with those 5 (and with none against a
    dead server): entries already written are kept, the same id takes the new answer, counts are printed."""
    out = tmp_path / "out"
    out.mkdir()
    earlier = {"9999": "Written by an earlier run.", "1": "An older description of item 1."}
    (out / "item_descriptions.json").write_text(json.dumps(earlier))
    with FakeLLMServer() as server:
        assert run(data_dir, out, server, "--skip_users", "--num_items", "2") == 0
    items = load(out, "item_descriptions.json")
    assert items["9999"] == earlier["9999"]  # kept
    assert items["1"] == f"Generated: Movie title: {TITLES[1]}" and items["2"].startswith("Generated")  # new wins
    assert list(items) == ["1", "2", "9999"]
    assert "item_descriptions.json: 3 entries (1 kept, 1 added, 1 replaced)" in capsys.readouterr().err

    with FakeLLMServer(behaviour=lambda body, attempt: "500") as dead:
        assert run(data_dir, out, dead, "--skip_users") == 1  # every request fails
    assert load(out, "item_descriptions.json") == items  # nothing dropped

    (out / "item_descriptions.json").write_text("{not json")
    with FakeLLMServer() as server:
        assert run(data_dir, out, server, "--skip_users") == 2  # refused before any request
        assert server.count == 0
    assert "cannot merge new answers into it" in capsys.readouterr().err
    assert (out / "item_descriptions.json").read_text() == "{not json"


def test_an_unreachable_server_stops_the_run_early(data_dir, tmp_path, env, capsys):
    import socket

    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "out"
    assert run(data_dir, out, None, "--base_url", f"http://127.0.0.1:{port}/v1", "--concurrency", "1") == 1
    err = capsys.readouterr().err
    assert "8 requests in a row could not reach" in err and f"({N_CALLS - 8} prompts not sent)" in err
    assert len(rows(out)) == 8  # the eight attempts are recorded as failed, to be retried


def test_a_cache_that_is_a_folder_or_not_a_database_is_one_line(data_dir, tmp_path, env, capsys):
    (tmp_path / "folder").mkdir()
    assert run(data_dir, tmp_path / "out", None, "--cache", str(tmp_path / "folder")) == 2
    assert "--cache names a folder" in capsys.readouterr().err
    (tmp_path / "junk.sqlite").write_bytes(b"this is not an sqlite file at all" * 10)
    assert run(data_dir, tmp_path / "out", None, "--cache", str(tmp_path / "junk.sqlite")) == 2
    assert "junk.sqlite: not a readable LLM cache" in capsys.readouterr().err
    assert (tmp_path / "junk.sqlite").read_bytes() == b"this is not an sqlite file at all" * 10  # untouched


def test_two_runs_sharing_a_cache_ask_each_prompt_once(data_dir, tmp_path, env):
    """Two runs on one cache once paid for every prompt twice (4,572 answers for 2,269 prompts): a prompt
    the other run is asking is claimed in the cache and waited for, not asked again."""
    cache = tmp_path / "shared.sqlite"
    codes = []
    with FakeLLMServer(delay=0.2) as server:  # slow enough that the runs overlap
        runs = [threading.Thread(target=lambda out=out: codes.append(run(data_dir, out, server, "--cache", str(cache),
                                                                         "--concurrency", "2")))
                for out in (tmp_path / "a", tmp_path / "b")]
        for thread in runs:
            thread.start()
        for thread in runs:
            thread.join(120)
        assert codes == [0, 0]
        assert server.count == N_CALLS  # each prompt asked once between the two runs
    for out in ("a", "b"):  # and both runs wrote every answer
        assert len(load(tmp_path / out, "item_descriptions.json")) == len(ITEM_IDS)
        assert len(load(tmp_path / out, "user_preferences.json")) == len(USER_IDS)


def test_a_claim_of_a_dead_run_expires():
    import tempfile

    from ur4rec.llm.cache import ANSWERED, CLAIMED, OURS, Entry, LLMCache

    with tempfile.TemporaryDirectory() as folder, LLMCache(Path(folder) / "c.sqlite") as cache:
        assert cache.claim("k", "run-a", stale_after=60) == OURS
        assert cache.claim("k", "run-b", stale_after=60) == CLAIMED  # run a is asking it
        assert cache.claim("k", "run-b", stale_after=0) == OURS  # run a's claim is older than allowed: taken over
        cache.put_ok(Entry("k", "item", 1, "m", "v1", "sha"), "an answer")
        cache.release("k", "run-b")
        assert cache.claim("k", "run-a", stale_after=60) == ANSWERED
