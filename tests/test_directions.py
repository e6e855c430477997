"""Direction providers: unit norms, orthonormal PCA (cached), seeded random, SAE encoding, labels."""

from __future__ import annotations

import numpy as np
import pytest

from memetui.errors import QueryError, SAEError
from memetui.steer.pca import PCADirections, compute_pca
from memetui.steer.provider import DirectionProvider
from memetui.steer.random_directions import RandomDirections
from memetui.steer.sae_directions import SAEDirections
from memetui.text import terminal_safe


def random_sae(dim=24, n=96, k=6, seed=0, labels=None, norm=3.0):
    rng = np.random.default_rng(seed)
    w_dec = rng.standard_normal((dim, n)).astype(np.float32) * norm  # deliberately not unit
    return SAEDirections(rng.standard_normal((n, dim)), rng.standard_normal(n) * 0.1, rng.standard_normal(dim) * 0.1,
                         w_dec, k=k, scale=0.7, labels=labels)


def test_sae_directions_are_unit_decoder_columns():
    sae = random_sae()
    assert isinstance(sae, DirectionProvider)
    norms = np.linalg.norm(sae.decoder_rows, axis=1)
    np.testing.assert_allclose(norms, 1, rtol=1e-5)
    assert sae.vector(5).shape == (24,)
    with pytest.raises(QueryError):
        sae.vector(96)


def test_sae_active_is_topk_of_reference_encoding():
    import torch

    sae = random_sae()
    rng = np.random.default_rng(3)
    w_enc = sae._w_enc.numpy().astype(np.float64)
    for _ in range(20):
        q = rng.standard_normal(24).astype(np.float32) * rng.uniform(0.1, 5)
        x = q / np.linalg.norm(q) * sae.input_norm
        # reference: z = TopK(ReLU(W_enc (x − b_pre)/s + b_enc)) in float64 through torch.topk
        pre = torch.relu(torch.from_numpy(w_enc @ ((x - sae.b_pre) / sae.scale) + sae.b_enc))
        vals, idx = torch.topk(pre, sae.k)
        active = sae.active(q, sae.k)
        keep = vals.numpy() > 0
        assert [a.id for a in active] == idx.numpy()[keep].tolist()
        np.testing.assert_allclose([a.value for a in active], vals.numpy()[keep], rtol=1e-4, atol=1e-5)


def test_sae_batch_encode_matches_single():
    sae = random_sae()
    x = np.random.default_rng(0).standard_normal((5, 24)).astype(np.float32)
    batch = sae.encode(x)
    for i in range(5):
        one = sae.encode(x[i])
        assert one.indices.tolist() == batch.indices[i][: len(one.indices)].tolist()


def test_sae_that_is_inconsistent_is_refused():
    with pytest.raises(SAEError):
        SAEDirections(np.zeros((8, 4)), np.zeros(8), np.zeros(4), np.zeros((4, 9)), k=2)
    with pytest.raises(SAEError):
        SAEDirections(np.zeros((8, 4)), np.zeros(8), np.zeros(4), np.zeros((4, 8)), k=0)


def test_labels_are_raw_and_escaped_for_display():
    sae = random_sae(labels={"3": "cat\x1b[31mred\x07", 4: ["dog", "puppy\r"]})
    assert sae.label(3) == "cat\x1b[31mred\x07"
    assert terminal_safe(sae.label(3)) == "cat\\x1b[31mred\\x07"
    assert terminal_safe(sae.label(4)) == "dog, puppy\\x0d"
    assert sae.label(5) == "feature 5"
    for text in ["\x1b]52;c;ZXZpbA==\x07", "\x9b31m", "a\u202eb", "tab\there", "nul\x00"]:
        out = terminal_safe(text)
        assert out.isprintable() and "\x1b" not in out and "\x9b" not in out and "\u202e" not in out
    assert terminal_safe("plain ü 猫") == "plain ü 猫"


def test_pca_components_orthonormal_and_sorted():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 16)) * np.linspace(3, 0.1, 16)
    pca = compute_pca(x.astype(np.float16), max_components=10)
    c = pca.components.astype(np.float64)
    np.testing.assert_allclose(c @ c.T, np.eye(10), atol=1e-5)
    assert np.all(np.diff(pca.explained) <= 1e-7)
    ref = np.linalg.svd(x - x.mean(0), full_matrices=False)[2][:3]
    np.testing.assert_allclose(np.abs(np.sum(ref * c[:3], 1)), 1, atol=1e-3)


def test_pca_is_cached_in_the_user_cache_and_reused(tiny_index, tmp_path, monkeypatch):
    from memetui.index.store import IndexStore
    from memetui.steer import pca as pca_module

    store = IndexStore.open(tiny_index(16))
    first = PCADirections.for_store(store)
    assert not (store.path / "pca.npz").exists() and len(list((tmp_path / "cache").rglob("pca.npz"))) == 1
    monkeypatch.setattr(pca_module, "compute_pca", lambda *a, **k: pytest.fail("the cache was not used"))
    again = PCADirections.for_store(store)
    assert np.array_equal(first.pca.components, again.pca.components)
    c = first.pca.components.astype(np.float64)
    np.testing.assert_allclose(c @ c.T, np.eye(len(first)), atol=1e-4)
    active = first.active(np.asarray(store.embeddings[0], np.float32), 3)
    assert len(active) == 3 and abs(active[0].value) >= abs(active[-1].value)
    assert first.label(0).startswith("PC1 (")


def test_random_directions_unit_and_reproducible_by_seed():
    a, b, c = RandomDirections(32, seed=5), RandomDirections(32, seed=5), RandomDirections(32, seed=6)
    for j in range(10):
        assert np.linalg.norm(a.vector(j)) == pytest.approx(1, rel=1e-6)
        assert a.vector(j).tobytes() == b.vector(j).tobytes()
    assert not np.allclose(a.vector(0), c.vector(0))
    new = a.new()
    assert new == b.new() and a.candidates[0] == new
    assert [d.id for d in a.active(np.ones(32), 3)] == [new, new - 1, new - 2]


def test_fast_query_encoder_matches_topk_sae_encode():
    """The steering encoder (cached projections) lists exactly TopKSAE.encode's top-k."""
    import torch

    from memetui.sae.model import TopKSAE

    rng = np.random.default_rng(3)
    sae = TopKSAE(32, 128, 8, seed=1)
    sample = torch.from_numpy(rng.standard_normal((256, 32)).astype(np.float32))
    sample = sample / sample.norm(dim=1, keepdim=True)
    sae.init_from_data_(sample, pre_bias="mean", decoder="random")
    directions = SAEDirections.from_sae(sae)
    for _ in range(10):
        q = rng.standard_normal(32).astype(np.float32)
        x = torch.from_numpy(q / np.linalg.norm(q) * sae.input_norm).unsqueeze(0)
        with torch.no_grad():
            code = sae.encode(x)
        expected = {int(i): float(a) for a, i in zip(code.acts[0], code.indices[0]) if a > 0}
        listed = {d.id: d.value for d in directions.active(q, n=8)}
        assert set(listed) == set(expected)
        for i, value in listed.items():
            assert value == pytest.approx(expected[i], rel=1e-4, abs=1e-5)
