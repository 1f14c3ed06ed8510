"""The Simulate dock widget in a real napari viewer (under Xvfb, via pytest-xvfb)."""

from __future__ import annotations

import copy
from unittest.mock import patch

import numpy as np
import pytest

import napari_genprior as ngp
from napari_genprior._layerdata import measurement_of

pytestmark = pytest.mark.gui

SCALE = (0.5, 0.25)
TRANSLATE = (10.0, -3.0)


@pytest.fixture
def sim(make_napari_viewer, nuclei64):
    """A viewer with a placed 64x64 clean layer selected in a docked Simulate widget."""
    viewer = make_napari_viewer()
    clean = viewer.add_image(
        nuclei64.copy(),
        name="clean",
        scale=SCALE,
        translate=TRANSLATE,
        metadata={"source": {"note": "untouched"}},
    )
    _, widget = viewer.window.add_plugin_dock_widget("napari-genprior", "Simulate")
    widget.layer.value = clean
    return viewer, widget, clean


def _set(widget, **controls):
    for name, value in controls.items():
        getattr(widget, name).value = value


def _assert_placed(layer, scale, translate):
    np.testing.assert_allclose(layer.scale, scale)
    np.testing.assert_allclose(layer.translate, translate)


# kind, widget controls, make_operator keywords (seed added where the kind takes one), label
CASES = [
    (
        "blur",
        {"sigma": 1.5, "boundary": "periodic"},
        {"sigma": 1.5, "boundary": "periodic"},
        "blur sigma 1.5",
    ),
    ("inpaint", {"fraction": 0.3}, {"fraction": 0.3, "seed": 3}, "inpaint 30%"),
    ("downsample", {"factor": 4}, {"factor": 4}, "downsample 4x"),
    (
        "mri",
        {"acceleration": 4.0, "center_fraction": 0.1, "mri_mask": "equispaced"},
        {"acceleration": 4.0, "center_fraction": 0.1, "mask": "equispaced", "seed": 3},
        "mri 4x",
    ),
    ("cs", {"m": 500}, {"m": 500, "seed": 3}, "cs m=500"),
    ("denoise", {}, {}, "denoise"),
]


@pytest.mark.parametrize("kind, controls, params, label", CASES, ids=[c[0] for c in CASES])
def test_simulate_adds_a_reproducible_measurement_and_its_adjoint(
    sim, kind, controls, params, label
):
    viewer, widget, clean = sim
    before, before_meta = clean.data.copy(), copy.deepcopy(clean.metadata)
    n_layers = len(viewer.layers)
    _set(widget, kind=kind, noise_std=2.0, seed=3, **controls)
    added = widget.simulate()

    assert len(viewer.layers) == n_layers + 2 and added == widget.last_layers
    meas, back = viewer.layers[f"clean [{label}]"], viewer.layers[f"clean [{kind} back-projection]"]
    # the expected measurement, straight from the public API
    x = np.asarray(before)
    A = ngp.make_operator(kind, shape=x.shape, **params)
    y = A.measure(x, noise_std=2.0, seed=3)
    y2, A2 = measurement_of(meas.data, meas.metadata)
    assert A2.spec() == A.spec() == meas.metadata["genprior"]["operator"]
    # exactly the same values (metadata stores complex k-space widened to complex128)
    assert np.iscomplexobj(y2) == np.iscomplexobj(y) and np.array_equal(y2, y)
    assert meas.metadata["genprior"]["role"] == "measurement"
    assert meas.metadata["genprior"]["noise_std"] == 2.0
    assert "photons" not in meas.metadata["genprior"]
    assert meas.data.dtype == np.float32
    if kind == "mri":  # log-magnitude k-space on show, complex k-space in the metadata
        assert meas.data.shape == x.shape and np.iscomplexobj(y2)
        np.testing.assert_allclose(meas.data, np.log1p(np.abs(y)), rtol=1e-6)
    elif kind == "cs":  # a one-row strip
        assert meas.data.shape == (1, 500)
    else:
        assert np.array_equal(meas.data, y)
    if kind == "downsample":
        assert meas.data.shape == (16, 16)
        _assert_placed(
            meas, np.multiply(SCALE, 4), np.add(TRANSLATE, np.multiply(SCALE, 1.5))
        )  # block centres
    else:
        _assert_placed(meas, SCALE, TRANSLATE)
    if kind in ("blur", "inpaint", "downsample", "denoise"):  # in the image's units
        np.testing.assert_allclose(meas.contrast_limits, clean.contrast_limits)

    assert back.metadata == {"genprior": {"role": "adjoint", "operator": A.spec()}}
    assert back.data.shape == x.shape and back.data.dtype == np.float32
    expected = ngp.reconstruct(y, A, method="adjoint", device="cpu").image
    np.testing.assert_allclose(back.data, expected, rtol=1e-5, atol=1e-5)
    _assert_placed(back, SCALE, TRANSLATE)

    assert clean.data.dtype == before.dtype and np.array_equal(clean.data, before)
    assert clean.metadata == before_meta


