"""``bench peers``: the side-by-side comparison runs, gives the peers the same data, and says
plainly when a peer is not installed (DeepInverse is not a dependency)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

from genprior_bench import EXPERIMENTS, peers
from genprior_bench._common import scores


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
    except Exception:  # noqa: BLE001 (DeepInverse raises RuntimeError beside a mismatched torchvision)
        return False
    return True


def test_peers_is_a_bench_experiment():
    assert EXPERIMENTS["peers"] == "peers"


def test_sigpy_gets_exactly_our_mri_measurement_model():
    import sigpy.mri as mr

    x, y, A = peers.case_data("mri-brain", peers.QUICK, 0)
    S = mr.linop.Sense(np.ones((1, *x.shape), np.complex64), weights=np.asarray(A.mask))
    ours = A(torch.from_numpy(x)[None])[0].numpy()
    np.testing.assert_allclose(S(x.astype(np.complex64))[0], ours, atol=1e-4 * np.abs(ours).max())


def test_the_same_case_is_the_same_data_in_every_process():
    a = peers.case_data("inpaint-digit", peers.QUICK, 3)
    b = peers.case_data("inpaint-digit", peers.QUICK, 3)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_equal_error_takes_the_first_rung_that_reaches_the_peer():
    ours = {
        "ladder": [
            {"steps": 10, "psnr": 20.0, "seconds": 0.1},
            {"steps": 20, "psnr": 24.97, "seconds": 0.2},
            {"steps": 40, "psnr": 26.0, "seconds": 0.4},
        ]
    }
    assert peers.equal_error(ours, {"psnr": 25.0})["steps"] == 20  # within 0.05 dB
    assert peers.equal_error(ours, {"psnr": 27.0}) is None


def test_ours_and_scikit_image_richardson_lucy_run_the_same_iterations():
    ours = peers.run_tool("deblur-nuclei", "ours-rl", 1, True, 0)
    theirs = peers.run_tool("deblur-nuclei", "skimage-rl", 1, True, 0)
    for r in (ours, theirs):
        assert r["threads"] == 1 and r["seconds"] > 0 and np.isfinite(r["psnr"])
    assert ours["version"] and theirs["version"]
    assert [r["steps"] for r in ours["ladder"]] == list(peers.RL_LADDER)  # for equal error


@pytest.mark.skipif(_importable("deepinv"), reason="DeepInverse is importable here")
def test_a_peer_that_is_not_installed_is_reported_not_raised():
    r = peers.run_tool("inpaint-digit", "deepinv-csgm", 1, True, 0)
    assert "deepinv is not importable here" in r["error"]


@pytest.mark.skipif(not _importable("deepinv"), reason="needs DeepInverse")
def test_deepinv_gets_our_operator_with_its_adjoint():
    x, y, A = peers.case_data("cs-digit", peers.QUICK, 0)
    phys = peers._deepinv_physics(A)
    u, v = torch.randn(2, 1, *x.shape), torch.randn(2, *A.measurement_shape)
    lhs, rhs = (phys.A(u) * v).sum(), (u * phys.A_adjoint(v)).sum()
    assert abs(float(lhs - rhs)) <= 1e-4 * abs(float(lhs))


def test_the_quick_table_compares_each_tool_in_its_own_process(monkeypatch):
    monkeypatch.setattr(peers, "THREADS", (1,))
    monkeypatch.setattr(
        peers, "COMPARISONS", (("tv", "denoise-nuclei", "ours-tv", ("skimage-tv", "deepinv-tv")),)
    )
    result = peers.run(quick=True, device="cpu", seed=0)
    runs = result.data["runs"]
    assert set(runs) == {
        "denoise-nuclei/ours-tv/1",
        "denoise-nuclei/skimage-tv/1",
        "denoise-nuclei/deepinv-tv/1",
    }
    ladder = runs["denoise-nuclei/ours-tv/1"]["ladder"]
    assert [r["steps"] for r in ladder] == list(peers.QUICK.ladder)
    assert all(r["psnr"] > 20 for r in ladder), "tv denoises"
    prof = runs["denoise-nuclei/ours-tv/1"]["profile"]  # where a slower run's time goes
    assert prof["ops_per_step"] > 1 and prof["top"] and prof["setup_s"] > 0
    assert "skimage-tv" in result.markdown
    assert any("skimage-tv" in claim for claim in result.checks)
    if "error" in runs["denoise-nuclei/deepinv-tv/1"]:  # a missing peer: a row that says so
        assert "not importable" in result.markdown


def test_each_rung_of_our_ladder_gets_its_own_truth_best_weight():
    """As a peer gets the best weight for its own iteration count, each of our step counts gets
    the best of our grid for that count (not the weight that was best after the longest)."""
    from dataclasses import replace

    from genprior_bench import _peers_tools

    sizes = replace(peers.QUICK, ladder=(5, 60), grid=(1 / 16, 1.0, 16.0), repeats=1)
    x, y, A = peers.case_data("mri-brain", sizes, 0)
    out = _peers_tools._ours("ours-wavelet", "mri-brain", x, y, A, sizes, 0)
    lam0 = out["default"]["lam"]
    for rung in out["ladder"]:
        tried = {}
        for g in sizes.grid:
            image = ngp_reconstruct(y, A, lam0 * g, rung["steps"])
            tried[g] = scores(x, np.abs(image))["psnr"]
        best = max(tried, key=tried.get)
        assert rung["weight"] == pytest.approx(lam0 * best), (rung, tried)
    assert out["psnr"] == out["ladder"][-1]["psnr"]


def ngp_reconstruct(y, A, lam, steps):
    import napari_genprior as ngp

    return ngp.reconstruct(
        y, A, "lasso-wavelet", device="cpu", seed=0, lam=lam, steps=steps, tol=0.0
    ).image
