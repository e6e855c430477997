"""Embedder: an open_clip model (by name + pretrained tag, or a local checkpoint) -> unit vectors."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import ModelLoadError
from .hashing import sha256_file_cached
from .model_info import ModelInfo
from .paths import PACKAGE_ROOT

DEFAULT_MODEL = "memetui-demo-clip"
DEFAULT_PRETRAINED = "memetui-demo-clip.safetensors"


def models_search_path() -> list[Path]:
    """Folders searched for model configs and checkpoints: $MEMETUI_MODELS, ./models, user data."""
    from .paths import user_data_dir

    dirs = [Path(p) for p in os.environ.get("MEMETUI_MODELS", "").split(os.pathsep) if p]
    dirs += [PACKAGE_ROOT / "models", user_data_dir() / "models"]
    return [d for d in dirs if d.is_dir()]


def register_model_configs() -> None:
    """Register every open_clip model config (`NAME.json` with `vision_cfg`) in the search path."""
    import json

    import open_clip

    for folder in models_search_path():
        for config in sorted(folder.glob("*.json")):
            try:
                data = json.loads(config.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and "vision_cfg" in data and "text_cfg" in data:
                open_clip.add_model_config(config)


def resolve_checkpoint(pretrained: str | None) -> Path | None:
    """Return the local checkpoint file `pretrained` names (a path or a file in the search path)."""
    if not pretrained:
        return None
    candidate = Path(pretrained).expanduser()
    if candidate.is_file():
        return candidate.resolve()
    if candidate.name == pretrained:
        for folder in models_search_path():
            if (folder / pretrained).is_file():
                return (folder / pretrained).resolve()
    if candidate.suffix in (".safetensors", ".pt", ".pth", ".bin") or os.sep in pretrained:
        raise ModelLoadError(f"checkpoint {pretrained!r} not found (searched {', '.join(map(str, models_search_path()))})")
    return None


def portable_pretrained(pretrained: str | None, checkpoint: Path | None) -> str | None:
    """How to record `pretrained` in a manifest: a bare file name when it lies in the search path."""
    if checkpoint is None:
        return pretrained
    if any(checkpoint.parent == folder.resolve() for folder in models_search_path()):
        return checkpoint.name
    return str(checkpoint)


class Embedder:
    """Embed images and texts with one open_clip model into float32 unit vectors."""

    def __init__(self, name: str = DEFAULT_MODEL, pretrained: str | None = DEFAULT_PRETRAINED, device=None):
        import torch

        from .devices import pick_device

        register_model_configs()
        import open_clip

        self.device = device if isinstance(device, torch.device) else pick_device(device)
        checkpoint = resolve_checkpoint(pretrained)
        if checkpoint is not None and checkpoint.stat().st_size == 0:
            raise ModelLoadError(f"checkpoint {checkpoint} is an empty file")
        if name not in open_clip.list_models():
            raise ModelLoadError(f"unknown model {name!r}: not an open_clip model and no {name}.json config found")
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                name, pretrained=str(checkpoint) if checkpoint else pretrained, device=self.device
            )
            self.tokenizer = open_clip.get_tokenizer(name)
        except Exception as exc:  # open_clip raises many types (RuntimeError, HF errors, OSError)
            reason = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:200]
            raise ModelLoadError(f"cannot load model {name} ({pretrained}): {reason}") from None
        model.eval()
        self.model = model
        self.preprocess = preprocess
        sha = sha256_file_cached(checkpoint) if checkpoint else hashlib.sha256(f"{name}:{pretrained}".encode()).hexdigest()
        dim = int(model.text_projection.shape[-1]) if hasattr(model, "text_projection") and model.text_projection is not None else None
        if dim is None:
            with torch.no_grad():
                dim = int(model.encode_text(self.tokenizer(["x"]).to(self.device)).shape[-1])
        self.info = ModelInfo(name=name, pretrained=portable_pretrained(pretrained, checkpoint), dim=dim, sha256=sha)

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return self.info.dim

    def embed_texts(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """Embed texts -> [n, dim] float32 unit vectors."""
        import torch

        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                tokens = self.tokenizer(list(texts[start : start + batch_size])).to(self.device)
                out.append(self._normalise(self.model.encode_text(tokens)))
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def embed_pixels(self, pixels) -> np.ndarray:
        """Embed a preprocessed [n, 3, H, W] tensor -> [n, dim] float32 unit vectors."""
        import torch

        with torch.inference_mode():
            return self._normalise(self.model.encode_image(pixels.to(self.device)))

    def embed_images(self, images: Sequence, batch_size: int = 64) -> np.ndarray:
        """Embed PIL images or image paths -> [n, dim] float32 unit vectors (raises ImageLoadError)."""
        import torch

        from .image_files import load_image, to_rgb

        out = []
        for start in range(0, len(images), batch_size):
            batch = [
                to_rgb(img) if not isinstance(img, (str, Path)) else load_image(img, max_side=self.input_size * 2)
                for img in images[start : start + batch_size]
            ]
            out.append(self.embed_pixels(torch.stack([self.preprocess(img) for img in batch])))
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    @property
    def input_size(self) -> int:
        """Side of the model's square input image in pixels."""
        size = getattr(self.model.visual, "image_size", 224)
        return int(size[0] if isinstance(size, (tuple, list)) else size)

    @staticmethod
    def _normalise(features) -> np.ndarray:
        features = features.float()
        features = features / features.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return features.cpu().numpy()
