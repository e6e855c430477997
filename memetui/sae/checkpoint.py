"""SAE checkpoints: NAME.safetensors + NAME.json written as a verified pair, loaded with checks.

The JSON records the sha256 of the tensors file it belongs to, so a pair broken by a crash between the
two writes (new tensors, old JSON) is detected at load. The safetensors library reads the tensors
and the model is built around them (no random initialisation first). Loading refuses non-finite weights (one
summing pass per tensor; an exact element check only when a sum is not finite). Every refusal is
one `SAEError` line. Names are plain file names; hidden `*.PID.tmp` files left by a killed
writer (memetui/atomic.py) are removed by the next writer of the folder.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, NamedTuple

import torch

from ..atomic import atomic_path, write_json_atomic
from ..errors import SAEError, UsageError
from ..hashing import sha256_file

CHECKPOINT_FORMAT = 1
"""JSON format; `tensors_sha256` is optional in format 1 (the shipped SAEs predate it)."""
TENSORS = ("W_enc", "b_enc", "W_dec", "b_dec", "b_pre")
_TMP = (re.compile(r"^\..+\.(\d+)\.\d+\.tmp$"), re.compile(r"^\..+\.(\d+)\.tmp$"))
"""`.NAME.PID.THREAD.tmp` (memetui/atomic.py), or `.NAME.PID.tmp` from earlier versions."""


def check_name(name: str) -> str:
    """Return `name` if it is a plain file name (no folders, not hidden, printable); else UsageError."""
    if (not name or name in (".", "..") or name.startswith(".") or "/" in name or "\\" in name
            or os.sep in name or len(name) > 200 or any(ord(c) < 32 or ord(c) == 127 for c in name)):
        raise UsageError(f"SAE name must be a plain file name (no '/', not hidden), got {name!r}")
    return name


def clean_stale_tmp(folder: Path) -> list[Path]:
    """Delete hidden `.NAME.PID[.THREAD].tmp` files in `folder` whose writer process is gone; returns them."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for path in entries:
        match = _TMP[0].match(path.name) or _TMP[1].match(path.name)
        if not match or int(match.group(1)) == os.getpid() or _alive(int(match.group(1))):
            continue
        try:
            path.unlink()
            removed.append(path)
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def stem(path: str | Path) -> Path:
    """PATH without a .json / .safetensors suffix."""
    path = Path(path).expanduser()
    return path.with_suffix("") if path.suffix in (".json", ".safetensors") else path


def save_pair(sae, path: str | Path) -> Path:
    """Write PATH.safetensors then PATH.json (recording the tensors' sha256), each atomically."""
    from safetensors.torch import save_file

    path = stem(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_tmp(path.parent)
    tensors = {name: getattr(sae, name).detach().float().cpu().contiguous() for name in TENSORS}
    with atomic_path(path.with_suffix(".safetensors")) as tmp:
        save_file(tensors, str(tmp), metadata={"format": str(CHECKPOINT_FORMAT)})
        sha = sha256_file(tmp)
    write_json_atomic(path.with_suffix(".json"), {**sae.checkpoint_config(), "tensors_sha256": sha})
    return path


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:160] if text else type(exc).__name__


def load_pair(cls, path: str | Path, device: str | torch.device = "cpu"):
    """Load PATH.safetensors + PATH.json into `cls` (TopKSAE); SAEError when missing, mismatched or corrupt."""
    path = stem(path)
    name = path.name
    json_file, tensor_file = path.with_suffix(".json"), path.with_suffix(".safetensors")
    if not json_file.is_file() or not tensor_file.is_file():
        raise SAEError(f"no SAE at {path} (need {json_file.name} and {tensor_file.name})")
    try:
        config = json.loads(json_file.read_text(encoding="utf-8"))
        if not isinstance(config, dict):
            raise ValueError("the JSON is not an object")
        sha = config.get("tensors_sha256")
        try:
            tensors, found = read_tensors(tensor_file, hashed=sha is not None)
        except (ValueError, TypeError):  # a malformed file: a swapped one says so (hashed whole only here)
            if sha is None or sha == sha256_file(tensor_file):
                raise
            found = None
        if sha is not None and sha != found:
            raise SAEError(f"SAE {name}: {tensor_file.name} does not match {json_file.name} (an interrupted save?); "
                           "retrain it with: memetui train-sae")
    except (OSError, UnicodeDecodeError, ValueError, TypeError) as exc:
        raise SAEError(f"cannot read SAE {name}: {_one_line(exc)}") from None
    if config.get("format") != CHECKPOINT_FORMAT:
        raise SAEError(f"SAE {name}: unsupported format {config.get('format')!r}")
    try:
        d, n, k = int(config["d"]), int(config["n_latents"]), int(config["k"])
        scale, input_norm = float(config["s"]), float(config.get("input_norm", 1.0))
        meta = {key: value for key, value in config.items()
                if key not in ("format", "d", "n_latents", "k", "s", "input_norm", "labels", "tensors_sha256")}
        sae = cls.from_tensors(tensors, d, n, k, scale=scale, input_norm=input_norm, meta=meta,
                               labels=config.get("labels"))
    except (KeyError, TypeError, ValueError, RuntimeError, SAEError) as exc:
        raise SAEError(f"SAE {name} is corrupt: {_one_line(exc)}") from None
    bad = [key for key in TENSORS if not all_finite(getattr(sae, key))]
    if bad or not (scale > 0 and abs(scale) < float("inf")) or not abs(input_norm) < float("inf"):
        raise SAEError(f"SAE {name} is corrupt: non-finite values in {', '.join(bad) or 's / input_norm'}")
    return sae.to(device)


