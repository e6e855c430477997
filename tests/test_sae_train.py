"""Trainer and metrics: hand-computed metrics, fixed split, AuxK vs dead latents, dictionary recovery, CLI."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from memetui.sae.metrics import (ReconstructionStats, dead_fraction, fire_counts, fvu, l0, mean_cosine,  # noqa: E402
                                 mmcs)
from memetui.sae.model import TopKSAE  # noqa: E402
from memetui.sae.synthetic import sparse_dictionary_data  # noqa: E402
from memetui.sae.dead import DeadTracker  # noqa: E402
from memetui.sae.config import LR_FACTORS  # noqa: E402
from memetui.sae.train import (TrainConfig, Trainer, lr_at, open_training_data, save_result, split_rows,  # noqa: E402
                               train)

X = torch.tensor([[1.0, 0.0], [3.0, 2.0]])
X_HAT = torch.tensor([[1.0, 1.0], [3.0, 0.0]])

pytestmark = pytest.mark.usefixtures("one_torch_thread")



def test_fvu_is_a_ratio_of_sums_around_the_global_mean():
    # mean (2, 1); Σ‖x − x̄‖² = (1 + 1) + (1 + 1) = 4; Σ‖x − x̂‖² = 1 + 4 = 5
    assert fvu(X, X_HAT) == pytest.approx(5 / 4)
    assert fvu(X, X) == 0


def test_l0_dead_fraction_and_cosine_match_hand_values():
    assert l0(torch.tensor([[1.0, 0.0, 2.0], [0.0, 0.0, 3.0]])) == pytest.approx(1.5)
    assert dead_fraction(torch.tensor([0, 3, 0, 1])) == pytest.approx(0.5)
    # cos((1,0),(1,1)) = 1/√2; cos((3,2),(3,0)) = 3/√13
    assert mean_cosine(X, X_HAT) == pytest.approx((2 ** -0.5 + 3 / 13 ** 0.5) / 2)
    assert torch.equal(fire_counts(torch.tensor([[0, 2], [2, 1]]), torch.tensor([[1.0, 0.0], [2.0, 1.0]]), 4),
                       torch.tensor([1, 1, 1, 0]))
    assert mmcs(torch.eye(3), torch.tensor([[1.0, 0, 0], [1.0, 1.0, 0]])) == pytest.approx((1 + 2 ** -0.5) / 2)


def test_streaming_stats_equal_the_pure_functions():
    gen = torch.Generator().manual_seed(0)
    x, x_hat = torch.randn(100, 8, generator=gen) + 1, torch.randn(100, 8, generator=gen)
    acts, idx = torch.rand(100, 3, generator=gen), torch.randint(0, 10, (100, 3), generator=gen)
    stats = ReconstructionStats(10)
    for s in range(0, 100, 30):
        stats.update(x[s:s + 30], x_hat[s:s + 30], acts[s:s + 30], idx[s:s + 30])
    result = stats.result()
    assert result.fvu == pytest.approx(fvu(x, x_hat))
    assert result.mean_cosine == pytest.approx(mean_cosine(x, x_hat))
    assert result.dead_fraction == dead_fraction(fire_counts(idx, acts, 10))


def test_split_by_row_hash_is_fixed_and_disjoint():
    rows = np.arange(10_000)
    train1, val1 = split_rows(rows, 0.1)
    train2, val2 = split_rows(rows[::-1].copy(), 0.1)
    assert set(val1) == set(val2) and not set(train1) & set(val1)
    assert len(val1) == pytest.approx(1000, abs=120)


def test_warmup_then_linear_decay():
    assert lr_at(0, 100, 1.0, 10, 0.2) == pytest.approx(0.1)
    assert lr_at(50, 100, 1.0, 10, 0.2) == 1.0
    assert lr_at(99, 100, 1.0, 10, 0.2) == pytest.approx(1 / 20)
    assert lr_at(49, 100, 1.0, 10, 0.5) == 1.0  # the default: constant for the first half
    assert lr_at(75, 100, 1.0, 10, 0.5) == pytest.approx(0.5)
    assert TrainConfig().decay_fraction == 0.5


def test_learned_decoder_recovers_a_known_sparse_dictionary():
    data = sparse_dictionary_data(12_000, d=32, atoms=48, active=3, zipf=0.0, mean_norm=0.0, noise=0.0, seed=1)
    cfg = TrainConfig(n_latents=96, k=3, epochs=8, batch_size=256, lr=1e-2, matmul="fp32", seed=0)
    result = train(open_training_data(data.x), cfg)
    assert mmcs(result.sae.decoder_directions, torch.from_numpy(data.dictionary)) >= 0.95
    assert result.metrics.fvu < 0.2


def killing_data(n=8000, d=32, seed=0) -> np.ndarray:
    """All variation in a 4-d subspace far from most random decoder directions: most latents die."""
    gen = np.random.default_rng(seed)
    basis = np.linalg.qr(gen.standard_normal((d, 4)))[0].T
    return (gen.standard_normal((n, 4)) @ basis + 3 * basis[0]).astype(np.float32)


def test_auxk_lowers_the_dead_fraction():
    data = open_training_data(killing_data())
    common = dict(n_latents=256, k=4, epochs=6, batch_size=256, lr=3e-3, decoder_init="random", matmul="fp32",
                  aux_window=512, aux_batch=256)
    without = train(data, TrainConfig(aux_weight=0.0, **common)).metrics.dead_fraction
    # weight 4: at 1 the effect (0.02–0.06 over seeds) is within the run-to-run spread; at 4 it is 0.27 -> ≤ 0.012
    with_aux = train(data, TrainConfig(aux_weight=4.0, **common)).metrics.dead_fraction
    assert without > 0.15 and with_aux < without / 4


def test_trains_from_a_memory_mapped_npy_and_writes_outputs(tmp_path):
    file = tmp_path / "emb.npy"
    np.save(file, sparse_dictionary_data(3000, d=16, atoms=32, active=2, seed=2).x.astype(np.float16))
    data = open_training_data(file)
    assert isinstance(data.array, np.memmap)
    result = train(data, TrainConfig(n_latents=64, k=4, epochs=1, batch_size=128))
    path = save_result(result, tmp_path / "out", "tiny")
    for suffix in (".safetensors", ".json", ".metrics.json", ".curve.png"):
        assert path.with_name(f"tiny{suffix}").is_file()
    config = json.loads(path.with_suffix(".json").read_text())
    assert config["k"] == 4 and config["metrics"]["fvu"] == result.metrics.fvu
    assert TopKSAE.load(path).n_latents == 64


def test_train_sae_command_on_embeddings(tmp_path, capsys):
    from memetui.cli import main

    file = tmp_path / "emb.npy"
    np.save(file, sparse_dictionary_data(2000, d=16, atoms=32, active=2, seed=3).x)
    code = main(["train-sae", "--embeddings", str(file), "--latents", "64", "--k", "4", "--batch", "128",
                 "--name", "cli", "--out", str(tmp_path / "o")])
    assert code == 0
    assert (tmp_path / "o" / "cli.safetensors").is_file()
    assert "validation: FVU" in capsys.readouterr().out


def test_dead_tracker_counts_a_fixed_window_of_samples():
    tracker = DeadTracker(4, "cpu")
    assert tracker.dead_fraction(100) == 0.0  # nothing seen yet
    tracker.update(torch.tensor([[1.0, 0.0]] * 10), torch.tensor([[0, 1]] * 10))  # latent 1's act is 0: not fired
    assert tracker.dead(10).tolist() == [False, True, True, True]
    tracker.update(torch.tensor([[1.0, 2.0]] * 10), torch.tensor([[2, 0]] * 10))
    assert tracker.dead(10).tolist() == [False, True, False, True]
    assert tracker.dead(20).tolist() == [False, True, False, True] and tracker.dead(21).sum() == 0
    assert tracker.dead_fraction(10_000_000) == 0.5  # window capped at the 20 samples seen


def test_training_reports_dead_over_the_window_and_over_every_row():
    data = open_training_data(sparse_dictionary_data(3000, d=16, atoms=32, active=2, seed=4).x)
    result = train(data, TrainConfig(n_latents=64, k=4, epochs=1, batch_size=128))
    metrics = result.sae.meta["metrics"]
    assert metrics["dead_window"] == result.dead_window and 0 <= result.dead_window <= 1
    assert metrics["all_rows"] == 3000 and metrics["dead_all_rows"] == result.final.dead_all_rows
    assert result.final.dead_all_rows <= result.metrics.dead_fraction  # more rows, fewer never-firing latents
    assert result.final.val.fvu == result.metrics.fvu and 0 < result.final.train.fvu < 1
    assert set(result.profile_ms) >= {"data", "encode", "select", "decode", "backward", "optimiser", "dead"}


def test_learning_rate_search_keeps_the_candidate_with_the_lowest_fresh_batch_fvu():
    data = open_training_data(sparse_dictionary_data(4000, d=16, atoms=32, active=2, seed=5).x)
    cfg = TrainConfig(n_latents=64, k=4, epochs=2, batch_size=128, lr_search=0.25)
    trainer = Trainer(data, cfg)
    assert [run.lr for run in trainer.runs] == pytest.approx([cfg.learning_rate * f for f in LR_FACTORS])
    assert all(torch.equal(run.sae.W_enc, trainer.sae.W_enc) for run in trainer.runs)  # one init, copied
    assert trainer.plan.search == round(0.25 * trainer.plan.total)
    histories = []
    while len(trainer.runs) > 1:
        histories = [run.history for run in trainer.runs]
        trainer.step()
    assert trainer.steps_done == trainer.plan.search
    last = trainer.search["scored_steps"]
    scores = [np.mean([h["fvu"] for h in history[-last:]]) for history in histories]
    assert trainer.search["scores"] == pytest.approx(scores)
    assert trainer.runs[0].lr == trainer.search["chosen"] == trainer.search["candidates"][int(np.argmin(scores))]
    while not trainer.done:
        trainer.step()
    result = trainer.finish()
    assert result.sae.meta["training"]["lr_used"] == trainer.search["chosen"]
    assert len(result.history) == trainer.plan.total and result.history[0]["lr"] < trainer.search["chosen"]


def test_a_given_learning_rate_trains_one_run():
    data = open_training_data(sparse_dictionary_data(2000, d=16, atoms=32, active=2, seed=6).x)
    trainer = Trainer(data, TrainConfig(n_latents=64, k=4, batch_size=128, lr=4e-3))
    assert [run.lr for run in trainer.runs] == [4e-3] and trainer.plan.search == 0
    assert TrainConfig(lr_search=0).lr_candidates() == [TrainConfig().learning_rate]


def test_evaluations_during_training_read_a_fixed_bounded_subset_of_validation_rows():
    from memetui.sae.train import interim_rows

    small = np.arange(100, 5000)
    assert interim_rows(small, 10_000) is small
    large = np.arange(3, 1_000_003, 7)  # 142,858 rows
    picked = interim_rows(large, 16_384)
    assert 8_192 < len(picked) <= 16_384 and np.isin(picked, large).all()
    assert np.array_equal(picked, interim_rows(large, 16_384)) and picked[0] == large[0]


def test_the_encoder_steps_at_its_own_scale_of_the_learning_rate():
    data = open_training_data(sparse_dictionary_data(2000, d=16, atoms=32, active=2, seed=7).x)
    cfg = TrainConfig(n_latents=64, k=4, batch_size=128, lr=4e-3, encoder_lr_scale=2.0)
    trainer = Trainer(data, cfg)
    enc_norm = float(trainer.sae.W_enc.detach().norm(dim=1).mean())
    before = trainer.sae.W_enc.detach().clone()
    trainer.step()
    encoder, rest = trainer.runs[0].optimizer.param_groups
    assert encoder["params"] == [trainer.sae.W_enc] and len(rest["params"]) == 3
    assert encoder["lr"] == pytest.approx(rest["lr"] * 2.0 * enc_norm) and enc_norm < 0.5
    # Adam's first step moves each coordinate by about its group's rate: the encoder's scaled one
    moved = (trainer.sae.W_enc.detach() - before).abs()
    assert float(moved.max()) <= encoder["lr"] * 1.01 < rest["lr"]


def test_revive_raises_dead_latents_during_the_decay_too_in_step_with_the_rate():
    data = open_training_data(sparse_dictionary_data(3000, d=16, atoms=32, active=2, seed=8).x)
    cfg = TrainConfig(n_latents=64, k=4, epochs=2, batch_size=128, lr=4e-3, decay_fraction=1.0, revive=0.05,
                      aux_window=128)
    trainer = Trainer(data, cfg)
    with torch.no_grad():
        trainer.sae.b_enc[:8] = -100.0  # silenced: never in any row's top-k
    raised = []
    while not trainer.done:
        b = trainer.sae.b_enc.detach()[:8].clone()
        progress = trainer.step()
        raised.append((float((trainer.sae.b_enc.detach()[:8] - b).mean()), progress.lr))
    later = [(r, lr) for r, lr in raised[2:] if lr > 0]  # dead from the second step on (window 1 batch)
    assert later and all(r == pytest.approx(0.05 * lr / 4e-3, rel=1e-3, abs=1e-6) for r, lr in later)
