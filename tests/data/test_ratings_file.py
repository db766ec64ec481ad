"""Ratings files: the vectorized reader of plain files gives exactly what the strict line-by-line parser gives,
and leaves every other file to it (so its errors still name the file and line)."""

from __future__ import annotations

import pandas as pd
import pytest

from reader_checks import raises_at
from ur4rec.data.errors import DataFormatError
from ur4rec.data.parsing import read_fields
from ur4rec.data.ratings import parse_plain_ratings, parse_ratings, read_ratings

ITEMS = pd.DataFrame({"item": [10, 20, 30], "title": ["a", "b", "c"], "genres": [(), (), ()]})


def strict(path, sep):
    return parse_ratings(read_fields(path, sep, 4, "utf-8"))


@pytest.mark.parametrize("sep", ["\t", "::"])
@pytest.mark.parametrize("text", [
    "1{s}10{s}5{s}100\n2{s}20{s}3.5{s}-7\n",  # a half star and a negative timestamp
    "\n1{s}10{s}5{s}100\n\n\n2{s}20{s}4.{s}0\n",  # blank lines keep the line numbers
    "1{s}10{s}.5{s}100\n2{s}30{s}0{s}007",  # no final line break, leading zeros
])
def test_plain_files_read_as_the_strict_parser_reads_them(tmp_path, sep, text):
    path = tmp_path / "ratings"
    path.write_text(text.format(s=sep))
    plain = parse_plain_ratings(path.read_bytes(), sep)
    assert plain is not None
    expected, lines = strict(path, sep)
    pd.testing.assert_frame_equal(plain[0], expected)
    assert plain[1].tolist() == lines.tolist()


@pytest.mark.parametrize(("sep", "text"), [
    ("\t", "1\t10\t5\t100\n1\t2.0\t3\t200\n"),  # pandas would read "2.0" as the integer 2
    ("\t", "1\t10\t5\t100\t9\n1\t20\t3\t200\n"),  # pandas would drop a fifth field on the first line
    ("\t", "1\t10\t5\t100\n1\t20\t3\t200\t9\n"),
    ("\t", "1\t10\t5\t100\n1\t20\t3\n"),
    ("::", "1::10::5::100\n1::20::3\t200\n"),  # a tab is not the separator of a .dat file
    ("::", "1::10::5::100\n1:::20::3::200\n"),
    ("\t", " 1\t10\t5\t100\n"),  # valid, but not plain: the strict parser reads it
    ("\t", "-1\t10\t5\t100\n"),
])
def test_other_files_are_left_to_the_strict_parser(tmp_path, sep, text):
    assert parse_plain_ratings(text.encode(), sep) is None


@pytest.mark.parametrize(("text", "line", "words"), [
    ("1\t10\t5\t100\n\n1\t2.0\t3\t200\n", 3, ["item id", "'2.0'"]),
    ("1\t10\t5\t100\t9\n1\t20\t3\t200\n", 1, ["expected 4", "found 5"]),
    ("1\t10\t5\t100\n1\t20\t-3\t200\n", 2, ["rating must be >= 0"]),
])
def test_errors_name_the_file_and_line(tmp_path, text, line, words):
    path = tmp_path / "u.data"
    path.write_text(text)
    with pytest.raises(DataFormatError) as info:
        read_ratings(path, "\t", ITEMS, tmp_path / "u.item")
    raises_at(info, "u.data", line)
    for word in words:
        assert word in str(info.value)


def test_a_file_of_spaces_around_values_still_reads(tmp_path):
    path = tmp_path / "u.data"
    path.write_text(" 1\t10 \t 5\t100\n2\t+20\t4\t 90\n")
    ratings = read_ratings(path, "\t", ITEMS, tmp_path / "u.item")
    assert ratings.to_dict("list") == {"user": [1, 2], "item": [10, 20], "rating": [5.0, 4.0], "timestamp": [100, 90]}
