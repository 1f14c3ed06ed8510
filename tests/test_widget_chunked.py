"""Deconvolve in chunks (issue 35): a dask-backed stack in, an OME-Zarr written chunk by chunk
out and shown while it is written, with progress and cancel; the input only read."""

from __future__ import annotations

import numpy as np
import pytest

import napari_genprior as ngp
from napari_genprior.volumes import nuclei_volume

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def measured():
    x = nuclei_volume((16, 64, 64), voxel=(0.25, 0.1, 0.1), seed=2)
    A = ngp.make_operator("blur", shape=x.shape, sigma=(0.8, 2.0, 2.0))
    return A.measure(x, photons=300, seed=0)


def _widget(make_napari_viewer, y, tmp_path):
    import dask.array as da

    viewer = make_napari_viewer()
    layer = viewer.add_image(da.from_array(y, chunks=(4, 32, 32)), name="stack", scale=(1, 1, 1))
    _, widget = viewer.window.add_plugin_dock_widget("napari-genprior", "Deconvolve in chunks")
    widget.layer.value = layer
    widget.psf.sigma.value = 2.0
    widget.steps.value = 3
    widget.chunk_z.value, widget.chunk_xy.value = 8, 32
    widget.output.value = tmp_path / "out.zarr"
    return viewer, widget, layer


def test_a_dask_stack_is_written_chunk_by_chunk_as_the_library_writes_it(
    make_napari_viewer, qtbot, measured, tmp_path
):
    viewer, widget, layer = _widget(make_napari_viewer, measured, tmp_path)
    before = np.asarray(layer.data).copy()
    psf = widget._psf(measured.shape)
    n = len(viewer.layers)
    widget.start()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    assert len(viewer.layers) == n + 1
    result = viewer.layers[-1]
    assert result.name == "stack [richardson-lucy, chunks]"
    lib = ngp.reconstruct_chunked(
        measured, psf, chunks=(8, 32, 32), steps=3, scheduler="sync", camera="auto"
    )
    np.testing.assert_array_equal(np.asarray(result.data[:]), lib)
    meta = result.metadata["genprior"]
    assert meta["ome_zarr"] == str(tmp_path / "out.zarr") and meta["steps"] == 3
    assert "cancelled_after" not in meta and "done" in widget.status.value
    assert (widget.progress.value, widget.progress.max) == (8, 8)  # 2x2x2 chunks
    np.testing.assert_array_equal(np.asarray(layer.data), before)  # the input only read
    # the next run is offered a new output: nothing is overwritten
    assert widget.output.value == tmp_path / "stack-deconvolved.zarr"


def test_cancel_keeps_the_chunks_written_and_bad_input_is_refused(
    make_napari_viewer, qtbot, measured, tmp_path, monkeypatch
):
    from napari_genprior._widgets import chunked

    errors = []
    monkeypatch.setattr(chunked, "show_error", errors.append)
    viewer, widget, layer = _widget(make_napari_viewer, measured, tmp_path)
    widget.start()
    widget.cancel()  # stops after the chunk being computed
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    meta = viewer.layers[-1].metadata["genprior"]
    assert 1 <= meta["cancelled_after"] < 8 and "cancelled after" in widget.status.value
    n = len(viewer.layers)
    widget.output.value = tmp_path / "out.zarr"  # written just now: refused
    widget.start()
    assert widget.worker is None and "exists" in widget.status.value and errors
    flat = viewer.add_image(measured[0], name="plane")
    widget.layer.value = flat
    widget.start()
    assert widget.worker is None and "has 2 axes" in widget.status.value
    assert len(viewer.layers) == n + 1  # only the plane added: no result from bad input


def test_napari_opens_an_ome_zarr_lazily_with_its_voxel_size_and_parameters(
    make_napari_viewer, measured, tmp_path
):
    import dask.array as da

    path = ngp.reconstruct_chunked(
        measured, {"na": 1.0, "wavelength": 0.52, "dxy": 0.1, "dz": 0.25}, chunks=(8, 32, 32),
        steps=2, out=tmp_path / "r.zarr", scheduler="sync",
    )  # fmt: skip
    from napari_genprior._omezarr import write_ome_zarr

    raw = write_ome_zarr(
        tmp_path / "raw.zarr", np.tile(measured, (1, 5, 5)), voxel=(0.25, 0.1, 0.1)
    )
    viewer = make_napari_viewer()
    (result,) = viewer.open(str(path), plugin="napari-genprior")
    assert isinstance(result.data, da.Array) and result.scale.tolist() == [1.0, 1.0, 1.0]
    assert result.metadata["genprior"]["steps"] == 2 and result.metadata["ome_zarr"] == str(path)
    (stack,) = viewer.open(str(raw), plugin="napari-genprior")
    assert stack.multiscale and np.allclose(stack.scale, (0.25, 0.1, 0.1))
    assert "genprior" not in stack.metadata  # a raw stack: no result's parameters claimed
