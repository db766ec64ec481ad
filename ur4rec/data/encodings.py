"""Bytes of a dataset's text files: a UTF-8 byte order mark is dropped, LF, CRLF and CR line endings all
become LF, and the lines are decoded.

The MovieLens metadata files (``u.item``, ``movies.dat``, the users files) are latin-1; a copy saved as
UTF-8 reads as UTF-8 when the whole file is valid UTF-8.
"""

from __future__ import annotations

from pathlib import Path

from ur4rec.data.errors import DataFormatError

BYTE_ORDER_MARK = b"\xef\xbb\xbf"
ENCODINGS = ("utf-8", "latin-1")


def read_bytes(path: Path) -> bytes:
    """The bytes of ``path`` without a leading byte order mark and with every line ending as ``\\n``."""
    if not path.is_file():
        raise DataFormatError(path, "file is missing" if not path.exists() else "is not a regular file")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataFormatError(path, f"cannot read the file: {err.strerror or err}") from None
    if data.startswith(BYTE_ORDER_MARK):
        data = data[len(BYTE_ORDER_MARK):]
    if b"\r" in data:  # the line breaks of bytes.splitlines(): \r\n, then a lone \r
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return data


def decode_lines(path: Path, data: bytes, encoding: str) -> list[str]:
    """The lines of ``data`` (from :func:`read_bytes`) decoded: as UTF-8 when the whole file is valid UTF-8, else
    as latin-1."""
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
    try:
        return data.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        return data.decode("latin-1").split("\n")
