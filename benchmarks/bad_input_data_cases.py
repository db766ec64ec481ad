"""The bad-input corpus's data cases: broken ratings files, metadata files, LLM outputs, caches and posters
(the case type and the command builders: :mod:`benchmarks.bad_input_cases`)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from benchmarks.bad_input_fixtures import (
    COUNTS, NUM_ITEMS, RATING_ROWS, Setup, appended, appended_raw, copied, edited, emptied, first_line_only, halved,
    line_replaced, random_bytes, removed, replaced, steps, with_bom_and_crlf, with_cr_only, written,
)

from benchmarks.bad_input_cases import CLEAR_ERROR, GRACEFUL, UR4REC, Case, counts_of, sasrec_fit

# ---------------------------------------------------------------------------------------------- ratings files

RATINGS = {  # file -> (fixture, field separator, header lines)
    "u.data": ("ml100k", "\t", 0), "ratings.dat": ("mml", "::", 0), "ratings.csv": ("csv", ",", 1),
}


# ratings.dat and u.data share one parser: ratings.dat gets the breakages the issue names, u.data all of them
DAT_BREAKAGES = ("wrong separator", "missing column", "non-numeric user id", "NaN rating", "negative user id",
                 "user id beyond int64", "unbalanced quote", "empty file", "header line", "BOM and CRLF",
                 "rating of 400", "duplicate row", "item the items file lacks")


def ratings_cases() -> list[Case]:
    cases = [case for file, layout in RATINGS.items() for case in layout_ratings_cases(file, *layout)]
    return [c for c in cases if not c.name.startswith("ratings ratings.dat ")
            or c.name.removeprefix("ratings ratings.dat ") in DAT_BREAKAGES]


def field_set(sep: str, index: int, value: str):
    """An edit of one line: its field ``index`` becomes ``value``."""
    def change(line: bytes) -> bytes:
        fields = line.split(sep.encode())
        fields[index] = value.encode()
        return sep.encode().join(fields)

    return change


def layout_ratings_cases(file: str, fixture: str, sep: str, header: int) -> list[Case]:
    new_line = RATING_ROWS + header + 1  # the line an appended row lands on

    def row(*fields: str) -> str:
        return sep.join(fields)

    def broken(what: str, edit, names: str, expected: str = CLEAR_ERROR, argv=None) -> Case:
        return Case(f"ratings {file} {what}", expected, names, argv or sasrec_fit("data"), edited(fixture, file, edit))

    other_sep = ";" if sep == "," else ","
    cases = [
        broken("wrong separator", replaced(sep.encode(), other_sep.encode()), f"{file}:1"),
        broken("one line with spaces for separators",
               line_replaced(header + 5, lambda line: line.replace(sep.encode(), b" ")), f"{file}:{header + 5}"),
        broken("missing column", appended(row("1", "2", "5")), f"{file}:{new_line}"),
        broken("extra column", appended(row("1", "2", "5", "881000000", "7")), f"{file}:{new_line}"),
        broken("non-numeric user id", appended(row("abc", "2", "5", "881000000")), f"{file}:{new_line}"),
        broken("non-numeric rating", appended(row("1", "2", "five", "881000000")), f"{file}:{new_line}"),
        broken("NaN rating", appended(row("1", "2", "nan", "881000000")), f"{file}:{new_line}"),
        broken("fractional timestamp", appended(row("1", "2", "5", "881000000.5")), f"{file}:{new_line}"),
        broken("negative user id", appended(row("-3", "2", "5", "881000000")), f"{file}:{new_line}"),
        broken("negative rating", appended(row("1", "2", "-1", "881000000")), f"{file}:{new_line}"),
        broken("user id beyond int64", appended(row("99999999999999999999", "2", "5", "881000000")),
               f"{file}:{new_line}"),
        broken("item the items file lacks", appended(row("1", "999", "5", "881000000")), f"{file}:{new_line}"),
        broken("unbalanced quote", appended(row("1", '"2', "5", "881000000")), f"{file}:{new_line}"),
        broken("last line cut off", appended_raw(row("1", "5").encode()), f"{file}:{new_line}"),
        broken("latin-1 byte", appended(row("1", "2", "5", "88100000").encode() + b"\xe9"), f"{file}:{new_line}"),
        broken("empty file", emptied, f"{file}: file is empty"),
        broken("random bytes", random_bytes(), file),
        broken("rating of 400", line_replaced(header + 4, field_set(sep, 2, "400")), f"{file}: 1 rating(s) above 5",
               GRACEFUL),
        broken("duplicate row", lambda data: appended(data.splitlines()[header])(data),
               f"{file}: dropped 1 rating row(s)", GRACEFUL),
        broken("BOM and CRLF", with_bom_and_crlf, COUNTS, GRACEFUL, counts_of()),
        broken("CR line endings", with_cr_only, COUNTS, GRACEFUL, counts_of()),
    ]
    if header:
        return cases + [
            broken("header only", first_line_only, file),
            broken("missing header", lambda data: data.split(b"\n", 1)[1], f"{file}:1"),
        ]
    return cases + [broken("header line", lambda data: row("user", "item", "rating", "timestamp").encode() + b"\n"
                           + data, f"{file}:1")]


# ---------------------------------------------------------------------------------------------- metadata files

MIXED_ENCODINGS = "Caf\xe9 (1990)".encode("latin-1"), "千と千尋の神隠し (2001)".encode()


def mixed_encodings(sep: bytes) -> callable:
    """Title of line 1 in latin-1, title of line 2 in UTF-8: a file stitched together from two sources."""

    def edit(data: bytes) -> bytes:
        lines = data.split(b"\n")
        for number, new_title in zip((0, 1), MIXED_ENCODINGS):
            fields = lines[number].split(sep)
            fields[1] = new_title
            lines[number] = sep.join(fields)
        return b"\n".join(lines)

    return edit


def utf8_titles(sep: bytes) -> callable:
    def edit(data: bytes) -> bytes:
        lines = data.split(b"\n")
        fields = lines[0].split(sep)
        fields[1] = MIXED_ENCODINGS[1]
        lines[0] = sep.join(fields)
        return b"\n".join(lines)

    return edit


def metadata_cases() -> list[Case]:
    def broken(fixture: str, file: str, what: str, edit, names: str, expected: str = CLEAR_ERROR, **kwargs) -> Case:
        return Case(f"metadata {file} {what}", expected, names, counts_of(), edited(fixture, file, edit), **kwargs)

    def xls(header: list, rows: list) -> bytes:
        import io

        import xlwt
        book = xlwt.Workbook()
        sheet = book.add_sheet("text")
        for r, values in enumerate([header, *rows]):
            for c, value in enumerate(values):
                sheet.write(r, c, value)
        buffer = io.BytesIO()
        book.save(buffer)
        return buffer.getvalue()

    movies_csv_line = NUM_ITEMS + 2
    return [
        broken("ml100k", "u.item", "line cut short", appended("31|Truncated Mov"), f"u.item:{NUM_ITEMS + 1}"),
        broken("ml100k", "u.item", "genre flag 2", line_replaced(3, lambda line: line[:-1] + b"2"), "u.item:3"),
        broken("ml100k", "u.item", "non-numeric item id", line_replaced(2, lambda line: b"two" + line[1:]), "u.item:2"),
        broken("ml100k", "u.item", "repeated item id", lambda data: appended(data.splitlines()[0])(data),
               f"u.item:{NUM_ITEMS + 1}"),
        broken("ml100k", "u.item", "empty file", emptied, "u.item: file is empty"),
        Case("metadata u.item missing", CLEAR_ERROR, "u.item", counts_of(),
             steps(copied("ml100k"), removed("data/u.item"))),
        broken("ml100k", "u.item", "mixed encodings", mixed_encodings(b"|"), "u.item: mixed encodings: 1 line(s)",
               GRACEFUL),
        broken("ml100k", "u.item", "UTF-8 non-latin title", utf8_titles(b"|"), COUNTS, GRACEFUL),
        broken("ml100k", "u.user", "empty file", emptied, "u.user: file is empty"),
        broken("ml100k", "u.user", "non-numeric age", line_replaced(2, lambda line: line.replace(b"|22|", b"|old|")),
               "u.user:2"),
        broken("mml", "movies.dat", "two fields", appended("31::Truncated Movie"), f"movies.dat:{NUM_ITEMS + 1}"),
        broken("mml", "movies.dat", "empty file", emptied, "movies.dat: file is empty"),
        broken("mml", "movies.dat", "mixed encodings", mixed_encodings(b"::"),
               "movies.dat: mixed encodings: 1 line(s)", GRACEFUL),
        Case("metadata user.dat missing", CLEAR_ERROR, "user.dat", counts_of(),
             steps(copied("mml"), removed("data/user.dat"))),
        broken("mml", "text.xls", "wrong columns", lambda _: xls(["id", "plot"], [[1, "A plot."]]), "text.xls"),
        broken("mml", "text.xls", "CSV saved as .xls", lambda _: b"movie-id,review\n1,A plot.\n", "text.xls"),
        broken("mml", "text.xls", "empty file", emptied, "text.xls"),
        broken("mml", "text.xls", "non-integer movie-id", lambda _: xls(["movie-id", "review"], [["one", "A plot."]]),
               "text.xls:2"),
        broken("csv", "movies.csv", "missing header", lambda data: data.split(b"\n", 1)[1], "movies.csv:1"),
        broken("csv", "movies.csv", "unbalanced quote", appended('31,"Unclosed, The,Drama'), "movies.csv"),
        broken("csv", "movies.csv", "non-numeric movieId", appended("x31,Title,Drama"),
               f"movies.csv:{movies_csv_line}"),
        broken("csv", "movies.csv", "repeated movieId", appended("3,Again,Drama"), f"movies.csv:{movies_csv_line}"),
        broken("csv", "movies.csv", "extra field", appended("31,Title,Drama,extra"), f"movies.csv:{movies_csv_line}"),
        broken("csv", "movies.csv", "latin-1 title", appended("31,Caf\xe9,Drama".encode("latin-1")),
               f"movies.csv: 1 line(s) (first: line {movies_csv_line}) are not valid UTF-8; decoded as latin-1",
               GRACEFUL),
        broken("csv", "movies.csv", "empty file", emptied, "movies.csv: file is empty"),
        Case("metadata movies.csv missing", CLEAR_ERROR, "movies.csv", counts_of(),
             steps(copied("csv"), removed("data/movies.csv"))),
        broken("csv", "tags.csv", "tags of unknown movies", appended("1,999,lost,1"), "tags.csv: ignored 1 tag row(s)",
               GRACEFUL),
        broken("csv", "tags.csv", "wrong header", replaced(b"userId,movieId,tag,timestamp", b"user,movie,tag,time"),
               "tags.csv:1"),
        broken("csv", "tags.csv", "non-numeric movieId", appended("1,abc,tag,1"), "tags.csv:22"),
        broken("csv", "tags.csv", "unbalanced quote", appended('1,2,"open tag,1'), "tags.csv"),
        broken("csv", "links.csv", "garbage (not read)", random_bytes(), COUNTS, GRACEFUL),
    ]


# ---------------------------------------------------------------------------------------------- LLM outputs and caches

ITEMS_JSON, USERS_JSON = "item_descriptions.json", "user_preferences.json"


def llm_cases() -> list[Case]:
    def texts(what: str, file: str, edit, names: str, expected: str = CLEAR_ERROR) -> Case:
        return Case(f"llm {file} {what}", expected, names, counts_of("{mml}", "--llm_dir", "llm"),
                    edited("llm", file, edit, to="llm"))

    key = {"OPENAI_API_KEY": "sk-bad-input-corpus"}
    generate = ("generate", "--data_dir", "{ml100k}", "--output_dir", "out", "--num_items", "10", "--skip_users")
    return [
        texts("empty", ITEMS_JSON, emptied, ITEMS_JSON),
        texts("trailing comma", ITEMS_JSON, lambda _: b'{"1": "A film.",}', ITEMS_JSON),
        texts("a list", USERS_JSON, lambda _: b'["Likes films."]', USERS_JSON),
        texts("number value", ITEMS_JSON, lambda _: b'{"1": 5}', ITEMS_JSON),
        texts("title as key", ITEMS_JSON, lambda _: b'{"Toy Story": "A film."}', ITEMS_JSON),
        texts("latin-1 bytes", ITEMS_JSON, lambda _: '{"1": "Caf\xe9 film"}'.encode("latin-1"), ITEMS_JSON),
        texts("BOM and CRLF", ITEMS_JSON, with_bom_and_crlf, "llm=10", GRACEFUL),
        texts("ids unknown to the data", ITEMS_JSON, replaced(b"{", b'{"5000": "Another catalog.", '),
              f"{ITEMS_JSON}: 1 of its 11 ids are not items", GRACEFUL),
        texts("users unknown to the data", USERS_JSON, replaced(b"{", b'{"77777": "Someone else.", '),
              f"{USERS_JSON}: 1 of its 6 ids are not users", GRACEFUL),
        texts("blank and placeholder texts", ITEMS_JSON, replaced(b"{", b'{"11": "", "12": "N/A", '),
              "ignored as blank/placeholder: 2", GRACEFUL),
        Case(f"llm {ITEMS_JSON} is a folder", CLEAR_ERROR, ITEMS_JSON, counts_of("{mml}", "--llm_dir", "llm"),
             steps(copied("llm", "llm"), removed(f"llm/{ITEMS_JSON}"), written(f"llm/{ITEMS_JSON}/x", "x"))),
        Case("llm --llm_dir is a file", CLEAR_ERROR, "llm-file", counts_of("{mml}", "--llm_dir", "llm-file"),
             written("llm-file", "{}")),
        Case("llm bad JSON through fit", CLEAR_ERROR, ITEMS_JSON,
             ("fit", *UR4REC, "--data.data_dir={mml}", "--data.llm_dir=llm"),
             edited("llm", ITEMS_JSON, lambda _: b'{"1": "A film.",}', to="llm")),
        Case("llm unknown ids through fit", GRACEFUL, f"{ITEMS_JSON}: 1 of its 11 ids are not items",
             ("fit", *UR4REC, "--data.data_dir={mml}", "--data.llm_dir=llm"),
             edited("llm", ITEMS_JSON, replaced(b"{", b'{"5000": "Another catalog.", '), to="llm")),
        Case("generate --cache is a folder", CLEAR_ERROR, "names a folder", (*generate, "--cache", "cachedir"),
             written("cachedir/keep", ""), env=key),
        Case("generate --cache is not a database", CLEAR_ERROR, "not a readable LLM cache",
             (*generate, "--cache", "cache.sqlite"), written("cache.sqlite", random_bytes()(b"")), env=key),
        Case("generate output JSON corrupt", CLEAR_ERROR, ITEMS_JSON, generate,
             written(f"out/{ITEMS_JSON}", '{"1": "half'), env=key),
        Case("generate against a dead server", CLEAR_ERROR, "could not reach",
             (*generate, "--base_url", "{dead_url}", "--max_retries", "0", "--timeout", "2"), exit_code=1, env=key),
        Case("generate without an API key", CLEAR_ERROR, "no API key", generate),
        Case("generate --concurrency 0", CLEAR_ERROR, "--concurrency", (*generate, "--concurrency", "0"), env=key),
        Case("generate --num_users -1", CLEAR_ERROR, "--num_users", (*generate, "--num_users", "-1"), env=key),
        Case("generate skips both kinds", CLEAR_ERROR, "leave nothing to do", (*generate, "--skip_items"), env=key),
        Case("generate on broken data", CLEAR_ERROR, "u.data:241",
             ("generate", "--data_dir", "data", "--output_dir", "out", "--dry_run"),
             edited("ml100k", "u.data", appended("1\t2\t5"))),
    ]


def features_cases() -> list[Case]:
    """Posters and the embedding cache, through the features command (texts come from the prepared cache)."""
    embed = ("features", "--data_dir", "data", "--llm_dir", "{llm}", "--cache_dir", "{cache}")
    on_copy = ("features", "--data_dir", "{mml}", "--llm_dir", "{llm}", "--cache_dir", "cache")

    def posters(what: str, setup: Setup, names: str) -> Case:
        return Case(f"features {what}", GRACEFUL, names, embed, steps(copied("mml"), setup))

    def cache(what: str, setup: Setup, names: str, argv=on_copy) -> Case:
        return Case(f"features cache {what}", CLEAR_ERROR, names, argv, setup, needs=("cache",))

    return [
        posters("image path is a file", steps(removed("data/image"), written("data/image", "not a folder")),
                "image: is a file"),
        posters("poster of plain text", written("data/image/1.jpg", "not an image\n"),
                "1 image file(s) could not be read"),
        posters("empty poster", written("data/image/2.jpg", b""), "1 image file(s) could not be read"),
        posters("truncated poster", lambda case_dir, _: (case_dir / "data/image/3.jpg").write_bytes(
            halved((case_dir / "data/image/3.jpg").read_bytes())), "1 image file(s) could not be read"),
        posters("posters not named by id",
                steps(written("data/image/poster.jpg", b""), written("data/image/4.gif", b"")), "ignored 2 file(s)"),
        posters("no posters at all", steps(removed("data/image"), written("data/image/.keep", b"")),
                f"no poster files (a layout without posters, or an image/ folder without <item_id>.jpg files); "
                f"all {NUM_ITEMS} items masked"),
        Case("features --image_encoder bogus", CLEAR_ERROR, "image_encoder", (*embed, "--image_encoder", "bogus"),
             copied("mml")),
        Case("features --image_encoder clip without a model", CLEAR_ERROR, "no-clip-here",
             (*embed, "--image_encoder", "clip", "--image_model", "no-clip-here"), copied("mml")),
        Case("features --text_model missing folder", CLEAR_ERROR, "no-text-model",
             (*embed, "--text_model", "./no-text-model"), copied("mml")),
        Case("features --data_dir missing", CLEAR_ERROR, "no-data-here", ("features", "--data_dir", "no-data-here")),
        cache("database of random bytes", steps(copied("cache", "cache"), corrupt_cache_databases),
              "embeddings.sqlite"),
        cache("folder is a file", written("cache", "not a folder"), "cache"),
        cache("of another encoder", steps(copied("cache", "cache"), relabel_cache_namespace), "cache belongs to"),
    ]


def corrupt_cache_databases(case_dir: Path, _: dict) -> None:
    for path in (case_dir / "cache").rglob("embeddings.sqlite"):
        path.write_bytes(random_bytes(8192)(b""))


def relabel_cache_namespace(case_dir: Path, _: dict) -> None:
    """Every cache database claims to hold another encoder's vectors (a folder copied from elsewhere)."""
    for path in (case_dir / "cache").rglob("embeddings.sqlite"):
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE meta SET value = 'text:some-other-model' WHERE name = 'namespace'")
