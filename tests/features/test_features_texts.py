"""Texts without an LLM: source precedence, no leakage of held-out items, LLM file validation."""

from __future__ import annotations

import json

import pytest

try:
    from tests.feature_fixtures import tiny_raw, tiny_splits
except ImportError:  # tests/ on sys.path instead of the project root
    from feature_fixtures import tiny_raw, tiny_splits

from ur4rec.features.texts import LLMTextError, build_texts, item_template, load_llm_texts, user_profile


def write_llm(folder, users=None, items=None):
    folder.mkdir(parents=True, exist_ok=True)
    if users is not None:
        (folder / "user_preferences.json").write_text(json.dumps(users), encoding="utf-8")
    if items is not None:
        (folder / "item_descriptions.json").write_text(json.dumps(items), encoding="utf-8")
    return folder


def by_raw_id(splits, values):
    return {int(raw): values[i] for i, raw in enumerate(splits.raw_item_ids) if i > 0}


def test_item_source_precedence_llm_then_plot_then_template(tmp_path):
    raw = tiny_raw(item_texts={1: "Plot of alpha.", 2: "Plot of beta.", 5: "   "})
    llm = write_llm(tmp_path / "llm", items={"1": "LLM says alpha.", "3": "LLM says gamma.",
                                             "4": "No description available."})
    splits = tiny_splits(raw)
    texts = build_texts(raw, splits, llm)
    text, source = by_raw_id(splits, texts.item_texts), by_raw_id(splits, texts.item_sources)
    assert (text[1], source[1]) == ("LLM says alpha.", "llm")  # LLM beats plot
    assert (text[2], source[2]) == ("Plot of beta.", "plot")
    assert (text[3], source[3]) == ("LLM says gamma.", "llm")
    assert (text[4], source[4]) == ("Delta Movie (1993). Genres: Comedy", "template")  # placeholder ignored
    assert (text[5], source[5]) == ("Epsilon Movie (1994). Genres: Horror, Drama", "template")  # blank plot ignored
    assert texts.item_texts[0] == "" and texts.item_sources[0] == "padding"
    assert len(texts.item_texts) == splits.num_items + 1 and len(texts.user_texts) == splits.num_users
    assert texts.item_source_counts() == {"llm": 2, "plot": 1, "template": splits.num_items - 3}
    assert texts.skipped_llm_placeholders == 1


def test_user_llm_preference_beats_template_and_counts(tmp_path):
    raw = tiny_raw()
    splits = tiny_splits(raw)
    texts = build_texts(raw, splits, write_llm(tmp_path / "llm", users={"2": "Loves action."}))
    users = {int(r): (t, s) for r, t, s in zip(splits.raw_user_ids, texts.user_texts, texts.user_sources)}
    assert users[2] == ("Loves action.", "llm")
    assert users[1][1] == users[3][1] == "template"
    assert texts.user_source_counts() == {"llm": 1, "template": 2}
    # without any LLM folder everything falls back
    plain = build_texts(raw, splits, None)
    assert plain.user_source_counts() == {"llm": 0, "template": 3}
    assert plain.item_source_counts() == {"llm": 0, "plot": 0, "template": splits.num_items}


def test_user_template_uses_only_training_items():
    raw = tiny_raw()
    splits = tiny_splits(raw)
    texts = build_texts(raw, splits)
    titles = dict(zip(raw.items["item"], raw.items["title"]))
    for u, text in enumerate(texts.user_texts):
        assert "HELDOUT" not in text and "OnlyGenre" not in text, text  # no valid/test title or genre anywhere
        for target in (splits.valid_target[u], splits.test_target[u]):
            assert titles[int(splits.raw_item_ids[target])] not in text
        last_train = titles[int(splits.raw_item_ids[splits.train[u][-1]])]
        assert last_train in text  # the most recent training item is named
    # user 1 trained on Alpha (Comedy, Drama), Beta (Action), Gamma (Drama)
    assert texts.user_texts[0] == (
        "A user who watched 3 movies. Favourite genres: Drama (2), Action (1), Comedy (1). "
        "Recently watched: Gamma Movie (1992); Beta Movie (1991); Alpha Movie (1990)."
    )


def test_templates_are_deterministic_and_handle_edge_cases():
    assert item_template("Heat (1995)", ("Action", "Crime")) == "Heat (1995). Genres: Action, Crime"
    assert item_template("unknown", ()) == "unknown."
    assert user_profile([], []) == "A user with no viewing history yet."
    profile = user_profile(["A", "B", "C", "D"], [("x",), ("y",), ("y",), ("z",)], top_genres=2, recent=2)
    assert profile == "A user who watched 4 movies. Favourite genres: y (2), x (1). Recently watched: D; C."


@pytest.mark.parametrize(
    "filename, content, expected",
    [
        ("item_descriptions.json", "{not json", "not valid JSON"),
        ("item_descriptions.json", json.dumps(["a", "b"]), "expected a JSON object"),
        ("item_descriptions.json", json.dumps({"12": "ok", "abc": "text"}), "key 'abc'"),
        ("user_preferences.json", json.dumps({"7": 42}), "value of key '7' must be a string"),
        ("user_preferences.json", json.dumps({"7": ["likes", "drama"]}), "value of key '7'"),
    ],
)
def test_bad_llm_json_names_file_and_key(tmp_path, filename, content, expected):
    (tmp_path / filename).write_text(content, encoding="utf-8")
    with pytest.raises(LLMTextError) as info:
        load_llm_texts(tmp_path)
    message = str(info.value)
    assert filename in message and expected in message


def test_llm_folder_missing_files_and_missing_folder(tmp_path):
    empty = load_llm_texts(tmp_path)  # neither file: fine, nothing from the LLM
    assert empty.user_preferences == {} and empty.item_descriptions == {}
    write_llm(tmp_path, items={"3": "Three."})
    assert load_llm_texts(tmp_path).item_descriptions == {3: "Three."}
    with pytest.raises(LLMTextError, match="does not exist"):
        load_llm_texts(tmp_path / "nope")


def test_an_llm_folder_that_is_a_file_or_a_text_file_that_is_a_folder_is_named(tmp_path):
    (tmp_path / "llm-file").write_text("{}")
    with pytest.raises(LLMTextError, match=r"llm-file: is a file, not the folder of user_preferences.json"):
        load_llm_texts(tmp_path / "llm-file")
    (tmp_path / "llm" / "item_descriptions.json").mkdir(parents=True)  # was read as "no file": texts lost silently
    with pytest.raises(LLMTextError, match=r"item_descriptions.json: is a folder, not a JSON file"):
        load_llm_texts(tmp_path / "llm")
