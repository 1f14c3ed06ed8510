"""What the Reconstruct widget does when things go wrong (docs/when-things-go-wrong.md).

Each bad input gets one notification that names the layer and the problem, and changes nothing:
no layer is added, the input's data and metadata are as they were. Faults (an exception in the
solver, running out of memory, Cancel at any moment, the viewer closed mid-run, two runs at
once) leave the viewer usable, and the event loop keeps turning during a run.
"""

from __future__ import annotations

import copy
import dataclasses
import time

import numpy as np
import pytest
import torch
from conftest import latency_limit

import napari_genprior as ngp

pytestmark = pytest.mark.gui


@pytest.fixture
def notes(monkeypatch):
    """Every notification the Reconstruct widget shows, as (level, message)."""
    from napari_genprior._widgets import reconstruct as mod

    seen: list[tuple[str, str]] = []
    for level in ("error", "warning", "info"):
        monkeypatch.setattr(mod, f"show_{level}", lambda msg, lv=level: seen.append((lv, msg)))
    return seen


def _widget(viewer):
    _, widget = viewer.window.add_plugin_dock_widget("napari-genprior", "Reconstruct")
    return widget


def _wait(qtbot, widget, timeout=60_000):
    qtbot.waitUntil(lambda: widget.worker is None, timeout=timeout)
    qtbot.wait(50)  # let queued signals land


def _snapshot(viewer):
    return [
        (lyr.name, np.array(lyr.data, copy=True), copy.deepcopy(dict(lyr.metadata)))
        for lyr in viewer.layers
    ]


def _unchanged(viewer, before):
    after = _snapshot(viewer)
    assert [n for n, _, _ in after] == [n for n, _, _ in before], "layers were added or removed"
    for (name, data, meta), (_, data2, meta2) in zip(before, after):
        np.testing.assert_array_equal(data2, data, err_msg=f"layer {name!r} was written to")
        assert repr(meta2) == repr(meta), f"layer {name!r}'s metadata changed"


# -- bad input --------------------------------------------------------------------------------


def _kspace_meta():
    A = ngp.make_operator("mri", shape=(16, 16), acceleration=2, seed=0)
    from napari_genprior._layerdata import measurement_layer

    data, kw, _ = measurement_layer(A.measure(np.ones((16, 16)), seed=0), A, "k")
    return data, kw["metadata"]


_K_DATA, _K_META = _kspace_meta()


def _edited(edit):
    meta = copy.deepcopy(_K_META)
    edit(meta["genprior"])
    return meta


