"""Bytes of a dataset's text files: a UTF-8 byte order mark is dropped, LF, CRLF and CR line endings all
become LF, and a file whose lines mix encodings is decoded line by line with one counted warning.

The MovieLens metadata files (``u.item``, ``movies.dat``, the users files) are latin-1; a copy saved as
UTF-8 reads as UTF-8 when the whole file is valid UTF-8. The CSV releases are UTF-8. Either way, a line
that is valid UTF-8 is decoded as UTF-8 and any other line as latin-1 (which never fails), so no title
turns into mojibake (``CafÃ©``) because another line of its file was saved in another encoding.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ur4rec.data.errors import DataFormatError, DataFormatWarning

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
    """The lines of ``data`` (from :func:`read_bytes`) decoded, each as UTF-8 when it is valid UTF-8, else as latin-1.

    ``encoding`` is what the format says the file is. Lines decoded against it are counted in one
    :class:`DataFormatWarning` naming ``path``: in a UTF-8 file every line that is not valid UTF-8; in a
    latin-1 file the UTF-8 lines, when latin-1 lines are there too (a wholly UTF-8 file is a UTF-8 copy).
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
    try:
        return data.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        pass
    lines = data.decode("latin-1").split("\n")
    raw_lines = data.split(b"\n")
    utf8, latin1 = [], []
    for index in _non_ascii_lines(data):
        try:
            lines[index] = raw_lines[index].decode("utf-8")
            utf8.append(index + 1)
        except UnicodeDecodeError:
            latin1.append(index + 1)
    if encoding == "utf-8":
        warnings.warn(f"{path}: {len(latin1)} line(s) (first: line {latin1[0]}) are not valid UTF-8; decoded as latin-1",
                      DataFormatWarning)
    elif utf8:
        warnings.warn(f"{path}: mixed encodings: {len(utf8)} line(s) (first: line {utf8[0]}) are UTF-8 and "
                      f"{len(latin1)} (first: line {latin1[0]}) latin-1; each line was decoded in its own encoding",
                      DataFormatWarning)
    return lines


def _non_ascii_lines(data: bytes) -> np.ndarray:
    """0-based indices of the lines of ``data`` holding a byte >= 0x80, in order."""
    array = np.frombuffer(data, dtype=np.uint8)
    breaks = np.flatnonzero(array == ord("\n"))
    return np.unique(np.searchsorted(breaks, np.flatnonzero(array >= 0x80)))
