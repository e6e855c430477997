"""Shared fixtures: a tiny random open_clip model saved as safetensors, and small generated indexes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TINY_MODEL = "tiny-test-clip"
TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
COLOURS = {
    "red": (220, 30, 30), "green": (30, 180, 40), "blue": (30, 60, 220), "yellow": (240, 220, 40),
    "black": (10, 10, 10), "white": (245, 245, 245), "purple": (140, 40, 170), "orange": (250, 140, 20),
}


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A models folder with tiny-test-clip.json + .safetensors (random weights, seeded)."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("models")
    config = folder / f"{TINY_MODEL}.json"
    config.write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    model = open_clip.create_model(TINY_MODEL)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, folder / f"{TINY_MODEL}.safetensors")
    return folder


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path, monkeypatch, request):
    """Point user config/data at temporary folders; expose the tiny models folder when used."""
    monkeypatch.setenv("MEMETUI_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("MEMETUI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MEMETUI_CACHE_DIR", str(tmp_path / "cache"))
    if "tiny_model_dir" in request.fixturenames:
        monkeypatch.setenv("MEMETUI_MODELS", str(request.getfixturevalue("tiny_model_dir")))


def make_image(path: Path, seed: int, size=(48, 40), colour=None, mode="RGB") -> Path:
    """Write a small deterministic image: a colour field with noise and a block (PNG by suffix)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = np.array(colour if colour is not None else rng.integers(0, 255, 3), dtype=np.int16)
    pixels = np.clip(base + rng.integers(-25, 25, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    y, x = rng.integers(0, size[1] // 2), rng.integers(0, size[0] // 2)
    pixels[y : y + size[1] // 3, x : x + size[0] // 3] = rng.integers(0, 255, 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).convert(mode).save(path)
    return path


def make_image_folder(folder: Path, count: int = 24) -> Path:
    """Fill `folder` with `count` coloured images named after their colour."""
    names = list(COLOURS)
    for i in range(count):
        name = names[i % len(names)]
        make_image(folder / f"{name}_{i:03d}.png", seed=i, colour=COLOURS[name])
    return folder


def build_tiny_index(images: Path, index: Path) -> Path:
    """Index `images` into `index` with the tiny model (MEMETUI_MODELS must point at it)."""
    from memetui.embed import Embedder
    from memetui.index.build import BuildOptions, IndexBuilder, open_or_create

    embedder = Embedder(TINY_MODEL, f"{TINY_MODEL}.safetensors", device="cpu")
    store = open_or_create(index, images, embedder)
    IndexBuilder(store, embedder, BuildOptions(batch_size=8, workers=2)).run()
    store.close()
    return index


def save_broken_sae(index: Path, name: str, tensor: str, value: float) -> None:
    """Save an SAE named `name` into `index` that fits it but holds one non-finite `value` in `tensor`."""
    import torch

    from memetui.index.store import IndexStore
    from memetui.sae.model import TopKSAE

    store = IndexStore.open(index)
    broken = TopKSAE(store.dim, 32, 4, meta={"model": {"sha256": store.model.sha256}})
    with torch.no_grad():
        getattr(broken, tensor)[0, 0] = value
    broken.save(store.sae_dir / name)
    store.close()


@pytest.fixture
def tiny_index(tiny_model_dir, tmp_path):
    """Factory: build an index over `count` generated images; returns the index folder."""

    def build(count: int = 24, images: Path | None = None, index: Path | None = None) -> Path:
        return build_tiny_index(images or make_image_folder(tmp_path / "images", count), index or tmp_path / "index")

    return build


@pytest.fixture
def one_torch_thread():
    """Tiny SAEs train ~10x faster on one thread than on two busy ones (no parallel-region waits)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
