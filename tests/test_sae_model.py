"""TopKSAE: top-k codes, unit decoder, encoder copy, sparse kernels = reference, save/load, index checks."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from memetui.errors import SAEError  # noqa: E402
from memetui.index.store import IndexStore, ModelInfo  # noqa: E402
from memetui.sae.kernels import (block_top_k, gather_dot, gather_dot_reference, scatter_rows,  # noqa: E402
                                 scatter_rows_reference, topk_encode)
from memetui.sae.model import TopKSAE, load_for_index  # noqa: E402
from memetui.sae.step import loss_and_grads, make_optimizer, train_step  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")



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
    optimizer = make_optimizer(sae.parameters(), 1e-2).optimizer
    for _ in range(5):
        train_step(sae, optimizer, sae.normalize(torch.randn(64, 32) + 2.0), torch.ones(128, dtype=torch.bool),
                   1 / 32, 16, 32, 1.0)
        torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(128))
    sae.W_dec.grad = torch.randn_like(sae.W_dec)
    sae.remove_parallel_grad_()
    assert float((sae.W_dec.grad * sae.W_dec.detach()).sum(1).abs().max()) < 1e-5


def test_scatter_rows_matches_index_add_reference():
    gen = torch.Generator().manual_seed(1)
    idx = torch.randint(0, 50, (40, 6), generator=gen)
    vals, rows = torch.randn(40, 6, generator=gen), torch.randn(40, 12, generator=gen)
    torch.testing.assert_close(scatter_rows(idx, vals, rows, 50), scatter_rows_reference(idx, vals, rows, 50))


def test_gather_dot_matches_embedding_bmm_reference():
    gen = torch.Generator().manual_seed(2)
    idx = torch.randint(0, 100, (30, 5), generator=gen)
    weight, rows = torch.randn(100, 16, generator=gen), torch.randn(30, 16, generator=gen)
    torch.testing.assert_close(gather_dot(idx, weight, rows), gather_dot_reference(idx, weight, rows))


def dense_autograd_loss(sae, x, dead, aux_weight, k_aux, aux_rows):
    """The step's loss written densely with autograd (the reference for the hand-written gradients)."""
    pre = torch.nn.functional.linear(x, sae.W_enc, sae.b_enc)
    idx = pre.detach().topk(sae.k, dim=1).indices
    z = torch.zeros_like(pre).scatter(1, idx, F.relu(pre.gather(1, idx)))
    x_hat = z @ sae.W_dec + sae.b_dec
    fvu = (x_hat - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum()
    e = (x - x_hat).detach()[:aux_rows]
    masked = pre[:aux_rows].masked_fill(~dead, float("-inf"))
    aux_idx = masked.detach().topk(k_aux, dim=1).indices
    z_aux = torch.zeros_like(masked).scatter(1, aux_idx, F.relu(masked.gather(1, aux_idx)))
    e_hat = z_aux @ sae.W_dec
    gain = ((e_hat * e).sum() / e_hat.pow(2).sum()).clamp_min(0).detach()
    aux = (gain * e_hat - e).pow(2).sum() / (e - e.mean(0)).pow(2).sum()
    return fvu + aux_weight * aux


def test_hand_written_sparse_gradients_equal_dense_autograd_with_auxk():
    torch.manual_seed(4)
    sae = small_sae(d=24, n=96, k=6)
    x = sae.normalize(torch.randn(40, 24) + 2.0)
    dead = torch.zeros(96, dtype=torch.bool)
    dead[::3] = True
    out = loss_and_grads(sae, x, dead, aux_weight=0.5, k_aux=5, aux_batch=16)
    ours = {name: p.grad.clone() for name, p in sae.named_parameters()}
    sae.zero_grad(set_to_none=True)
    loss = dense_autograd_loss(sae, x, dead, 0.5, 5, 16)
    loss.backward()
    assert out.stats.loss == pytest.approx(float(loss.detach()), rel=1e-5)
    for name, p in sae.named_parameters():
        torch.testing.assert_close(ours[name], p.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_topk_encode_matches_dense_relu_topk():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(16, 24, generator=gen)
    w, b = torch.randn(64, 24, generator=gen), torch.randn(64, generator=gen)
    acts, idx = topk_encode(x, w, b, 6)
    vals, idx2 = F.relu(F.linear(x, w, b)).topk(6, dim=1)
    order1, order2 = idx.sort(1).indices, idx2.sort(1).indices
    assert torch.equal(idx.gather(1, order1), idx2.gather(1, order2))
    torch.testing.assert_close(acts.gather(1, order1), vals.gather(1, order2))


@pytest.mark.parametrize("shape", [(7, 2048, 16), (5, 16384, 16), (9, 520, 8), (4, 96, 6), (3, 100, 7), (6, 64, 32)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_block_top_k_selects_the_same_values_as_topk(shape, dtype):
    B, n, k = shape
    gen = torch.Generator().manual_seed(n + k)
    for pre in (torch.randn(B, n, generator=gen), torch.randint(-3, 4, (B, n), generator=gen).float()):  # ties too
        pre = pre.to(dtype)
        values, indices = block_top_k(pre, k)
        expected = pre.topk(k, dim=1).values
        assert indices.shape == (B, k) and all(row.unique().numel() == k for row in indices)  # k distinct latents
        torch.testing.assert_close(values.sort(1, descending=True).values, expected, rtol=0, atol=0)
        torch.testing.assert_close(pre.gather(1, indices), values, rtol=0, atol=0)


def test_bf16_selection_activations_are_within_bf16_rounding():
    sae = small_sae()
    x = torch.randn(32, 32) + 2
    acts, idx = sae.encode(x, matmul_dtype=torch.bfloat16)
    exact = F.relu(sae.pre_acts(x)).gather(1, idx)
    torch.testing.assert_close(acts, exact, rtol=2e-2, atol=2e-2)


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
    with pytest.raises(SAEError, match="s.safetensors does not match s.json"):
        TopKSAE.load(tmp_path / "s")
    config = json.loads((tmp_path / "s.json").read_text())
    del config["tensors_sha256"]  # a checkpoint from before the hash was recorded
    (tmp_path / "s.json").write_text(json.dumps(config))
    with pytest.raises(SAEError, match="cannot read SAE s: "):
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
