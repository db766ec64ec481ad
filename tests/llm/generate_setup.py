"""What the ``generate`` tests share: a tiny MovieLens-100K whose held-out items have telltale titles,
the fake key, and helpers that run the command and read what it wrote."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for llm_server
from llm_server import FakeLLMServer, user_message  # noqa: E402, F401  (re-exported for the tests)

from ur4rec.llm.generate import main  # noqa: E402

KEY_ENV = "UR4REC_TEST_LLM_KEY"
KEY = "sk-test-SECRET-7f3a9c1e55d0"


def genre_flags(*indices: int) -> str:
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
