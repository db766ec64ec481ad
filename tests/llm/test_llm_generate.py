"""End-to-end tests of ``generate`` against a real local HTTP server speaking the chat-completions protocol."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading

import pytest

from generate_setup import (ITEM_IDS, KEY, KEY_ENV, N_CALLS, TITLES, TRAIN, USER_IDS, FakeLLMServer, load, main, rows,
                            run, user_message)


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
