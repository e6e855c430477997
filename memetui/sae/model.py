"""TopKSAE: a top-k sparse autoencoder over CLIP embeddings (Gao et al. 2024), saved as safetensors + JSON.

    x̃ = (x − b_pre) / s                      s scalar so that E‖x̃‖² = d on the training data
    z  = TopK_k(ReLU(W_enc x̃ + b_enc))        k active latents, all others exactly 0
    x̂  = b_pre + s · (W_dec z + b_dec)        decode, undoing the scaling

Storage: `W_enc` [n, d], `b_enc` [n], `W_dec` [n, d] — row j of `W_dec` is the paper's decoder
column j, a unit-norm direction in input space — `b_dec` [d], `b_pre` [d]. A checkpoint is
`NAME.safetensors` (tensors) + `NAME.json` (config, model identity, metrics, training args, labels).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SAEError
from .kernels import decode, select_topk

CHECKPOINT_FORMAT = 1


class EncoderOutput(NamedTuple):
    """Sparse code of a batch: `acts` [B,k] ≥ 0 and the latent `indices` [B,k] they belong to."""

    acts: torch.Tensor
    indices: torch.Tensor


class ForwardOutput(NamedTuple):
    """Result of `TopKSAE.forward`."""

    x_hat: torch.Tensor
    """[B, d] reconstruction in input space."""
    acts: torch.Tensor
    """[B, k] activations of the selected latents."""
    indices: torch.Tensor
    """[B, k] selected latents."""


def geometric_median(points: torch.Tensor, iterations: int = 30, eps: float = 1e-6) -> torch.Tensor:
    """Weiszfeld's algorithm: argmin_m Σ‖pᵢ − m‖ for points [N, d] -> [d] (float64 internally)."""
    points = points.double()
    median = points.mean(0)
    for _ in range(iterations):
        weights = 1.0 / (points - median).norm(dim=1).clamp_min(eps)
        new = (weights[:, None] * points).sum(0) / weights.sum()
        if (new - median).norm() < eps * (1 + median.norm()):
            median = new
            break
        median = new
    return median.float()


