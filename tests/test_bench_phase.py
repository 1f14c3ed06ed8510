"""``napari-genprior bench phase`` at quick sizes, and its helpers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import genprior_bench as bench
import napari_genprior as ngp
from genprior_bench.phase import (
    BASELINES,
    GENERATIVE,
    METHODS,
    QUICK,
    best_codes,
    best_fit,
    measure,
    relative_error,
    variants,
)

FIGURES = ("grid", "success", "representation")
DATA_KEYS = (
    "ms",
    "methods",
    "evaluation_digits",
    "tuning_digits",
    "representation",
    "tuning",
    "errors",
    "errors_range",
    "success",
    "success_range",
    "success_representable",
    "mean_error",
    "mean_error_range",
    "failures_range",
    "failures_fitting_better",
    "mean_excess_error",
    "in_range",
    "seconds_per_reconstruction",
)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """The experiment once at quick sizes: (result, output folder)."""
    out = tmp_path_factory.mktemp("bench-phase")
    (result,) = bench.run_experiments(
        ["phase"], quick=True, out=out, device="cpu", log=lambda line: None
    )
    return result, out


def test_quick_run_writes_markdown_json_and_figures(quick_run):
    _, out = quick_run
    for path in [out / "phase-quick.md", out / "phase-quick.json"] + [
        out / f"phase-quick-{fig}.png" for fig in FIGURES
    ]:
        assert path.is_file() and path.stat().st_size > 0, path
    record = json.loads((out / "phase-quick.json").read_text())
    assert {"name", "title", "quick", "seconds", "environment", "checks", "data"} <= set(record)
    assert record["name"] == "phase" and record["quick"] is True
    assert set(DATA_KEYS) <= set(record["data"])
    assert record["checks"] and all(isinstance(v, bool) for v in record["checks"].values())
    text = (out / "phase-quick.md").read_text()
    assert "## Targets" in text and "--quick" in text and "representation error" in text


def test_quick_run_has_every_method_at_every_m(quick_run):
    result, _ = quick_run
    d = result.data
    assert d["ms"] == list(QUICK.ms) and d["methods"] == list(METHODS)
    for key in ("success", "success_range", "mean_error", "mean_error_range"):
        assert set(d[key]) == set(METHODS)
        assert all(len(v) == len(QUICK.ms) for v in d[key].values())
    for n in METHODS:
        errors = np.array(d["errors"][n])
        assert errors.shape == (len(QUICK.ms), QUICK.digits) and np.all(np.isfinite(errors))
    assert set(d["tuning"]["chosen"]) == set(GENERATIVE)
    assert len(d["tuning"]["variants"]) == len(variants(QUICK))
    # no digit is used both to tune and to evaluate
    assert not set(d["tuning_digits"]) & set(d["evaluation_digits"])


def test_quick_run_generative_methods_beat_the_baselines(quick_run):
    # would fail if the prior, the amplitude loss or the operator were broken: at m = 800
    # csgm and twist land near the prior's best approximation of the digit and within its
    # representation error of the digit itself, while no baseline gets anywhere near it
    d = quick_run[0].data
    j = d["ms"].index(800)
    rep = np.array(d["representation"]["evaluation_errors"])
    for n in GENERATIVE:
        assert d["mean_error_range"][n][j] < 0.3, (n, d["mean_error_range"][n])
        assert d["mean_error"][n][j] < rep.mean() + 0.15, (n, d["mean_error"][n], rep)
    # images in the range (x = G(z*)): at m = 100 at least one method recovers them closely
    assert min(d["in_range"]["mean_error"][n][0] for n in GENERATIVE) < 0.3, d["in_range"]
    for n in BASELINES:
        assert min(d["mean_error"][n]) > 0.6, (n, d["mean_error"][n])
    assert 0.05 < d["representation"]["median"] < 0.6


def test_relative_error_ignores_the_global_sign():
    x = np.random.default_rng(0).random((28, 28))
    assert relative_error(-x, x) == 0.0 and relative_error(x, x) == 0.0
    assert relative_error(np.zeros_like(x), x) == pytest.approx(1.0)
    assert relative_error(1.1 * x, x) == pytest.approx(0.1)


def test_best_fit_recovers_an_image_in_the_range():
    G = ngp.load_prior("digits-vae")
    with torch.no_grad():
        X = G(torch.randn(2, G.latent_dim, generator=torch.Generator().manual_seed(3))).numpy()
    errors, images = best_fit(G, X, restarts=8, steps=300, seed=0, device="cpu")
    assert images.shape == X.shape and np.all(errors < 0.1), errors
    assert all(p.requires_grad for p in G.parameters())  # the caller's prior is untouched


def test_best_codes_are_the_lowest_misfits_of_the_pool():
    G = ngp.load_prior("digits-vae")
    with torch.no_grad():
        x = G(torch.randn(1, G.latent_dim, generator=torch.Generator().manual_seed(4)))[0].numpy()
    A, y = measure(x, index=0, m=200, seed=0)
    codes = best_codes(G, A, y, count=5, pool=300, seed=1)
    assert codes.shape == (5, G.latent_dim)
    with torch.no_grad():
        z = torch.randn((300, G.latent_dim), generator=torch.Generator().manual_seed(1))
        misfit = (A(G(z)) - torch.as_tensor(y)).pow(2).sum(1)
    expected = z[torch.argsort(misfit)[:5]].numpy()
    np.testing.assert_allclose(codes, expected)
