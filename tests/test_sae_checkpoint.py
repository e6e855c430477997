"""SAE files survive crashes and hostile input: verified pairs, NaN refused, stale temp files, plain names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from memetui.errors import SAEError, UsageError  # noqa: E402
from memetui.sae.checkpoint import check_name, clean_stale_tmp, describe  # noqa: E402
from memetui.sae.model import TopKSAE  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def sae(seed=0) -> TopKSAE:
    model = TopKSAE(16, 32, 4, seed=seed)
    model.init_from_data_(torch.randn(200, 16) + 1.0)
    return model


def test_a_pair_broken_between_the_two_writes_is_refused_in_one_line(tmp_path):
    sae(0).save(tmp_path / "s")
    old_json = (tmp_path / "s.json").read_text()
    sae(1).save(tmp_path / "s")  # retrain the same name ...
    (tmp_path / "s.json").write_text(old_json)  # ... killed after the tensors, before the JSON
    with pytest.raises(SAEError) as err:
        TopKSAE.load(tmp_path / "s")
    assert "does not match s.json" in str(err.value) and "\n" not in str(err.value)


def test_nan_weights_are_refused_at_load(tmp_path):
    model = sae()
    with torch.no_grad():
        model.W_dec[3, 2] = float("nan")
    model.save(tmp_path / "nan")
    with pytest.raises(SAEError, match=r"^SAE nan is corrupt: non-finite values in W_dec$"):
        TopKSAE.load(tmp_path / "nan")


def test_json_of_the_wrong_shape_is_one_line(tmp_path):
    sae().save(tmp_path / "s")
    config = json.loads((tmp_path / "s.json").read_text())
    config["d"] = 17
    del config["tensors_sha256"]
    (tmp_path / "s.json").write_text(json.dumps(config))
    with pytest.raises(SAEError, match="SAE s is corrupt: ") as err:
        TopKSAE.load(tmp_path / "s")
    assert "\n" not in str(err.value) and len(str(err.value)) < 200


def test_shipped_sample_sae_without_a_hash_still_loads():
    loaded = TopKSAE.load(ROOT / "sample_index" / "sae" / "sample")
    assert loaded.n_latents == 512 and torch.isfinite(loaded.W_dec).all()


KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from memetui.atomic import atomic_path
with atomic_path(Path(sys.argv[1]) / "s.safetensors") as tmp:
    tmp.write_bytes(b"x" * 4096)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_temp_files_of_a_killed_writer_are_removed_by_the_next_save(tmp_path):
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(tmp_path)], cwd=ROOT, capture_output=True)
    assert proc.returncode == -9
    leftovers = list(tmp_path.glob(".s.safetensors.*.tmp"))
    assert len(leftovers) == 1
    sae().save(tmp_path / "s")
    assert not list(tmp_path.glob(".*.tmp")) and TopKSAE.load(tmp_path / "s").d == 16


def test_temp_files_of_a_live_writer_are_kept(tmp_path):
    mine = tmp_path / f".x.json.{os.getpid()}.1234.tmp"
    parent = tmp_path / f".y.json.{os.getppid()}.tmp"
    mine.write_text("{}")
    parent.write_text("{}")
    assert clean_stale_tmp(tmp_path) == [] and mine.exists() and parent.exists()


@pytest.mark.parametrize("name", ["../../escape", "a/b", "..", ".hidden", "", "x\x1b[31m", "a\\b"])
def test_names_must_be_plain_file_names(name):
    with pytest.raises(UsageError, match="plain file name"):
        check_name(name)


def test_describe_reads_dead_fractions_from_the_json(tmp_path):
    model = sae()
    model.meta["metrics"] = {"fvu": 0.2, "dead_window": 0.01, "dead_all_rows": 0.005}
    model.save(tmp_path / "m")
    summary = describe(tmp_path / "m.json")
    assert (summary.name, summary.val_fvu, summary.dead_window, summary.dead_all_rows) == ("m", 0.2, 0.01, 0.005)
    assert describe(tmp_path / "missing").val_fvu is None
