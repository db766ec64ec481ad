"""Unit tests of the LLM cache, the response parser and the prompt builders."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from ur4rec.llm.cache import Entry, LLMCache, cache_key, prompt_sha256, retry_while_locked
from ur4rec.llm.client import LLMError, key_env_names, parse_completion, resolve_api_key
from ur4rec.llm.prompts import PROMPT_VERSION, item_prompt, title_year, user_prompt


def entry(raw_id: int = 1, prompt: str = "p", model: str = "m") -> Entry:
    return Entry(cache_key(model, "item", "item-v1", "s", prompt), "item", raw_id, model, "item-v1",
                 prompt_sha256("s", prompt))


def test_key_covers_model_version_and_prompt():
    base = cache_key("m", "item", "v1", "s", "p")
    assert base == cache_key("m", "item", "v1", "s", "p")
    others = [cache_key("m2", "item", "v1", "s", "p"), cache_key("m", "item", "v2", "s", "p"),
              cache_key("m", "item", "v1", "s", "q"), cache_key("m", "item", "v1", "s2", "p"),
              cache_key("m", "user", "v1", "s", "p")]
    assert base not in others and len(set(others)) == len(others)


def test_ok_is_never_replaced_by_a_failure_and_failures_are_retried(tmp_path):
    path = tmp_path / "c.sqlite"
    with LLMCache(path) as cache:
        a, b = entry(1, "a"), entry(2, "b")
        cache.put_failed(a, "boom")
        assert cache.status(a.key) == "failed" and cache.ok_texts([a.key]) == {}
        cache.put_ok(a, "text a", {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7})
        cache.put_failed(a, "late failure from another run")
        cache.put_ok(a, "second answer")
        cache.put_ok(b, "text b")
        assert cache.ok_texts([a.key, b.key, "missing"]) == {a.key: "text a", b.key: "text b"}
    with sqlite3.connect(path) as conn:
        row = conn.execute("SELECT kind, raw_id, model, prompt_version, status, text, error, prompt_tokens, "
                           "completion_tokens, total_tokens, attempts FROM llm_cache WHERE raw_id = 1").fetchone()
        assert row == ("item", 1, "m", "item-v1", "ok", "text a", None, 3, 4, 7, 2)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_many_writers_on_one_file(tmp_path):
    path = tmp_path / "c.sqlite"
    caches = [LLMCache(path) for _ in range(3)]

    def write(cache, offset):
        for i in range(40):
            cache.put_ok(entry(i, f"p{i}"), f"t{i}-{offset}")

    threads = [threading.Thread(target=write, args=(c, n)) for n, c in enumerate(caches)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    texts = caches[0].ok_texts([entry(i, f"p{i}").key for i in range(40)])
    assert len(texts) == 40
    for c in caches:
        c.close()


@pytest.mark.parametrize("body", [
    "not json", "[]", '{"choices": []}', '{"id": 1}', '{"choices": [{"message": {"content": null}}]}',
    '{"choices": [{"message": {"content": "   "}}]}', '{"choices": [{"message": {"content": "<think>x</think>"}}]}',
])
def test_malformed_bodies_raise(body):
    with pytest.raises(LLMError):
        parse_completion(body)


def test_parse_strips_thinking_and_reads_usage():
    body = '{"choices": [{"message": {"content": "<think>hmm</think>\\n Nice film. "}}], ' \
           '"usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}'
    result = parse_completion(body)
    assert result.text == "Nice film." and result.usage == {"prompt_tokens": 5, "completion_tokens": 2,
                                                             "total_tokens": 7}


def test_api_key_resolution(monkeypatch):
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert resolve_api_key() is None
    monkeypatch.setenv("OPENAI_API_KEY", "o")
    assert resolve_api_key() == "o"
    monkeypatch.setenv("DASHSCOPE_API_KEY", "d")
    assert resolve_api_key() == "d"
    assert key_env_names("OPENAI_API_KEY") == ["OPENAI_API_KEY"]


def test_prompts():
    assert title_year("Toy Story (1995)") == "1995" and title_year("unknown") is None
    text = item_prompt("Toy Story (1995)", ("Animation", "Comedy"))
    assert "Toy Story (1995)" in text and "1995" in text and "Animation, Comedy" in text and "2-3 sentence" in text
    text = user_prompt([("B (1990)", ("Drama",), 5.0), ("A (1980)", (), 4.0)])
    assert text.index("B (1990)") < text.index("A (1980)") and "rated 5/5" in text
    assert set(PROMPT_VERSION) == {"item", "user"}


def test_opening_retries_while_sqlite_reports_the_file_locked():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise sqlite3.OperationalError("database is locked")
        return "opened"

    def always(message):
        def fail():
            raise sqlite3.OperationalError(message)
        return fail

    assert retry_while_locked(flaky, timeout=5, first_delay=0.001) == "opened" and len(calls) == 3
    with pytest.raises(sqlite3.OperationalError, match="no such table"):  # other errors are not retried
        retry_while_locked(always("no such table"), timeout=5)
    with pytest.raises(sqlite3.OperationalError, match="locked"):  # gives up after the timeout
        retry_while_locked(always("database is locked"), timeout=0.05, first_delay=0.01)


def test_opening_waits_out_another_runs_write_on_a_new_file(tmp_path):
    """Another connection mid-write (RESERVED lock) makes SQLite refuse the switch to WAL at once, without
    calling its busy handler; opening must wait for that write instead of failing."""
    path = tmp_path / "cache.sqlite"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("CREATE TABLE other (x)")
    done = threading.Timer(0.3, lambda: writer.execute("COMMIT"))
    done.start()
    try:
        with LLMCache(path, busy_timeout=10) as cache:
            cache.put_ok(entry(), "text")
            assert cache.ok_texts([entry().key]) == {entry().key: "text"}
    finally:
        done.join()
        writer.close()