BAD_INPUTS = {
    # name: (data, layer kwargs, widget settings, words in the message)
    "rgb": (np.zeros((16, 16, 3), np.uint8), {"rgb": True}, {}, "RGB"),
    "one pixel": (np.ones((1, 1), np.float32), {}, {}, "2x2"),
    "one row": (np.ones((1, 40), np.float32), {}, {}, "2x2"),
    "nan pixels": (np.where(np.eye(16) > 0, np.nan, 1.0), {}, {}, "NaN"),
    "inf pixels": (np.where(np.eye(16) > 0, np.inf, 1.0), {}, {}, "infinite"),
    "nothing to inpaint": (
        np.ones((16, 16)),
        {},
        {"operator": "inpaint (NaN pixels are missing)"},
        "no NaN pixels",
    ),
    "smaller than the prior's patch": (
        np.ones((6, 6), np.float32),
        {},
        {"method": "csgm", "prior": "digits-vae"},
        "not smaller",
    ),
    "3D image for a 2D prior": (
        np.ones((2, 8, 8), np.float32),
        {"metadata": {"genprior": {"operator": {"kind": "denoise", "shape": [2, 8, 8]}}}},
        {"method": "csgm", "prior": "digits-vae"},
        "shape",
    ),
    "prior method without a prior": (
        np.ones((8, 8), np.float32),
        {},
        {"method": "csgm"},
        "needs a prior",
    ),
    "stack that does not fit its operator": (
        np.zeros((4, 32, 32), np.float32),
        {"metadata": {"genprior": {"operator": {"kind": "denoise", "shape": [32, 32]}}}},
        {},
        "shape",
    ),
    "metadata not a dict": (
        np.ones((16, 16)),
        {"metadata": {"genprior": 5}},
        {"operator": "from the layer's metadata"},
        "no operator",
    ),
    "operator spec a string": (
        np.ones((16, 16)),
        {"metadata": {"genprior": {"operator": "mri"}}},
        {},
        "spec",
    ),
    "operator kind unknown": (
        _K_DATA,
        {"metadata": _edited(lambda g: g["operator"].update(kind="xray"))},
        {},
        "unknown operator kind",
    ),
    "operator shape negative": (
        _K_DATA,
        {"metadata": _edited(lambda g: g["operator"].update(shape=[-16, 16]))},
        {},
        "shape",
    ),
    "mask of the wrong length": (
        _K_DATA,
        {"metadata": _edited(lambda g: g["operator"].update(mask=[1, 0, 1]))},
        {},
        "mask",
    ),
    "stored measurement corrupt": (
        _K_DATA,
        {"metadata": _edited(lambda g: g["measurement"].update(complex128="not base64!"))},
        {},
        "malformed",
    ),
    "stored measurement of another shape": (
        _K_DATA,
        {"metadata": _edited(lambda g: g["measurement"].update(shape=[8, 32]))},
        {},
        "shape (8, 32)",
    ),
    "k-space volume file gone": (
        _K_DATA,
        {
            "metadata": _edited(
                lambda g: (
                    g.pop("measurement"),
                    g.update(
                        source={"path": "/nonexistent/file.h5", "slices": 2, "dataset": "kspace"}
                    ),
                )
            )
        },
        {},
        "cannot be read",
    ),
    "slices nonsense": (
        _K_DATA,
        {
            "metadata": _edited(
                lambda g: (
                    g.pop("measurement"),
                    g.update(source={"path": "x.h5", "slices": "many"}),
                )
            )
        },
        {},
        "slices",
    ),
    "phase method on a blur": (
        np.ones((16, 16), np.float32),
        {},
        {"operator": "deblur / deconvolve (PSF)", "method": "twf"},
        "magnitude-only",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gets_one_clear_notification_and_changes_nothing(make_napari_viewer, notes, case):
    data, layer_kw, settings, words = BAD_INPUTS[case]
    viewer = make_napari_viewer()
    viewer.add_image(np.ones((8, 8), np.float32), name="bystander")
    layer = viewer.add_image(data, name="bad", **copy.deepcopy(layer_kw))
    widget = _widget(viewer)
    widget.layer.value = layer
    for key, value in settings.items():
        getattr(widget, key).value = value
    before = _snapshot(viewer)
    widget.start()
    assert widget.worker is None and widget.run_button.enabled
    errors = [m for lv, m in notes if lv == "error"]
    assert len(errors) == 1, notes
    assert words in errors[0] and "'bad'" in errors[0], errors[0]
    _unchanged(viewer, before)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16])
def test_integer_images_are_reconstructed_as_floats_and_left_as_they_are(
    make_napari_viewer, qtbot, notes, dtype
):
    """A uint8 microscope frame, a uint16 camera image, an int16 MRI magnitude image."""
    rng = np.random.default_rng(0)
    img = (np.clip(rng.normal(0.5, 0.2, (24, 24)), 0, 1) * 100).astype(dtype)
    viewer = make_napari_viewer()
    layer = viewer.add_image(img, name="int")
    widget = _widget(viewer)
    widget.layer.value = layer
    widget.method.value = "tv"
    widget.steps.value = 20
    widget.start()
    _wait(qtbot, widget)
    result = viewer.layers["int [tv]"]
    assert result.data.dtype == np.float32 and np.all(np.isfinite(result.data))
    assert abs(float(result.data.mean()) - float(img.mean())) < 0.1 * float(img.mean())
    assert layer.data.dtype == dtype
    np.testing.assert_array_equal(layer.data, img)
    assert not [m for lv, m in notes if lv == "error"]


