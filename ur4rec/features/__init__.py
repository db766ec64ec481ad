"""Side features: user/item texts (LLM or fallbacks), their sentence embeddings, poster embeddings."""

from ur4rec.features.cache import EmbeddingCache, content_key
from ur4rec.features.image_embeddings import ImageEmbeddings, embed_images
from ur4rec.features.image_encoders import (
    DEFAULT_CLIP_MODEL, ClipImageEncoder, DescriptorImageEncoder, ImageFeatureWarning, make_image_encoder,
)
from ur4rec.features.tables import FeatureTables, build_feature_tables
from ur4rec.features.text_embeddings import DEFAULT_TEXT_MODEL, TextEmbeddings, TextEncoder, embed_texts
from ur4rec.features.texts import LLMTextError, TextTables, build_texts, load_llm_texts

__all__ = [
    "DEFAULT_CLIP_MODEL", "DEFAULT_TEXT_MODEL", "ClipImageEncoder", "DescriptorImageEncoder", "EmbeddingCache",
    "FeatureTables", "ImageEmbeddings", "ImageFeatureWarning", "LLMTextError", "TextEmbeddings", "TextEncoder",
    "TextTables", "build_feature_tables", "build_texts", "content_key", "embed_images", "embed_texts",
    "load_llm_texts", "make_image_encoder",
]