def all_finite(tensor: torch.Tensor) -> bool:
    """Whether every entry of `tensor` is finite: one summing pass (a NaN or ±inf makes the sum
    non-finite); only when the sum is not finite (e.g. an overflow) every entry is checked."""
    with torch.no_grad():
        if tensor.numel() == 0 or bool(torch.isfinite(tensor.sum())):
            return True
        return bool(torch.isfinite(tensor).all())


def read_tensors(path: Path, hashed: bool = True) -> tuple[dict[str, torch.Tensor], str | None]:
    """(tensors, sha256 hex of the file or None) of a safetensors file, float dtypes only, read by the
    safetensors library (which checks the header and that the tensors tile the data exactly);
    ValueError when the file is malformed."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
    except SafetensorError as exc:
        raise ValueError(f"{path.name}: {exc}") from None
    odd = [key for key, tensor in tensors.items() if not tensor.is_floating_point()]
    if odd:
        raise ValueError(f"{path.name}: tensor {odd[0]} has an unsupported dtype")
    return tensors, sha256_file(path) if hashed else None


class SAESummary(NamedTuple):
    """What `info` shows about a saved SAE (from its JSON only)."""

    name: str
    n_latents: int | None
    k: int | None
    val_fvu: float | None
    dead_window: float | None
    """Share of latents silent for the last min(10M, samples trained) training samples."""
    dead_all_rows: float | None
    """Share of latents that fire on no row of the data it was trained on."""
    dead_val: float | None = None
    """Share of latents that fire on no validation row."""
    dead_train: float | None = None
    """Share of latents that fire on no training row."""


def describe(path: str | Path) -> SAESummary:
    """Summary of the SAE at PATH from its JSON (None for what it does not record or cannot be read)."""
    path = stem(path)
    try:
        config: dict[str, Any] = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        metrics = config.get("metrics") or {}
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return SAESummary(path.name, None, None, None, None, None, None, None)

    def number(value):
        return float(value) if isinstance(value, (int, float)) else None

    return SAESummary(path.name, config.get("n_latents"), config.get("k"), number(metrics.get("fvu")),
                      number(metrics.get("dead_window")), number(metrics.get("dead_all_rows")),
                      number(metrics.get("dead_fraction")), number(metrics.get("dead_train_rows")))


def save_outputs(result, out_dir: str | Path, name: str) -> Path:
    """NAME.safetensors + NAME.json, NAME.metrics.json and NAME.curve.png in out_dir; SAEError on write errors."""
    from .plot import plot_history

    check_name(name)
    out_dir = Path(out_dir).expanduser()
    check_output_folder(out_dir)
    try:
        path = save_pair(result.sae, out_dir / name)
        write_json_atomic(out_dir / f"{name}.metrics.json", {
            "validation": result.metrics.to_dict(), "samples_per_s": result.samples_per_s,
            "seconds": result.seconds, "dead_window": result.dead_window,
            "dead_all_rows": result.final.dead_all_rows if result.final else None,
            "train": result.final.train.to_dict() if result.final else None,
            "profile_ms_per_step": result.profile_ms, "history": result.history})
        plot_history(result.history, out_dir / f"{name}.curve.png")
    except OSError as exc:
        raise SAEError(f"cannot write SAE {name} to {out_dir}: {exc.strerror or _one_line(exc)}") from None
    return path


def check_output_folder(folder: Path) -> None:
    """UsageError unless `folder` is a folder or can be created as one."""
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"output {folder} exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create output folder {folder}: {exc.strerror or _one_line(exc)}") from None


def summary_text(summary: SAESummary) -> str:
    """One line for `info`: shape, validation FVU and the dead fractions ('?' where not recorded)."""
    def pct(value):
        return "?" if value is None else f"{value:.2%}"

    fvu = "?" if summary.val_fvu is None else f"{summary.val_fvu:.4f}"
    return (f"{summary.name}: n={summary.n_latents} k={summary.k} val FVU {fvu}, dead {pct(summary.dead_all_rows)} "
            f"of all rows (train {pct(summary.dead_train)}, validation {pct(summary.dead_val)}), "
            f"{pct(summary.dead_window)} (training window)")