def test_a_corrupt_prior_file_is_refused_and_the_chooser_is_unchanged(
    make_napari_viewer, notes, tmp_path
):
    import pickle

    viewer = make_napari_viewer()
    widget = _widget(viewer)
    choices = list(widget.prior.choices)
    value = widget.prior.value
    bad = {
        "truncated.safetensors": None,
        "pickle.safetensors": pickle.dumps({"a": 1}),
        "text.safetensors": b"hello, not a model",
    }
    good = tmp_path / "good.safetensors"
    ngp.random_prior(latent_dim=2, widths=(4, 16), image_shape=(4, 4)).save(good)
    bad["truncated.safetensors"] = good.read_bytes()[:-100]
    for name, raw in bad.items():
        (tmp_path / name).write_bytes(raw)
        assert widget.load_prior_file(str(tmp_path / name)) is None
    errors = [m for lv, m in notes if lv == "error"]
    assert len(errors) == 3 and all("Cannot load the prior" in m for m in errors)
    assert list(widget.prior.choices) == choices and widget.prior.value == value


# -- faults -----------------------------------------------------------------------------------


def _replace_solver(monkeypatch, name, solver):
    from napari_genprior import solvers

    monkeypatch.setitem(
        solvers.METHODS, name, dataclasses.replace(solvers.METHODS[name], solver=solver)
    )


def _failed_tv_run(viewer, qtbot, notes, image, name, words):
    """Run ``tv`` on ``image`` in a new layer ``name``; the run must fail with exactly one error
    notification containing ``words``, leaving the viewer as it was (the preview removed, no
    result added). Returns the widget."""
    layer = viewer.add_image(image, name=name)
    widget = _widget(viewer)
    widget.layer.value = layer
    widget.method.value = "tv"
    before = _snapshot(viewer)
    widget.start()
    _wait(qtbot, widget)
    errors = [m for lv, m in notes if lv == "error"]
    assert len(errors) == 1 and words in errors[0], notes
    _unchanged(viewer, before)
    return widget


def test_an_exception_inside_the_solver_is_reported_and_the_viewer_stays_usable(
    make_napari_viewer, qtbot, notes, monkeypatch, nuclei64
):
    from napari_genprior.solvers.common import Update

    def broken(problem, *, steps=10, preview_every=1):
        yield Update(1, steps, 1.0, problem.to_numpy(problem.A.adjoint(problem.y)))
        raise RuntimeError("the solver hit a bug")

    _replace_solver(monkeypatch, "tv", broken)
    viewer = make_napari_viewer()
    widget = _failed_tv_run(viewer, qtbot, notes, nuclei64, "cells", "the solver hit a bug")
    assert widget.run_button.enabled and not widget.cancel_button.enabled
    assert "failed" in widget.status.value
    monkeypatch.undo()
    widget.method.value = "tv"
    widget.steps.value = 5
    widget.start()  # and the next run works
    _wait(qtbot, widget)
    assert "cells [tv]" in viewer.layers


