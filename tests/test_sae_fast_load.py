"""Cheap SAE loading (no random init; one summing pass for finiteness)
and PCA fitted on a seeded sample above a row threshold: same results, same refusals."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from memetui.errors import SAEError  # noqa: E402
from memetui.hashing import sha256_file  # noqa: E402
from memetui.sae import checkpoint  # noqa: E402
from memetui.sae.model import TopKSAE  # noqa: E402
from memetui.steer import pca as pca_module  # noqa: E402
from memetui.steer.sae_directions import SAEDirections, unit_rows  # noqa: E402


def trained_like(seed=0, d=24, n=48, k=4) -> TopKSAE:
    model = TopKSAE(d, n, k, seed=seed)
    model.init_from_data_(torch.randn(300, d, generator=torch.Generator().manual_seed(seed)) + 0.5, seed=seed)
    with torch.no_grad():
        model.b_enc.normal_(generator=torch.Generator().manual_seed(seed + 7))
        model.b_dec.normal_(generator=torch.Generator().manual_seed(seed + 8))
    return model


def test_load_gives_bitwise_the_tensors_of_the_file_without_a_random_init(tmp_path, monkeypatch):
    from safetensors.torch import load_file

    model = trained_like()
    path = model.save(tmp_path / "s")
    reference = load_file(str(tmp_path / "s.safetensors"))  # what the loader used to copy from
    monkeypatch.setattr(torch, "randn", lambda *a, **k: pytest.fail("random init before loading"))
    loaded = TopKSAE.load(path)
    for name in checkpoint.TENSORS:
        got = getattr(loaded, name)
        assert got.dtype == torch.float32 and got.is_contiguous()
        assert torch.equal(got, reference[name]) and torch.equal(got, getattr(model, name).detach())
        assert got.untyped_storage().nbytes() == got.numel() * 4  # one storage per tensor, nothing shared
    assert isinstance(loaded.W_enc, torch.nn.Parameter) and "b_pre" in dict(loaded.named_buffers())
    assert (loaded.scale, loaded.input_norm, loaded.k) == (model.scale, model.input_norm, model.k)
    again = TopKSAE.load(path)  # and it saves back to the same bytes
    again.save(tmp_path / "t")
    assert sha256_file(tmp_path / "t.safetensors") == sha256_file(tmp_path / "s.safetensors")


def test_the_hash_taken_while_reading_is_the_files(tmp_path):
    trained_like().save(tmp_path / "s")
    tensors, sha = checkpoint.read_tensors(tmp_path / "s.safetensors")
    assert sha == sha256_file(tmp_path / "s.safetensors") == json.loads((tmp_path / "s.json").read_text())["tensors_sha256"]
    assert checkpoint.read_tensors(tmp_path / "s.safetensors", hashed=False)[1] is None


def test_a_swapped_tensors_file_is_refused_in_one_line(tmp_path):
    trained_like(0).save(tmp_path / "a")
    trained_like(1).save(tmp_path / "b")
    (tmp_path / "b.safetensors").replace(tmp_path / "a.safetensors")  # same shapes, other weights
    with pytest.raises(SAEError, match=r"^SAE a: a.safetensors does not match a.json") as err:
        TopKSAE.load(tmp_path / "a")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("tensor", ["W_enc", "b_pre"])
def test_non_finite_weights_are_refused_in_one_line(tmp_path, value, tensor):
    model = trained_like()
    with torch.no_grad():
        getattr(model, tensor).view(-1)[5] = value
    model.save(tmp_path / "bad")
    with pytest.raises(SAEError, match=rf"^SAE bad is corrupt: non-finite values in {tensor}$"):
        TopKSAE.load(tmp_path / "bad")


def test_huge_finite_weights_are_not_mistaken_for_non_finite():
    big = torch.full((64, 8), 3e38)  # the float32 sum overflows; every entry is finite
    assert checkpoint.all_finite(big) and not checkpoint.all_finite(torch.tensor([1.0, float("nan")]))


@pytest.mark.parametrize("damage", ["truncate", "pad", "header"])
def test_a_malformed_file_without_a_hash_is_one_line(tmp_path, damage):
    trained_like().save(tmp_path / "s")
    config = json.loads((tmp_path / "s.json").read_text())
    del config["tensors_sha256"]
    (tmp_path / "s.json").write_text(json.dumps(config))
    data = (tmp_path / "s.safetensors").read_bytes()
    data = {"truncate": data[:-10], "pad": data + b"\0" * 8, "header": (10**9).to_bytes(8, "little") + data[8:]}[damage]
    (tmp_path / "s.safetensors").write_bytes(data)
    with pytest.raises(SAEError, match=r"^cannot read SAE s: ") as err:
        TopKSAE.load(tmp_path / "s")
    assert "\n" not in str(err.value)


def test_a_missing_tensor_is_corrupt_in_one_line(tmp_path):
    from safetensors.torch import save_file

    model = trained_like()
    model.save(tmp_path / "s")
    tensors = {name: getattr(model, name).detach() for name in checkpoint.TENSORS if name != "b_dec"}
    save_file(tensors, str(tmp_path / "s.safetensors"))
    config = json.loads((tmp_path / "s.json").read_text())
    del config["tensors_sha256"]
    (tmp_path / "s.json").write_text(json.dumps(config))
    with pytest.raises(SAEError, match=r"^SAE s is corrupt: expected tensors") as err:
        TopKSAE.load(tmp_path / "s")
    assert "\n" not in str(err.value)


def test_unit_decoder_rows_are_used_as_stored_and_others_renormalised():
    rows = np.random.default_rng(0).standard_normal((50, 16)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    assert unit_rows(rows) is rows  # no copy, no second pass
    rows[3] *= 2.0
    rows[7] = 0.0
    fixed = unit_rows(rows)
    assert fixed is not rows and np.allclose(np.linalg.norm(fixed[[0, 3, 49]], axis=1), 1.0, atol=1e-6)
    assert np.array_equal(fixed[7], rows[7]) and np.array_equal(fixed[10], rows[10])


def test_sae_directions_from_a_loaded_sae_are_unit_and_encode_as_before(tmp_path):
    model = trained_like()
    loaded = TopKSAE.load(model.save(tmp_path / "s"))
    directions = SAEDirections.from_sae(loaded)
    norms = np.linalg.norm(directions.decoder_rows, axis=1)
    assert np.allclose(norms, 1.0, atol=1e-5) and not directions.decoder_rows.flags.writeable
    x = np.random.default_rng(1).standard_normal((5, 24)).astype(np.float32)
    code = directions.encode(x)
    with torch.no_grad():
        reference = loaded.encode(torch.from_numpy(x))
    assert np.array_equal(np.sort(code.indices, 1), np.sort(reference.indices.numpy(), 1))


def test_pca_above_the_threshold_is_fitted_on_a_seeded_sample_and_cached_as_such(tiny_index, monkeypatch):
    from memetui.index.store import IndexStore

    store = IndexStore.open(tiny_index(24))
    fitted = []
    real = pca_module.compute_pca
    monkeypatch.setattr(pca_module, "compute_pca", lambda e, rows=None, *a, **k: fitted.append(rows) or real(e, rows, *a, **k))
    sampled = pca_module.PCADirections.for_store(store, sample_rows=10)
    rows = fitted[-1]
    assert len(rows) == 10 and np.all(np.diff(rows) > 0) and rows.max() < 24
    assert np.array_equal(rows, pca_module.fit_rows(store.live_mask(), 10))  # seeded: the same sample again
    direct = real(store.embeddings, rows)
    assert np.array_equal(sampled.pca.components, direct.components)
    assert len(pca_module.PCADirections.for_store(store, sample_rows=10)) == len(sampled) and len(fitted) == 1  # cached
    full = pca_module.PCADirections.for_store(store)  # below the threshold: every row, another cache key
    assert fitted[-1] is None and len(fitted) == 2
    assert not np.array_equal(full.pca.components, sampled.pca.components)
    with np.load(pca_module._user_cache_file(store)) as data:
        assert list(data["key"]) == [pca_module.PCA_FORMAT, 24, store.manifest.updated, pca_module.MAX_COMPONENTS]
    store.close()


def test_fit_rows_samples_live_rows_only():
    live = np.ones(1000, bool)
    live[::3] = False
    assert pca_module.fit_rows(live, 2000) is None
    rows = pca_module.fit_rows(live, 100, seed=4)
    assert len(rows) == 100 and live[rows].all() and np.array_equal(rows, np.unique(rows))
    assert len(pca_module.fit_rows(live, 900)) == live.sum()  # fewer live rows than asked: all of them