class TopKSAE(nn.Module):
    """Top-k SAE with unit-norm decoder directions; see the module docstring for the maths."""

    def __init__(self, d: int, n_latents: int, k: int, scale: float = 1.0, input_norm: float = 1.0,
                 meta: dict[str, Any] | None = None, labels: list[list[str]] | None = None, seed: int = 0,
                 init: bool = True):
        """Random init: W_dec rows unit Gaussian directions, W_enc a copy of W_dec, biases zero
        (init False: uninitialised memory, for weights about to be replaced; see `from_tensors`)."""
        super().__init__()
        if not (0 < k <= n_latents and d > 0):
            raise SAEError(f"bad SAE shape: d={d}, n_latents={n_latents}, k={k}")
        self.d, self.n_latents, self.k = int(d), int(n_latents), int(k)
        self.scale = float(scale)
        """s: x̃ = (x − b_pre)/s has E‖x̃‖² = d on the training data."""
        self.input_norm = float(input_norm)
        """RMS ‖x‖ of the training data (queries are rescaled to it before encoding)."""
        self.meta: dict[str, Any] = dict(meta or {})
        """model identity, index format, metrics, training args (saved in the JSON)."""
        self.labels = labels
        """Optional text labels: one list of strings per latent."""
        if init:
            gen = torch.Generator().manual_seed(seed)
            w_dec = torch.randn(n_latents, d, generator=gen)
            self.W_dec = nn.Parameter(w_dec / w_dec.norm(dim=1, keepdim=True))
            self.W_enc = nn.Parameter(self.W_dec.detach().clone())
        else:  # never touched: no pages are written before the real weights replace these
            self.W_dec = nn.Parameter(torch.empty(n_latents, d))
            self.W_enc = nn.Parameter(torch.empty(n_latents, d))
        self.b_enc = nn.Parameter(torch.zeros(n_latents))
        self.b_dec = nn.Parameter(torch.zeros(d))
        self.register_buffer("b_pre", torch.zeros(d))

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], d: int, n_latents: int, k: int,
                     **kwargs) -> "TopKSAE":
        """An SAE around `tensors` (W_enc, b_enc, W_dec, b_dec, b_pre; float32 ones are used as they
        are, others converted), without a random initialisation first; SAEError on a missing,
        unexpected or wrongly shaped tensor. kwargs as for __init__."""
        sae = cls(d, n_latents, k, init=False, **kwargs)
        shapes = {"W_enc": (sae.n_latents, sae.d), "b_enc": (sae.n_latents,), "W_dec": (sae.n_latents, sae.d),
                  "b_dec": (sae.d,), "b_pre": (sae.d,)}
        if set(tensors) != set(shapes):
            raise SAEError(f"expected tensors {sorted(shapes)}, found {sorted(tensors)}")
        for name, shape in shapes.items():
            tensor = tensors[name]
            if tuple(tensor.shape) != shape:
                raise SAEError(f"size mismatch for {name}: the file has {tuple(tensor.shape)}, the JSON says {shape}")
            tensor = tensor.to(torch.float32)  # the same tensor when it is float32 already
            if name == "b_pre":
                sae.b_pre = tensor
            else:
                setattr(sae, name, nn.Parameter(tensor))
        return sae

    # -- initialisation ----------------------------------------------------------------------------
    @torch.no_grad()
    def init_from_data_(self, sample: torch.Tensor, pre_bias: str = "median", decoder: str = "data",
                        seed: int = 0) -> None:
        """Set b_pre (geometric median or mean), s and input_norm from `sample` [N, d].

        decoder 'data': W_dec rows = unit directions of random centred samples (plus 10 % noise),
        which starts every latent near real data and keeps few latents dead; 'random': keep the
        Gaussian init. W_enc becomes a copy of W_dec either way (for 'data' scaled by the
        least-squares gain that makes the initial reconstruction the right size).
        """
        sample = sample.float()
        self.b_pre.copy_(geometric_median(sample) if pre_bias == "median" else sample.mean(0))
        centred = sample - self.b_pre
        self.scale = max(math.sqrt(float(centred.pow(2).sum(1).mean()) / self.d), 1e-8)
        self.input_norm = float(sample.pow(2).sum(1).mean().sqrt())
        if decoder == "data":
            gen = torch.Generator().manual_seed(seed + 1)
            rows = torch.randint(0, sample.shape[0], (self.n_latents,), generator=gen)
            picked = centred[rows]
            picked = picked / picked.norm(dim=1, keepdim=True).clamp_min(1e-8)
            noise = torch.randn(self.n_latents, self.d, generator=gen) / math.sqrt(self.d)
            self.W_dec.copy_(picked + 0.1 * noise)
        self.unit_norm_decoder_()
        self.W_enc.copy_(self.W_dec)
        if decoder == "data":  # rows near the data overshoot k-fold: scale the copy so x̂ ≈ x̃ at init
            dot = power = 0.0  # 1,024 rows at a time: [N, n] pre-activations at once were 4.3 GB at 16,384 x 65,536
            for rows, centred_rows in zip(sample.split(1024), centred.split(1024)):
                x_hat = self.decode_normalized(*self.encode(rows))
                dot += float((x_hat * (centred_rows / self.scale)).sum())
                power += float(x_hat.pow(2).sum())
            gain = dot / max(power, 1e-12)
            self.W_enc.mul_(min(max(gain, 1e-3), 1.0))

    # -- in-place helpers --------------------------------------------------------------------------
    @torch.no_grad()
    def unit_norm_decoder_(self) -> None:
        """Renormalise every decoder direction (row of W_dec) to unit norm."""
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12))

    @torch.no_grad()
    def remove_parallel_grad_(self) -> None:
        """Remove from W_dec.grad the component parallel to each (unit) row: g -= (g·w) w."""
        if self.W_dec.grad is not None:  # row dots by bmm and an in-place update: no [n, d] temporaries
            grad, w = self.W_dec.grad, self.W_dec.detach()
            parallel = torch.bmm(grad.unsqueeze(1), w.unsqueeze(2)).squeeze(2)
            grad.addcmul_(parallel, w, value=-1.0)

    # -- maths -------------------------------------------------------------------------------------
    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """x̃ = (x − b_pre)/s  ([B, d] -> [B, d], float32)."""
        return (x.to(self.b_pre.dtype) - self.b_pre) / self.scale

    def pre_acts(self, x: torch.Tensor) -> torch.Tensor:
        """Dense pre-activations W_enc x̃ + b_enc ([B, d] -> [B, n])."""
        return F.linear(self.normalize(x), self.W_enc, self.b_enc)

    def encode(self, x: torch.Tensor, matmul_dtype: torch.dtype | None = None, workspace=None) -> EncoderOutput:
        """Top-k code of inputs x [B, d] -> EncoderOutput(acts [B,k], indices [B,k]) (see kernels.select_topk)."""
        sel = select_topk(self.normalize(x), self.W_enc.detach(), self.b_enc.detach(), self.k, matmul_dtype, workspace)
        return EncoderOutput(sel.acts, sel.indices)

    def dense(self, code: EncoderOutput) -> torch.Tensor:
        """Dense [B, n] activations from a sparse code (zeros elsewhere)."""
        out = code.acts.new_zeros(code.acts.shape[0], self.n_latents)
        return out.scatter_(1, code.indices, code.acts)

    def encode_dense(self, x: torch.Tensor) -> torch.Tensor:
        """Dense [B, n] code of x [B, d] (exactly k non-zeros per row at most)."""
        return self.dense(self.encode(x))

    def decode_normalized(self, acts: torch.Tensor, indices: torch.Tensor, reference: bool = False) -> torch.Tensor:
        """W_dec z + b_dec in the normalised space ([B,k], [B,k] -> [B, d]); `reference` is kept for callers."""
        return decode(acts, indices, self.W_dec) + self.b_dec

    def decode(self, acts: torch.Tensor, indices: torch.Tensor, reference: bool = False) -> torch.Tensor:
        """x̂ = b_pre + s·(W_dec z + b_dec) from a sparse code ([B,k], [B,k] -> [B, d])."""
        return self.b_pre + self.scale * self.decode_normalized(acts, indices, reference)

    def forward(self, x: torch.Tensor) -> ForwardOutput:
        """Encode then decode x [B, d]."""
        acts, indices = self.encode(x)
        return ForwardOutput(self.decode(acts, indices), acts, indices)

    @property
    def decoder_directions(self) -> torch.Tensor:
        """[n, d] unit decoder directions (detached; row j = direction of latent j)."""
        return self.W_dec.detach()

    # -- persistence -------------------------------------------------------------------------------
    def checkpoint_config(self) -> dict[str, Any]:
        """The JSON side of a checkpoint."""
        return {"format": CHECKPOINT_FORMAT, "d": self.d, "n_latents": self.n_latents, "k": self.k,
                "s": self.scale, "input_norm": self.input_norm, **self.meta,
                **({"labels": self.labels} if self.labels is not None else {})}

    def save(self, path: str | Path) -> Path:
        """Write PATH.safetensors then PATH.json (with the tensors' sha256), each atomically; returns PATH."""
        from .checkpoint import save_pair

        return save_pair(self, path)

    def save_config(self, path: str | Path) -> None:
        """Rewrite only PATH.json (e.g. after adding labels), keeping the recorded tensors' sha256."""
        import json

        from ..atomic import write_json_atomic
        from .checkpoint import stem

        file = stem(path).with_suffix(".json")
        try:
            sha = json.loads(file.read_text(encoding="utf-8")).get("tensors_sha256")
        except (OSError, ValueError, AttributeError):
            sha = None
        write_json_atomic(file, {**self.checkpoint_config(), **({"tensors_sha256": sha} if sha else {})})

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> "TopKSAE":
        """Load PATH.safetensors + PATH.json (PATH may carry either suffix). Raises SAEError (one line)."""
        from .checkpoint import load_pair

        return load_pair(cls, path, device)


