"""The npe2 manifest: valid, found by napari's plugin manager, and it and the samples ship."""

import subprocess
import sysconfig
from importlib import resources
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def test_npe2_validate_passes():
    exe = Path(sysconfig.get_path("scripts")) / "npe2"
    out = subprocess.run(
        [str(exe), "validate", "napari-genprior", "--imports"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "valid" in out.stdout.lower()


def test_plugin_manager_knows_the_plugin_and_its_contributions():
    from npe2 import PluginManager

    pm = PluginManager.instance()
    pm.discover()
    mf = pm.get_manifest("napari-genprior")
    assert [w.display_name for w in mf.contributions.widgets] == [
        "Simulate",
        "Reconstruct",
        "Train prior",
        "Compare",
        "Deconvolve in chunks",
    ]
    assert {s.key for s in mf.contributions.sample_data} == {
        "nuclei",
        "nuclei-inpaint",
        "nuclei-blur",
        "mri-phantom",
        "digit-cs",
        "nuclei-stack",
    }
    widget_cmd = mf.contributions.widgets[1].command
    assert pm.get_command(widget_cmd).python_name.endswith("reconstruct:ReconstructWidget")
    assert [r.filename_patterns for r in mf.contributions.readers] == [["*.h5", "*.hdf5", "*.zarr"]]


def test_installed_manifest_is_the_repository_manifest():
    shipped = resources.files("napari_genprior") / "napari.yaml"
    assert shipped.read_text() == (ROOT / "napari.yaml").read_text()


def test_degraded_sample_matches_its_operator_spec(nuclei):
    from napari_genprior._sample_data import nuclei_inpaint
    from napari_genprior.operators import from_spec

    (clean, _, _), (y, kwargs, kind) = nuclei_inpaint()
    assert kind == "image" and np.array_equal(clean, nuclei)
    spec = kwargs["metadata"]["genprior"]["operator"]
    A = from_spec(spec)
    assert A.kind == "inpaint" and A.shape == y.shape
    # the shipped measurement is exactly what the operator rebuilt from its spec observes
    assert np.all(y[~A.mask] == 0)
    noise = (y - nuclei)[A.mask]
    assert abs(noise.std() - kwargs["metadata"]["genprior"]["noise_std"]) < 0.5
