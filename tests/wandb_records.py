"""Read an offline W&B run file (``run-<id>.wandb``) back into its records, for tests.

wandb 0.31 ships no reader, so this follows the format its writer uses: a 7-byte header
(``":W&B"``, magic 0xBEE1, version), then 32 KiB blocks of chunks, each ``crc32 (4) | length (2) |
type (1) | data``; type 1 = a whole record, 2/3/4 = first/middle/last piece of one. A record is a
serialized ``wandb_internal_pb2.Record``.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2

BLOCK = 32768
HEADER = struct.Struct("<4sHB")
CHUNK = struct.Struct("<IHB")
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> Iterator[wandb_internal_pb2.Record]:
    data = Path(path).read_bytes()
    ident, magic, _ = HEADER.unpack_from(data)
    assert ident == b":W&B" and magic == 0xBEE1, f"{path} is not a W&B run file"
    pos, pieces = HEADER.size, b""
    while pos + CHUNK.size <= len(data):
        left = BLOCK - pos % BLOCK
        if left < CHUNK.size:  # the block's tail is padding
            pos += left
            continue
        _, length, kind = CHUNK.unpack_from(data, pos)
        if kind == 0:  # zero padding up to the block end
            pos += left
            continue
        pieces += data[pos + CHUNK.size:pos + CHUNK.size + length]
        pos += CHUNK.size + length
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pieces)
            pieces = b""
            yield record


def _items(items) -> dict[str, Any]:
    """``{key: value}`` of history/config items; a dict value (a histogram) comes as one item per leaf
    with ``nested_key`` = its path, and is nested back."""
    out: dict[str, Any] = {}
    for item in items:
        *parents, leaf = item.nested_key or [item.key]
        node = out
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = json.loads(item.value_json)
    return out


class OfflineRun:
    """The history rows, config, run id and other record types of one or more ``.wandb`` files."""

    def __init__(self, paths: list[Path]):
        self.history: list[dict[str, Any]] = []
        self.config: dict[str, Any] = {}
        self.run_ids: set[str] = set()
        self.kinds: set[str] = set()
        for path in paths:
            for record in records(path):
                kind = record.WhichOneof("record_type")
                self.kinds.add(kind)
                if kind == "history":
                    self.history.append(_items(record.history.item))
                elif kind == "config":
                    self.config.update(_items(record.config.update))
                elif kind == "run":
                    self.run_ids.add(record.run.run_id)

    def keys(self) -> set[str]:
        return {key for row in self.history for key in row}

    def values(self, key: str) -> list[Any]:
        return [row[key] for row in self.history if key in row]
