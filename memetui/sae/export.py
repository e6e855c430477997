"""Static HTML feature browser: pages of 512 features sorted by activation rate on the validation split.

Each feature shows its activation rate, its labels (text tower · exemplar words, when stored), its top-10
max-activating exemplars and a few weakest non-zero ones, as thumbnails copied (downscaled) into the
output folder — the pages open offline, with no external resources. All text is HTML-escaped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ..atomic import atomic_open, atomic_path
from ..errors import SAEError
from ..text import html_safe

PAGE_SIZE = 512
THUMB_PX = 128


@dataclass
class FeatureStats:
    """Per-latent statistics over a set of rows; exemplar arrays are [n, m], row -1 = none."""

    rate: np.ndarray
    top_rows: np.ndarray
    top_acts: np.ndarray
    low_rows: np.ndarray
    low_acts: np.ndarray
    samples: int


def _merge(best_vals, best_rows, vals, rows, m: int, largest: bool):
    vals = torch.cat([best_vals, vals])
    rows = torch.cat([best_rows, rows])
    keep = vals.topk(min(m, vals.shape[0]), dim=0, largest=largest)
    return keep.values, rows.gather(0, keep.indices)


@torch.no_grad()
def feature_stats(sae, embeddings: np.ndarray, rows: np.ndarray, top: int = 10, low: int = 3,
                  batch_size: int = 1024) -> FeatureStats:
    """Activation rate and max/min(non-zero)-activating rows of every latent over `rows` of `embeddings`."""
    n = sae.n_latents
    counts = torch.zeros(n, dtype=torch.int64)
    top_v, top_r = torch.full((0, n), -1.0), torch.zeros((0, n), dtype=torch.int64)
    low_v, low_r = torch.full((0, n), float("inf")), torch.zeros((0, n), dtype=torch.int64)
    rows = np.sort(np.asarray(rows, dtype=np.int64))
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        x = torch.from_numpy(np.asarray(embeddings[chunk], dtype=np.float32))
        dense = sae.encode_dense(x).cpu()
        fired = dense > 0
        counts += fired.sum(0)
        ids = torch.from_numpy(chunk)[:, None].expand(-1, n)
        v, i = dense.topk(min(top, len(chunk)), dim=0)
        top_v, top_r = _merge(top_v, top_r, v, ids.gather(0, i), top, True)
        weak = torch.where(fired, dense, torch.full_like(dense, float("inf")))
        v, i = weak.topk(min(low, len(chunk)), dim=0, largest=False)
        low_v, low_r = _merge(low_v, low_r, v, ids.gather(0, i), low, False)
    top_r[top_v <= 0] = -1
    low_r[~torch.isfinite(low_v)] = -1
    return FeatureStats((counts.double() / max(len(rows), 1)).numpy(), top_r.T.numpy(), top_v.T.numpy(),
                        low_r.T.numpy(), low_v.T.numpy(), len(rows))


def make_thumbnail(source: Path, target: Path, size: int = THUMB_PX) -> bool:
    """Write a JPEG thumbnail of `source` to `target` (transparency composited on white, as the index
    does); False when the image cannot be read. A failing write (a full disk) raises OSError."""
    from PIL import Image, UnidentifiedImageError

    from ..image_files import to_rgb

    if target.is_file() and target.stat().st_size > 0:  # written atomically: a file here is complete
        return True
    try:
        with Image.open(source) as image:
            image.thumbnail((size, size))
            rgb = to_rgb(image, background=(255, 255, 255))
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return False
    with atomic_path(target) as tmp:
        rgb.save(tmp, "JPEG", quality=80)
    return True


CSS = """body{font-family:sans-serif;margin:1em;background:#fafafa}
.f{border-bottom:1px solid #ccc;padding:.5em 0}.f h3{margin:.2em 0;font-size:1em}
.ex{display:inline-block;margin:2px;text-align:center;font-size:.7em;width:132px;vertical-align:top;overflow:hidden}
.ex img{max-width:128px;max-height:128px;display:block;margin:auto}.weak{opacity:.7}
.lab{color:#146}.nav a{margin-right:.5em}"""


def export_html(stats: FeatureStats, out_dir: str | Path, paths_of: Callable[[Sequence[int]], list[Path]] | None,
                labels: Sequence[Sequence[str] | str] | None = None, title: str = "SAE features",
                page_size: int = PAGE_SIZE, exemplar_labels: Sequence[Sequence[str] | str] | None = None) -> list[Path]:
    """Write index.html + features-NNN.html (page_size features each) into out_dir; returns the pages.

    `paths_of(rows)` maps index rows to image paths (None: exemplars are shown as row numbers).
    """
    out_dir = Path(out_dir)
    thumbs = out_dir / "thumbs"
    thumbs.mkdir(parents=True, exist_ok=True)
    from .checkpoint import clean_stale_tmp

    clean_stale_tmp(thumbs)
    clean_stale_tmp(out_dir)
    order = np.argsort(-stats.rate, kind="stable")
    wanted = sorted({int(r) for r in np.concatenate([stats.top_rows.ravel(), stats.low_rows.ravel()]) if r >= 0})
    images: dict[int, tuple[str | None, str]] = {}
    if paths_of is not None and wanted:
        for row, path in zip(wanted, paths_of(wanted)):
            name = f"{row}.jpg"
            label = "/".join(Path(path).parts[-2:])  # folder/file: enough to find it, short enough to show
            images[row] = (name if make_thumbnail(Path(path), thumbs / name) else None, label)
    pages = [order[i:i + page_size] for i in range(0, len(order), page_size)] or [order]
    files = [out_dir / f"features-{p:03d}.html" for p in range(len(pages))]
    nav = "".join(f'<a href="{f.name}">{i * page_size}–{min((i + 1) * page_size, len(order)) - 1}</a>'
                  for i, f in enumerate(files))

    def exemplar(row: int, act: float, weak: bool) -> str:
        thumb, name = images.get(row, (None, f"row {row}"))
        img = f'<img src="thumbs/{html_safe(thumb)}" alt="{html_safe(name)}" loading="lazy">' if thumb else ""
        return (f'<div class="ex{" weak" if weak else ""}">{img}<div>{html_safe(name)}</div>'
                f"<div>{act:.3g}</div></div>")

    for page, (ids, file) in enumerate(zip(pages, files)):
        parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html_safe(title)} — page {page}"
                 f"</title><style>{CSS}</style></head><body><h1>{html_safe(title)}</h1>"
                 f"<p>{len(order)} features, rates over {stats.samples} validation samples. "
                 f"Sorted by activation rate.</p><div class='nav'>{nav}</div>"]
        for j in ids:
            label, words = _joined(labels, j), _joined(exemplar_labels, j)
            parts.append(f'<div class="f" id="f{j}"><h3>feature {j} · rate {stats.rate[j]:.4%}'
                         + (f' · <span class="lab">{html_safe(label)}</span>' if label else "")
                         + (f' · exemplars: <span class="lab">{html_safe(words)}</span>' if words else "") + "</h3>")
            parts.extend(exemplar(int(r), float(a), False) for r, a in zip(stats.top_rows[j], stats.top_acts[j]) if r >= 0)
            parts.extend(exemplar(int(r), float(a), True) for r, a in zip(stats.low_rows[j], stats.low_acts[j]) if r >= 0)
            parts.append("</div>")
        parts.append("</body></html>\n")
        with atomic_open(file, "w", encoding="utf-8") as handle:
            handle.write("\n".join(parts))
    index = out_dir / "index.html"
    with atomic_open(index, "w", encoding="utf-8") as handle:
        handle.write(f"<!doctype html><html><head><meta charset='utf-8'><title>{html_safe(title)}</title>"
                     f"<style>{CSS}</style></head><body><h1>{html_safe(title)}</h1><div class='nav'>{nav}</div>"
                     "</body></html>\n")
    return [index, *files]


def _joined(labels, j: int) -> str:
    """Label `j` of a per-latent list (a list of words or a string) as one string; '' when none."""
    label = labels[j] if isinstance(labels, (list, tuple)) and j < len(labels) else None
    return ", ".join(map(str, label)) if isinstance(label, (list, tuple)) else str(label or "")


def export_index_features(store, sae, out_dir: str | Path, title: str | None = None) -> list[Path]:
    """Feature browser of `sae` over the validation split of `store`'s live rows."""
    from .train import split_rows

    if sae.d != store.dim:
        raise SAEError(f"SAE dimension {sae.d} does not match the index's {store.dim}")
    live = np.flatnonzero(store.live_mask())
    val_fraction = float((sae.meta.get("training") or {}).get("val_fraction", 0.1))
    _, val = split_rows(live, val_fraction)
    rows = val if len(val) >= 1 else live
    stats = feature_stats(sae, store.embeddings, rows)
    return export_html(stats, out_dir, store.paths, sae.labels, title or f"SAE features — {store.path.name}",
                       exemplar_labels=sae.meta.get("exemplar_labels"))
