"""User and item texts, with or without LLM output.

Item text, by precedence: the LLM description (``item_descriptions.json``), else the plot/review text
of ``text.xls`` (:attr:`RawDataset.item_texts`), else the template ``"{title}. Genres: {g1}, {g2}"``
(with ``". Tags: ..."``, the item's most frequent user tags, where the data has them).

User text: the LLM preference (``user_preferences.json``), else a deterministic profile built ONLY
from the user's training items (``splits.train[u]``): genre counts and the most recent titles. The
validation and test items are never read, so nothing about the held-out targets leaks into the text.
(An LLM preference file is taken as given: it is the generator's job to have used training items only.)

Both LLM files are optional UTF-8 JSON objects (a byte order mark is allowed) whose keys are raw ids
written as strings (``"42"``) and whose values are strings. Blank values and known placeholders
(``"No description available."``) count as absent and fall back to the next source.
"""

from __future__ import annotations

import json
import re
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from ur4rec.data.errors import DataFormatError, DataFormatWarning
from ur4rec.data.preprocessing import SequenceSplits
from ur4rec.data.readers import RawDataset

USER_PREFERENCES_FILE = "user_preferences.json"
ITEM_DESCRIPTIONS_FILE = "item_descriptions.json"

SOURCE_LLM = "llm"
SOURCE_PLOT = "plot"
SOURCE_TEMPLATE = "template"
SOURCE_PADDING = "padding"
ITEM_SOURCES = (SOURCE_LLM, SOURCE_PLOT, SOURCE_TEMPLATE)
USER_SOURCES = (SOURCE_LLM, SOURCE_TEMPLATE)

# Normalised (case-folded, letters and digits of any script only) texts that LLM pipelines write when they
# had nothing to say. Any script counts: a Japanese or Cyrillic text is not a placeholder.
PLACEHOLDER_TEXTS = frozenset({"", "nodescriptionavailable", "nopreferenceavailable", "na", "none", "null", "unknown"})


class LLMTextError(DataFormatError):
    """An LLM text file is not a JSON object of ``{"<raw id>": "<text>"}``; the message names file and key."""


@dataclass
class LLMTexts:
    """What an LLM folder held: raw id -> text, plus how many entries were skipped as placeholders."""

    user_preferences: dict[int, str]
    item_descriptions: dict[int, str]
    skipped_user_placeholders: int = 0
    skipped_item_placeholders: int = 0


@dataclass
class TextTables:
    """Texts aligned with the remapped ids of a :class:`SequenceSplits`.

    ``item_texts[i]`` is the text of remapped item ``i`` (index 0 = padding, ``""``, source ``"padding"``);
    ``user_texts[u]`` the text of remapped user ``u``. Sources are ``"llm"``, ``"plot"`` or ``"template"``.
    """

    item_texts: list[str]
    item_sources: list[str]
    user_texts: list[str]
    user_sources: list[str]
    skipped_llm_placeholders: int = 0  # LLM entries (items + users) ignored as blank/placeholder

    def item_source_counts(self) -> dict[str, int]:
        counts = Counter(self.item_sources[1:])
        return {source: counts.get(source, 0) for source in ITEM_SOURCES}

    def user_source_counts(self) -> dict[str, int]:
        counts = Counter(self.user_sources)
        return {source: counts.get(source, 0) for source in USER_SOURCES}


# ---------------------------------------------------------------------------------------------- LLM files


def is_placeholder(text: str) -> bool:
    return re.sub(r"[\W_]", "", text.casefold()) in PLACEHOLDER_TEXTS


def read_llm_json(path: str | Path) -> tuple[dict[int, str], int] | None:
    """Read ``{"<raw id>": "<text>"}`` from ``path``; ``None`` when there is no such file (a folder of that
    name is an error).

    Returns the mapping (placeholders dropped) and the number of placeholders dropped. Raises
    :class:`LLMTextError` naming the file (and the key) for invalid JSON, a non-object top level,
    a key that is not an integer id, or a value that is not a string.
    """
    path = Path(path)
    if not path.exists():
        return None
    if not path.is_file():
        raise LLMTextError(path, "is a folder, not a JSON file of texts")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))  # a byte order mark is allowed
    except UnicodeDecodeError as err:
        raise LLMTextError(path, f"not valid UTF-8: {err}") from None
    except json.JSONDecodeError as err:
        raise LLMTextError(path, f"not valid JSON: {err.msg} (line {err.lineno}, column {err.colno})") from None
    if not isinstance(data, dict):
        raise LLMTextError(path, f'expected a JSON object {{"<raw id>": "<text>"}}, got {type(data).__name__}')
    texts: dict[int, str] = {}
    skipped = 0
    for key, value in data.items():
        if not re.fullmatch(r"\s*-?\d+\s*", key):
            raise LLMTextError(path, f"key {key!r} is not an integer raw id written as a string")
        if not isinstance(value, str):
            raise LLMTextError(path, f"value of key {key!r} must be a string, got {type(value).__name__}: {value!r:.60}")
        raw_id = int(key)
        if raw_id in texts:
            raise LLMTextError(path, f"key {key!r} repeats raw id {raw_id}")
        if is_placeholder(value):
            skipped += 1
            continue
        texts[raw_id] = value.strip()
    return texts, skipped


def load_llm_texts(llm_dir: str | Path | None) -> LLMTexts:
    """Read ``user_preferences.json`` and ``item_descriptions.json`` from ``llm_dir`` (each optional)."""
    if llm_dir is None:
        return LLMTexts({}, {})
    llm_dir = Path(llm_dir)
    if not llm_dir.is_dir():
        raise LLMTextError(llm_dir, "LLM text folder does not exist" if not llm_dir.exists() else
                           "is a file, not the folder of user_preferences.json / item_descriptions.json")
    users = read_llm_json(llm_dir / USER_PREFERENCES_FILE) or ({}, 0)
    items = read_llm_json(llm_dir / ITEM_DESCRIPTIONS_FILE) or ({}, 0)
    return LLMTexts(users[0], items[0], users[1], items[1])


