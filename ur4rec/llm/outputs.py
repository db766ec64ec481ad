"""The JSON files ``generate`` writes: answers merged into what is already there, never dropping an entry."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ur4rec.atomic_files import atomic_write
from ur4rec.data.errors import DataFormatError
from ur4rec.llm.cache import LLMCache
from ur4rec.llm.prompts import ITEM, USER

OUTPUT_FILES = {USER: "user_preferences.json", ITEM: "item_descriptions.json"}


@dataclass(frozen=True)
class Merge:
    total: int  # entries in the file now
    kept: int  # entries already there that this run did not answer
    added: int  # new ids
    replaced: int  # ids already there whose entry this run's answer replaced


def read_output(path: Path) -> dict[str, str]:
    """The entries already in an output file (``{}`` when there is none); a file that is not a JSON object
    of texts is a :class:`DataFormatError`, so it is never overwritten."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataFormatError(path, f"cannot merge new answers into it: not valid JSON ({err}); move it away "
                              "or fix it") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise DataFormatError(path, 'cannot merge new answers into it: not a JSON object {"<raw id>": "<text>"}; '
                              "move it away or fix it")
    return data


def write_outputs(cache: LLMCache, keys: dict[int, str], output_dir: Path, kind: str) -> Merge:
    """Merge the cached successful answers of ``keys`` (raw id -> cache key) into the kind's JSON file
    (written atomically)."""
    path = output_dir / OUTPUT_FILES[kind]
    existing = read_output(path)
    entries = keys
    texts = cache.ok_texts(list(entries.values()))
    fresh = {str(raw): texts[key] for raw, key in entries.items() if key in texts}
    merged = {**existing, **fresh}
    ordered = dict(sorted(merged.items(), key=lambda kv: (not kv[0].lstrip("-").isdigit(), int(kv[0])
                                                          if kv[0].lstrip("-").isdigit() else 0, kv[0])))
    atomic_write(path, lambda file: file.write(json.dumps(ordered, indent=2, ensure_ascii=False).encode("utf-8")))
    replaced = sum(1 for k in fresh if k in existing)
    return Merge(len(merged), len(existing) - replaced, len(fresh) - replaced, replaced)
