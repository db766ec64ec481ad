"""End-to-end tests of ``generate`` against a real local HTTP server speaking the chat-completions protocol."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for llm_server
from llm_server import FakeLLMServer, user_message  # noqa: E402

from ur4rec.llm.generate import main  # noqa: E402

KEY_ENV = "UR4REC_TEST_LLM_KEY"
KEY = "sk-test-SECRET-7f3a9c1e55d0"


def _flags(*indices: int) -> str:
    return "|".join("1" if i in indices else "0" for i in range(19))


# Items 1-6 are training items; 10-15 are each exactly one user's validation or test item (and nobody's
# training item), with titles found nowhere else; 16 is rated 2 (filtered out).
TITLES = {
    1: "Alpha Train (1995)", 2: "Bravo Train (1996)", 3: "Charlie Train (1994)", 4: "Delta Train (1993)",
    5: "Echo Train (1992)", 6: "Foxtrot Train (1991)",
    10: "SECRET-VALID-U1 (1990)", 11: "SECRET-TEST-U1 (1990)", 12: "SECRET-VALID-U2 (1990)",
    13: "SECRET-TEST-U2 (1990)", 14: "SECRET-VALID-U3 (1990)", 15: "SECRET-TEST-U3 (1990)",
    16: "Low Rated Film (1980)",
}
# user, item, rating, timestamp; the test item comes first in the file to prove ordering is by time
RATINGS = [
    (1, 11, 5, 900), (1, 1, 4, 100), (1, 2, 5, 101), (1, 3, 4, 102), (1, 10, 5, 800),
    (2, 2, 4, 200), (2, 3, 5, 201), (2, 4, 4, 202), (2, 12, 5, 800), (2, 13, 4, 900),
    (3, 1, 5, 300), (3, 4, 4, 301), (3, 5, 5, 302), (3, 6, 4, 303), (3, 14, 4, 800), (3, 15, 5, 900),
    (3, 16, 2, 304),
]
ITEM_IDS = [1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 14, 15]
USER_IDS = [1, 2, 3]
TRAIN = {1: [1, 2, 3], 2: [2, 3, 4], 3: [1, 4, 5, 6]}
N_CALLS = len(ITEM_IDS) + len(USER_IDS)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    root = tmp_path / "ml-100k"
    root.mkdir()
    (root / "u.data").write_text("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in RATINGS))
    (root / "u.item").write_bytes("".join(
        f"{i}|{title}|01-Jan-1995||http://x/{i}|{_flags(1 + i % 17, 8)}\n" for i, title in TITLES.items()
    ).encode("latin-1"))
    (root / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n3|23|M|writer|32067\n")
    return root


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    return monkeypatch


def run(data_dir: Path, out: Path, server: FakeLLMServer | None, *extra: str) -> int:
    # the tiny users have 3-4 training items: hold none back unless a test says otherwise
    argv = ["--data_dir", str(data_dir), "--output_dir", str(out), "--api_key_env", KEY_ENV,
            "--min_user_interactions", "3", "--max_retries", "0", "--timeout", "5", "--retriever_positions", "0"]
    if server is not None:
        argv += ["--base_url", server.base_url]
    return main(argv + list(extra))  # later flags override the defaults above


def load(out: Path, name: str) -> dict:
    return json.loads((out / name).read_text(encoding="utf-8"))


def rows(out: Path) -> list[tuple]:
    with sqlite3.connect(out / "llm_cache.sqlite") as conn:
        return conn.execute("SELECT kind, raw_id, status, text, error FROM llm_cache ORDER BY kind, raw_id").fetchall()


def test_writes_raw_id_outputs_and_second_run_makes_no_calls(data_dir, tmp_path, env):
    out = tmp_path / "out"
    with FakeLLMServer() as server:
        assert run(data_dir, out, server) == 0
        assert server.count == N_CALLS
        items, users = load(out, "item_descriptions.json"), load(out, "user_preferences.json")
        assert list(items) == [str(i) for i in ITEM_IDS]  # raw ids, numerically sorted
        assert list(users) == [str(u) for u in USER_IDS]
        for i in ITEM_IDS:
            assert items[str(i)] == f"Generated: Movie title: {TITLES[i]}"
        body = server.requests[0]["body"]
        assert body["model"] == "qwen-flash"
        assert body["enable_thinking"] is False
        assert body["max_tokens"] <= 300 and body["temperature"] <= 0.5
        assert server.requests[0]["path"] == "/v1/chat/completions"
        assert server.requests[0]["headers"]["authorization"] == f"Bearer {KEY}"

        before = (out / "item_descriptions.json").read_bytes(), (out / "user_preferences.json").read_bytes()
        assert run(data_dir, out, server) == 0
        assert server.count == N_CALLS  # everything came from the cache
        assert ((out / "item_descriptions.json").read_bytes(), (out / "user_preferences.json").read_bytes()) == before
        # a different model is a different cache key
        assert run(data_dir, out, server, "--model_name", "other-model", "--skip_users") == 0
        assert server.count == N_CALLS + len(ITEM_IDS)


def test_user_prompts_never_contain_validation_or_test_items(data_dir, tmp_path, env):
    with FakeLLMServer() as server:
        assert run(data_dir, tmp_path / "out", server, "--skip_items") == 0
        prompts = [user_message(r["body"]) for r in server.requests]
    assert len(prompts) == len(USER_IDS)
    for prompt in prompts:
        assert "SECRET" not in prompt and "Low Rated" not in prompt
    for train in TRAIN.values():  # each user's own training titles, most recent first
        expected = [TITLES[i] for i in reversed(train)]
        prompt = next(p for p in prompts if all(t in p for t in expected)
                      and all(TITLES[i] not in p for i in set(TITLES) - set(train)))
        positions = [prompt.index(t) for t in expected]
        assert positions == sorted(positions)
        assert "rated 5/5" in prompt or "rated 4/5" in prompt


def test_retriever_positions_leaves_the_latest_training_items_out(data_dir, tmp_path, env):
    with FakeLLMServer() as server:
        assert run(data_dir, tmp_path / "out", server, "--skip_items", "--retriever_positions", "1") == 0
        prompts = [user_message(r["body"]) for r in server.requests]
    for train in TRAIN.values():
        latest, earlier = TITLES[train[-1]], [TITLES[i] for i in train[:-1]]
        assert not any(latest in p for p in prompts if all(t in p for t in earlier))


def test_rate_limit_and_server_errors_are_retried_by_the_client(data_dir, tmp_path, env):
    def behaviour(body, attempt):
        prompt = user_message(body)
        if attempt == 0 and ("Alpha" in prompt or "Bravo" in prompt):
            return "429"
        if attempt == 0 and ("Charlie" in prompt or "Delta" in prompt):
            return "500"
        return "ok"

    out = tmp_path / "out"
    with FakeLLMServer(behaviour) as server:
        assert run(data_dir, out, server, "--skip_users", "--max_retries", "2") == 0
        assert server.count == len(ITEM_IDS) + 4
        statuses = [r["action"] for r in server.requests]
    assert statuses.count("429") == 2 and statuses.count("500") == 2
    assert list(load(out, "item_descriptions.json")) == [str(i) for i in ITEM_IDS]


def test_timeout_is_recorded_as_failed_and_retried_next_run(data_dir, tmp_path, env):
    out = tmp_path / "out"
    with FakeLLMServer(lambda body, attempt: "hang" if attempt == 0 and "Echo" in user_message(body) else "ok",
                       hang_seconds=1.5) as server:
        assert run(data_dir, out, server, "--skip_users", "--timeout", "0.5", "--max_retries", "0") == 1
        assert server.count == len(ITEM_IDS)
        items = load(out, "item_descriptions.json")
        assert "5" not in items and len(items) == len(ITEM_IDS) - 1
        failed = [r for r in rows(out) if r[2] == "failed"]
        assert [(r[1], r[3]) for r in failed] == [(5, None)] and "Timeout" in failed[0][4]

        assert run(data_dir, out, server, "--skip_users", "--timeout", "0.5", "--max_retries", "0") == 0
        assert server.count == len(ITEM_IDS) + 1  # only the failed one again
        assert load(out, "item_descriptions.json")["5"] == f"Generated: Movie title: {TITLES[5]}"
        assert all(r[2] == "ok" for r in rows(out))


def test_malformed_bodies_are_failures_not_crashes(data_dir, tmp_path, env):
    broken = {"Alpha": "badjson", "Bravo": "nochoices", "Charlie": "empty", "Delta": "html"}

    def behaviour(body, attempt):
        prompt = user_message(body)
        return next((a for word, a in broken.items() if word in prompt.splitlines()[0]), "ok") if attempt == 0 \
            else "ok"

    out = tmp_path / "out"
    with FakeLLMServer(behaviour) as server:
        assert run(data_dir, out, server, "--skip_users", "--concurrency", "3") == 1
        assert sorted(int(k) for k in set(map(str, ITEM_IDS)) - set(load(out, "item_descriptions.json"))) == [1, 2, 3, 4]
        errors = {r[1]: r[4] for r in rows(out) if r[2] == "failed"}
        assert set(errors) == {1, 2, 3, 4} and all(errors.values())
        assert run(data_dir, out, server, "--skip_users") == 0
        assert server.count == len(ITEM_IDS) + 4
        assert list(load(out, "item_descriptions.json")) == [str(i) for i in ITEM_IDS]


def test_missing_key_fails_fast_without_requests(tmp_path, env, capsys):
    env.delenv(KEY_ENV)
    out = tmp_path / "out"
    with FakeLLMServer() as server:
        argv = ["--data_dir", str(tmp_path / "does-not-exist"), "--output_dir", str(out), "--base_url", server.base_url]
        assert main(argv) != 0
        assert server.count == 0
    err = capsys.readouterr().err
    assert "DASHSCOPE_API_KEY" in err and "OPENAI_API_KEY" in err
    assert not out.exists()


def test_openai_api_key_is_the_fallback(data_dir, tmp_path, env):
    env.delenv(KEY_ENV)
    env.setenv("OPENAI_API_KEY", "sk-fallback-123")
    with FakeLLMServer() as server:
        assert run(data_dir, tmp_path / "out", server, "--skip_items") == 0
        assert {r["headers"]["authorization"] for r in server.requests} == {"Bearer sk-fallback-123"}


def test_key_is_never_written_or_printed(data_dir, tmp_path, env, capfd):
    out = tmp_path / "out"
    with FakeLLMServer(lambda body, attempt: "500" if "Alpha" in user_message(body) else "ok") as server:
        assert run(data_dir, out, server) == 1  # one failure, so an error row is stored too
        assert run(data_dir, out, server, "--dry_run") == 0
        assert all(r["headers"]["authorization"] == f"Bearer {KEY}" for r in server.requests)
    captured = capfd.readouterr()
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {"item_descriptions.json", "user_preferences.json", "llm_cache.sqlite"} <= {p.name for p in files}
    for path in files:
        assert KEY.encode() not in path.read_bytes(), path
    assert KEY not in captured.out and KEY not in captured.err


def test_dry_run_estimates_without_key_or_requests(data_dir, tmp_path, env, capsys):
    env.delenv(KEY_ENV)
    out = tmp_path / "out"
    with FakeLLMServer() as server:
        assert run(data_dir, out, server, "--dry_run") == 0
        text = capsys.readouterr().out
        assert f"{N_CALLS} calls" in text and "tokens" in text
        assert not out.exists()  # nothing written, not even the cache

        env.setenv(KEY_ENV, KEY)
        assert run(data_dir, out, server, "--skip_users") == 0
        env.delenv(KEY_ENV)
        capsys.readouterr()
        assert run(data_dir, out, server, "--dry_run") == 0
        text = capsys.readouterr().out
        assert f"{len(ITEM_IDS)} cached, 0 calls" in text and f"{len(USER_IDS)} calls" in text
        assert server.count == len(ITEM_IDS)


def test_enable_thinking_is_sent(data_dir, tmp_path, env):
    with FakeLLMServer() as server:
        assert run(data_dir, tmp_path / "out", server, "--skip_items", "--enable_thinking",
                   "--model_name", "qwen-plus") == 0
        assert {r["body"]["enable_thinking"] for r in server.requests} == {True}
        assert {r["body"]["model"] for r in server.requests} == {"qwen-plus"}


def test_limits_then_full_run_fills_the_rest(data_dir, tmp_path, env):
    out = tmp_path / "out"
    with FakeLLMServer() as server:
        assert run(data_dir, out, server, "--num_items", "2", "--num_users", "1") == 0
        assert server.count == 3
        assert list(load(out, "item_descriptions.json")) == ["1", "2"]
        assert list(load(out, "user_preferences.json")) == ["1"]
        assert run(data_dir, out, server) == 0
        assert server.count == N_CALLS


def test_concurrent_runs_share_the_cache_safely(data_dir, tmp_path, env):
    out = tmp_path / "out"
    codes = []
    with FakeLLMServer(delay=0.02) as server:
        threads = [threading.Thread(target=lambda: codes.append(run(data_dir, out, server))) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert codes == [0, 0]
        assert N_CALLS <= server.count <= 2 * N_CALLS
        with sqlite3.connect(out / "llm_cache.sqlite") as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM llm_cache WHERE status='ok'").fetchone() \
                == (N_CALLS, N_CALLS)
        assert len(load(out, "item_descriptions.json")) == len(ITEM_IDS)
        assert len(load(out, "user_preferences.json")) == len(USER_IDS)
        count = server.count
        assert run(data_dir, out, server) == 0
        assert server.count == count
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


@pytest.fixture
def default_sigint():
    """Ctrl-C as a fresh ``python cli.py generate`` sees it (KeyboardInterrupt), whatever SIGINT handler
    a library used by an earlier test in this process left installed."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_interrupt_keeps_what_was_generated(data_dir, tmp_path, env, default_sigint):
    """SIGINT mid-run: the finished answers are cached and written; the rerun asks only for the rest."""
    out = tmp_path / "out"
    sent = threading.Event()

    def behaviour(body, attempt):
        if not sent.is_set() and len(server.requests) >= 3:  # the 4th request: interrupt the run
            sent.set()
            os.kill(os.getpid(), signal.SIGINT)
            return "hang"
        return "ok"

    with FakeLLMServer(behaviour, hang_seconds=1.0) as server:
        assert run(data_dir, out, server, "--skip_users", "--concurrency", "1") == 130
        done = load(out, "item_descriptions.json")
        assert len(done) >= 3
        assert sum(r[2] == "ok" for r in rows(out)) == len(done)
        count = server.count
        assert count < len(ITEM_IDS)
        assert run(data_dir, out, server, "--skip_users") == 0
        assert server.count == count + len(ITEM_IDS) - len(done)
        assert len(load(out, "item_descriptions.json")) == len(ITEM_IDS)


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


def test_dry_run_says_why_fewer_users_get_a_prompt_than_the_split_holds(data_dir, tmp_path, env, capsys):
    """The README's 938 users against the dry run's 839: users whose training items all fall in the held-out
    latest ones get no prompt; the run says so instead of leaving the numbers to disagree."""
    env.delenv(KEY_ENV)
    assert run(data_dir, tmp_path / "out", None, "--dry_run", "--retriever_positions", "3") == 0
    text = capsys.readouterr().out
    assert ("users: 3 in the split, 1 with training items before their latest 3 (--retriever_positions" in text
            and "the other 2 keep the template profile" in text)
    assert run(data_dir, tmp_path / "out", None, "--dry_run") == 0  # nothing held out: no note
    assert "in the split" not in capsys.readouterr().out


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
