"""TopKSAE: top-k codes, unit decoder, encoder copy, sparse kernels = reference, save/load, index checks."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from memetui.errors import SAEError  # noqa: E402
from memetui.index.store import IndexStore, ModelInfo  # noqa: E402
from memetui.sae.kernels import (SparseDecode, decode_reference, scatter_rows, scatter_rows_reference,  # noqa: E402
                                 topk_encode)
from memetui.sae.model import TopKSAE, load_for_index  # noqa: E402
from memetui.sae.train import DeadTracker, TrainConfig, make_optimizer, train_step  # noqa: E402


def small_sae(d=32, n=128, k=8, seed=0) -> TopKSAE:
    sae = TopKSAE(d, n, k, seed=seed)
    sae.init_from_data_(torch.randn(500, d) + 2.0, seed=seed)
    return sae


def test_topk_gives_exactly_k_nonzeros():
    sae = small_sae()
    with torch.no_grad():
        sae.b_enc.fill_(5.0)  # every pre-activation positive: ReLU keeps all k
    dense = sae.encode_dense(torch.randn(64, 32))
    assert ((dense != 0).sum(1) == sae.k).all()
    acts, indices = sae.encode(torch.randn(64, 32))
    assert acts.shape == indices.shape == (64, sae.k) and (acts >= 0).all()


def test_encoder_is_a_copy_not_a_view_of_the_decoder():
    sae = TopKSAE(16, 64, 4)
    assert torch.equal(sae.W_enc, sae.W_dec)
    assert sae.W_enc.data_ptr() != sae.W_dec.data_ptr()
    with torch.no_grad():
        sae.W_dec.mul_(2)
    assert not torch.equal(sae.W_enc, sae.W_dec)


def test_input_scaling_gives_mean_squared_norm_d():
    x = torch.randn(2000, 32) * 0.1 + 3.0
    sae = TopKSAE(32, 64, 4)
    sae.init_from_data_(x)
    assert float(sae.normalize(x).pow(2).sum(1).mean()) == pytest.approx(32, rel=1e-3)


def test_decoder_rows_stay_unit_norm_and_parallel_grad_is_removed():
    torch.manual_seed(0)
    sae = small_sae()
    cfg = TrainConfig(n_latents=128, k=8, batch_size=64, lr=1e-2)
    optimizer, _ = make_optimizer(sae.parameters(), cfg.learning_rate, torch.device("cpu"), None)
    tracker = DeadTracker(128, 64, "cpu")
    for _ in range(5):
        train_step(sae, optimizer, sae.normalize(torch.randn(64, 32) + 2.0), tracker, cfg, 16, None)
        torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(128))
    sae.W_dec.grad = torch.randn_like(sae.W_dec)
    sae.remove_parallel_grad_()
    assert float((sae.W_dec.grad * sae.W_dec.detach()).sum(1).abs().max()) < 1e-5


def test_scatter_rows_matches_index_add_reference():
    gen = torch.Generator().manual_seed(1)
    idx = torch.randint(0, 50, (40, 6), generator=gen)
    vals, rows = torch.randn(40, 6, generator=gen), torch.randn(40, 12, generator=gen)
    torch.testing.assert_close(scatter_rows(idx, vals, rows, 50), scatter_rows_reference(idx, vals, rows, 50))


def test_sparse_decode_matches_embedding_bag_reference_with_grads():
    gen = torch.Generator().manual_seed(2)
    w1 = torch.randn(100, 16, generator=gen, requires_grad=True)
    w2 = w1.detach().clone().requires_grad_()
    a1 = torch.rand(8, 5, generator=gen, requires_grad=True)
    a2 = a1.detach().clone().requires_grad_()
    idx = torch.randint(0, 100, (8, 5), generator=gen)
    out1, out2 = SparseDecode.apply(a1, idx, w1), decode_reference(a2, idx, w2)
    torch.testing.assert_close(out1, out2)
    grad = torch.randn(8, 16, generator=gen)
    out1.backward(grad)
    out2.backward(grad)
    torch.testing.assert_close(w1.grad, w2.grad)
    torch.testing.assert_close(a1.grad, a2.grad)


def test_sparse_encoder_gradients_match_dense_autograd():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(16, 24, generator=gen)
    w1 = torch.randn(64, 24, generator=gen, requires_grad=True)
    b1 = torch.randn(64, generator=gen, requires_grad=True)
    w2, b2 = w1.detach().clone().requires_grad_(), b1.detach().clone().requires_grad_()
    acts1, idx1, _, _ = topk_encode(x, w1, b1, 6)
    vals, idx2 = F.relu(F.linear(x, w2, b2)).topk(6, dim=1)
    order1, order2 = idx1.sort(1).indices, idx2.sort(1).indices
    assert torch.equal(idx1.gather(1, order1), idx2.gather(1, order2))
    torch.testing.assert_close(acts1.gather(1, order1), vals.gather(1, order2))
    upstream = torch.randn(16, 6, generator=gen)
    (acts1.gather(1, order1) * upstream).sum().backward()
    (vals.gather(1, order2) * upstream).sum().backward()
    torch.testing.assert_close(w1.grad, w2.grad)
    torch.testing.assert_close(b1.grad, b2.grad)


def test_bf16_selection_returns_exact_fp32_activations():
    sae = small_sae()
    x = torch.randn(32, 32) + 2
    acts, idx = sae.encode(x, matmul_dtype=torch.bfloat16)
    exact = F.relu(sae.pre_acts(x)).gather(1, idx)
    torch.testing.assert_close(acts, exact)


def test_save_then_load_reproduces_outputs_exactly(tmp_path):
    sae = small_sae()
    sae.labels = [[f"word{j}", "x"] for j in range(sae.n_latents)]
    sae.meta["model"] = {"name": "m", "pretrained": None, "dim": 32, "sha256": "ab" * 32}
    path = sae.save(tmp_path / "my-sae")
    assert (tmp_path / "my-sae.safetensors").is_file() and (tmp_path / "my-sae.json").is_file()
    loaded = TopKSAE.load(path.with_suffix(".json"))
    x = torch.randn(10, 32)
    with torch.no_grad():
        a, b = sae(x), loaded(x)
    assert torch.equal(a.x_hat, b.x_hat) and torch.equal(a.indices, b.indices) and torch.equal(a.acts, b.acts)
    assert loaded.labels == sae.labels and loaded.scale == sae.scale and loaded.meta["model"]["sha256"] == "ab" * 32
    torch.testing.assert_close(sae.decode(a.acts, a.indices, reference=True), a.x_hat)


def test_corrupt_checkpoint_is_an_sae_error(tmp_path):
    small_sae().save(tmp_path / "s")
    (tmp_path / "s.safetensors").write_bytes(b"garbage")
    with pytest.raises(SAEError, match="cannot read SAE"):
        TopKSAE.load(tmp_path / "s")


def make_store(tmp_path, dim=32, sha="cd" * 32) -> IndexStore:
    store = IndexStore.create(tmp_path / "index", ModelInfo("tiny", None, dim, sha), str(tmp_path))
    store.write_embeddings(np.zeros((4, dim), np.float16))
    store.manifest.count = 4
    store.write_manifest()
    return store


def test_sae_with_another_dimension_is_refused(tmp_path):
    store = make_store(tmp_path, dim=16)
    small_sae(d=32).save(store.sae_dir / "wide")
    with pytest.raises(SAEError, match="dimension 32 but the index .* has 16"):
        load_for_index("wide", store)


def test_sae_from_another_model_is_refused(tmp_path):
    store = make_store(tmp_path)
    sae = small_sae()
    sae.meta["model"] = {"name": "other", "pretrained": None, "dim": 32, "sha256": "ef" * 32}
    sae.save(store.sae_dir / "other")
    with pytest.raises(SAEError, match="trained on model other"):
        load_for_index("other", store)
    sae.meta["model"]["sha256"] = store.model.sha256
    sae.save(store.sae_dir / "same")
    assert load_for_index(store.sae_dir / "same.json", store).d == 32
