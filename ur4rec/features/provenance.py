"""``features`` command: build (and cache) the side features of a dataset and report where they came from.

    python cli.py features --data_dir ../shared/data/M_ML-100K \
        --llm_dir ../shared/data/llm_generated --cache_dir .cache/features

prints the number of items whose text is an LLM description / plot text / template, users with an LLM
preference / template profile, and posters embedded / missing / unreadable.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

from ur4rec.data.preprocessing import prepare_splits
from ur4rec.data.readers import read_dataset
from ur4rec.features.tables import build_feature_tables
from ur4rec.features.text_embeddings import DEFAULT_TEXT_MODEL
from ur4rec.features.texts import ITEM_SOURCES, USER_SOURCES, build_texts, format_counts


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="features", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", required=True, help="MovieLens-100K, M_ML-100K or MovieLens-1M folder")
    parser.add_argument("--llm_dir", default=None, help="folder with user_preferences.json / item_descriptions.json")
    parser.add_argument("--image_encoder", default="descriptor",
                        help="'descriptor' (offline), 'clip' or 'clip:<hub name or local folder>'")
    parser.add_argument("--image_model", default=None, help="CLIP hub name or folder when --image_encoder clip")
    parser.add_argument("--text_model", default=DEFAULT_TEXT_MODEL, help="sentence-transformers name or folder")
    parser.add_argument("--cache_dir", default=".cache/features",
                        help="embedding cache folder, shared with training (data.feature_cache_dir)")
    parser.add_argument("--min_rating", type=float, default=4)
    parser.add_argument("--min_user_interactions", type=int, default=5)
    parser.add_argument("--retriever_positions", type=int, default=10,
                        help="as data.retriever_positions: profiles leave out the latest N training items")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--texts_only", action="store_true",
                        help="count text sources and poster files only; embed nothing")
    parser.add_argument("--json", action="store_true", help="also print the summary as one JSON line")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    raw = read_dataset(args.data_dir)
    splits = prepare_splits(raw.ratings, args.min_rating, args.min_user_interactions)
    print(f"data: {Path(args.data_dir)} ({raw.layout}): {splits.num_users} users, {splits.num_items} items")

    texts = build_texts(raw, splits.user_text_view(args.retriever_positions), args.llm_dir)
    print(f"items by text source: {format_counts(texts.item_source_counts(), ITEM_SOURCES)}"
          f" (llm = LLM description, plot = text.xls review, template = title + genres)")
    print(f"users by text source: {format_counts(texts.user_source_counts(), USER_SOURCES)}"
          f" (template = profile of training items only)")
    if texts.skipped_llm_placeholders:
        print(f"LLM entries ignored as blank/placeholder: {texts.skipped_llm_placeholders}")

    if args.texts_only:
        present = sum(1 for r in splits.raw_item_ids[1:] if raw.image_paths.get(int(r)) is not None)
        print(f"posters: {present} files present, {splits.num_items - present} missing (not decoded)")
        summary = {"items_by_text_source": texts.item_source_counts(),
                   "users_by_text_source": texts.user_source_counts(), "poster_files": present}
    else:
        tables = build_feature_tables(
            raw, splits, llm_dir=args.llm_dir, text_model=args.text_model, image_encoder=args.image_encoder,
            image_model=args.image_model, cache_dir=args.cache_dir, device=args.device, texts=texts,
        )
        s = tables.stats
        print(f"text embeddings: {tables.text_model}, {tables.text_dim} dims"
              f" ({s['texts_computed']} distinct texts embedded now, {s['texts_cached']} read from the cache, "
              f"{s['text_embedding_seconds']:.1f} s)")
        if tables.has_images:
            print(f"posters: {int(tables.image_mask.sum())} items with a poster vector, {tables.images_missing} missing, "
                  f"{tables.images_unreadable} unreadable (encoder {tables.image_encoder}, {tables.image_dim} dims; "
                  f"{s['images_computed']} distinct files embedded now, {s['images_cached']} read from the cache, "
                  f"{s['image_embedding_seconds']:.1f} s; items that share a poster file share its vector)")
        else:
            print(f"posters: no poster files (a layout without posters, or an image/ folder without "
                  f"<item_id>.jpg files); all {tables.num_items} items masked "
                  f"(zero vectors, encoder {tables.image_encoder}, {tables.image_dim} dims)")
        summary = tables.summary()
    print(f"done in {time.perf_counter() - start:.1f} s")
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
