"""``napari-genprior bench``: the mri, microscopy and speed experiments at quick sizes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import genprior_bench as bench
from genprior_bench.microscopy import (
    poisson_deviance,
    richardson_lucy_normalised,
    richardson_lucy_thinned,
    thinned_choice,
)

NAMES = ("mri", "microscopy", "speed")
FIGURES = {"mri": ("psnr", "example"), "microscopy": ("examples",), "speed": ("seconds",)}
DATA_KEYS = {
    "mri": ("sizes", "methods", "per_slice", "median", "floor_psnr"),
    "microscopy": (
        "sizes",
        "tasks",
        "baselines",
        "per_image",
        "median_psnr",
        "deconvolution_margin_db",
    ),
    "speed": ("sizes", "device", "torch_threads", "measured"),
}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """The three experiments once at quick sizes: {name: parsed JSON}, and the folder."""
    out = tmp_path_factory.mktemp("bench-tasks")
    results = bench.run_experiments(
        list(NAMES), quick=True, out=out, device="cpu", log=lambda line: None
    )
    assert [r.name for r in results] == list(NAMES)
    return {n: json.loads((out / f"{n}-quick.json").read_text()) for n in NAMES}, out


@pytest.mark.parametrize("name", NAMES)
def test_quick_run_writes_markdown_json_and_figures(quick_run, name):
    records, out = quick_run
    stem = f"{name}-quick"
    for path in [out / f"{stem}.md"] + [out / f"{stem}-{f}.png" for f in FIGURES[name]]:
        assert path.is_file() and path.stat().st_size > 0, path
    record = records[name]
    assert {"name", "title", "quick", "seconds", "environment", "checks", "data"} <= set(record)
    assert record["name"] == name and record["quick"] is True
    assert set(DATA_KEYS[name]) <= set(record["data"])
    assert record["checks"] and all(isinstance(v, bool) for v in record["checks"].values())
    text = (out / f"{stem}.md").read_text()
    assert "## Targets" in text and "--quick" in text and "| method |" in text


def test_mri_quick_tv_beats_zero_filled(quick_run):
    median = quick_run[0]["mri"]["data"]["median"]
    tv, zf = median["tv"]["4"]["psnr"], median["adjoint"]["4"]["psnr"]
    assert tv > zf + 3, (tv, zf)
    for method, by_acc in median.items():
        s = by_acc["4"]
        assert s is not None and math.isfinite(s["psnr"]) and 0 < s["ssim"] <= 1, method


def test_microscopy_quick_scores_are_sane(quick_run):
    data = quick_run[0]["microscopy"]["data"]
    med = data["median_psnr"]
    for task, methods in med.items():
        for method, groups in methods.items():
            assert all(math.isfinite(v) for v in groups.values()), (task, method)
    # the boundary-exact Richardson-Lucy and csgm deblur: better than the blurred measurement
    for g in ("procedural", "real"):
        meas = med["deconvolution"]["measurement"][g]
        assert med["deconvolution"]["RL boundary-normalised"][g] > meas + 2
        assert med["deconvolution"]["csgm"][g] > meas + 2
        assert med["denoising"]["denoise_tv_chambolle"][g] > med["denoising"]["measurement"][g]


def test_speed_quick_ratios_are_finite_and_positive(quick_run):
    data = quick_run[0]["speed"]["data"]
    assert data["torch_threads"] >= 1
    cpu = data["measured"]["cpu"]
    for key in ("restarts", "overhead"):
        assert math.isfinite(cpu[key]["ratio"]) and cpu[key]["ratio"] > 0, key
    assert math.isfinite(cpu["overhead"]["per_step"]["ratio"])  # set-up apart (issue 18)
    assert cpu["throughput"]["runs"]["1"]["patch_steps_per_s"] > 0
    for task, methods in cpu["per_method"].items():
        for method, r in methods.items():
            assert r["seconds"] > 0 and r["iterations"] >= 1, (task, method)


def test_poisson_deviance_is_zero_at_the_counts_and_positive_elsewhere():
    c = np.array([0, 1, 5, 20])
    assert poisson_deviance(c, c.astype(float)) == pytest.approx(0, abs=1e-6)
    assert poisson_deviance(c, c + 1.0) > 0


def test_thinned_choice_prefers_the_estimate_that_predicts_the_other_half():
    rng = np.random.default_rng(0)
    truth = np.full((32, 32), 50.0)
    y = rng.poisson(truth).astype(float)  # gain 1: y is counts
    # candidate "estimates": the right level, and levels 30% off either way
    idx = thinned_choice(
        y, 1.0, [0.7, 1.0, 1.3], lambda y1, f: np.full_like(y1, 50.0 * f), lambda x: x
    )
    assert idx == 1


def test_normalised_richardson_lucy_is_exact_at_the_zero_boundary():
    from genprior_bench._common import held_out_nuclei
    from napari_genprior import make_operator

    x = held_out_nuclei(1)[0]
    A = make_operator("blur", shape=x.shape, sigma=2.0, boundary="zero")
    y = A.measure(x)  # noise-free
    # without noise, the iterations approach x from the blurred image
    assert np.mean((richardson_lucy_normalised(y, A.psf, 100) - x) ** 2) < np.mean((y - x) ** 2)
    k, im = richardson_lucy_thinned(
        A.measure(x, photons=100, seed=0), A.psf, 100, float(y.max()), normalised=True
    )
    assert k >= 1 and im.shape == x.shape and np.all(np.isfinite(im))
