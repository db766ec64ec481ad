"""Time the feature pipeline: text embeddings from scratch and from the cache, and the poster descriptor.

    python -m benchmarks bench_features --data_dir ../shared/data/M_ML-100K \
        --llm_dir ../shared/data/llm_generated --cache_dir /tmp/x

The cold runs use a fresh sub-folder of ``--cache_dir`` (removed afterwards unless ``--keep``), so the
numbers are "from scratch" whatever the folder already holds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from typing import Sequence

from ur4rec.data.preprocessing import prepare_splits
from ur4rec.data.readers import read_dataset
from ur4rec.features.image_embeddings import embed_images
from ur4rec.features.image_encoders import DescriptorImageEncoder
from ur4rec.features.text_embeddings import DEFAULT_TEXT_MODEL, TEXT_MAX_TOKENS, TextEncoder, embed_texts
from ur4rec.features.texts import build_texts, format_counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--llm_dir", default=None)
    parser.add_argument("--cache_dir", required=True)
    parser.add_argument("--text_model", default=DEFAULT_TEXT_MODEL)
    parser.add_argument("--min_rating", type=float, default=4)
    parser.add_argument("--min_user_interactions", type=int, default=5)
    parser.add_argument("--max_tokens", type=int, default=TEXT_MAX_TOKENS, help="tokens per forward pass")
    parser.add_argument("--retriever_positions", type=int, default=10, help="as data.retriever_positions")
    parser.add_argument("--skip_text", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark's cache sub-folder")
    args = parser.parse_args(argv)
    os.makedirs(args.cache_dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="bench-", dir=args.cache_dir)
    try:
        raw = read_dataset(args.data_dir)
        if not args.skip_text:
            splits = prepare_splits(raw.ratings, args.min_rating, args.min_user_interactions)
            t0 = time.perf_counter()
            texts = build_texts(raw, splits.user_text_view(args.retriever_positions), args.llm_dir)
            all_texts = texts.item_texts[1:] + texts.user_texts
            print(f"texts: {splits.num_items} items ({format_counts(texts.item_source_counts())}), "
                  f"{splits.num_users} users ({format_counts(texts.user_source_counts())}) "
                  f"built in {time.perf_counter() - t0:.2f} s")

            encoder = TextEncoder(args.text_model, max_tokens=args.max_tokens)
            t0 = time.perf_counter()
            encoder.load()
            load_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            cold = embed_texts(all_texts, encoder, cache_dir=work)
            encode_s = time.perf_counter() - t1
            print(f"text cold: import+load {load_s:.1f} s + embed {encode_s:.1f} s = {load_s + encode_s:.1f} s "
                  f"for {len(all_texts)} texts ({cold.computed} distinct embedded, dim {cold.dim}, {cold.model})")

            warm_encoder = TextEncoder(args.text_model, max_tokens=args.max_tokens)  # never loaded if all cached
            t0 = time.perf_counter()
            warm = embed_texts(all_texts, warm_encoder, cache_dir=work)
            warm_s = time.perf_counter() - t0
            same = bool((warm.vectors == cold.vectors).all())
            print(f"text warm: {warm_s:.2f} s ({warm.cached} from cache, {warm.computed} embedded, "
                  f"model loaded: {warm_encoder.loaded}, identical: {same})")

        if raw.image_paths:
            all_splits = prepare_splits(raw.ratings, 0, 3)
            paths = [raw.image_paths.get(int(r)) for r in all_splits.raw_item_ids[1:]]
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t0 = time.perf_counter()
                cold_img = embed_images(paths, DescriptorImageEncoder(), cache_dir=work)
                cold_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                warm_img = embed_images(paths, DescriptorImageEncoder(), cache_dir=work)
                warm_s = time.perf_counter() - t0
            print(f"descriptor cold: {cold_s:.1f} s for {len(paths)} items: {cold_img.embedded} posters embedded, "
                  f"{len(cold_img.missing)} missing, {len(cold_img.unreadable)} unreadable (dim {cold_img.dim})")
            print(f"descriptor warm: {warm_s:.2f} s ({warm_img.cached} from cache, {warm_img.computed} embedded)")
        else:
            print("descriptor: this layout has no images")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
