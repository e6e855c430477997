"""train-sae / features: bad arguments and hostile names are one-line errors, before any work is done."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from memetui.cli import main  # noqa: E402
from memetui.sae.export import make_thumbnail  # noqa: E402
from memetui.sae.synthetic import sparse_dictionary_data  # noqa: E402
from memetui.sae.train import TrainConfig, open_training_data, save_result, train  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")



def embeddings(tmp_path):
    file = tmp_path / "emb.npy"
    np.save(file, sparse_dictionary_data(1500, d=16, atoms=32, active=2, seed=3).x)
    return file


def one_line_error(capsys, code, expected_code, words):
    err = capsys.readouterr().err
    assert code == expected_code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err and words in lines[0], err


def test_epochs_nan_is_a_one_line_error(tmp_path, capsys):
    code = main(["train-sae", "--embeddings", str(embeddings(tmp_path)), "--epochs", "nan"])
    one_line_error(capsys, code, 2, "epochs must be a finite number > 0")


def test_lr_inf_is_a_one_line_error(tmp_path, capsys):
    code = main(["train-sae", "--embeddings", str(embeddings(tmp_path)), "--lr", "inf"])
    one_line_error(capsys, code, 2, "lr must be a finite number > 0")


def test_out_naming_a_file_fails_before_training(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code = main(["train-sae", "--embeddings", str(embeddings(tmp_path)), "--out", str(tmp_path / "file")])
    one_line_error(capsys, code, 2, "is not a folder")


def test_name_escaping_the_sae_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "a" / "b"
    code = main(["train-sae", "--embeddings", str(embeddings(tmp_path)), "--out", str(out), "--name", "../../escape"])
    one_line_error(capsys, code, 2, "plain file name")
    assert not list(tmp_path.rglob("escape*"))


def test_features_out_naming_a_file_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code = main(["features", "--out", str(tmp_path / "file")])
    one_line_error(capsys, code, 2, "is not a folder")


def test_a_zero_byte_thumbnail_from_a_killed_run_is_rewritten(tmp_path):
    from PIL import Image

    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "img.png")
    target = tmp_path / "thumbs" / "1.jpg"
    target.parent.mkdir()
    target.write_bytes(b"")  # what a kill during a non-atomic save left behind
    assert make_thumbnail(tmp_path / "img.png", target)
    with Image.open(target) as thumb:
        assert thumb.size == (40, 30)
    assert not list(target.parent.glob(".*.tmp"))


def test_saving_plots_without_pyplot_or_a_global_backend(tmp_path):
    import matplotlib

    backend, had_pyplot = matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules
    data = open_training_data(sparse_dictionary_data(1500, d=16, atoms=32, active=2, seed=5).x)
    result = train(data, TrainConfig(n_latents=32, k=2, epochs=1, batch_size=128))
    path = save_result(result, tmp_path, "p")
    assert path.with_name("p.curve.png").stat().st_size > 1000
    assert matplotlib.get_backend() == backend and ("matplotlib.pyplot" in sys.modules) == had_pyplot
    assert torch.equal(result.sae.W_dec, type(result.sae).load(path).W_dec)
