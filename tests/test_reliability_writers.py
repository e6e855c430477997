"""ENOSPC at every write point of `import`, `train-sae` and `features` (the index's own matrix is in
test_reliability_faults.py): one line and a non-zero exit, never a traceback; the rerun ends as a
clean run does (nothing lost, nothing half-written kept)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from memetui import atomic
from memetui.cli import main
from reliability_helpers import Faults
from test_import import clip_retrieval_folder

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run_with_fault(argv: list[str], fault, capsys) -> tuple[int, str]:
    """Run `memetui ARGV` with `fault` installed at every write point; (exit code, stderr)."""
    capsys.readouterr()
    atomic.set_fault_hook(fault)
    try:
        code = main([str(a) for a in argv])
    finally:
        atomic.set_fault_hook(None)
    return code, capsys.readouterr().err


def matrix(argv_for, prepare, result_of, tmp_path, capsys) -> int:
    """Fail each write point of `argv_for(folder)` once; after each, a clean rerun must equal a clean run."""
    clean = prepare(tmp_path / "clean")
    counter = Faults()
    code, _ = run_with_fault(argv_for(clean), counter, capsys)
    assert code == 0
    expected, points = result_of(clean), len(counter.seen)
    assert points >= 2
    for n in range(1, points + 1):
        folder = prepare(tmp_path / f"fault{n}")
        fault = Faults(n)
        code, err = run_with_fault(argv_for(folder), fault, capsys)
        assert fault.fired and code != 0, (n, fault.fired, code)
        assert err.count("\n") == 1 and err.startswith("memetui: error: ") and "Traceback" not in err, err
        code, err = run_with_fault(argv_for(folder), None, capsys)
        assert code == 0, (n, fault.fired, err)
        assert result_of(folder) == expected, (n, fault.fired)
        assert not [p for p in folder.rglob("*.tmp")], fault.fired
        shutil.rmtree(folder)
    return points


def test_enospc_at_every_write_point_of_import(tmp_path, capsys):
    source = tmp_path / "cr"
    clip_retrieval_folder(source, shards=(30, 20))

    def prepare(folder):
        folder.mkdir()
        return folder / "index"

    def result_of(index):
        from memetui.index.store import IndexStore

        store = IndexStore.open(index)
        try:
            rows = [(store.item(r).path, store.item(r).url, store.item(r).caption) for r in range(store.count)]
            return np.asarray(store.embeddings).tobytes(), rows
        finally:
            store.close()

    points = matrix(lambda index: ["import", source, "--index", index, "--model", "ViT-B/32", "--trust-model"],
                    prepare, result_of, tmp_path, capsys)
    print(f"reliability: import write points {points}, all survived")


@pytest.fixture(scope="module")
def small_index(tiny_model_dir, tmp_path_factory):
    import os

    from conftest import build_tiny_index, make_image_folder

    os.environ["MEMETUI_MODELS"] = str(tiny_model_dir)
    folder = tmp_path_factory.mktemp("writers")
    return build_tiny_index(make_image_folder(folder / "images", 16), folder / "index")


def copy_index(small_index, folder):
    shutil.copytree(small_index, folder)
    return folder


TRAIN = ["--latents", "32", "--k", "4", "--epochs", "1", "--batch", "8", "--name", "s", "--device", "cpu", "--no-labels"]


def test_enospc_at_every_write_point_of_train_sae(small_index, tmp_path, capsys):
    def result_of(index):
        from memetui.sae.model import TopKSAE

        sae = TopKSAE.load(index / "sae" / "s")
        return sae.W_dec.detach().numpy().tobytes(), sorted(p.name for p in (index / "sae").iterdir())

    points = matrix(lambda index: ["train-sae", index, *TRAIN], lambda f: copy_index(small_index, f),
                    result_of, tmp_path, capsys)
    print(f"reliability: train-sae write points {points}, all survived")


def test_enospc_at_every_write_point_of_features(small_index, tmp_path, capsys):
    trained = tmp_path / "trained"
    copy_index(small_index, trained)
    assert main(["train-sae", str(trained), *TRAIN]) == 0

    def prepare(folder):
        copy_index(trained, folder / "index")
        return folder

    def result_of(folder):
        pages = sorted(p.relative_to(folder / "html").as_posix() for p in (folder / "html").rglob("*") if p.is_file())
        assert all((folder / "html" / p).stat().st_size > 0 for p in pages)
        return pages

    points = matrix(lambda folder: ["features", folder / "index", "--out", folder / "html"], prepare, result_of,
                    tmp_path, capsys)
    print(f"reliability: features write points {points}, all survived")
