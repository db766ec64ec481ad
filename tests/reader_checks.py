"""Assertion helper shared by the reader tests."""

from __future__ import annotations

def raises_at(exc_info, name: str, line: int | None) -> None:
    """The DataFormatError names the file and, when given, the line: ``.../name:line: ...``."""
    err = exc_info.value
    assert err.path.name == name
    assert err.line == line
    text = str(err)
    assert name in text
    if line is not None:
        assert f"{name}:{line}:" in text
