"""FeatureTables: everything aligned with the remapped ids of the split; the features report command."""

from __future__ import annotations

import json
import shutil
import warnings

import pytest
import torch

try:
    from tests.feature_fixtures import HashTextEncoder, hash_vector, save_tiny_clip, tiny_raw, tiny_splits
    from tests.writers import write_mml_folder
except ImportError:
    from feature_fixtures import HashTextEncoder, hash_vector, save_tiny_clip, tiny_raw, tiny_splits
    from writers import write_mml_folder

from ur4rec.data.readers import read_dataset
from ur4rec.features import provenance as report
from ur4rec.features.image_embeddings import embed_images
from ur4rec.features.image_encoders import ClipImageEncoder, DescriptorImageEncoder, ImageFeatureWarning
from ur4rec.features.tables import FeatureTables, build_feature_tables

PLOTS = {2: "Beta is a plot text.", 3: "Gamma has a plot too."}
POSTERS = {1: "noise", 2: "red", 3: "stripes", 4: "text", 111: "gradient"}  # 4 unreadable, 5 and others absent


@pytest.fixture
def mml(tmp_path):
    root = write_mml_folder(tmp_path / "M_ML-100K", PLOTS, POSTERS)
    (tmp_path / "llm").mkdir()
    (tmp_path / "llm" / "item_descriptions.json").write_text(json.dumps({"1": "LLM text for alpha.", "2": "LLM beta."}))
    (tmp_path / "llm" / "user_preferences.json").write_text(json.dumps({"3": "Likes horror."}))
    return root, tmp_path / "llm"


def build(root, llm, cache, **kwargs) -> FeatureTables:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImageFeatureWarning)
        raw = read_dataset(root)
        return build_feature_tables(raw, tiny_splits(raw), llm_dir=llm, cache_dir=cache, **kwargs)


def test_tables_are_aligned_with_remapped_ids(mml, tmp_path):
    root, llm = mml
    raw = read_dataset(root)
    splits = tiny_splits(raw)
    tables = build(root, llm, tmp_path / "cache", text_model=HashTextEncoder())
    n, u = splits.num_items, splits.num_users
    assert tables.item_text.shape == (n + 1, 8) and tables.user_text.shape == (u, 8)
    assert tables.item_image.shape == (n + 1, 201) and tables.image_mask.shape == (n + 1,)
    assert tables.item_text.dtype == tables.item_image.dtype == torch.float32 and tables.image_mask.dtype == torch.bool
    assert not tables.item_text[0].any() and not tables.item_image[0].any() and not tables.image_mask[0]
    assert (tables.text_model, tables.text_dim, tables.image_encoder, tables.image_dim) == (
        "test-hash-encoder", 8, "descriptor-v1", 201)

    index = splits.item_index()
    for raw_id, text in [(1, "LLM text for alpha."), (2, "LLM beta."), (3, "Gamma has a plot too."),
                         (4, "Delta Movie (1993). Genres: Comedy")]:
        row = index[raw_id]
        assert tables.item_texts[row] == text
        assert torch.allclose(tables.item_text[row], torch.from_numpy(hash_vector(text)))
    assert tables.item_source_counts() == {"llm": 2, "plot": 1, "template": n - 3}
    users = splits.user_index()
    assert tables.user_text_source[users[3]] == "llm" and tables.user_texts[users[3]] == "Likes horror."
    assert torch.allclose(tables.user_text[users[3]], torch.from_numpy(hash_vector("Likes horror.")))
    assert tables.user_source_counts() == {"llm": 1, "template": u - 1}

    expected_mask = {1: True, 2: True, 3: True, 4: False, 5: False, 111: True}
    for raw_id, present in expected_mask.items():
        assert bool(tables.image_mask[index[raw_id]]) is present
    assert int(tables.image_mask.sum()) == 4 and tables.images_unreadable == 1 and tables.images_missing == n - 5
    alone = embed_images([root / "image" / "3.jpg"], DescriptorImageEncoder())  # row of item 3 = its own poster
    assert torch.allclose(tables.item_image[index[3]], torch.from_numpy(alone.vectors[0]))
    assert not tables.item_image[~tables.image_mask].any()

    again = build(root, llm, tmp_path / "cache", text_model=HashTextEncoder())
    assert again.stats["texts_computed"] == 0 and again.stats["images_computed"] == 0
    assert torch.equal(again.item_text, tables.item_text) and torch.equal(again.item_image, tables.item_image)


def test_tables_with_tiny_clip(mml, tmp_path):
    root, llm = mml
    model = save_tiny_clip(tmp_path / "clip")
    tables = build(root, llm, None, text_model=HashTextEncoder(), image_encoder="clip", image_model=str(model))
    assert tables.image_encoder == f"clip:{model.resolve()}" and tables.image_dim == 16
    assert tables.item_image.shape[1] == 16 and int(tables.image_mask.sum()) == 4
    norms = tables.item_image[tables.image_mask].norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)


def test_layout_without_images_gives_masked_zero_vectors(tmp_path):
    raw = tiny_raw()  # no image_paths at all (like raw MovieLens-100K)
    splits = tiny_splits(raw)
    tables = build_feature_tables(raw, splits, text_model=HashTextEncoder())
    assert not tables.has_images and not tables.image_mask.any()
    assert tables.item_image.shape == (splits.num_items + 1, 201) and not tables.item_image.any()
    clip_model = save_tiny_clip(tmp_path / "clip")
    encoder = ClipImageEncoder(str(clip_model))
    with_clip = build_feature_tables(raw, splits, text_model=HashTextEncoder(), image_encoder=encoder)
    assert with_clip.item_image.shape == (splits.num_items + 1, 16) and encoder._model is None  # no weights loaded
    assert with_clip.summary()["posters_embedded"] == 0


def test_features_report_prints_counts_per_source(mml, tmp_path, monkeypatch, capsys):
    root, llm = mml
    monkeypatch.setattr("ur4rec.features.tables.TextEncoder", lambda *a, **k: HashTextEncoder())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImageFeatureWarning)
        assert report.main(["--data_dir", str(root), "--llm_dir", str(llm), "--cache_dir", str(tmp_path / "c"),
                            "--min_rating", "0", "--min_user_interactions", "3", "--json"]) == 0
    out = capsys.readouterr().out
    assert "items by text source: llm=2, plot=1, template=8" in out
    assert "users by text source: llm=1, template=2" in out
    assert "posters: 4 items with a poster vector, 6 missing, 1 unreadable (encoder descriptor-v1, 201 dims" in out
    assert "distinct files embedded now" in out and "read from the cache" in out
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["posters_embedded"] == 4 and summary["items_by_text_source"]["llm"] == 2

    assert report.main(["--data_dir", str(root), "--min_rating", "0", "--min_user_interactions", "3",
                        "--texts_only"]) == 0
    out = capsys.readouterr().out
    assert "items by text source: llm=0, plot=2, template=9" in out
    assert "posters: 5 files present, 6 missing (not decoded)" in out

    shutil.rmtree(root / "image")
    (root / "image").mkdir()  # the layout has posters, this folder has none: not "none in this layout"
    assert report.main(["--data_dir", str(root), "--cache_dir", str(tmp_path / "c"), "--min_rating", "0",
                        "--min_user_interactions", "3"]) == 0
    assert ("posters: no poster files (a layout without posters, or an image/ folder without <item_id>.jpg files); "
            "all 11 items masked") in capsys.readouterr().out
