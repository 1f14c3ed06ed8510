"""Issue 15: the plugin as a new user clicks through it. Each test here failed before the fix
it guards (placement, defaults that lead, warnings, progress, layout, names, help)."""

from __future__ import annotations

import numpy as np
import pytest

import napari_genprior as ngp

gui = pytest.mark.gui


def _wait_until_idle(qtbot, widget, timeout=120_000):
    qtbot.waitUntil(lambda: widget.worker is None, timeout=timeout)


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def _reconstruct_widget(viewer):
    _, widget = viewer.window.add_plugin_dock_widget("napari-genprior", "Reconstruct")
    return widget


def _simulate_widget(viewer):
    _, widget = viewer.window.add_plugin_dock_widget("napari-genprior", "Simulate")
    return widget


# -- 10: help ----------------------------------------------------------------------------------

def test_reconstruct_help_names_every_method_and_the_bundled_priors():
    doc = ngp.reconstruct.__doc__
    assert "none in this version" not in doc
    for method in ngp.list_methods():
        assert f'``"{method}"``' in doc, method
    for prior in ngp.list_priors():
        assert f'``"{prior}"``' in doc, prior


# -- 1: placement --------------------------------------------------------------------------------

@gui
def test_a_super_resolved_measurement_lies_exactly_over_the_clean_image(viewer, qtbot, nuclei64):
    clean = viewer.add_image(nuclei64, name="clean")
    sim = _simulate_widget(viewer)
    sim.layer.value = clean
    sim.kind.value = "downsample"
    sim.factor.value = 2
    meas = sim.simulate()[0]
    widget = _reconstruct_widget(viewer)
    widget.layer.value = meas
    widget.method.value = "tv"
    widget.steps.value = 20
    widget.start()
    _wait_until_idle(qtbot, widget)
    result = viewer.layers[-1]
    assert result.data.shape == clean.data.shape
    np.testing.assert_allclose(result.scale, clean.scale)
    np.testing.assert_allclose(result.translate, clean.translate, atol=1e-9)


@gui
@pytest.mark.parametrize("factor", [2, 3])
def test_super_resolving_a_plain_image_covers_exactly_its_area(viewer, qtbot, nuclei64, factor):
    low = viewer.add_image(nuclei64[::4, ::4].copy(), name="low", scale=(2.0, 2.0),
                           translate=(5.0, -1.0))
    before = _edges(low)
    widget = _reconstruct_widget(viewer)
    widget.layer.value = low
    widget.operator.value = "super-resolve"
    widget.factor.value = factor
    widget.method.value = "adjoint"
    widget.start()
    _wait_until_idle(qtbot, widget)
    result = viewer.layers[-1]
    assert result.data.shape == (16 * factor, 16 * factor)
    # the world extent of the pixel edges is the input's
    np.testing.assert_allclose(_edges(result), before)
    np.testing.assert_allclose(_edges(low), before)  # the input's placement is untouched


def _edges(layer):
    first = np.asarray(layer.translate) - np.asarray(layer.scale) / 2
    return first, first + np.asarray(layer.scale) * np.asarray(layer.data.shape)


def test_a_downsample_measurement_layer_is_centred_on_its_blocks():
    from napari_genprior._layerdata import measurement_layer

    A = ngp.make_operator("downsample", shape=(12, 12), factor=3)
    y = A.measure(np.ones((12, 12), np.float32))
    _, kwargs, _ = measurement_layer(y, A, "m")
    assert kwargs["scale"] == (3.0, 3.0) and kwargs["translate"] == (1.0, 1.0)
