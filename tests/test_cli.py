"""The CLI end to end: index, search (plain and --json), info, and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import TINY_MODEL, make_image_folder


def memetui(*args, env_models=None, cwd=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if env_models:
        env["MEMETUI_MODELS"] = str(env_models)
    return subprocess.run([sys.executable, "-m", "memetui.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=120)


@pytest.fixture(scope="module")
def built(tiny_model_dir, tmp_path_factory):
    """16 images indexed through the real `memetui index` (once per module: the tests only read it)."""
    images = make_image_folder(tmp_path_factory.mktemp("cli") / "img", 16)
    result = memetui("index", images, "--no-ocr", "--model", TINY_MODEL, "--pretrained", f"{TINY_MODEL}.safetensors",
                     env_models=tiny_model_dir)
    assert result.returncode == 0, result.stderr
    assert "added 16" in result.stdout
    return images


def test_search_json_parses_and_ranks_by_dot_product(built, tiny_model_dir):
    from memetui.index.store import IndexStore

    result = memetui("search", "red", "-0.5:blue", "-k", "5", "--json", "--index", built, env_models=tiny_model_dir)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert [t["weight"] for t in payload["query"]["terms"]] == [1.0, -0.5]
    scores = [r["score"] for r in payload["results"]]
    assert len(scores) == 5 and scores == sorted(scores, reverse=True)
    store = IndexStore.open(built / ".memetui")
    assert {os.path.basename(r["path"]) for r in payload["results"]} <= {p.name for p in built.iterdir()}
    top = payload["results"][0]
    assert store.paths([top["row"]])[0] == __import__("pathlib").Path(top["path"])


def test_image_term_finds_itself_first(built, tiny_model_dir):
    target = built / "purple_006.png"
    result = memetui("search", "--image", target, "-k", "3", "--index", built, env_models=tiny_model_dir)
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0].split()
    assert first[0] == "1" and first[2] == str(target) and float(first[1]) == pytest.approx(1.0, abs=2e-3)


def test_info_reports_counts_and_model(built, tiny_model_dir):
    result = memetui("info", built, "--json", env_models=tiny_model_dir)
    info = json.loads(result.stdout)
    assert info["rows"] == 16 and info["files"]["ok"] == 16 and info["model"]["name"] == TINY_MODEL


def assert_one_line_error(result, text):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("memetui: error:") and text in lines[0], result.stderr


def test_app_with_an_unknown_device_is_one_line_error():
    assert_one_line_error(memetui("--device", "banana"), "unknown device 'banana'")


def test_missing_folder_is_one_line_error(tmp_path):
    assert_one_line_error(memetui("index", tmp_path / "nope"), "not a folder")


def test_unreadable_index_is_one_line_error(tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{not json")
    assert_one_line_error(memetui("search", "cat", "--index", tmp_path / "broken"), "cannot read")
    assert_one_line_error(memetui("info", tmp_path / "missing"), "no index at")


def test_wrong_model_is_one_line_error(built, tiny_model_dir):
    from safetensors.torch import load_file, save_file

    tensors = load_file(tiny_model_dir / f"{TINY_MODEL}.safetensors")
    tensors["text_projection"] = tensors["text_projection"] * 2
    save_file(tensors, built.parent / "other.safetensors")
    result = memetui("index", built, "--model", TINY_MODEL, "--pretrained", built.parent / "other.safetensors",
                     env_models=tiny_model_dir)
    assert_one_line_error(result, "does not match the index model")


def test_empty_query_and_bad_k_are_usage_errors(built, tiny_model_dir):
    assert_one_line_error(memetui("search", "--index", built, env_models=tiny_model_dir), "at least one")
    bad_k = memetui("search", "cat", "-k", "0", "--index", built, env_models=tiny_model_dir)
    assert bad_k.returncode == 2 and "must be >= 1" in bad_k.stderr


def test_hnsw_results_equal_exact_results(tiny_index):
    from memetui.index.ann import AnnSearcher
    from memetui.index.store import IndexStore

    store = IndexStore.open(tiny_index(40))
    graph, exact = AnnSearcher(store, exact=False), AnnSearcher(store, exact=True)
    assert not graph.exact and exact.exact
    rng = np.random.default_rng(0)
    for _ in range(20):
        query = rng.standard_normal(store.dim).astype(np.float32)
        a, b = graph.search(query, 10), exact.search(query, 10)
        np.testing.assert_array_equal(a.rows, b.rows)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5)