def test_phase_adds_only_the_measurement(sim):
    # Magnitude-only measurements are not linear: there is no back-projection to show.
    viewer, widget, clean = sim
    _set(widget, kind="phase", m=300, seed=1)
    n_layers = len(viewer.layers)
    (meas,) = widget.simulate()
    assert len(viewer.layers) == n_layers + 1
    y, A = measurement_of(meas.data, meas.metadata)
    ref = ngp.make_operator("phase", shape=(64, 64), m=300, seed=1)
    assert A.spec() == ref.spec() and np.array_equal(y, ref.measure(clean.data, seed=1))


def test_photon_noise_is_recorded_and_reproducible(sim):
    _, widget, clean = sim
    _set(widget, kind="blur", sigma=2.0, photons=50.0, noise_std=0.5, seed=7)
    meas, _ = widget.simulate()
    assert meas.metadata["genprior"]["photons"] == 50.0
    y, A = measurement_of(meas.data, meas.metadata)
    assert np.array_equal(y, A.measure(clean.data, noise_std=0.5, photons=50.0, seed=7))


def test_the_measurement_records_the_kind_its_clean_layer_records(sim):
    # the prior check reads it: a microscope's image stops a brain prior at once
    _, widget, clean = sim
    _set(widget, kind="inpaint", fraction=0.5, seed=0)
    meas, _ = widget.simulate()
    assert "modality" not in meas.metadata["genprior"]  # nothing recorded, nothing claimed
    clean.units = ("micrometer", "micrometer")
    meas, _ = widget.simulate()
    assert meas.metadata["genprior"]["modality"] == "microscopy"


def test_inpaint_mask_from_a_labels_layer(sim):
    viewer, widget, clean = sim
    labels = np.zeros((64, 64), dtype=np.uint8)
    labels[8:40, 16:60] = 2  # nonzero = observed
    lab = viewer.add_labels(labels, name="observed")
    _set(widget, kind="inpaint", noise_std=1.0, seed=5)
    widget.mask_source.value = lab
    assert widget.fraction.native.isHidden(), "a mask layer replaces the random fraction"
    meas, _ = widget.simulate()
    assert meas.name == f"clean [inpaint {100 * np.mean(labels > 0):.0f}%]"
    y, A = measurement_of(meas.data, meas.metadata)
    np.testing.assert_array_equal(A.observed(), labels != 0)
    ref = ngp.make_operator("inpaint", shape=(64, 64), mask=labels != 0)
    assert A.spec() == ref.spec()
    assert np.array_equal(y, ref.measure(clean.data, noise_std=1.0, seed=5))
    assert np.all(y[labels == 0] == 0)
    np.testing.assert_array_equal(lab.data, labels)


