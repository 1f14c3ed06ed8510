"""``napari-genprior bench real-mri | real-nuclei | real-digits`` at quick sizes (the issue-14
bars on held-out real data; the full tables are in benchmarks/results/)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import genprior_bench as bench

EXPECTED = {
    "real-mri": ("medians", "margins_db", "runs", "images"),
    "real-nuclei": ("medians", "runs", "camera_noise"),
    "real-digits": ("cs", "phase", "ratio"),
}


@pytest.fixture(scope="module")
def quick_real(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench-real")
    bench.run_experiments(list(EXPECTED), quick=True, out=out, device="cpu", log=lambda line: None)
    return out


@pytest.mark.parametrize("name", list(EXPECTED))
def test_quick_real_runs_write_tables_and_checks(quick_real, name):
    record = json.loads((quick_real / f"{name}-quick.json").read_text())
    assert record["quick"] is True and set(EXPECTED[name]) <= set(record["data"])
    assert record["checks"], "every real-data experiment states its bars"
    text = (quick_real / f"{name}-quick.md").read_text()
    assert "## Targets" in text and f"bench {name} --quick" in text


def test_real_mri_quick_scores_every_method_on_held_out_real_data(quick_real):
    data = json.loads((quick_real / "real-mri-quick.json").read_text())["data"]
    assert data["images"][0].startswith("MNI152 z=")  # a held-out slab slice
    by_m = data["medians"]["4x variable-density"]
    assert set(by_m) == {"score", "ia", "csgm", "tv", "lasso-wavelet", "adjoint"}
    assert all(np.isfinite(v["psnr"]) for v in by_m.values())
    # even at smoke-test sizes, tv beats the zero-filled image (the table is not noise)
    assert by_m["tv"]["psnr"] > by_m["adjoint"]["psnr"]


def test_real_digits_quick_uses_the_convolutional_prior(quick_real):
    data = json.loads((quick_real / "real-digits-quick.json").read_text())["data"]
    assert data["prior"] == "digits-conv"
    assert set(data["phase"]["success"]) == {"csgm", "twf", "sparta", "copram"}