def _stem(path: str | Path) -> Path:
    """PATH without a .json / .safetensors suffix."""
    from .checkpoint import stem

    return stem(path)


def load_for_index(path: str | Path, store) -> TopKSAE:
    """Load the SAE at `path` (or a name inside `store.sae_dir`) and check it fits the index `store`.

    Raises SAEError when its dimension differs from the index's or it was trained on embeddings of
    another model (sha256 of the model checkpoint differs).
    """
    path = Path(path)
    if not path.is_absolute() and len(path.parts) == 1 and not _stem(path).with_suffix(".json").is_file():
        path = store.sae_dir / path
    sae = TopKSAE.load(path)
    check_fits_index(sae, store, name=_stem(path).name)
    return sae


def check_fits_index(sae: TopKSAE, store, name: str = "SAE") -> None:
    """Raise SAEError unless `sae` was trained for `store`'s dimension and model."""
    if sae.d != store.dim:
        raise SAEError(f"SAE {name} has dimension {sae.d} but the index {store.path} has {store.dim}")
    model = sae.meta.get("model") or {}
    sha = model.get("sha256")
    if sha and sha != store.model.sha256:
        raise SAEError(f"SAE {name} was trained on model {model.get('name')} ({sha[:12]}) but the index uses "
                       f"{store.model.name} ({store.model.sha256[:12]}); retrain with: memetui train-sae")