# ---------------------------------------------------------------------------------------------- templates


def item_template(title: str, genres: Sequence[str], tags: Sequence[str] = ()) -> str:
    """``"{title}. Genres: {g1}, {g2}"`` (just ``"{title}."`` without genres), then ``". Tags: {t1}, {t2}"``
    when users tagged the item (the MovieLens CSV releases' ``tags.csv``)."""
    title = title.strip() or "Untitled"
    text = f"{title}. Genres: {', '.join(genres)}" if genres else f"{title}."
    return f"{text.rstrip('.')}. Tags: {', '.join(tags)}" if tags else text


def user_profile(
    titles: Sequence[str], genres: Sequence[Sequence[str]], top_genres: int = 3, recent: int = 5
) -> str:
    """Deterministic profile from a user's TRAINING items, given in time order (oldest first).

    Lists the ``top_genres`` most frequent genres with counts (ties broken by name) and the ``recent``
    most recent titles, most recent first.
    """
    if not titles:
        return "A user with no viewing history yet."
    counts = Counter(g for item_genres in genres for g in item_genres)
    favourite = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top_genres]
    parts = [f"A user who watched {len(titles)} movie{'s' if len(titles) != 1 else ''}."]
    if favourite:
        parts.append("Favourite genres: " + ", ".join(f"{g} ({n})" for g, n in favourite) + ".")
    last = list(dict.fromkeys(reversed(titles)))[:recent]  # most recent first, repeats once
    parts.append("Recently watched: " + "; ".join(last) + ".")
    return " ".join(parts)


# ---------------------------------------------------------------------------------------------- tables


def build_texts(
    raw: RawDataset,
    splits: SequenceSplits,
    llm_dir: str | Path | None = None,
    llm_texts: LLMTexts | None = None,
    top_genres: int = 3,
    recent_titles: int = 5,
) -> TextTables:
    """Item texts for remapped ids 0..N and user texts for users 0..U-1, with their sources.

    ``llm_texts`` (already loaded) takes the place of reading ``llm_dir``.
    """
    llm = llm_texts if llm_texts is not None else load_llm_texts(llm_dir)
    meta = _item_metadata(raw)
    _warn_unknown_ids(llm.item_descriptions, set(meta), Path(llm_dir or ".") / ITEM_DESCRIPTIONS_FILE, "items")
    if raw.users is not None:
        _warn_unknown_ids(llm.user_preferences, set(raw.users["user"].tolist()),
                          Path(llm_dir or ".") / USER_PREFERENCES_FILE, "users")

    item_texts, item_sources = [""], [SOURCE_PADDING]
    for raw_item in splits.raw_item_ids[1:]:
        raw_item = int(raw_item)
        if raw_item in llm.item_descriptions:
            item_texts.append(llm.item_descriptions[raw_item])
            item_sources.append(SOURCE_LLM)
        elif raw.item_texts.get(raw_item, "").strip():
            item_texts.append(raw.item_texts[raw_item].strip())
            item_sources.append(SOURCE_PLOT)
        else:
            title, genres = meta.get(raw_item, (f"Item {raw_item}", ()))
            item_texts.append(item_template(title, genres, raw.item_tags.get(raw_item, ())))
            item_sources.append(SOURCE_TEMPLATE)

    raw_items = splits.raw_item_ids
    user_texts, user_sources = [], []
    for user, raw_user in enumerate(splits.raw_user_ids):
        raw_user = int(raw_user)
        if raw_user in llm.user_preferences:
            user_texts.append(llm.user_preferences[raw_user])
            user_sources.append(SOURCE_LLM)
            continue
        history = _training_items(splits, user)  # never the validation / test targets
        titles, genres = [], []
        for item in history:
            title, item_genres = meta.get(int(raw_items[item]), (f"Item {int(raw_items[item])}", ()))
            titles.append(title)
            genres.append(item_genres)
        user_texts.append(user_profile(titles, genres, top_genres, recent_titles))
        user_sources.append(SOURCE_TEMPLATE)

    skipped = llm.skipped_item_placeholders + llm.skipped_user_placeholders
    return TextTables(item_texts, item_sources, user_texts, user_sources, skipped)


def _warn_unknown_ids(texts: Mapping[int, str], known: set[int], path: Path, what: str) -> None:
    """One counted warning when an LLM file names ids the dataset does not hold (texts for another dataset?)."""
    unknown = sorted(set(texts) - known)
    if unknown:
        warnings.warn(f"{path}: {len(unknown)} of its {len(texts)} ids are not {what} of this dataset (e.g. "
                      f"{unknown[:5]}); they are ignored: is data.llm_dir the folder generated for data.data_dir?",
                      DataFormatWarning)


def _training_items(splits: SequenceSplits, user: int) -> np.ndarray:
    return np.asarray(splits.train[user], dtype=np.int64)


def _item_metadata(raw: RawDataset) -> dict[int, tuple[str, tuple[str, ...]]]:
    return {
        int(item): (str(title), tuple(genres))
        for item, title, genres in zip(raw.items["item"], raw.items["title"], raw.items["genres"])
    }


def format_counts(counts: Mapping[str, int], names: Iterable[str] | None = None) -> str:
    names = list(names) if names is not None else list(counts)
    return ", ".join(f"{name}={counts.get(name, 0)}" for name in names)
