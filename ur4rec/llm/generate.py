"""``generate``: write ``user_preferences.json`` and ``item_descriptions.json`` with an LLM.

Every answer goes to the SQLite cache as soon as it arrives; the cached answers are then merged into the
JSON files (raw MovieLens ids as keys): entries already there are kept, a new answer for the same id
replaces its entry, and nothing written before is ever dropped. A rerun only asks for what is missing or
failed, an interrupted run still writes what it got, and a server that cannot be reached stops the run
after ``MAX_CONNECTION_FAILURES`` requests in a row instead of retrying every prompt.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sqlite3
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from ur4rec.data.errors import DataFormatError

from ur4rec.llm.cache import ANSWERED, CLAIMED, Entry, LLMCache, cache_key, prompt_sha256
from ur4rec.llm.client import (
    DEFAULT_BASE_URL, DEFAULT_KEY_ENV, ChatClient, LLMError, key_env_names, resolve_api_key,
)
from ur4rec.llm.outputs import OUTPUT_FILES, read_output, write_outputs
from ur4rec.llm.progress import Progress
from ur4rec.llm.prompts import ITEM, MAX_TOKENS, SYSTEM_PROMPT, TEMPERATURE, USER, Job, estimate_tokens

CACHE_NAME = "llm_cache.sqlite"
MAX_CONNECTION_FAILURES = 8  # requests in a row that could not reach the server before the run stops


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="generate", description=__doc__.splitlines()[0])
    p.add_argument("--data_dir", required=True, help="dataset folder (ml-100k, M_ML-100K or ml-1m layout)")
    p.add_argument("--output_dir", required=True, help="where the JSON files (and by default the cache) go")
    p.add_argument("--num_users", type=_non_negative, default=None, help="only the first N users (default: all)")
    p.add_argument("--num_items", type=_non_negative, default=None, help="only the first N items (default: all)")
    p.add_argument("--skip_users", action="store_true", help="do not generate user preferences")
    p.add_argument("--skip_items", action="store_true", help="do not generate item descriptions")
    p.add_argument("--model_name", default="qwen-flash")
    p.add_argument("--enable_thinking", action="store_true",
                   help="send enable_thinking=true (default sends false)")
    p.add_argument("--base_url", default=DEFAULT_BASE_URL, help="any OpenAI-compatible endpoint")
    p.add_argument("--api_key_env", default=DEFAULT_KEY_ENV,
                   help="environment variable holding the API key (falls back to OPENAI_API_KEY)")
    p.add_argument("--concurrency", type=_positive_int, default=4, help="parallel requests (threads)")
    p.add_argument("--dry_run", action="store_true", help="print how many calls/tokens a run needs; call nothing")
    p.add_argument("--min_rating", type=float, default=4, help="as in the training DataModule")
    p.add_argument("--min_user_interactions", type=int, default=5, help="as in the training DataModule")
    p.add_argument("--retriever_positions", type=_non_negative, default=10,
                   help="leave the latest N training items out of user prompts, as data.retriever_positions does "
                        "(the retriever trains on those transitions)")
    p.add_argument("--timeout", type=_positive_float, default=60.0, help="seconds per request")
    p.add_argument("--max_retries", type=_non_negative, default=3, help="client retries on 429/5xx/timeouts")
    p.add_argument("--cache", default=None, help=f"SQLite cache file (default: <output_dir>/{CACHE_NAME})")
    return p


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Run the generator; returns 0 on success, 1 if some requests failed, 2 on usage errors."""
    args = build_parser().parse_args(argv)
    kinds = [k for k, skip in ((ITEM, args.skip_items), (USER, args.skip_users)) if not skip]
    if not kinds:
        print("generate: --skip_users and --skip_items together leave nothing to do", file=sys.stderr)
        return 2
    api_key = None
    if not args.dry_run:
        api_key = resolve_api_key(args.api_key_env)
        if api_key is None:
            names = " or ".join(key_env_names(args.api_key_env))
            print(f"generate: no API key: set {names} (or pass --api_key_env NAME, or use --dry_run)",
                  file=sys.stderr)
            return 2

    try:
        jobs, note = load_jobs(args.data_dir, kinds, args.min_rating, args.min_user_interactions,
                               args.retriever_positions)
    except (OSError, ValueError) as err:  # DataFormatError is a ValueError
        print(f"generate: cannot read the data: {err}", file=sys.stderr)
        return 2
    if note:
        print(f"{'dry run' if args.dry_run else 'generate'}: {note}", file=sys.stdout if args.dry_run else sys.stderr)
    limits = {ITEM: args.num_items, USER: args.num_users}
    output_dir = Path(args.output_dir)
    cache_path = Path(args.cache) if args.cache else output_dir / CACHE_NAME

    if args.dry_run:
        return _dry_run(jobs, limits, args.model_name, cache_path)
    try:  # before any request: an output file that cannot be merged into must not cost a single call
        for kind in kinds:
            read_output(output_dir / OUTPUT_FILES[kind])
        if cache_path.is_dir():
            raise DataFormatError(cache_path, "--cache names a folder; give the SQLite cache file's path")
        if cache_path.exists():
            LLMCache(cache_path).close()  # a file that is not an SQLite cache fails here, not mid-run
    except DataFormatError as err:
        print(f"generate: {err}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as err:
        print(f"generate: {cache_path}: not a readable LLM cache ({err}); move it away or pass another --cache",
              file=sys.stderr)
        return 2

    client = ChatClient(args.base_url, api_key, args.model_name, timeout=args.timeout, max_retries=args.max_retries,
                        max_tokens=MAX_TOKENS, temperature=TEMPERATURE, enable_thinking=args.enable_thinking)
    try:
        with LLMCache(cache_path) as cache:
            todo = [job for kind in kinds for job in _pending(cache, jobs[kind][:limits[kind]], args.model_name)]
            stats = _Stats()
            interrupted = False
            try:
                _run(todo, client, cache, args.model_name, args.concurrency, stats,
                     stale_after=args.timeout * (args.max_retries + 1) + 30)
            except KeyboardInterrupt:
                interrupted = True
            written = {kind: write_outputs(cache, {job.raw_id: entry_for(job, args.model_name).key for job in jobs[kind]},
                                           output_dir, kind) for kind in kinds}
    finally:
        client.close()

    print(f"generate: {stats.ok} generated, {stats.failed} failed, {stats.tokens} tokens"
          + (f", {stats.shared} answered by another run sharing the cache" if stats.shared else ""), file=sys.stderr)
    for kind, merge in written.items():
        print(f"generate: {output_dir / OUTPUT_FILES[kind]}: {merge.total} entries ({merge.kept} kept, "
              f"{merge.added} added, {merge.replaced} replaced)", file=sys.stderr)
    if stats.unreachable.is_set():
        print(f"generate: {MAX_CONNECTION_FAILURES} requests in a row could not reach {args.base_url}; stopped early "
              f"({stats.skipped} prompts not sent). What was answered is cached and written: check the server or "
              "--base_url and rerun", file=sys.stderr)
        return 1
    if interrupted:
        print("generate: interrupted; results so far are cached and written, rerun to continue", file=sys.stderr)
        return 130
    if stats.failed:
        for error in stats.errors[:3]:
            print(f"generate: e.g. {error}", file=sys.stderr)
        print(f"generate: {stats.failed} request(s) failed; rerun to retry them", file=sys.stderr)
        return 1
    return 0


def load_jobs(data_dir: str, kinds: list[str], min_rating: float, min_user_interactions: int,
              retriever_positions: int = 10) -> tuple[dict[str, list[Job]], str]:
    """All jobs per kind for the dataset, on the same splits (and user-text view) as the training DataModule,
    and a line that says why fewer users than the split holds get a prompt (empty when all do)."""
    from ur4rec.data.preprocessing import prepare_splits
    from ur4rec.data.readers import read_dataset
    from ur4rec.llm.prompts import item_jobs, user_jobs

    dataset = read_dataset(data_dir)
    splits = prepare_splits(dataset.ratings, min_rating, min_user_interactions)
    jobs: dict[str, list[Job]] = {}
    if ITEM in kinds:
        jobs[ITEM] = item_jobs(dataset, splits)
    note = ""
    if USER in kinds:
        jobs[USER] = user_jobs(dataset, splits.user_text_view(retriever_positions), min_rating)
        if len(jobs[USER]) < splits.num_users:
            note = (f"users: {splits.num_users} in the split, {len(jobs[USER])} with training items before their "
                    f"latest {retriever_positions} (--retriever_positions, which the retriever trains on and user "
                    f"texts leave out); the other {splits.num_users - len(jobs[USER])} keep the template profile")
    return jobs, note


def entry_for(job: Job, model: str) -> Entry:
    return Entry(cache_key(model, job.kind, job.version, SYSTEM_PROMPT, job.prompt), job.kind, job.raw_id, model,
                 job.version, prompt_sha256(SYSTEM_PROMPT, job.prompt))


def _pending(cache: LLMCache, jobs: list[Job], model: str) -> list[Job]:
    done = cache.ok_texts([entry_for(j, model).key for j in jobs])
    return [j for j in jobs if entry_for(j, model).key not in done]


def _dry_run(jobs: dict[str, list[Job]], limits: dict, model: str, cache_path: Path) -> int:
    total_calls = total_tokens = 0
    for kind, kind_jobs in jobs.items():
        selected = kind_jobs[:limits[kind]]
        if cache_path.exists():
            with LLMCache(cache_path) as cache:
                todo = _pending(cache, selected, model)
        else:
            todo = selected
        prompt_tokens = sum(estimate_tokens(j.prompt) for j in todo)
        output_tokens = MAX_TOKENS * len(todo)
        total_calls += len(todo)
        total_tokens += prompt_tokens + output_tokens
        print(f"dry run: {kind}s: {len(selected)} selected, {len(selected) - len(todo)} cached, {len(todo)} calls, "
              f"~{prompt_tokens} prompt + <={output_tokens} output tokens")
    print(f"dry run: {total_calls} calls, ~{total_tokens} tokens with model {model}; no requests made")
    return 0


class _Stats:
    def __init__(self):
        self.ok = self.failed = self.tokens = self.skipped = self.shared = 0
        self.connection_failures_in_a_row = 0
        self.unreachable = threading.Event()  # set once the server looks dead: the other prompts are skipped
        self.errors: list[str] = []
        self.lock = threading.Lock()


def _run(todo: list[Job], client: ChatClient, cache: LLMCache, model: str, concurrency: int, stats: _Stats,
         stale_after: float = 600.0) -> None:
    """Make the calls, caching each result as it arrives, with a progress bar on stderr.

    A prompt that another run sharing the cache is asking right now (its claim younger than ``stale_after``
    seconds) is not asked again: it is waited for at the end, and asked only if that run gave up on it."""
    if not todo:
        return
    progress = Progress(len(todo))
    owner, waiting = f"{os.getpid()}-{secrets.token_hex(4)}", []

    def work(job: Job) -> None:
        if stats.unreachable.is_set():
            with stats.lock:
                stats.skipped += 1
            return
        entry = entry_for(job, model)
        state = cache.claim(entry.key, owner, stale_after)
        if state == CLAIMED:
            with stats.lock:
                waiting.append(job)
            return
        if state == ANSWERED:
            with stats.lock:
                stats.shared += 1
            return
        try:
            ask(job, entry)
        finally:
            cache.release(entry.key, owner)

    def ask(job: Job, entry) -> None:
        try:
            answer = client.complete(SYSTEM_PROMPT, job.prompt)
        except LLMError as err:
            cache.put_failed(entry, str(err))
            with stats.lock:
                stats.failed += 1
                stats.errors.append(f"{job.kind} {job.raw_id}: {err}")
                stats.connection_failures_in_a_row = stats.connection_failures_in_a_row + 1 if err.connection else 0
                if stats.connection_failures_in_a_row >= MAX_CONNECTION_FAILURES:
                    stats.unreachable.set()
            return
        cache.put_ok(entry, answer.text, answer.usage)
        with stats.lock:
            stats.ok += 1
            stats.tokens += answer.usage.get("total_tokens", 0)
            stats.connection_failures_in_a_row = 0

    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="llm")
    try:
        futures = [pool.submit(work, job) for job in todo]
        for future in as_completed(futures):
            future.result()
            progress.update(stats)
        while waiting and not stats.unreachable.is_set():  # prompts another run was asking: wait for its answers
            time.sleep(0.2)
            for job in list(waiting):
                waiting.remove(job)
                work(job)  # answered now: counted; still claimed: back in the queue; given up: asked here
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        progress.close()
    pool.shutdown()


if __name__ == "__main__":
    sys.exit(main())