def test_inpaint_mask_from_shapes_drawn_in_world_coordinates(sim):
    viewer, widget, _ = sim
    # Shapes at scale 1 in the world: rows 10..20 and columns 10..30 of the (scaled, shifted)
    # clean image lie at world y 15..20 and x -0.5..4.5.
    shapes = viewer.add_shapes(
        [np.array([[15.0, -0.5], [20.0, 4.5]])], shape_type="rectangle", name="missing"
    )
    viewer.add_shapes([np.array([[0.0, 0.0], [30.0, 8.0]])], shape_type="line", name="line")
    _set(widget, kind="inpaint", seed=0)
    widget.mask_source.value = shapes
    meas, _ = widget.simulate()
    _, A = measurement_of(meas.data, meas.metadata)
    observed = A.observed()
    assert not observed[11:20, 11:30].any() and observed[:9].all() and observed[:, 32:].all()
    assert 9 * 19 <= np.count_nonzero(~observed) <= 11 * 21

    widget.mask_source.value = viewer.layers["line"]
    messages = []
    with patch("napari_genprior._widgets.simulate.show_error", messages.append):
        n_layers = len(viewer.layers)
        assert widget.simulate() == []
    assert len(messages) == 1 and "no rectangle, ellipse or polygon" in messages[0]
    assert len(viewer.layers) == n_layers


def test_blur_with_a_psf_layer(sim):
    viewer, widget, clean = sim
    psf = np.zeros((5, 5), dtype=np.float32)
    psf[2, 1:4] = [1, 2, 1]  # a horizontal motion blur, not normalised
    psf_layer = viewer.add_image(psf, name="psf")
    widget.layer.value = clean
    _set(widget, kind="blur", seed=0)
    widget.psf_source.value = ("psf", psf_layer)
    assert widget.sigma.native.isHidden()
    meas, _ = widget.simulate()
    assert meas.name == "clean [blur psf]"
    y, A = measurement_of(meas.data, meas.metadata)
    np.testing.assert_allclose(A.psf, psf / psf.sum())
    assert np.array_equal(y, ngp.make_operator("blur", shape=(64, 64), psf=psf).measure(clean.data))


def test_controls_follow_the_operator_kind(sim):
    _, widget, _ = sim
    shown = {
        "inpaint": {"mask_source", "fraction"},
        "blur": {"psf_source", "sigma", "boundary"},
        "downsample": {"factor"},
        "cs": {"m"},
        "phase": {"m"},
        "denoise": set(),
        "mri": {"acceleration", "center_fraction", "mri_mask"},
    }
    assert set(widget.kind.choices) == set(shown)
    names = set().union(*shown.values())
    for kind, expected in shown.items():
        widget.kind.value = kind
        visible = {n for n in names if not getattr(widget, n).native.isHidden()}
        assert visible == expected, kind
    for name in [
        *names,
        "layer",
        "kind",
        "noise_std",
        "photons",
        "background",
        "camera",
        "seed",
        "simulate_button",
    ]:
        assert getattr(widget, name).tooltip, name


def test_widget_offers_only_image_layers(make_napari_viewer):
    # A Labels layer cannot be chosen as the clean image: the control's type excludes it.
    viewer = make_napari_viewer()
    viewer.add_labels(np.zeros((8, 8), dtype=np.uint8), name="labels")
    img = viewer.add_image(np.ones((8, 8)), name="img")
    _, widget = viewer.window.add_plugin_dock_widget("napari-genprior", "Simulate")
    assert list(widget.layer.choices) == [img]


@pytest.mark.parametrize(
    "bad, words",
    [
        (np.zeros((2, 4, 32, 32), dtype=np.float32), "a 2D image or a 3D (z, y, x) stack"),
        (np.where(np.eye(32) > 0, np.nan, 1.0).astype(np.float32), "NaN"),
        (np.zeros((32, 32, 3), dtype=np.uint8), "RGB"),
    ],
)
def test_bad_input_gets_a_notification_and_adds_nothing(make_napari_viewer, bad, words):
    viewer = make_napari_viewer()
    layer = viewer.add_image(bad, name="bad")
    _, widget = viewer.window.add_plugin_dock_widget("napari-genprior", "Simulate")
    widget.layer.value = layer
    widget.kind.value = "blur"
    n_layers = len(viewer.layers)
    with patch("napari_genprior._widgets.simulate.show_error") as error:
        assert widget.simulate() == []
    error.assert_called_once()
    message = error.call_args[0][0]
    assert words in message and "'bad'" in message
    assert len(viewer.layers) == n_layers and widget.last_layers == []
    np.testing.assert_array_equal(layer.data, bad)


