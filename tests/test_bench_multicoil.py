"""``napari-genprior bench mri-multicoil --quick``: the multi-coil table, its checks and the
scale probe (the full table is in benchmarks/results/mri-multicoil.md); ``mri-acquired``'s
acquisition without the inverse crime and its quick table."""

from __future__ import annotations

import json

import numpy as np

import genprior_bench as bench
import napari_genprior as ngp
from genprior_bench import mri_acquired, mri_multicoil, real_mri


def test_quick_multicoil_run_scores_every_method_and_states_the_bars(tmp_path):
    bench.run_experiments(
        ["mri-multicoil"], quick=True, out=tmp_path, device="cpu", log=lambda line: None
    )
    record = json.loads((tmp_path / "mri-multicoil-quick.json").read_text())
    data = record["data"]
    by_m = data["medians"]["4x equispaced"]
    assert set(by_m) == set(mri_multicoil.METHODS)
    assert all(0 < v["psnr"] < 60 and v["seconds"] >= 0 for v in by_m.values())
    # ESPIRiT maps from the data: SENSE by CG is at least as good as zero filling
    assert by_m["cg"]["psnr"] >= by_m["adjoint"]["psnr"] - 0.5
    assert by_m["tv"]["psnr"] > by_m["adjoint"]["psnr"]
    assert data["scale"]["coils"] == 4 and data["scale"]["peak_gib"] > 0
    checks = record["checks"]
    assert any("best generative" in c for c in checks) and any("SigPy" in c for c in checks)
    text = (tmp_path / "mri-multicoil-quick.md").read_text()
    assert "sigpy-l1wavelet" in text and "## Targets" in text


def test_mri_acquired_measures_by_an_independent_path_with_a_phase():
    x = real_mri.held_out_slices(real_mri.QUICK)[0][1]
    k, ref = mri_acquired.acquire(x, 0, seed=1)
    assert k.shape == x.shape and np.iscomplexobj(k)
    # the reference is the slice (interpolated, truncated: close, not equal)...
    assert 30 < ngp.metrics.psnr(x, ref, 1.0) < 80
    # ...but its k-space is not our operator's of the slice: it carries a phase
    own = ngp.make_operator("mri", shape=x.shape, acceleration=1).measure(x)
    assert np.abs(k - own).max() > 0.1 * np.abs(own).max()
    k8, rss = mri_acquired.acquire(x, 8, seed=1)
    assert k8.shape == (8, *x.shape) and rss.shape == x.shape


def test_quick_mri_acquired_run_reconstructs_complex_single_and_multi_coil(tmp_path):
    bench.run_experiments(
        ["mri-acquired"], quick=True, out=tmp_path, device="cpu", log=lambda line: None
    )
    data = json.loads((tmp_path / "mri-acquired-quick.json").read_text())["data"]
    single, multi = (
        data["medians"]["single-coil 4x variable-density"],
        data["medians"]["4 coils 4x equispaced"],
    )
    assert set(multi) == set(mri_acquired.MULTI) and "cg" not in single
    for by_m in (single, multi):
        assert by_m["tv"]["psnr"] > by_m["adjoint"]["psnr"] + 1
    assert "inverse crime" in (tmp_path / "mri-acquired-quick.md").read_text()
