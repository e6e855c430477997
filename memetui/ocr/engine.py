"""OCR engine: RapidOCR (PyPI `rapidocr`, ONNX models bundled in the wheel) behind named results.

`load_engine()` checks the package imports and its bundled `.onnx` files exist *before* starting
it (RapidOCR would otherwise try to download them), pins onnxruntime to one thread and silences
RapidOCR's logger. `OcrEngine.read(image)` returns an `OcrResult`; it never prints or exits.
A missing package or model raises `OcrUnavailableError` (one line); a bad image raises `OcrError`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import OcrError, OcrUnavailableError

ENGINE_NAME = "rapidocr"
DET_LIMIT_SIDE = 480
"""Detection input: longest side shrunk to this (multiple of 32). bench/bench_ocr.py --sweep, 30
memes at 1024 px, 2-core CPU: limit 320 finds 0.962 of the words in 135 ms p50, 480 0.969 in
181 ms, 640 0.969 in 279 ms, 960 0.977 in 545 ms: 480 keeps OCR under 200 ms per image."""
MAX_SIDE = 1280
"""Images are shrunk to this longest side before OCR (recognition crops come from it)."""
MIN_CONFIDENCE = 0.5
"""Lines recognised with a lower mean score are dropped."""
_MODELS = {"Det": "PP-OCRv6_det_small.onnx", "Rec": "PP-OCRv6_rec_small.onnx",
           "Cls": "ch_ppocr_mobile_v2.0_cls_mobile.onnx"}


@dataclass(frozen=True)
class OcrLine:
    """One detected line of text."""

    text: str
    """Recognised text, raw (escape it at display time with memetui.text)."""
    box: tuple[tuple[int, int], ...]
    """Four (x, y) corners in the pixels of the image that was passed in."""
    confidence: float
    """Recognition score in [0, 1]."""


@dataclass(frozen=True)
class OcrResult:
    """What OCR read in one image: lines in reading order."""

    lines: tuple[OcrLine, ...] = ()
    seconds: float = 0.0
    """Wall time of the OCR call."""

    @property
    def text(self) -> str:
        """All lines joined by newlines."""
        return "\n".join(line.text for line in self.lines)

    @property
    def confidence(self) -> float | None:
        """Mean line confidence weighted by text length; None without text."""
        weights = [max(len(line.text), 1) for line in self.lines]
        if not weights:
            return None
        return float(sum(w * line.confidence for w, line in zip(weights, self.lines)) / sum(weights))

    def boxes_json(self) -> list[dict]:
        """Lines as JSON-ready dicts: text, box (4 corners), confidence."""
        return [{"text": l.text, "box": [list(p) for p in l.box], "confidence": round(l.confidence, 4)} for l in self.lines]


@dataclass(frozen=True)
class EngineInfo:
    """Identity of an OCR engine, recorded in the index manifest."""

    name: str
    version: str
    det_limit_side: int
    models: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict:
        """JSON form for manifest.json."""
        return {"name": self.name, "version": self.version, "det_limit_side": self.det_limit_side,
                "models": list(self.models)}


def _bundled_models() -> tuple[str, dict[str, Path]]:
    """RapidOCR's version and the paths of its bundled models; raises OcrUnavailableError."""
    try:
        import rapidocr
        import onnxruntime  # noqa: F401  (RapidOCR's default engine)
    except ImportError as exc:
        raise OcrUnavailableError(f"OCR unavailable ({exc.name or exc} not installed): pip install rapidocr onnxruntime") from None
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("rapidocr")
    except PackageNotFoundError:
        found = "unknown"
    folder = Path(rapidocr.__file__).resolve().parent / "models"
    paths = {task: folder / name for task, name in _MODELS.items()}
    missing = [p.name for p in paths.values() if not p.is_file()]
    if missing:
        raise OcrUnavailableError(f"OCR unavailable: rapidocr {found} lacks bundled models {', '.join(missing)}")
    return found, paths


def engine_info() -> EngineInfo:
    """The engine `load_engine()` would start (no models loaded); raises OcrUnavailableError."""
    version, paths = _bundled_models()
    return EngineInfo(ENGINE_NAME, version, DET_LIMIT_SIDE, tuple(sorted(p.name for p in paths.values())))


class OcrEngine:
    """RapidOCR with bundled models, one onnxruntime thread, detection limited to `det_limit_side`."""

    def __init__(self, det_limit_side: int = DET_LIMIT_SIDE, threads: int = 1, use_cls: bool = False):
        version, paths = _bundled_models()
        from rapidocr import RapidOCR

        logging.getLogger("RapidOCR").setLevel(logging.ERROR)  # it logs every model path at INFO
        params = {
            "Global.log_level": "error", "Global.use_cls": use_cls, "Global.text_score": MIN_CONFIDENCE,
            "Global.max_side_len": MAX_SIDE,
            "Det.limit_type": "max", "Det.limit_side_len": det_limit_side,
            "EngineConfig.onnxruntime.intra_op_num_threads": threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        }
        params.update({f"{task}.model_path": str(path) for task, path in paths.items()})
        try:
            self._ocr = RapidOCR(params=params)
        except Exception as exc:  # a broken install: report, never crash the build
            raise OcrUnavailableError(f"OCR unavailable: rapidocr failed to start: {exc}") from None
        logging.getLogger("RapidOCR").setLevel(logging.ERROR)
        self._lock = threading.Lock()
        self.info = EngineInfo(ENGINE_NAME, version, det_limit_side, tuple(sorted(p.name for p in paths.values())))

    def read(self, image) -> OcrResult:
        """OCR a PIL image (or HxWx3 uint8 RGB array); raises OcrError when the engine fails on it."""
        import time

        pixels = _rgb_array(image)
        started = time.perf_counter()
        try:
            with self._lock:  # RapidOCR keeps per-call state; one call at a time per engine
                out = self._ocr(pixels[:, :, ::-1].copy())  # RapidOCR wants BGR like cv2
        except Exception as exc:
            raise OcrError(f"OCR failed: {type(exc).__name__}: {exc}"[:300]) from None
        seconds = time.perf_counter() - started
        if out is None or getattr(out, "txts", None) is None:
            return OcrResult((), seconds)
        lines = []
        for box, text, score in zip(out.boxes, out.txts, out.scores):
            text = str(text).strip()
            if text:
                corners = tuple((int(round(x)), int(round(y))) for x, y in np.asarray(box).reshape(-1, 2))
                lines.append(OcrLine(text, corners, float(score)))
        return OcrResult(tuple(lines), seconds)


def _rgb_array(image) -> np.ndarray:
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise OcrError(f"expected an HxWx3 uint8 array, got {image.shape} {image.dtype}")
        return image
    if image.mode != "RGB":
        if image.mode in ("RGBA", "LA", "P", "PA") and ("A" in image.mode or "transparency" in image.info):
            from PIL import Image

            rgba = image.convert("RGBA")
            canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))  # text on transparency: white page
            image = Image.alpha_composite(canvas, rgba)
        image = image.convert("RGB")
    return np.asarray(image)


def load_engine(det_limit_side: int = DET_LIMIT_SIDE) -> OcrEngine:
    """Start the OCR engine; raises OcrUnavailableError when the package or its models are absent."""
    return OcrEngine(det_limit_side=det_limit_side)
