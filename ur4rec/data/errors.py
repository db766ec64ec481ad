"""Errors raised for malformed or missing input files."""

from __future__ import annotations

from pathlib import Path


class DataFormatError(ValueError):
    """A data file is missing or malformed; the message names the file and, when known, the line."""

    def __init__(self, path: str | Path, message: str, line: int | None = None):
        self.path = Path(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else f"{self.path}"
        super().__init__(f"{where}: {message}")


class DataFormatWarning(UserWarning):
    """A data file had rows that were repaired or dropped; the message names the file and counts them."""
