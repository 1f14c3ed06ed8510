"""The Train prior dock widget in a real napari viewer (under Xvfb, via pytest-xvfb)."""

from __future__ import annotations

import time
from unittest import mock

import numpy as np
import pytest
import torch

import napari_genprior as ngp
from napari_genprior._widgets._session import SESSION_PRIORS

pytestmark = pytest.mark.gui


@pytest.fixture(autouse=True)
def _clean_session_priors():
    SESSION_PRIORS.clear()
    yield
    SESSION_PRIORS.clear()


@pytest.fixture
def viewer_and_widget(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-genprior", "nuclei")
    _, widget = viewer.window.add_plugin_dock_widget("napari-genprior", "Train prior")
    return viewer, widget


def _tiny(widget, layer, epochs=2, patches=128, name="tiny"):
    widget.images.value = [layer]
    widget.patch_size.value = 16
    widget.latent_dim.value = 8
    widget.epochs.value = epochs
    widget.patches_per_epoch.value = patches
    widget.device.value = "cpu"
    widget.prior_name.value = name


def _wait_until_idle(qtbot, widget, timeout=60_000):
    qtbot.waitUntil(lambda: widget.worker is None, timeout=timeout)


def test_training_registers_a_prior_plots_losses_and_leaves_the_input_alone(
    viewer_and_widget, qtbot, tmp_path
):
    viewer, widget = viewer_and_widget
    layer = viewer.layers["nuclei"]
    before = layer.data.copy()
    _tiny(widget, layer)
    n_layers = len(viewer.layers)
    widget.start()
    assert widget.worker is not None and not widget.train_button.enabled
    assert widget.cancel_button.enabled
    _wait_until_idle(qtbot, widget)
    qtbot.wait(200)  # let any queued update land

    assert SESSION_PRIORS.names() == ["tiny"]
    G = SESSION_PRIORS.get("tiny")
    assert G is widget.trained and widget.trained_name == "tiny"
    assert tuple(G.image_shape) == (16, 16) and G.latent_dim == 8
    assert G.card["name"] == "tiny" and not G.card["training"]["cancelled"]
    assert [len(v) for v in widget.losses.values()] == [2, 2, 2]
    assert len(widget.loss_plot.curves["loss"]) == 2
    assert all(np.isfinite(widget.loss_plot.curves["loss"]))

    assert len(viewer.layers) == n_layers + 1, "one samples layer, updated in place"
    samples = viewer.layers["tiny [samples]"]
    assert samples.unique_id == widget.preview.unique_id
    assert samples.metadata["genprior"] == {"role": "prior samples", "prior": "tiny"}
    assert samples.data.shape == (2 * 16, 4 * 16)
    assert 0 <= samples.data.min() and samples.data.max() <= 1
    assert layer.data.dtype == before.dtype and np.array_equal(layer.data, before)
    assert "trained 2 epochs" in widget.status.value
    assert widget.train_button.enabled and not widget.cancel_button.enabled
    assert widget.save_button.enabled

    path = widget.save(tmp_path / "p.safetensors")
    assert path == tmp_path / "p.safetensors" and path.is_file()
    G2 = ngp.load_prior(path)
    z = torch.randn((3, 8), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(G2(z), G.eval()(z))
    assert G2.card["name"] == "tiny"


def test_a_second_run_gets_a_unique_name_and_its_own_samples(viewer_and_widget, qtbot):
    viewer, widget = viewer_and_widget
    _tiny(widget, viewer.layers["nuclei"], epochs=1)
    for _ in range(2):
        widget.start()
        _wait_until_idle(qtbot, widget)
    qtbot.wait(200)
    assert SESSION_PRIORS.names() == ["tiny", "tiny (2)"]
    assert widget.trained_name == "tiny (2)"
    assert len([lyr for lyr in viewer.layers if "[samples]" in lyr.name]) == 2
    assert [len(v) for v in widget.losses.values()] == [1, 1, 1], "the curve restarts"


def test_cancel_stops_after_the_current_epoch_and_keeps_the_prior(viewer_and_widget, qtbot):
    viewer, widget = viewer_and_widget
    before = viewer.layers["nuclei"].data.copy()
    _tiny(widget, viewer.layers["nuclei"], epochs=100_000, patches=256, name="partial")
    widget.start()
    epochs = []
    widget.worker.yielded.connect(lambda u: epochs.append(u.epoch))
    qtbot.waitUntil(lambda: len(epochs) >= 3, timeout=60_000)
    t0 = time.perf_counter()
    widget.cancel()
    _wait_until_idle(qtbot, widget, timeout=10_000)
    from conftest import latency_limit

    assert time.perf_counter() - t0 < latency_limit(2.0)
    assert SESSION_PRIORS.names() == ["partial"]
    card = SESSION_PRIORS.get("partial").card["training"]
    assert card["cancelled"] and 3 <= card["epochs"] < 1000
    assert "cancelled" in widget.status.value and "kept" in widget.status.value
    assert np.array_equal(viewer.layers["nuclei"].data, before)


def test_a_gan_trains_too(viewer_and_widget, qtbot):
    viewer, widget = viewer_and_widget
    _tiny(widget, viewer.layers["nuclei"], epochs=1, patches=64, name="gan")
    widget.kind.value = "gan"
    widget.start()
    _wait_until_idle(qtbot, widget)
    assert SESSION_PRIORS.get("gan").card["kind"] == "gan"
    assert set(widget.loss_plot.curves) == {"generator", "discriminator"}


def test_a_score_prior_trains_and_the_reconstruct_widget_picks_its_method(viewer_and_widget, qtbot):
    viewer, widget = viewer_and_widget
    _tiny(widget, viewer.layers["nuclei"], epochs=1, patches=64, name="diffusion")
    widget.kind.value = "score"
    widget.start()
    _wait_until_idle(qtbot, widget)
    G = SESSION_PRIORS.get("diffusion")
    assert G.card["kind"] == "score" and G.card["architecture"] == "score-unet"
    assert set(widget.loss_plot.curves) == {"denoising"}
    samples = viewer.layers["diffusion [samples]"].data
    assert samples.ndim == 2 and np.isfinite(samples).all()  # drawn by the denoiser
    _, rec = viewer.window.add_plugin_dock_widget("napari-genprior", "Reconstruct")
    rec.prior.value = "diffusion"
    assert rec.method.value == "score" and not rec.restarts.enabled


@pytest.mark.parametrize(
    "bad, rgb, words",
    [
        (np.full((32, 32), np.nan, dtype=np.float32), False, "NaN"),
        (np.zeros((32, 32, 3), dtype=np.uint8), True, "RGB"),
        (np.zeros((3, 12, 40), dtype=np.float32), False, "smaller than the 16x16 patch"),
    ],
)
def test_bad_input_gets_a_notification_and_starts_nothing(make_napari_viewer, bad, rgb, words):
    viewer = make_napari_viewer()
    layer = viewer.add_image(bad, name="bad", rgb=rgb)
    _, widget = viewer.window.add_plugin_dock_widget("napari-genprior", "Train prior")
    _tiny(widget, layer)
    n_layers = len(viewer.layers)
    with mock.patch("napari_genprior._widgets.train.show_error") as error:
        widget.start()
    assert widget.worker is None and widget.train_button.enabled
    error.assert_called_once()
    message = error.call_args.args[0]
    assert words in message and "'bad'" in message
    assert len(viewer.layers) == n_layers and SESSION_PRIORS.names() == []
    np.testing.assert_array_equal(layer.data, bad)


def test_no_layer_selected_and_nothing_to_save_warn(viewer_and_widget, tmp_path):
    _, widget = viewer_and_widget
    widget.images.value = []
    with mock.patch("napari_genprior._widgets.train.show_warning") as warning:
        widget.start()
        assert widget.worker is None
        assert widget.save(tmp_path / "p.safetensors") is None
    assert "Pick one or more image layers" in warning.call_args_list[0].args[0]
    assert "Nothing to save" in warning.call_args_list[1].args[0]
    assert not (tmp_path / "p.safetensors").exists()


def test_the_image_list_follows_the_viewer(viewer_and_widget):
    viewer, widget = viewer_and_widget
    viewer.add_labels(np.zeros((8, 8), dtype=np.uint8), name="labels")
    extra = viewer.add_image(np.ones((64, 64)), name="extra")
    assert list(widget.images.choices) == [viewer.layers["nuclei"], extra]
    viewer.layers.remove("extra")
    assert list(widget.images.choices) == [viewer.layers["nuclei"]]


def test_my_images_are_noisy_learns_a_score_prior_from_the_layer_alone(viewer_and_widget, qtbot):
    """Issue 36: the option trains a score prior by splitting the (raw, noisy) layer's photons,
    shows the held-out PSNR beside the loss, and leaves the layer as it was."""
    viewer, widget = viewer_and_widget
    layer = viewer.layers["nuclei"]
    before = layer.data.copy()
    _tiny(widget, layer, epochs=2, patches=64, name="from-noise")
    widget.patch_size.value = 32
    widget.noisy.value = True
    assert widget.kind.value == "score" and not widget.kind.enabled
    assert not widget.latent_dim.enabled
    widget.start()
    _wait_until_idle(qtbot, widget)
    G = SESSION_PRIORS.get("from-noise")
    assert G.card["kind"] == "score" and "noisy_training" in G.card
    assert G.card["noisy_training"]["held_out"] == "separate patches"
    assert set(widget.loss_plot.curves) == {"split loss", "held-out PSNR"}
    assert len(widget.loss_plot.curves["held-out PSNR"]) == 2
    assert "held-out PSNR" in widget.status.value
    assert "through" not in G.card["noisy_training"]
    np.testing.assert_array_equal(layer.data, before)
    # blurred too: the prior learns them through that blur, which its card records
    assert widget.blurred_by.enabled
    widget.blurred_by.value = 1.5
    widget.prior_name.value = "through-blur"
    widget.start()
    _wait_until_idle(qtbot, widget)
    through = SESSION_PRIORS.get("through-blur").card["noisy_training"]["through"]
    assert through == {"kind": "blur", "sigma": [1.5, 1.5], "boundary": "unknown"}
    np.testing.assert_array_equal(layer.data, before)
    widget.noisy.value = False
    assert widget.kind.enabled and widget.latent_dim.enabled and not widget.blurred_by.enabled