@pytest.mark.parametrize(
    "controls, words",
    [
        ({"kind": "mri", "photons": 100.0}, "photons"),
        ({"kind": "downsample", "factor": 3}, "multiple of factor"),
        ({"kind": "cs", "m": 10_000}, "m (number of measurements)"),
    ],
)
def test_invalid_parameters_are_reported_by_the_api(sim, controls, words):
    viewer, widget, _ = sim
    _set(widget, **controls)
    n_layers = len(viewer.layers)
    with patch("napari_genprior._widgets.simulate.show_error") as error:
        assert widget.simulate() == []
    assert words in error.call_args[0][0]
    assert len(viewer.layers) == n_layers


def test_a_psf_larger_than_the_image_is_refused(sim):
    viewer, widget, _ = sim
    big = viewer.add_image(np.ones((80, 80), dtype=np.float32), name="big psf")
    widget.kind.value = "blur"
    widget.psf_source.value = ("psf", big)
    n_layers = len(viewer.layers)
    with patch("napari_genprior._widgets.simulate.show_error") as error:
        assert widget.simulate() == []
    assert "larger than the image" in error.call_args[0][0]
    assert len(viewer.layers) == n_layers


def test_no_layer_warns(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-genprior", "Simulate")
    with patch("napari_genprior._widgets.simulate.show_warning") as warning:
        assert widget.simulate() == []
    assert "Pick the clean image layer" in warning.call_args[0][0]
    assert len(viewer.layers) == 0


def test_the_button_simulates(sim):
    viewer, widget, _ = sim
    widget.kind.value = "denoise"
    widget.noise_std.value = 1.0
    widget.simulate_button.clicked.emit()
    assert [lyr.name for lyr in viewer.layers][-2:] == [
        "clean [denoise]",
        "clean [denoise back-projection]",
    ]
    assert "added" in widget.status.value


def test_simulated_blur_of_the_nuclei_sample_is_reconstructed_by_tv(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-genprior", "nuclei")
    crop = viewer.add_image(
        viewer.layers["nuclei"].data[32:96, 32:96].astype(np.float32), name="crop"
    )
    _, widget = viewer.window.add_plugin_dock_widget("napari-genprior", "Simulate")
    widget.layer.value = crop
    _set(widget, kind="blur", sigma=1.5, noise_std=3.0, seed=0)
    meas, _ = widget.simulate()
    rec = ngp.reconstruct(*measurement_of(meas.data, meas.metadata), method="tv", device="cpu")
    p_meas = ngp.metrics.psnr(crop.data, meas.data)
    p_rec = ngp.metrics.psnr(crop.data, rec.image)
    assert p_rec > p_meas + 1, (p_meas, p_rec)


def test_simulate_records_with_a_camera_and_reconstruct_fits_it(sim):
    """Real physics in Simulate: a background and a camera's ADU (offset, gain, read noise);
    the library fits that camera back from the noise and returns the layer's units."""
    viewer, widget, clean = sim
    x = clean.data.astype(np.float64)
    x = x / x.max()
    clean.data = x.astype(np.float32)
    _set(widget, kind="blur", sigma=1.5, photons=300.0, background=0.05, seed=1)
    assert widget.boundary.value == "unknown"  # the default: a window onto a larger sample
    widget.camera.value = True
    meas, _ = widget.simulate()
    assert meas.metadata["genprior"]["camera"]["offset"] == 100.0
    y, A = measurement_of(meas.data, meas.metadata)
    assert A.boundary == "unknown" and np.array_equal(y, np.round(y)) and y.min() >= 100 - 10
    rec = ngp.reconstruct(y, A, method="richardson-lucy", device="cpu")
    assert rec.params["camera"]["gain"] == pytest.approx(2.0, rel=0.2)
    assert abs(float(rec.image.mean()) - float(y.mean())) < 0.05 * float(y.mean())
    # a camera without photons is refused with a sentence, and nothing is added
    n_layers = len(viewer.layers)
    _set(widget, photons=0.0)
    with patch("napari_genprior._widgets.simulate.show_error") as err:
        assert widget.simulate() == []
    assert "photons" in err.call_args[0][0] and len(viewer.layers) == n_layers
