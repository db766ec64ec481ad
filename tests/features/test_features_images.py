"""Poster embeddings: offline descriptor, tiny random CLIP (same loading path as a real one), masking."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

try:
    from tests.feature_fixtures import save_tiny_clip
    from tests.writers import write_image
except ImportError:
    from feature_fixtures import save_tiny_clip
    from writers import write_image

from ur4rec.errors import ConfigError
from ur4rec.features.image_embeddings import embed_images
from ur4rec.features.image_encoders import ClipImageEncoder, DescriptorImageEncoder, ImageFeatureWarning, make_image_encoder


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    return save_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture
def posters(tmp_path) -> list[Path | None]:
    """Rows: noise jpg, red png, stripes jpg, not-an-image "5.jpg", no image, truncated jpg, missing file."""
    folder = tmp_path / "image"
    noise = write_image(folder / "1.jpg", "noise", seed=1)
    red = write_image(folder / "2.png", "red")
    stripes = write_image(folder / "3.jpg", "stripes")
    text = folder / "5.jpg"
    text.write_bytes(b"this is a plain text file, not a JPEG\n")
    whole = write_image(tmp_path / "whole.jpg", "noise", size=(120, 160), seed=7).read_bytes()
    truncated = folder / "6.jpg"
    truncated.write_bytes(whole[: len(whole) // 2])
    return [noise, red, stripes, text, None, truncated, folder / "404.jpg"]


def embed_quietly(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImageFeatureWarning)
        return embed_images(*args, **kwargs)


def test_unreadable_images_are_masked_and_counted_in_one_warning(posters):
    with pytest.warns(ImageFeatureWarning) as record:
        result = embed_images(posters, "descriptor")
    assert len(record) == 1
    message = str(record[0].message)
    assert "2 item(s) have no image" in message and "2 image file(s) could not be read" in message
    assert "5.jpg" in message
    assert result.mask.tolist() == [True, True, True, False, False, False, False]
    assert result.unreadable == [3, 5] and result.missing == [4, 6]
    assert not result.vectors[~result.mask].any()
    assert result.encoder == "descriptor-v1" and result.embedded == 3


def test_descriptor_is_deterministic_normalised_and_discriminative(tmp_path):
    paths = [write_image(tmp_path / f"{i}.png", kind, seed=i)
             for i, kind in enumerate(["noise", "red", "blue", "stripes", "gradient", "noise"])]
    first = embed_images(paths, DescriptorImageEncoder())
    second = embed_images(paths, DescriptorImageEncoder())
    assert np.array_equal(first.vectors, second.vectors)
    assert first.vectors.shape == (6, DescriptorImageEncoder().dim) == (6, 201)
    assert np.allclose(np.linalg.norm(first.vectors, axis=1), 1, atol=1e-5)
    sims = first.vectors @ first.vectors.T
    different_kinds = ~np.eye(6, dtype=bool)
    different_kinds[0, 5] = different_kinds[5, 0] = False
    assert sims[different_kinds].max() < 0.95  # every pair of different kinds of image is told apart
    assert not np.array_equal(first.vectors[0], first.vectors[5])  # two noise draws differ...
    assert sims[0, 5] > sims[0, 1]  # ...but are more alike than noise and a flat red


def test_image_cache_keys_on_file_content(tmp_path):
    paths = [write_image(tmp_path / "1.png", "red"), write_image(tmp_path / "2.png", "stripes")]
    cache = tmp_path / "cache"
    cold = embed_images(paths, "descriptor", cache_dir=cache)
    warm = embed_images(paths, "descriptor", cache_dir=cache)
    assert (cold.computed, warm.computed, warm.cached) == (2, 0, 2)
    assert np.array_equal(cold.vectors, warm.vectors)
    write_image(paths[1], "gradient")  # same name, new content: only this row is recomputed
    changed = embed_images(paths, "descriptor", cache_dir=cache)
    assert (changed.computed, changed.cached) == (1, 1)
    assert np.array_equal(changed.vectors[0], cold.vectors[0]) and not np.array_equal(changed.vectors[1], cold.vectors[1])


def test_tiny_random_clip_loads_through_the_real_clip_path(tiny_clip, posters):
    encoder = make_image_encoder("clip", model=str(tiny_clip))
    assert isinstance(encoder, ClipImageEncoder)
    assert encoder.name == f"clip:{tiny_clip.resolve()}"
    assert encoder.dim == 16 and encoder._model is None  # the size comes from the config alone
    with pytest.warns(ImageFeatureWarning) as record:
        result = embed_images(posters, encoder, batch_size=2)
    assert len(record) == 1 and "2 image file(s) could not be read" in str(record[0].message)
    assert result.vectors.shape == (7, 16) and result.encoder == encoder.name
    assert result.mask.tolist() == [True, True, True, False, False, False, False]
    assert np.allclose(np.linalg.norm(result.vectors[result.mask], axis=1), 1, atol=1e-5)
    assert not result.vectors[~result.mask].any()
    assert encoder.calls == 2  # three readable images in batches of two
    same = embed_quietly(posters, make_image_encoder(f"clip:{tiny_clip}"))
    assert np.allclose(same.vectors, result.vectors, atol=1e-6)  # "clip:<path>" is the same encoder


def test_clip_results_are_cached_per_model(tiny_clip, posters, tmp_path):
    cache = tmp_path / "cache"
    first = ClipImageEncoder(str(tiny_clip))
    cold = embed_quietly(posters, first, cache_dir=cache)
    second = ClipImageEncoder(str(tiny_clip))
    warm = embed_quietly(posters, second, cache_dir=cache)
    assert second._model is None and second.calls == 0  # never loaded: everything came from the cache
    assert np.array_equal(cold.vectors, warm.vectors) and np.array_equal(cold.mask, warm.mask)
    descriptor = embed_quietly(posters, "descriptor", cache_dir=cache)
    assert descriptor.computed == 3 and descriptor.dim == 201  # another encoder, another namespace


def test_unknown_encoder_and_unloadable_clip_fail_clearly(tmp_path):
    """Config errors naming the setting (one line from the command line), not a traceback."""
    with pytest.raises(ConfigError, match="data.image_encoder: unknown image encoder 'resnet'"):
        make_image_encoder("resnet")
    encoder = ClipImageEncoder(str(tmp_path / "no-such-model"))
    for load in (encoder.load, lambda: encoder.dim):
        with pytest.raises(ConfigError, match="data.image_model: cannot load CLIP") as info:
            load()
        assert "no-such-model" in str(info.value) and "\n" not in str(info.value)


def test_cache_notices_a_local_clip_folder_rewritten_in_place(tmp_path, posters):
    from ur4rec.features.image_encoders import image_cache_namespace

    folder = save_tiny_clip(tmp_path / "clip")
    before = image_cache_namespace(ClipImageEncoder(str(folder)))
    assert before.startswith(f"image:clip:{folder.resolve()}@")
    config = folder / "config.json"
    config.write_text(config.read_text().replace('"projection_dim": 16', '"projection_dim": 16 '))
    assert image_cache_namespace(ClipImageEncoder(str(folder))) != before
    assert image_cache_namespace(DescriptorImageEncoder()) == "image:descriptor-v1"
