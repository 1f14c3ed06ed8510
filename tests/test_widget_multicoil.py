"""Multi-coil (SENSE) MRI in the Simulate and Reconstruct dock widgets (under Xvfb)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from napari_genprior._layerdata import measurement_of

pytestmark = pytest.mark.gui

LABEL = "mri 4x, 4 coils"


@pytest.fixture
def multicoil(make_napari_viewer, nuclei64):
    """A viewer with a clean 64x64 layer and its simulated 4-coil measurement, and both widgets."""
    viewer = make_napari_viewer()
    clean = viewer.add_image(
        nuclei64.copy(), name="clean", scale=(0.5, 0.5), metadata={"source": {"note": "untouched"}}
    )
    _, sim = viewer.window.add_plugin_dock_widget("napari-genprior", "Simulate")
    sim.layer.value = clean
    sim.kind.value = "mri"
    sim.acceleration.value = 4.0
    sim.coils.value = 4
    sim.noise_std.value = 1.0
    before, before_meta = clean.data.copy(), copy.deepcopy(clean.metadata)
    added = sim.simulate()
    assert len(added) == 2, sim.status.value
    assert np.array_equal(clean.data, before) and clean.metadata == before_meta
    _, rec = viewer.window.add_plugin_dock_widget("napari-genprior", "Reconstruct")
    meas = viewer.layers[f"clean [{LABEL}]"]
    rec.layer.value = meas
    return viewer, sim, rec, meas


def _run_and_wait(widget, qtbot, timeout=60_000):
    widget.start()
    assert widget.worker is not None, widget.status.value
    qtbot.waitUntil(lambda: widget.worker is None, timeout=timeout)


def test_coils_control_is_shown_for_mri_only(make_napari_viewer):
    viewer = make_napari_viewer()
    _, sim = viewer.window.add_plugin_dock_widget("napari-genprior", "Simulate")
    for kind in sim.kind.choices:
        sim.kind.value = kind
        assert sim.coils.native.isHidden() == (kind != "mri"), kind
    assert sim.coils.value == 1 and sim.coils.min == 1 and sim.coils.max == 32
    sim.kind.value = "mri"
    assert "coils" not in sim.operator_params((64, 64))  # 1 coil: single-coil, as before
    sim.coils.value = 8
    assert sim.operator_params((64, 64))["coils"] == 8


def test_simulate_makes_a_multicoil_measurement(multicoil):
    viewer, _, _, meas = multicoil
    y, A = measurement_of(meas.data, meas.metadata)
    assert A.coils == 4 and y.shape == (4, 64, 64) and np.iscomplexobj(y)
    assert meas.data.shape == (4, 64, 64) and meas.data.dtype == np.float32
    back = viewer.layers["clean [mri back-projection]"]
    assert back.data.shape == (64, 64) and back.data.dtype == np.float32


def test_reconstruct_shows_magnitude_phase_and_coil_maps(multicoil, qtbot):
    viewer, _, rec, meas = multicoil
    before, before_meta = meas.data.copy(), copy.deepcopy(meas.metadata)
    assert rec.show_coil_maps.enabled and not rec.show_coil_maps.native.isHidden()
    assert not rec.show_coil_maps.value and not rec.show_phase.value
    assert "cg" in [value for value in rec.method.choices]
    rec.method.value = "cg"
    rec.show_coil_maps.value = True
    rec.show_phase.value = True
    rec.add_residual.value = True
    _run_and_wait(rec, qtbot)

    result = viewer.layers[f"{meas.name} [cg]"]
    assert result.data.shape == (64, 64) and result.data.dtype == np.float32
    assert np.all(result.data >= 0)
    assert result.metadata["genprior"]["method"] == "cg"
    assert result.metadata["genprior"]["shown"] == "magnitude"
    np.testing.assert_allclose(result.scale, (0.5, 0.5))
    phase = viewer.layers[f"{meas.name} [cg phase]"]
    assert phase.data.shape == (64, 64) and np.all(np.abs(phase.data) <= np.pi + 1e-6)
    maps = viewer.layers[f"{meas.name} [coil maps]"]
    assert maps.data.shape == (4, 64, 64) and maps.data.dtype == np.float32
    # birdcage maps are normalised: sum_c |S_c|^2 = 1
    np.testing.assert_allclose((maps.data**2).sum(axis=0), 1.0, rtol=1e-4)
    residual = viewer.layers[f"{meas.name} [cg residual]"]
    assert residual.data.shape == (64, 64) and not np.iscomplexobj(residual.data)
    assert np.array_equal(meas.data, before) and meas.metadata == before_meta


def test_reconstruct_multicoil_with_tv(multicoil, qtbot):
    viewer, _, rec, meas = multicoil
    n_layers = len(viewer.layers)
    rec.method.value = "tv"
    rec.steps.value = 20
    _run_and_wait(rec, qtbot)
    result = viewer.layers[f"{meas.name} [tv]"]
    assert result.data.shape == (64, 64) and result.data.dtype == np.float32
    assert np.isrealobj(result.data) and np.all(result.data >= 0)
    assert len(viewer.layers) == n_layers + 1  # phase and coil maps are off by default


def test_richardson_lucy_on_multicoil_is_refused_with_a_message(multicoil, monkeypatch):
    import napari_genprior._widgets.reconstruct as mod

    viewer, _, rec, meas = multicoil
    messages: list[str] = []
    monkeypatch.setattr(mod, "show_error", messages.append)
    n_layers = len(viewer.layers)
    rec.method.value = "richardson-lucy"
    rec.start()
    assert rec.worker is None
    assert messages and "richardson-lucy" in messages[0] and "coils" in messages[0]
    assert len(viewer.layers) == n_layers


def test_coil_map_and_phase_boxes_only_for_multicoil(make_napari_viewer, nuclei64):
    viewer = make_napari_viewer()
    plain = viewer.add_image(nuclei64.copy(), name="plain")
    _, rec = viewer.window.add_plugin_dock_widget("napari-genprior", "Reconstruct")
    rec.layer.value = plain
    assert not rec.show_coil_maps.enabled and rec.show_coil_maps.native.isHidden()
    assert not rec.show_phase.enabled and rec.show_phase.native.isHidden()


def test_a_multicoil_file_reconstructs_the_slice_shown(make_napari_viewer, qtbot, tmp_path):
    """A fastMRI multi-coil file opened in napari: Reconstruct takes the slice on screen,
    reads it alone from the file, estimates its coil maps and reconstructs it."""
    import h5py

    import napari_genprior as ngp
    from napari_genprior.operators.coils import birdcage_maps

    shape, coils = (64, 64), 4
    yy, xx = np.mgrid[:64, :64] / 64
    truth = np.stack(
        [((yy - 0.5) ** 2 + (xx - 0.5) ** 2 < r**2).astype(float) for r in (0.2, 0.3, 0.35)]
    )
    A = ngp.make_operator(
        "mri",
        shape=shape,
        acceleration=3,
        center_fraction=0.35,
        mask="equispaced",
        seed=0,
        coils=birdcage_maps(shape, coils),
    )
    kspace = np.stack(
        [A.measure(x * np.exp(0.5j * yy), noise_std=0.001, seed=i) for i, x in enumerate(truth)]
    )
    path = tmp_path / "scan.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("kspace", data=kspace)
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin="napari-genprior")
    meas = next(layer for layer in layers if "k-space" in layer.name)
    _, rec = viewer.window.add_plugin_dock_widget("napari-genprior", "Reconstruct")
    rec.layer.value = meas
    assert rec.show_coil_maps.enabled  # a reader layer is recognised as multi-coil
    viewer.dims.set_current_step(0, 2)
    rec.method.value = "cg"
    _run_and_wait(rec, qtbot)
    result = viewer.layers[f"{meas.name} [cg]"]
    assert result.data.shape == shape
    # the largest disc is slice 2: the result is that slice, not the first
    area = (result.data > 0.5 * result.data.max()).mean()
    assert abs(area - truth[2].mean()) < abs(area - truth[0].mean())
