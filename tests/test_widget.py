"""The Reconstruct dock widget in a real napari viewer (under Xvfb, via pytest-xvfb)."""

from __future__ import annotations

import time

import numpy as np
import pytest

import napari_genprior as ngp

pytestmark = pytest.mark.gui


@pytest.fixture
def viewer_and_widget(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-genprior", "nuclei-inpaint")
    _, widget = viewer.window.add_plugin_dock_widget("napari-genprior", "Reconstruct")
    return viewer, widget


def _wait_until_idle(qtbot, widget, timeout=120_000):
    qtbot.waitUntil(lambda: widget.worker is None, timeout=timeout)


def test_widget_reconstruction_beats_the_input_and_leaves_it_untouched(viewer_and_widget, qtbot):
    viewer, widget = viewer_and_widget
    clean = viewer.layers["nuclei"].data
    meas = viewer.layers["nuclei [50% pixels, noisy]"]
    meas.scale = (0.5, 0.25)
    meas.translate = (10.0, -3.0)
    before = meas.data.copy()
    before_meta = dict(meas.metadata["genprior"])
    widget.layer.value = meas
    assert widget.operator.value.startswith("from the layer")
    widget.method.value = "dip"
    widget.steps.value = 250
    previews = []
    n_layers = len(viewer.layers)
    widget.start()
    assert widget.worker is not None and not widget.run_button.enabled
    widget.worker.yielded.connect(
        lambda u: previews.append(f"{meas.name} [preview]" in viewer.layers) if u.image is not None else None)
    _wait_until_idle(qtbot, widget)

    qtbot.wait(300)  # let any queued update land
    result = viewer.layers["nuclei [50% pixels, noisy] [dip]"]
    assert any(previews), "a live preview layer was shown while running"
    assert [lyr.name for lyr in viewer.layers if "preview" in lyr.name] == [], \
        "one preview layer, updated in place and removed at the end"
    assert len(viewer.layers) == n_layers + 1
    assert np.array_equal(meas.data, before), "the input layer was modified"
    assert meas.metadata["genprior"] == before_meta
    np.testing.assert_array_equal(result.scale, meas.scale)
    np.testing.assert_array_equal(result.translate, meas.translate)
    meta = result.metadata["genprior"]
    assert meta["method"] == "dip" and meta["operator"] == meas.metadata["genprior"]["operator"]
    assert meta["source_layer"] == meas.name and not meta["cancelled"]
    p_in, p_out = ngp.metrics.psnr(clean, meas.data), ngp.metrics.psnr(clean, result.data)
    assert p_out > p_in + 8, (p_in, p_out)
    assert widget.run_button.enabled and not widget.cancel_button.enabled
    assert "done" in widget.status.value


def test_a_short_run_leaves_exactly_one_new_layer(viewer_and_widget, qtbot):
    # Regression: napari's progress bar processes events, so the end of a short run used to be
    # handled in the middle of a preview update, leaving an orphan preview layer behind.
    viewer, widget = viewer_and_widget
    widget.layer.value = viewer.layers["nuclei [50% pixels, noisy]"]
    names = [lyr.name for lyr in viewer.layers]
    from qtpy.QtWidgets import QApplication

    for steps in (12, 20):
        widget.steps.value = steps
        widget.start()
        while widget.worker is not None:  # a busy main thread: signals queue up between polls
            time.sleep(0.05)
            QApplication.processEvents()
        qtbot.wait(300)
        names.append(f"nuclei [50% pixels, noisy] [dip]{' [1]' if steps == 20 else ''}")
        assert [lyr.name for lyr in viewer.layers] == names


def test_cancel_stops_quickly_and_keeps_the_best_so_far(viewer_and_widget, qtbot):
    viewer, widget = viewer_and_widget
    widget.layer.value = viewer.layers["nuclei [50% pixels, noisy]"]
    widget.steps.value = 100_000
    widget.start()
    steps = []
    widget.worker.yielded.connect(lambda u: steps.append(u.step))
    qtbot.waitUntil(lambda: len(steps) >= 15, timeout=60_000)
    t0 = time.perf_counter()
    widget.cancel()
    _wait_until_idle(qtbot, widget, timeout=10_000)
    assert time.perf_counter() - t0 < 2.0
    result = viewer.layers["nuclei [50% pixels, noisy] [dip]"]
    assert result.metadata["genprior"]["cancelled"]
    assert result.metadata["genprior"]["cancelled_at"] < 1000
    assert np.all(np.isfinite(result.data))
    assert "cancelled" in widget.status.value


def test_plain_image_layer_is_denoised(make_napari_viewer, qtbot, nuclei64):
    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    noisy = nuclei64 + rng.normal(0, 15, nuclei64.shape).astype(np.float32)
    layer = viewer.add_image(noisy, name="noisy")
    _, widget = viewer.window.add_plugin_dock_widget("napari-genprior", "Reconstruct")
    widget.layer.value = layer
    assert widget.operator.value.startswith("denoise")
    widget.steps.value = 250
    widget.start()
    _wait_until_idle(qtbot, widget)
    result = viewer.layers["noisy [dip]"]
    assert result.metadata["genprior"]["operator"]["kind"] == "denoise"
    assert ngp.metrics.psnr(nuclei64, result.data) > ngp.metrics.psnr(nuclei64, noisy) + 4


@pytest.mark.parametrize("bad, words", [
    (np.full((32, 32), np.nan, dtype=np.float32), "NaN"),
    (np.zeros((4, 32, 32), dtype=np.float32), "shape"),
])
def test_bad_input_gets_a_notification_and_changes_nothing(make_napari_viewer, monkeypatch, bad, words):
    from napari_genprior._widgets import reconstruct as mod

    messages = []
    monkeypatch.setattr(mod, "show_error", messages.append)
    viewer = make_napari_viewer()
    layer = viewer.add_image(bad, name="bad")
    _, widget = viewer.window.add_plugin_dock_widget("napari-genprior", "Reconstruct")
    widget.layer.value = layer
    if bad.ndim == 3:  # a stack with a 2D operator spec that does not match it
        layer.metadata["genprior"] = {"operator": {"kind": "denoise", "shape": [32, 32]}}
        widget._on_layer_changed(layer)
    n_layers = len(viewer.layers)
    widget.start()
    assert widget.worker is None
    assert len(messages) == 1 and words in messages[0] and "'bad'" in messages[0]
    assert len(viewer.layers) == n_layers
    np.testing.assert_array_equal(layer.data, bad)


def test_prior_methods_use_the_chosen_prior_and_say_when_none_is_chosen(make_napari_viewer,
                                                                       monkeypatch, qtbot):
    from napari_genprior._widgets import reconstruct as mod

    messages = []
    monkeypatch.setattr(mod, "show_error", messages.append)
    viewer = make_napari_viewer()
    digits = np.load(mod.__file__.rsplit("/_widgets", 1)[0] + "/sample_data/digits_test.npz")
    x = digits["images"][0].astype(np.float32) / 255
    noisy = x + np.random.default_rng(0).normal(0, 0.2, x.shape).astype(np.float32)
    layer = viewer.add_image(noisy, name="digit")
    _, widget = viewer.window.add_plugin_dock_widget("napari-genprior", "Reconstruct")
    widget.layer.value = layer
    widget.method.value = "csgm"
    widget.start()
    assert widget.worker is None and messages and "needs a prior" in messages[0]
    assert "digits-vae" in widget.prior.choices
    widget.prior.value = "digits-vae"
    widget.steps.value = 200
    widget.start()
    _wait_until_idle(qtbot, widget)
    result = viewer.layers["digit [csgm]"]
    assert result.metadata["genprior"]["prior"]["source"] == "digits-vae"
    assert ngp.metrics.psnr(x, result.data) > ngp.metrics.psnr(x, noisy) + 3


def test_no_layer_selected_warns(make_napari_viewer, monkeypatch):
    from napari_genprior._widgets import reconstruct as mod

    messages = []
    monkeypatch.setattr(mod, "show_warning", messages.append)
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-genprior", "Reconstruct")
    widget.start()
    assert messages and "Pick an image layer" in messages[0] and widget.worker is None


def test_widget_offers_only_image_layers(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_labels(np.zeros((8, 8), dtype=np.uint8), name="labels")
    viewer.add_points([[1, 1]], name="points")
    img = viewer.add_image(np.ones((8, 8)), name="img")
    _, widget = viewer.window.add_plugin_dock_widget("napari-genprior", "Reconstruct")
    assert list(widget.layer.choices) == [img]
