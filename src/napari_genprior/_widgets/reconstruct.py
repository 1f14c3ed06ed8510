"""The Reconstruct dock widget.

It starts :func:`napari_genprior.api.iter_reconstruct` in a ``thread_worker``, shows its progress
(a napari progress bar and a status line), keeps ONE preview layer updated in place, and on
Cancel sends False into the running generator so that the solver stops and returns its best
result so far. The input layer is never written to: results go to new layers that carry the
input's scale and translate and, in ``metadata["genprior"]``, everything that reproduces them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox, Container, Label, PushButton, SpinBox, create_widget
from napari.layers import Image
from napari.qt.threading import thread_worker
from napari.utils import progress
from napari.utils.notifications import show_error, show_info, show_warning

if TYPE_CHECKING:  # pragma: no cover
    import napari

FROM_LAYER = "from the layer's metadata"
DENOISE = "denoise (every pixel measured)"
NO_PRIOR = "(none)"


class ReconstructWidget(Container):
    """Reconstruct an image layer (a measurement) with a generative-prior method."""

    def __init__(self, viewer: napari.viewer.Viewer):
        from ..api import list_methods, list_priors
        from ..devices import available_devices

        self._viewer = viewer
        self.layer = create_widget(annotation=Image, label="measurement",
                                   options={"tooltip": "The image layer to reconstruct from. "
                                            "It is never modified."})
        self.operator = ComboBox(
            label="operator", choices=[FROM_LAYER, DENOISE], value=DENOISE,
            tooltip="How the measurement was made. Layers made by this plugin (simulate, sample "
                    "data) carry their operator in their metadata; plain images are denoised.")
        self.method = ComboBox(label="method", choices=list_methods(), value="dip",
                               tooltip="dip: Deep Image Prior, an untrained network fitted to "
                                       "this image, stopped early by held-out measurements. "
                                       "adjoint: the back-projection, no prior.")
        self.prior = ComboBox(label="prior", choices=[NO_PRIOR, *list_priors()], value=NO_PRIOR,
                              tooltip="The trained generator for csgm, twist and sparse-gen; "
                                      "its patch size must match the image.")
        self.steps = SpinBox(label="max steps", value=2000, min=1, max=100_000, step=100,
                             tooltip="Upper bound on iterations; dip usually stops earlier.")
        self.seed = SpinBox(label="seed", value=0, min=0, max=2**31 - 1,
                            tooltip="Same seed, same result.")
        self.device = ComboBox(label="device", choices=["auto", *available_devices()], value="auto",
                               tooltip="auto: CUDA if present, else Apple MPS, else CPU.")
        self.run_button = PushButton(text="Run", tooltip="Start the reconstruction.")
        self.cancel_button = PushButton(text="Cancel", enabled=False,
                                        tooltip="Stop now and keep the best result so far.")
        self.status = Label(value="")
        super().__init__(widgets=[self.layer, self.operator, self.method, self.prior, self.steps,
                                  self.seed,
                                  self.device, self.run_button, self.cancel_button, self.status])
        self.worker: Any = None
        self._pbar: progress | None = None
        self._preview: Image | None = None
        self.layer.changed.connect(self._on_layer_changed)
        self.run_button.changed.connect(self.start)
        self.cancel_button.changed.connect(self.cancel)
        self._on_layer_changed(self.layer.value)

    # -- inputs ------------------------------------------------------------------------------
    def _on_layer_changed(self, layer: Image | None) -> None:
        has_spec = layer is not None and "operator" in layer.metadata.get("genprior", {})
        self.operator.value = FROM_LAYER if has_spec else DENOISE

    def _make_operator(self, layer: Image, data: np.ndarray):
        from ..api import from_spec, make_operator

        if self.operator.value == FROM_LAYER:
            spec = layer.metadata.get("genprior", {}).get("operator")
            if spec is None:
                raise ValueError(f"layer {layer.name!r} carries no operator in its metadata; "
                                 "choose the operator by hand.")
            return from_spec(spec)
        return make_operator("denoise", shape=data.shape)

    # -- running -----------------------------------------------------------------------------
    def start(self) -> None:
        """Check the inputs and start the reconstruction in a worker thread."""
        from ..api import iter_reconstruct

        if self.worker is not None:
            show_warning("A reconstruction is already running; cancel it first.")
            return
        layer = self.layer.value
        if layer is None:
            show_warning("Pick an image layer to reconstruct.")
            return
        try:
            if layer.multiscale or layer.rgb:
                raise ValueError(f"layer {layer.name!r} is {'multiscale' if layer.multiscale else 'RGB'}; "
                                 "reconstruct needs a single-scale grey image.")
            data = np.asarray(layer.data)
            A = self._make_operator(layer, data)
            prior = None if self.prior.value == NO_PRIOR else self.prior.value
            run = iter_reconstruct(data, A, self.method.value, prior, steps=self.steps.value,
                                   device=self.device.value, seed=self.seed.value)
        except (ValueError, TypeError) as exc:
            show_error(f"Cannot reconstruct {layer.name!r}: {exc}")
            return
        self._source = layer
        self._total = self.steps.value
        self._pbar = progress(total=self._total, desc=f"genprior {self.method.value}")
        self.worker = _drive(run)
        self.worker.yielded.connect(self._on_update)
        self.worker.returned.connect(self._on_done)
        self.worker.errored.connect(self._on_error)
        self.worker.finished.connect(self._on_finished)
        self.run_button.enabled = False
        self.cancel_button.enabled = True
        self.status.value = "starting..."
        self.worker.start()

    def cancel(self) -> None:
        """Ask the running solver to stop; it returns its best result so far."""
        if self.worker is not None:
            self.worker.send(False)
            self.status.value = "cancelling..."

    # -- worker callbacks (main thread) ------------------------------------------------------
    def _in_viewer(self, layer: Image | None) -> bool:
        """Whether ``layer`` is still in the viewer (the user may have deleted it).

        By ``unique_id``: napari hands plugins a proxy of the viewer whose layers are proxies too,
        so identity and ``in`` do not recognise a layer the widget added itself.
        """
        return layer is not None and any(
            lyr.unique_id == layer.unique_id for lyr in self._viewer.layers)

    def _on_update(self, u) -> None:
        # napari's progress bar and layer controls call processEvents(), so later updates and
        # even the end of the run can be handled re-entrantly inside this method: check that
        # the run is still on before and after each call that may do so.
        if self.worker is None:
            return
        if u.image is not None:
            if self._in_viewer(self._preview):
                self._preview.data = u.image
            else:
                layer = self._viewer.add_image(
                    u.image, name=f"{self._source.name} [preview]", **_placement(self._source),
                    colormap=self._source.colormap.name,
                    contrast_limits=self._source.contrast_limits)
                if self.worker is None:  # the run ended while the layer was being added
                    self._viewer.layers.remove(layer.name)
                    return
                self._preview = layer
        self.status.value = f"step {u.step}/{u.total}  loss {u.loss:.3g}"
        if self._pbar is not None:
            self._pbar.update(max(0, u.step - self._pbar.n))

    def _on_done(self, rec) -> None:
        src = self._source
        meta = {"genprior": {**rec.params, "role": "reconstruction", "source_layer": src.name,
                             "seconds": rec.seconds, "cancelled": rec.cancelled}}
        self._viewer.add_image(rec.image, name=f"{src.name} [{rec.method}]", metadata=meta,
                               colormap=src.colormap.name, contrast_limits=src.contrast_limits,
                               **_placement(src))
        word = "cancelled, kept the best so far" if rec.cancelled else "done"
        msg = f"{rec.method}: {word} in {rec.seconds:.1f} s ({len(rec.history)} steps)"
        self.status.value = msg
        show_info(msg)

    def _on_error(self, exc: Exception) -> None:
        show_error(f"Reconstruction failed: {exc}")
        self.status.value = f"failed: {exc}"

    def _on_finished(self) -> None:
        if self._in_viewer(self._preview):
            self._viewer.layers.remove(self._preview.name)
        self._preview = None
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self.worker = None
        self.run_button.enabled = True
        self.cancel_button.enabled = False


def _placement(layer: Image) -> dict[str, Any]:
    """Where a layer sits in the world: results are placed exactly over their input."""
    return {"scale": layer.scale, "translate": layer.translate, "rotate": layer.rotate,
            "shear": layer.shear}


@thread_worker(start_thread=False)
def _drive(run):
    """Run the reconstruction generator in a worker thread; sends (Cancel) pass through."""
    return (yield from run)
