"""Simulate and Reconstruct with 3D stacks and microscope PSFs (issue 16)."""

from __future__ import annotations

from unittest.mock import patch

import numpy as np
import pytest

import napari_genprior as ngp
from napari_genprior._layerdata import measurement_of
from napari_genprior._widgets._psf import OPTICS
from napari_genprior._widgets.reconstruct import DEBLUR
from napari_genprior.operators.psf import optics_psf
from napari_genprior.volumes import nuclei_volume

pytestmark = pytest.mark.gui
SCALE = (0.25, 0.1, 0.1)


@pytest.fixture
def stack_viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    x = nuclei_volume((9, 40, 40), voxel=SCALE, seed=4)
    clean = viewer.add_image(x, name="stack", scale=SCALE, translate=(1.0, 2.0, 3.0))
    return viewer, clean


def test_simulate_blurs_a_stack_with_the_optics_psf_and_the_layer_voxel_size(stack_viewer):
    viewer, clean = stack_viewer
    before = clean.data.copy()
    _, sim = viewer.window.add_plugin_dock_widget("napari-genprior", "Simulate")
    sim.layer.value = clean
    sim.kind.value = "blur"
    sim.psf_source.value = OPTICS
    assert sim.psf.dxy.value == pytest.approx(0.1) and sim.psf.dz.value == pytest.approx(0.25)
    assert "0.25 x 0.1 x 0.1 um (from the layer scale)" in sim.psf.voxel.value
    assert not sim.psf.na.native.isHidden() and sim.sigma.native.isHidden()
    sim.photons.value = 1000.0
    meas, back = sim.simulate()
    assert meas.name == "stack [blur widefield NA 1.2]"
    y, A = measurement_of(meas.data, meas.metadata)
    assert y.shape == A.shape == (9, 40, 40)
    assert A.spec()["optics"]["dz"] == pytest.approx(0.25)
    # the unknown border (the default): the PSF spans twice the stack's depth
    assert A.boundary == "unknown"
    np.testing.assert_allclose(A.psf, optics_psf((17, 40, 40), A.spec()["optics"]))
    np.testing.assert_array_equal(meas.scale, clean.scale)
    np.testing.assert_array_equal(meas.translate, clean.translate)
    np.testing.assert_array_equal(clean.data, before)


def test_reconstruct_deconvolves_the_stack_as_one_volume(stack_viewer, qtbot):
    viewer, clean = stack_viewer
    A = ngp.make_operator("blur", shape=clean.data.shape, sigma=(1.5, 1.5, 1.5))
    y = A.measure(clean.data, photons=300, seed=0)
    meas = viewer.add_image(y, name="blurred", scale=SCALE, translate=(1.0, 2.0, 3.0))
    before = meas.data.copy()
    _, rec = viewer.window.add_plugin_dock_widget("napari-genprior", "Reconstruct")
    rec.layer.value = meas
    rec.operator.value = DEBLUR
    assert "0.25 x 0.1 x 0.1 um (from the layer scale)" in rec.psf.voxel.value
    rec.sigma.value = 1.5  # laterally; along z the same 0.15 um: 0.6 planes
    rec.method.value = "richardson-lucy"
    rec.steps.value = 200
    rec.start()
    assert rec.worker is not None, rec.status.value
    qtbot.waitUntil(lambda: rec.worker is None, timeout=120_000)
    qtbot.wait(200)
    out = viewer.layers["blurred [richardson-lucy]"]
    assert out.data.shape == (9, 40, 40)  # one volume, not 9 planes
    np.testing.assert_array_equal(out.scale, meas.scale)
    np.testing.assert_array_equal(out.translate, meas.translate)
    spec = out.metadata["genprior"]["operator"]
    assert spec["shape"] == [9, 40, 40]
    assert spec["sigma"] == pytest.approx([0.6, 1.5, 1.5])
    assert ngp.metrics.psnr(clean.data, out.data) > ngp.metrics.psnr(clean.data, y) + 1.0
    np.testing.assert_array_equal(meas.data, before)


def test_a_psf_measured_from_beads_marked_by_points(stack_viewer, qtbot):
    viewer, clean = stack_viewer
    psf = optics_psf((9, 40, 40), microscope="widefield", na=1.2, wavelength=0.52, dxy=0.1, dz=0.25)
    beads = np.full((15, 60, 60), 2.0)
    half = np.array(psf.shape) // 2
    for c in ((7, 30, 30),):
        beads[tuple(slice(a - h, a + h + 1) for a, h in zip(c, half))] += 5e4 * psf
    bead_layer = viewer.add_image(beads, name="beads")
    points = viewer.add_points([[7, 30, 31]], name="bead marks")
    y = ngp.make_operator("blur", shape=clean.data.shape, psf=psf).measure(
        clean.data, photons=500, seed=0
    )
    meas = viewer.add_image(y, name="widefield", scale=SCALE)
    _, rec = viewer.window.add_plugin_dock_widget("napari-genprior", "Reconstruct")
    rec.layer.value = meas
    rec.operator.value = DEBLUR
    rec.psf.source.value = ("beads", bead_layer)
    assert not rec.psf.points.native.isHidden()
    rec.psf.points.value = points
    y2, A = rec.measurement(meas)
    assert A.shape == (9, 40, 40) and A.psf.shape[0] == 9
    assert (
        np.corrcoef(A.psf[:, 10:-10, 10:-10].ravel(), psf[:, 10:-10, 10:-10].ravel())[0, 1] > 0.99
    )


def test_a_2d_psf_for_a_stack_is_refused_with_a_notification(stack_viewer):
    viewer, clean = stack_viewer
    psf2d = viewer.add_image(np.ones((5, 5)), name="flat psf")
    _, rec = viewer.window.add_plugin_dock_widget("napari-genprior", "Reconstruct")
    rec.layer.value = clean
    rec.operator.value = DEBLUR
    rec.psf.source.value = ("psf", psf2d)
    n_layers = len(viewer.layers)
    with patch("napari_genprior._widgets.reconstruct.show_error") as error:
        rec.start()
    assert rec.worker is None
    assert "needs a 3D PSF" in error.call_args[0][0] and "'flat psf'" in error.call_args[0][0]
    assert len(viewer.layers) == n_layers


def test_a_stack_to_deconvolve_gets_the_volume_recommendation(stack_viewer):
    viewer, clean = stack_viewer
    _, rec = viewer.window.add_plugin_dock_widget("napari-genprior", "Reconstruct")
    rec.layer.value = clean
    rec.operator.value = DEBLUR
    assert rec.method.value == "richardson-lucy" and "richardson-lucy" in rec.advice.value
    flat = viewer.add_image(clean.data[0], name="one plane")
    rec.layer.value = flat
    rec.operator.value = DEBLUR
    assert rec.method.value == "tv"  # one plane: FISTA's early iterate (the 2D recommendation)
