"""The feature pipeline on the real staged data (skipped when /work/shared/data is absent)."""

from __future__ import annotations

import re
import time
import warnings

import numpy as np
import pytest

try:
    from tests.feature_fixtures import HashTextEncoder
except ImportError:
    from feature_fixtures import HashTextEncoder

from paths import REAL_DATA
from ur4rec.data.preprocessing import prepare_splits
from ur4rec.data.readers import read_dataset
from ur4rec.features.image_encoders import ImageFeatureWarning
from ur4rec.features.tables import build_feature_tables
from ur4rec.features.texts import build_texts

MML = REAL_DATA / "M_ML-100K"
LLM = REAL_DATA / "llm_generated"
ML100K = REAL_DATA / "ml-100k"

needs_data = pytest.mark.skipif(not MML.is_dir(), reason=f"real data not staged at {REAL_DATA}")


@pytest.fixture(scope="module")
def mml_raw():
    return read_dataset(MML)


@needs_data
@pytest.mark.slow
def test_descriptor_embeds_the_1604_posters_and_flags_the_78_missing(mml_raw, tmp_path):
    splits = prepare_splits(mml_raw.ratings, min_rating=0, min_user_interactions=5)
    assert splits.num_items == 1682
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        tables = build_feature_tables(mml_raw, splits, text_model=HashTextEncoder(), image_encoder="descriptor",
                                      cache_dir=tmp_path)
        seconds = time.perf_counter() - start
    image_warnings = [w for w in caught if issubclass(w.category, ImageFeatureWarning)]
    assert len(image_warnings) == 1 and "78 item(s) have no image" in str(image_warnings[0].message)
    assert int(tables.image_mask.sum()) == 1604 and tables.images_missing == 78 and tables.images_unreadable == 0
    assert tables.item_image.shape == (1683, 201)
    norms = tables.item_image.norm(dim=1).numpy()
    assert np.allclose(norms[tables.image_mask.numpy()], 1, atol=1e-5) and not norms[~tables.image_mask.numpy()].any()
    index = splits.item_index()
    assert not tables.image_mask[index[55]]  # "Professional, The": the most-rated item without a poster
    print(f"\ndescriptor: 1604 posters in {tables.stats['image_embedding_seconds']:.1f} s "
          f"(whole build {seconds:.1f} s)")
    assert tables.stats["image_embedding_seconds"] < 120


@needs_data
def test_real_text_sources_and_no_leakage(mml_raw):
    splits = prepare_splits(mml_raw.ratings)  # default filtering: rating >= 4, users with >= 5
    texts = build_texts(mml_raw, splits, LLM if LLM.is_dir() else None)
    assert (splits.num_items, splits.num_users) == (1447, 938)
    items, users = texts.item_source_counts(), texts.user_source_counts()
    assert sum(items.values()) == 1447 and users == {"llm": 0, "template": 938}
    if LLM.is_dir():
        assert items["llm"] > 1400 and items["plot"] > 0 and items["template"] > 0
    assert all(texts.item_texts[1:]) and "No description available." not in texts.item_texts
    titles = dict(zip(mml_raw.items["item"], mml_raw.items["title"]))
    for u, text in enumerate(texts.user_texts):
        recent = re.search(r"Recently watched: (.*)\.$", text).group(1).split("; ")
        allowed = {titles[int(splits.raw_item_ids[i])] for i in splits.train[u]}
        assert set(recent) <= allowed  # every title named is a training item of that user


@pytest.mark.slow
@pytest.mark.skipif(not ML100K.is_dir(), reason=f"real data not staged at {REAL_DATA}")
def test_raw_movielens_has_no_images_and_masks_everything():
    raw = read_dataset(ML100K)
    splits = prepare_splits(raw.ratings)
    tables = build_feature_tables(raw, splits, text_model=HashTextEncoder())
    assert not tables.has_images and not tables.image_mask.any() and tables.item_image.shape == (1448, 201)
    assert tables.item_source_counts() == {"llm": 0, "plot": 0, "template": 1447}
