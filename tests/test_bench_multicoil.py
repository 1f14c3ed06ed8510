"""``napari-genprior bench mri-multicoil --quick``: the multi-coil table, its checks and the
scale probe (the full table is in benchmarks/results/mri-multicoil.md)."""

from __future__ import annotations

import json

from napari_genprior import bench
from napari_genprior.bench import mri_multicoil


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
