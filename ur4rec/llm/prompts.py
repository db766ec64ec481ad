"""Prompt texts for item descriptions and user preference summaries, and the jobs built from a dataset.

A user's prompt is built only from that user's training items (``splits.train[u]``); the validation
and test targets never enter it. Change a prompt's text or generation settings -> bump its version,
so cached answers to the old prompt are not reused under the new one.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # ``ur4rec.data`` pulls in torch; keep importing this module cheap
    from ur4rec.data.preprocessing import SequenceSplits
    from ur4rec.data.readers import RawDataset

ITEM = "item"
USER = "user"
PROMPT_VERSION = {ITEM: "item-v1", USER: "user-v1"}
MAX_TOKENS = 200
TEMPERATURE = 0.3
MAX_HISTORY = 30  # most recent training items shown in a user prompt

SYSTEM_PROMPT = (
    "You are a movie expert helping a recommender system. Answer in plain English prose, "
    "without lists, headings or markdown."
)
_YEAR = re.compile(r"\((\d{4})\)\s*$")


@dataclass(frozen=True)
class Job:
    """One chat completion to make: what kind, for which raw id, with which prompt."""

    kind: str  # ITEM or USER
    raw_id: int
    prompt: str

    @property
    def version(self) -> str:
        return PROMPT_VERSION[self.kind]


def title_year(title: str) -> str | None:
    """The release year at the end of a MovieLens title such as ``"Toy Story (1995)"``."""
    match = _YEAR.search(title)
    return match.group(1) if match else None


def _genres(genres: tuple[str, ...]) -> str:
    return ", ".join(genres) if genres else "unknown"


def item_prompt(title: str, genres: tuple[str, ...]) -> str:
    """Ask for a 2-3 sentence description of a movie from its title, year and genres."""
    year = title_year(title)
    lines = [f"Movie title: {title}"]
    if year:
        lines.append(f"Release year: {year}")
    lines.append(f"Genres: {_genres(genres)}")
    lines.append(
        "\nWrite a 2-3 sentence description of this movie that would help a recommender system: "
        "its story or premise, tone and themes, and what kind of viewer would enjoy it. "
        "If you do not know the movie, describe it from its title, year and genres without inventing plot details."
    )
    return "\n".join(lines)


def _rating(value: float) -> str:
    return "?" if math.isnan(value) else f"{value:g}"


def user_prompt(history: list[tuple[str, tuple[str, ...], float]]) -> str:
    """Ask for a short preference summary from (title, genres, rating) rows, most recent first."""
    rows = [f"- {title} | {_genres(genres)} | rated {_rating(rating)}/5" for title, genres, rating in history]
    return (
        "Here are movies a user watched and rated, most recent first (title | genres | rating):\n"
        + "\n".join(rows)
        + "\n\nIn 2-3 sentences, summarize this user's movie preferences (favourite genres, themes, eras and "
        "moods) so that a recommender system can suggest new movies. Do not just list the titles."
    )


def item_jobs(dataset: RawDataset, splits: SequenceSplits) -> list[Job]:
    """One job per item of the splits (raw ids in increasing order)."""
    meta = dataset.items.drop_duplicates("item", keep="last").set_index("item")
    jobs = []
    for raw in splits.raw_item_ids[1:]:
        raw = int(raw)
        title, genres = (meta.at[raw, "title"], meta.at[raw, "genres"]) if raw in meta.index else ("unknown", ())
        jobs.append(Job(ITEM, raw, item_prompt(str(title), tuple(genres))))
    return jobs


def user_jobs(dataset: RawDataset, splits: SequenceSplits, min_rating: float) -> list[Job]:
    """One job per user with a non-empty ``splits.train[u]``, built from it only (never the valid/test items).

    A user with nothing to describe gets no job; training falls back to the template profile.
    """
    from ur4rec.data.preprocessing import filter_ratings

    kept = filter_ratings(dataset.ratings, min_rating, 0)
    ratings = dict(zip(zip(kept["user"].to_numpy(), kept["item"].to_numpy()), kept["rating"].to_numpy()))
    meta = dataset.items.drop_duplicates("item", keep="last").set_index("item")
    jobs = []
    for u, raw_user in enumerate(splits.raw_user_ids):
        raw_user = int(raw_user)
        recent = np.asarray(splits.train[u])[::-1][:MAX_HISTORY]
        if not len(recent):
            continue
        history = []
        for item in recent:
            raw_item = int(splits.raw_item_ids[item])
            title, genres = (meta.at[raw_item, "title"], meta.at[raw_item, "genres"]) \
                if raw_item in meta.index else ("unknown", ())
            rating = ratings.get((raw_user, raw_item), float("nan"))
            history.append((str(title), tuple(genres), float(rating)))
        jobs.append(Job(USER, raw_user, user_prompt(history)))
    return jobs


def estimate_tokens(prompt: str) -> int:
    """Rough token count of a request: ~4 characters per token for system + user prompt."""
    return (len(SYSTEM_PROMPT) + len(prompt)) // 4 + 1

