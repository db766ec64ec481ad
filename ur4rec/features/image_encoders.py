"""Poster encoders: a CLIP image encoder, or an offline descriptor that needs no weights.

Encoders (chosen by :func:`make_image_encoder`):

* ``"descriptor"`` -> :class:`DescriptorImageEncoder` (name ``descriptor-v1``, 201 dims): a fixed,
  deterministic description of a poster downscaled to 64x64: a joint HSV colour histogram, a 4x4
  colour layout, a 2x2-cell gradient-orientation histogram, a gradient-magnitude histogram and a few
  global statistics; each block normalised and weighted, the whole L2-normalised.
* ``"clip"`` (default ``openai/clip-vit-base-patch32``) or ``"clip:<hub name or local folder>"`` ->
  :class:`ClipImageEncoder` (name ``clip:<name or absolute path>``): ``CLIPModel`` image features
  (projection), L2-normalised, computed in batches under ``torch.no_grad``. Images are decoded and
  converted to RGB with Pillow; without torchvision transformers uses its PIL image processor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from ur4rec.features.cache import folder_fingerprint
from ur4rec.errors import ConfigError
from ur4rec.features.hub import first_line, load_local_first, offline

DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"
DESCRIPTOR_NAME = "descriptor-v1"


class ImageFeatureWarning(UserWarning):
    """Some images were missing or unreadable and were masked."""


class ImageEncoder(Protocol):
    name: str  # identity recorded with every result and used as the cache namespace

    @property
    def dim(self) -> int: ...

    def prepare(self, image: Image.Image) -> Any:
        """Per-image work on a decoded (not yet loaded) image; may raise for unreadable data."""

    def encode(self, prepared: list[Any]) -> np.ndarray:
        """(len(prepared), dim) float32 rows of unit norm."""


# ---------------------------------------------------------------------------------------------- descriptor


class DescriptorImageEncoder:
    """Deterministic colour + texture descriptor; no weights, no network (``descriptor-v1``).

    Blocks (each normalised, then weighted): HSV joint histogram 12x3x3 = 108 bins (Hellinger, i.e.
    square root of frequencies), 4x4 RGB layout = 48 (L2), gradient orientations 8 bins x 2x2 cells = 32
    (magnitude-weighted, Hellinger), gradient magnitudes 8 bins (Hellinger), and 5 global statistics
    (grey mean/std, edge density, saturation mean/std). Total 201 dims, L2-normalised.
    """

    name = DESCRIPTOR_NAME
    size = 64
    hue_bins, sat_bins, val_bins = 12, 3, 3
    orientation_bins = 8
    magnitude_edges = np.array([0.02, 0.05, 0.1, 0.15, 0.25, 0.4, 0.6], dtype=np.float32)
    weights = {"hsv": 1.0, "layout": 0.7, "orientation": 0.7, "magnitude": 0.5, "stats": 0.4}

    @property
    def dim(self) -> int:
        return self.hue_bins * self.sat_bins * self.val_bins + 48 + 4 * self.orientation_bins + 8 + 5

    def prepare(self, image: Image.Image) -> np.ndarray:
        image.draft("RGB", (2 * self.size, 2 * self.size))  # JPEG: decode at a reduced scale (fast)
        rgb = image.convert("RGB").resize((self.size, self.size), Image.Resampling.BILINEAR)
        return self.describe(rgb)

    def encode(self, prepared: list[np.ndarray]) -> np.ndarray:
        return np.stack(prepared).astype(np.float32) if prepared else np.zeros((0, self.dim), np.float32)

    def describe(self, rgb: Image.Image) -> np.ndarray:
        """Descriptor of an RGB image already at ``size`` x ``size``."""
        hsv = np.asarray(rgb.convert("HSV"), dtype=np.int64)
        h = hsv[..., 0] * self.hue_bins // 256
        s = hsv[..., 1] * self.sat_bins // 256
        v = hsv[..., 2] * self.val_bins // 256
        joint = (h * self.sat_bins + s) * self.val_bins + v
        hsv_hist = np.bincount(joint.ravel(), minlength=self.hue_bins * self.sat_bins * self.val_bins)
        layout = np.asarray(rgb.resize((4, 4), Image.Resampling.BOX), dtype=np.float32).ravel() / 255.0

        grey = np.asarray(rgb.convert("L"), dtype=np.float32) / 255.0
        gx = grey[1:-1, 2:] - grey[1:-1, :-2]
        gy = grey[2:, 1:-1] - grey[:-2, 1:-1]
        magnitude = np.hypot(gx, gy)
        orientation = np.mod(np.arctan2(gy, gx), np.pi)  # unsigned, [0, pi)
        o_bin = np.minimum((orientation / np.pi * self.orientation_bins).astype(np.int64), self.orientation_bins - 1)
        half = magnitude.shape[0] // 2
        cells = []
        for rows in (slice(0, half), slice(half, None)):
            for cols in (slice(0, half), slice(half, None)):
                cells.append(np.bincount(o_bin[rows, cols].ravel(), weights=magnitude[rows, cols].ravel(),
                                         minlength=self.orientation_bins))
        orientation_hist = np.concatenate(cells)
        magnitude_hist = np.bincount(np.searchsorted(self.magnitude_edges, magnitude.ravel()), minlength=8)
        saturation = hsv[..., 1].astype(np.float32) / 255.0
        stats = np.array([grey.mean(), grey.std(), (magnitude > 0.1).mean(), saturation.mean(), saturation.std()])

        blocks = [
            self.weights["hsv"] * _hellinger(hsv_hist),
            self.weights["layout"] * _l2(layout),
            self.weights["orientation"] * _hellinger(orientation_hist),
            self.weights["magnitude"] * _hellinger(magnitude_hist),
            self.weights["stats"] * stats,
        ]
        return _l2(np.concatenate(blocks)).astype(np.float32)


def _l2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x)
    return x / norm if norm > 0 else x


def _hellinger(hist: np.ndarray) -> np.ndarray:
    hist = np.asarray(hist, dtype=np.float64)
    total = hist.sum()
    return np.sqrt(hist / total) if total > 0 else hist


# ---------------------------------------------------------------------------------------------- CLIP


def clip_model_identity(model: str) -> str:
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else model


class ClipImageEncoder:
    """CLIP image features (``CLIPModel.get_image_features``), L2-normalised; weights loaded lazily.

    ``model`` is a hub name (needs the local Hugging Face cache when offline) or a folder written by
    ``save_pretrained`` holding the model and its image processor.
    """

    def __init__(self, model: str = DEFAULT_CLIP_MODEL, device: str = "cpu", batch_size: int = 32):
        self.model_name = model
        self.source = str(Path(model).expanduser()) if Path(model).expanduser().exists() else model
        self.name = f"clip:{clip_model_identity(model)}"
        self.device = device
        self.batch_size = batch_size
        self._model = None
        self._processor = None
        self.calls = 0

    def _load_error(self, what: str, err: Exception) -> ConfigError:
        hint = " (offline: pass a local folder saved with save_pretrained)" if offline() else ""
        return ConfigError(f"data.image_model: cannot load CLIP {what} from {self.source!r}: {first_line(err)}{hint}")

    def load(self):
        if self._model is None:
            from transformers import AutoImageProcessor, CLIPModel

            try:
                processor, model = load_local_first(
                    lambda local: (AutoImageProcessor.from_pretrained(self.source, local_files_only=local),
                                   CLIPModel.from_pretrained(self.source, local_files_only=local)), self.source)
            except Exception as err:
                raise self._load_error("model", err) from err
            self._processor, self._model = processor, model.to(self.device).eval()
        return self._model, self._processor

    @property
    def dim(self) -> int:
        if self._model is not None:
            return int(self._model.config.projection_dim)
        from transformers import AutoConfig

        try:  # the config alone: no weights needed to know the size
            config = load_local_first(lambda local: AutoConfig.from_pretrained(self.source, local_files_only=local),
                                      self.source)
            return int(config.projection_dim)
        except Exception as err:
            raise self._load_error("config", err) from err

    def prepare(self, image: Image.Image) -> Image.Image:
        image.load()
        return image.convert("RGB")

    def encode(self, prepared: list[Image.Image]) -> np.ndarray:
        import torch

        model, processor = self.load()
        rows = []
        for start in range(0, len(prepared), self.batch_size):
            batch = prepared[start:start + self.batch_size]
            pixels = processor(images=batch, return_tensors="pt")["pixel_values"].to(self.device)
            with torch.no_grad():
                features = model.get_image_features(pixel_values=pixels)
                if not isinstance(features, torch.Tensor):  # transformers >= 5 returns a model output
                    features = features.pooler_output
                features = torch.nn.functional.normalize(features.float(), dim=-1)
            self.calls += 1
            rows.append(features.cpu().numpy())
        return np.concatenate(rows).astype(np.float32) if rows else np.zeros((0, self.dim), np.float32)


# ---------------------------------------------------------------------------------------------- factory


def make_image_encoder(
    encoder: str | ImageEncoder = "descriptor", model: str | None = None, device: str = "cpu", batch_size: int = 32
) -> ImageEncoder:
    """``"descriptor"``, ``"clip"`` (``model`` or the default CLIP), ``"clip:<name or path>"``, or an encoder."""
    if not isinstance(encoder, str):
        return encoder
    if encoder in ("descriptor", DESCRIPTOR_NAME):
        return DescriptorImageEncoder()
    if encoder == "clip":
        return ClipImageEncoder(model or DEFAULT_CLIP_MODEL, device=device, batch_size=batch_size)
    if encoder.startswith("clip:") and len(encoder) > 5:
        return ClipImageEncoder(encoder[5:], device=device, batch_size=batch_size)
    raise ConfigError(f"data.image_encoder: unknown image encoder {encoder!r}: use 'descriptor', 'clip' or "
                      "'clip:<hub name or folder>'")


def image_cache_namespace(encoder: ImageEncoder) -> str:
    """``image:<encoder name>``; a CLIP given as a local folder adds the folder's fingerprint."""
    source = getattr(encoder, "source", None)
    if source is not None and Path(source).is_dir():
        return f"image:{encoder.name}@{folder_fingerprint(source)}"
    return f"image:{encoder.name}"