def test_running_out_of_gpu_memory_falls_back_to_smaller_chunks_then_cpu_with_a_warning(
    make_napari_viewer, qtbot, notes, monkeypatch, nuclei64
):
    """A fake GPU whose every allocation fails: the run restarts with the mosaic's patches in
    chunks of 256 -> 64 -> 16, then on the CPU, where it succeeds; each step is a warning."""
    from napari_genprior import api
    from napari_genprior.solvers import run

    real_problem = run.make_problem
    attempts = []

    def fake_gpu(y, A, dev, *args):
        attempts.append(str(dev))
        if dev.type == "cuda":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 3.00 GiB")
        return real_problem(y, A, dev, *args)

    viewer = make_napari_viewer()
    layer = viewer.add_image(np.tile(nuclei64 / nuclei64.max(), (2, 2)), name="big")
    widget = _widget(viewer)
    widget.layer.value = layer
    widget.prior.value = "nuclei-vae"  # a 64x64 patch prior: a mosaic on this 128x128 image
    widget.check_fit.value = False  # its short run would meet the fake GPU too
    widget.restarts.value = 1
    widget.steps.value = 3
    monkeypatch.setattr(run, "make_problem", fake_gpu)
    monkeypatch.setattr(api._reconstruct, "resolve_device", lambda device: torch.device("cuda"))
    widget.start()
    _wait(qtbot, widget)
    assert attempts == ["cuda", "cuda", "cuda", "cpu"]
    warnings = [m for lv, m in notes if lv == "warning"]
    assert len(warnings) == 3, notes
    assert "started again with 64" in warnings[0] and "started again with 16" in warnings[1]
    assert "started again on the CPU" in warnings[2]
    result = viewer.layers["big [csgm, nuclei-vae]"]
    assert result.metadata["genprior"]["device"] == "cpu"
    assert len(result.metadata["genprior"]["notes"]) == 3


def test_out_of_memory_even_on_the_cpu_is_an_error_not_a_crash(
    make_napari_viewer, qtbot, notes, monkeypatch
):
    from napari_genprior.solvers import run

    def no_memory(*args):
        raise torch.OutOfMemoryError("out of memory")

    monkeypatch.setattr(run, "make_problem", no_memory)
    _failed_tv_run(
        make_napari_viewer(),
        qtbot,
        notes,
        np.ones((16, 16), np.float32),
        "img",
        "does not fit in memory",
    )


def _long_run(viewer, nuclei64, widget=None):
    layer = viewer.add_image(nuclei64, name=f"cells{len(viewer.layers)}")
    widget = widget or _widget(viewer)
    widget.layer.value = layer
    widget.method.value = "dip"
    widget.steps.value = 100_000
    return widget, layer


@pytest.mark.parametrize(
    "moment", ["before the first step", "mid-run", "while the result is being added"]
)
def test_cancel_at_any_moment_keeps_a_result_or_nothing_and_never_hangs(
    make_napari_viewer, qtbot, notes, nuclei64, moment
):
    viewer = make_napari_viewer()
    widget, layer = _long_run(viewer, nuclei64)
    steps = []
    if moment == "while the result is being added":
        widget.steps.value = 15
    widget.start()
    widget.worker.yielded.connect(lambda u: steps.append(u.step))
    if moment == "before the first step":
        widget.cancel()
    elif moment == "mid-run":
        qtbot.waitUntil(lambda: len(steps) >= 5, timeout=60_000)
        widget.cancel()
    else:
        widget.worker.returned.connect(lambda rec: widget.cancel())
    t0 = time.perf_counter()
    _wait(qtbot, widget, timeout=30_000)
    assert time.perf_counter() - t0 < latency_limit(5.0)
    results = [lyr for lyr in viewer.layers if "[dip" in lyr.name]
    assert len(results) == 1 and np.all(np.isfinite(results[0].data))
    assert results[0].metadata["genprior"]["cancelled"] == (
        moment != "while the result is being added"
    )
    assert not [lyr for lyr in viewer.layers if "preview" in lyr.name]
    np.testing.assert_array_equal(layer.data, nuclei64)
    assert widget.run_button.enabled and not widget.cancel_button.enabled
    assert not [m for lv, m in notes if lv == "error"]


