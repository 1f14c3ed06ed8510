"""`pip install .` (a wheel) and `pip install -e .` both give napari the manifest and samples.

The editable case is the environment the test suite runs in (tests/test_plugin.py); here a
wheel is built from the working tree, installed into a separate folder, and napari's plugin
engine is asked, in a fresh interpreter with that folder first on sys.path, for the manifest.
"""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROBE = r"""
import json, sys
from importlib import metadata, resources
from pathlib import Path
from npe2 import PluginManifest
import napari_genprior
dist = metadata.distribution("napari-genprior")
mf = PluginManifest.from_distribution("napari-genprior")
pkg = Path(napari_genprior.__file__).parent
print(json.dumps({
    "dist": str(dist.locate_file("")), "package": str(pkg),
    "widgets": [w.display_name for w in mf.contributions.widgets],
    "samples": sorted(s.key for s in mf.contributions.sample_data),
    "manifest_is_file": (pkg / "napari.yaml").is_file() and not (pkg / "napari.yaml").is_symlink(),
    "sample_files": sorted(p.name for p in (pkg / "sample_data").iterdir() if p.is_file()),
    "priors": napari_genprior.list_priors(),
}))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    (whl,) = out.glob("napari_genprior-*.whl")
    return whl


def test_wheel_carries_manifest_and_samples_as_files(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "napari_genprior/napari.yaml" in names
    assert {
        "napari_genprior/sample_data/nuclei.tif",
        "napari_genprior/sample_data/nuclei_inpaint50.tif",
    } <= set(names)
    entry_points = (
        zipfile.ZipFile(wheel)
        .read(next(n for n in names if n.endswith("entry_points.txt")))
        .decode()
    )
    assert (
        "napari.manifest" in entry_points
        and "napari-genprior = napari_genprior.cli:main" in entry_points
    )
    # the licence and the data notices travel with the wheel; the benchmarks do not
    for need in ("LICENSE", "LICENSES/MNI152-NOTICE.txt", "LICENSES/DATA.txt"):
        assert any(n.endswith(".dist-info/licenses/" + need) for n in names), need
    assert not any("/bench/" in n or "genprior_bench" in n for n in names)
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "License-Expression: BSD-3-Clause" in meta
    assert "Requires-Dist: torch>=2.2\n" in meta  # no cap


def test_napari_finds_the_plugin_installed_from_the_wheel(wheel, tmp_path):
    target = tmp_path / "site"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "--target",
            str(target),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    env = {**os.environ, "PYTHONPATH": str(target)}
    res = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    info = json.loads(res.stdout.strip().splitlines()[-1])
    assert info["package"].startswith(str(target)), info  # the installed copy, not the source tree
    assert info["dist"].startswith(str(target)), info
    assert info["widgets"] == [
        "Simulate",
        "Reconstruct",
        "Train prior",
        "Compare",
        "Deconvolve in chunks",
    ]
    assert info["samples"] == [
        "digit-cs",
        "mri-phantom",
        "nuclei",
        "nuclei-blur",
        "nuclei-inpaint",
        "nuclei-stack",
    ]
    assert info["manifest_is_file"]
    assert {"README.md", "nuclei.tif", "nuclei_inpaint50.tif"} <= set(info["sample_files"])
    assert info["priors"] == sorted(
        p.stem for p in (ROOT / "src/napari_genprior/priors/bundled").glob("*.safetensors")
    )
