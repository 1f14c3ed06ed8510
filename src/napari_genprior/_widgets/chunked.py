"""The Deconvolve in chunks dock widget: a 3D stack larger than memory (a dask-backed layer, an
OME-Zarr opened in napari) deconvolved chunk by chunk into an OME-Zarr on disk, shown while it
is written.

It runs :func:`napari_genprior.batch.iter_reconstruct_chunked` in a ``thread_worker`` (the
camera fit and the choice of the count happen there too: the viewer never waits). The result
layer reads the output's full-resolution array directly, so memory stays a chunk's; each chunk
appears when it is written (the layer is refreshed), the progress bar counts chunks, and Cancel
stops after the chunk being computed, keeping those written (the output says how many). The
input layer is only read; the output never overwrites a path. No maths lives here.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import Container, FileEdit, ProgressBar, PushButton, SpinBox, create_widget
from napari.layers import Image
from napari.utils.notifications import show_error, show_info, show_warning

from ._dock import mark, wrapping_label
from ._layers import in_viewer, placement
from ._psf import PSFControls
from ._runs import RunControls

if TYPE_CHECKING:  # pragma: no cover
    import napari


def free_path(folder: Path, stem: str) -> Path:
    """``folder/stem.zarr``, or ``stem-2.zarr``, ``stem-3.zarr``... the first that is free."""
    path, n = folder / f"{stem}.zarr", 1
    while path.exists():
        n += 1
        path = folder / f"{stem}-{n}.zarr"
    return path


def layer_stack(layer: Image) -> Any:
    """The layer's (Z, Y, X) data as it is (numpy, dask, zarr; a pyramid's finest level),
    or ValueError with the reason it cannot be deconvolved in chunks."""
    if layer.rgb:
        raise ValueError(f"{layer.name!r} is an RGB image; choose a grey 3D stack.")
    data = layer.data[0] if layer.multiscale else layer.data
    if data.ndim != 3:
        raise ValueError(
            f"{layer.name!r} has {data.ndim} axes; Deconvolve in chunks takes a 3D stack "
            "(Z, Y, X). Reconstruct deconvolves single images and 4D series."
        )
    if min(data.shape) < 2:
        raise ValueError(f"{layer.name!r} is empty or flat (shape {data.shape}).")
    return data


class ChunkedWidget(RunControls, Container):
    """Deconvolve a 3D image layer in chunks, into an OME-Zarr."""

    _already_running = "A deconvolution is already running; cancel it first."
    _cancelling = "stopping after the chunk being computed..."
    _failure = "Deconvolution in chunks failed"

    def __init__(self, viewer: napari.viewer.Viewer):
        self._viewer = viewer
        self.layer = create_widget(
            annotation=Image,
            label="stack",
            options={"tooltip": "The 3D stack (Z, Y, X) to deconvolve. It is only read."},
        )
        self.psf = PSFControls(viewer, lambda: self.layer.value)
        self.steps = SpinBox(
            label="iterations",
            value=0,
            min=0,
            max=10000,
            tooltip="Richardson-Lucy iterations for every chunk; 0: chosen by the held-out "
            "rule on a block around the brightest chunk.",
        )
        self.chunk_z = SpinBox(label="chunk planes", value=64, min=4, max=4096)
        self.chunk_xy = SpinBox(label="chunk width", value=256, min=32, max=8192, step=32)
        self.output = FileEdit(
            label="write to", mode="w", filter="*.zarr", tooltip="A new OME-Zarr folder."
        )
        self.run_button = PushButton(text="Run", tooltip="Start the deconvolution.")
        self.cancel_button = PushButton(
            text="Cancel", enabled=False, tooltip="Stop after this chunk; keep those written."
        )
        self.progress = ProgressBar(value=0, min=0, max=1, label="chunks", visible=False)
        self.status = wrapping_label(value="")
        super().__init__(
            widgets=[
                self.layer,
                *self.psf.widgets,
                self.steps,
                self.chunk_z,
                self.chunk_xy,
                self.output,
                self.run_button,
                self.cancel_button,
                self.progress,
                self.status,
            ]
        )
        mark(self)
        self._start_button = self.run_button
        self._result: Image | None = None
        self._source: Image | None = None
        self._t0 = 0.0
        self.run_button.changed.connect(self.start)
        self.cancel_button.changed.connect(self.cancel)
        self.layer.changed.connect(self._on_layer_changed)
        self._on_layer_changed(self.layer.value)

    def _notify(self, level: str, message: str) -> None:
        {"warning": show_warning, "error": show_error}.get(level, show_info)(message)

    def _on_layer_changed(self, layer: Image | None) -> None:
        self.psf.read_voxel_size()
        self.psf.update_visibility(True)
        self.psf.boundary.visible = False  # a chunk's border is always unknown
        if layer is not None:
            current = Path(self.output.value or ".")
            folder = current.parent if current.name else Path.cwd()
            self.output.value = free_path(folder, f"{layer.name}-deconvolved")

    def _psf(self, shape: tuple[int, ...]) -> Any:
        """The PSF for ``reconstruct_chunked``: an array, or the optics dict."""
        from ..batch._chunked import chunk_psf

        return chunk_psf(self.psf.params(shape))

    def start(self) -> None:
        """Check the inputs and start the run (a notification and the status say what is
        wrong, and nothing starts, when something is)."""
        from ..batch import iter_reconstruct_chunked

        if self._refuse_while_running():
            return
        layer = self.layer.value
        try:
            if layer is None:
                raise ValueError("No image layer: open or choose a 3D stack first.")
            data = layer_stack(layer)
            out = Path(self.output.value)
            if out.exists():
                raise ValueError(f"{out} exists; choose a new output (nothing is overwritten).")
            if out.suffix != ".zarr":
                raise ValueError(f"{out.name}: the output is an OME-Zarr folder, ending .zarr.")
            psf = self._psf(tuple(data.shape))
        except ValueError as exc:
            self.status.value = str(exc)
            self.progress.visible = False
            self._notify("error", str(exc))
            return
        chunks = (int(self.chunk_z.value), int(self.chunk_xy.value), int(self.chunk_xy.value))
        voxel = tuple(float(s) for s in layer.scale[-3:])
        run = iter_reconstruct_chunked(
            data,
            psf,
            out,
            chunks=chunks,
            steps=int(self.steps.value) or None,
            voxel=None if all(s == 1 for s in voxel) else voxel,  # (ones: not known)
        )
        self._source, self._result, self._out = layer, None, out
        self._t0 = time.perf_counter()
        self.progress.value, self.progress.visible = 0, True
        self._start_worker(run, "fitting the camera and choosing the count...")

    # -- worker callbacks (main thread) ------------------------------------------------------
    def _on_update(self, u) -> None:
        if self.worker is None:
            return
        if not in_viewer(self._viewer, self._result):
            self._result = self._add_result()
        else:
            self._result.refresh()
        elapsed = time.perf_counter() - self._t0
        left = elapsed / u.step * (u.total - u.step)
        self.progress.max, self.progress.value = u.total, u.step
        self.status.value = (
            f"chunk {u.step} of {u.total} written ({u.iterations} iterations each); "
            f"~{left:.0f} s left"
        )

    def _add_result(self) -> Image:
        import zarr

        level = zarr.open_array(str(self._out / "0"), mode="r")
        src = self._source
        return self._viewer.add_image(
            level,
            name=f"{src.name} [richardson-lucy, chunks]",
            colormap=src.colormap.name,
            metadata={"genprior": {"role": "result", "ome_zarr": str(self._out)}},
            **placement(src),
        )

    def _on_done(self, path: Path) -> None:
        from .._omezarr import read_ome_zarr

        attrs = read_ome_zarr(path)[2].get("genprior", {})
        if not in_viewer(self._viewer, self._result):
            self._result = self._add_result()
        self._result.metadata = {"genprior": {"role": "result", "ome_zarr": str(path), **attrs}}
        self._result.refresh()
        self._result.reset_contrast_limits()
        seconds = time.perf_counter() - self._t0
        stopped = attrs.get("cancelled_after")
        # (updates are sent at most twice a second: the last ones may not have been shown)
        self.progress.value = stopped or self.progress.max
        word = f"cancelled after {stopped} chunks (kept)" if stopped else "done"
        msg = f"richardson-lucy in chunks: {word} in {seconds:.0f} s; wrote {path}"
        self.status.value = msg
        show_info(msg)

    def _on_finished(self) -> None:
        super()._on_finished()
        if self._source is not None:  # the next run gets a new output
            self._on_layer_changed(self.layer.value)