def test_cancel_between_planes_of_a_stack_keeps_the_planes_done(
    make_napari_viewer, qtbot, notes, nuclei64, monkeypatch
):
    # tv on these (pixel-wise) planes converges in a few hundred steps and stops early; never
    # testing convergence keeps each plane at its 5000 steps
    monkeypatch.setattr("napari_genprior.solvers.tv.CHECK_EVERY", 10**9)
    viewer = make_napari_viewer()
    stack = np.stack([nuclei64[:32, :32], nuclei64[32:, :32], nuclei64[:32, 32:]])
    layer = viewer.add_image(stack, name="stack")
    widget = _widget(viewer)
    widget.layer.value = layer
    widget.method.value = "tv"
    # long enough planes that the cancel lands within plane 1 even on a busy machine (with 10
    # steps the whole stack could finish before the queued update reached the main thread)
    widget.steps.value = 5000
    widget.start()
    widget.worker.yielded.connect(lambda u: widget.cancel() if u.plane == 1 else None)
    _wait(qtbot, widget)
    result = viewer.layers["stack [tv, cancelled]"]
    assert result.data.shape == stack.shape
    assert result.metadata["genprior"]["planes_done"] == 2
    assert np.all(result.data[2] == 0) and np.any(result.data[0] != 0)


def test_closing_the_viewer_during_a_run_stops_the_worker_without_errors(
    make_napari_viewer, qtbot, nuclei64
):
    viewer = make_napari_viewer()
    widget, _ = _long_run(viewer, nuclei64)
    widget.start()
    worker = widget.worker
    steps = []
    worker.yielded.connect(lambda u: steps.append(u.step))
    qtbot.waitUntil(lambda: len(steps) >= 5, timeout=60_000)
    errors = []
    worker.errored.connect(errors.append)
    viewer.close()
    qtbot.waitUntil(lambda: not worker.is_running, timeout=int(latency_limit(5.0) * 1000))
    qtbot.wait(300)  # queued updates land
    n = len(steps)
    qtbot.wait(1000)
    assert len(steps) == n, "the solver kept running after the viewer closed"
    assert errors == []


def test_two_reconstructions_at_once(make_napari_viewer, qtbot, notes, nuclei64):
    """A second Run in the same widget is refused with a warning; two widgets run side by side,
    each with its own preview and result."""
    from napari_genprior._widgets.reconstruct import ReconstructWidget

    viewer = make_napari_viewer()
    first, cells0 = _long_run(viewer, nuclei64)
    second = ReconstructWidget(viewer)
    viewer.window.add_dock_widget(second, name="second Reconstruct")
    second, _ = _long_run(viewer, nuclei64[::-1].copy(), second)
    first.layer.value = cells0  # it followed the new layer's selection
    first.method.value = "dip"  # (choosing the layer set the recommended method: tv)
    first.steps.value = 100_000
    first.start()
    running = first.worker
    first.start()
    assert first.worker is running
    assert any("already running" in m for lv, m in notes if lv == "warning")
    second.start()
    seen = {1: 0, 2: 0}
    first.worker.yielded.connect(lambda u: seen.__setitem__(1, u.step))
    second.worker.yielded.connect(lambda u: seen.__setitem__(2, u.step))
    qtbot.waitUntil(lambda: min(seen.values()) >= 20, timeout=60_000)
    assert len([lyr for lyr in viewer.layers if "preview" in lyr.name]) == 2
    first.cancel()
    second.cancel()
    _wait(qtbot, first)
    _wait(qtbot, second)
    assert {"cells0 [dip, cancelled]", "cells1 [dip, cancelled]"} <= {
        lyr.name for lyr in viewer.layers
    }
    assert not [lyr for lyr in viewer.layers if "preview" in lyr.name]


def test_the_event_loop_is_never_blocked_for_long_during_a_run(make_napari_viewer, qtbot, nuclei64):
    # The 200 ms target is measured in benchmarks/gui_overhead.py (129-159 ms there); this test
    # bounds the stall at 5x the target, so that a busy shared machine (218 ms was seen while
    # a benchmark ran beside the tests) does not fail it at random, while a blocking call in
    # the widget (seconds) still does.
    from qtpy.QtCore import QTimer

    from napari_genprior._widgets._worker import warm_up

    viewer = make_napari_viewer(show=True)
    widget, _ = _long_run(viewer, nuclei64)
    warm_up().join()  # torch's one-time imports, started when the widget opened
    qtbot.wait(500)  # the window is drawn before timing starts
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    qtbot.wait(200)
    widget.start()
    steps = []
    widget.worker.yielded.connect(lambda u: steps.append(u.step))
    # 12 previews' worth of steps (the widget draws at most a few a second)
    qtbot.waitUntil(lambda: bool(steps) and steps[-1] >= 120, timeout=120_000)
    widget.cancel()
    _wait(qtbot, widget)  # the result is added too
    qtbot.wait(200)
    timer.stop()
    gaps = np.diff(ticks)
    print(
        f"event loop: longest gap {gaps.max() * 1000:.0f} ms, median {np.median(gaps) * 1000:.0f} "
        f"ms over {len(gaps)} ticks of a 10 ms timer"
    )  # pytest -s shows it
    assert len(ticks) > 50
    assert gaps.max() < latency_limit(1.0), f"the event loop stalled {gaps.max() * 1000:.0f} ms"


# -- the Train prior widget: the same worker, the same guarantees ------------------------------


@pytest.fixture
def trainer(make_napari_viewer, nuclei64):
    from napari_genprior._widgets._session import SESSION_PRIORS

    SESSION_PRIORS.clear()
    viewer = make_napari_viewer()
    layer = viewer.add_image(nuclei64, name="cells")
    _, widget = viewer.window.add_plugin_dock_widget("napari-genprior", "Train prior")
    widget.images.value = [layer]
    widget.patch_size.value = 16
    widget.latent_dim.value = 4
    widget.epochs.value = 100_000
    widget.patches_per_epoch.value = 64
    widget.device.value = "cpu"
    widget.prior_name.value = "t"
    yield viewer, widget, layer
    SESSION_PRIORS.clear()


def test_training_cancelled_before_its_first_epoch_stops_and_keeps_what_it_has(trainer, qtbot):
    from napari_genprior._widgets._session import SESSION_PRIORS

    viewer, widget, layer = trainer
    widget.start()
    widget.cancel()  # before the worker thread has run anything
    qtbot.waitUntil(lambda: widget.worker is None, timeout=int(latency_limit(10.0) * 1000))
    assert SESSION_PRIORS.names() == ["t"]
    assert SESSION_PRIORS.get("t").card["training"]["epochs"] <= 1
    np.testing.assert_array_equal(layer.data, viewer.layers["cells"].data)
    assert widget.train_button.enabled and "cancelled" in widget.status.value


def test_closing_the_viewer_during_training_stops_it(trainer, qtbot):
    viewer, widget, _ = trainer
    widget.start()
    worker = widget.worker
    epochs = []
    worker.yielded.connect(lambda u: epochs.append(u.epoch))
    qtbot.waitUntil(lambda: len(epochs) >= 2, timeout=60_000)
    viewer.close()
    qtbot.waitUntil(lambda: not worker.is_running, timeout=int(latency_limit(5.0) * 1000))
    qtbot.wait(300)
    n = len(epochs)
    qtbot.wait(1000)
    assert len(epochs) == n


def test_an_exception_during_training_is_reported_and_nothing_is_registered(
    trainer, qtbot, monkeypatch
):
    from napari_genprior import api
    from napari_genprior._widgets import train as mod
    from napari_genprior._widgets._session import SESSION_PRIORS

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")
        yield  # a generator, like iter_train

    errors = []
    monkeypatch.setattr(mod, "show_error", errors.append)
    monkeypatch.setattr(api, "iter_train", broken)
    viewer, widget, _ = trainer
    n_layers = len(viewer.layers)
    widget.start()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=30_000)
    assert len(errors) == 1 and "illegal memory access" in errors[0]
    assert SESSION_PRIORS.names() == [] and len(viewer.layers) == n_layers
    assert widget.train_button.enabled
