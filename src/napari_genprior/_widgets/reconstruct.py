"""The Reconstruct dock widget.

It starts :func:`napari_genprior.api.iter_reconstruct_stack` in a ``thread_worker`` (a single
image is a stack of one plane), shows its progress (a napari progress bar and a status line),
keeps ONE preview layer updated in place, and on Cancel sends False into the running generator so
that the solver stops and returns its best result so far. The input layer is never written to:
results go to new layers that carry the input's placement and, in ``metadata["genprior"]``,
everything that reproduces them. No maths lives here: operators, solvers and metrics are the API's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    Label,
    PushButton,
    SpinBox,
    create_widget,
)
from napari.layers import Image
from napari.utils import progress
from napari.utils.notifications import show_error, show_info, show_warning
from psygnal import Signal

from ._layers import in_viewer, placement
from ._session import SESSION_PRIORS
from ._worker import make_worker, warm_up

if TYPE_CHECKING:  # pragma: no cover
    import napari

FROM_LAYER = "from the layer's metadata"
DENOISE = "denoise"
INPAINT = "inpaint (NaN pixels are missing)"
DEBLUR = "deblur (Gaussian blur)"
SUPERRES = "super-resolve"
PLAIN_OPERATORS = [DENOISE, INPAINT, DEBLUR, SUPERRES]
NO_PRIOR = "(none: Deep Image Prior or a baseline)"
LOAD_FILE = "load from file..."

# What runs when nothing else is chosen: with a trained prior, csgm; without one, the method
# that does best on that kind of measurement in benchmarks/ (README "Which method when").
DEFAULT_METHOD = {"denoise": "dip", "inpaint": "dip", "blur": "dip", "downsample": "dip",
                  "cs": "lasso-dct", "mri": "tv", "phase": "twf"}


def _genprior(layer: Image | None) -> dict:
    """``layer.metadata["genprior"]``, or ``{}`` when there is none or it is not a dict (the
    metadata may have been edited by hand)."""
    info = layer.metadata.get("genprior") if layer is not None else None
    return info if isinstance(info, dict) else {}


class ReconstructWidget(Container):
    """Reconstruct an image layer (a measurement) with a generative-prior method."""

    result_added = Signal(object)
    """Emitted with the result layer when a reconstruction has been added to the viewer."""

    def __init__(self, viewer: napari.viewer.Viewer):
        from ..api import list_methods
        from ..devices import available_devices

        self._viewer = viewer
        self.layer = create_widget(annotation=Image, label="measurement",
                                   options={"tooltip": "The image layer to reconstruct from. "
                                            "It is never modified."})
        self.operator = ComboBox(
            label="operator", choices=[FROM_LAYER, *PLAIN_OPERATORS], value=DENOISE,
            tooltip="How the measurement was made. Layers made by this plugin (Simulate, sample "
                    "data, the HDF5 reader) carry their operator in their metadata. For a plain "
                    "image: denoise it, fill its NaN pixels, deblur it or super-resolve it.")
        self.sigma = FloatSpinBox(label="blur sigma (px)", value=2.0, min=0.1, max=50.0, step=0.1,
                                  tooltip="Standard deviation of the Gaussian blur to undo, in "
                                          "pixels.")
        self.factor = SpinBox(label="factor", value=2, min=2, max=16,
                              tooltip="Super-resolution factor: the result has this many times "
                                      "more pixels along each axis.")
        self.method = ComboBox(label="method", choices=list_methods(), value="dip",
                               tooltip="csgm / twist / sparse-gen: search the latent space of the "
                                       "trained prior. dip: Deep Image Prior, an untrained network "
                                       "stopped early by held-out measurements. tv, lasso-dct, "
                                       "lasso-wavelet: classical compressed sensing. adjoint: the "
                                       "back-projection, no prior.")
        self.prior = ComboBox(label="prior", choices=self._prior_choices, value=NO_PRIOR,
                              tooltip="The trained generator for csgm, twist and sparse-gen: a "
                                      "bundled prior, one trained in this session (Train prior), "
                                      "or a .safetensors file. Its patch size must match the "
                                      "image.")
        self.restarts = SpinBox(label="restarts", value=1, min=1, max=64,
                                tooltip="Random starts of the latent search, run together in one "
                                        "batch; the best fit wins. With more than one, the "
                                        "spread over starts is an uncertainty map.")
        self.steps = SpinBox(label="max steps", value=2000, min=1, max=100_000, step=100,
                             tooltip="Upper bound on iterations; dip usually stops earlier.")
        self.seed = SpinBox(label="seed", value=0, min=0, max=2**31 - 1,
                            tooltip="Same seed, same result.")
        self.device = ComboBox(label="device", choices=["auto", *available_devices()], value="auto",
                               tooltip="auto: CUDA if present, else Apple MPS, else CPU.")
        self.add_spread = CheckBox(text="add uncertainty (spread over restarts)", value=False,
                                   tooltip="Also add the per-pixel standard deviation over the "
                                           "restarts as a layer (needs restarts > 1).")
        self.add_residual = CheckBox(text="add residual", value=False,
                                     tooltip="Also add what the result does not explain of the "
                                             "measurement, as an image.")
        self.run_button = PushButton(text="Run", tooltip="Start the reconstruction.")
        self.cancel_button = PushButton(text="Cancel", enabled=False,
                                        tooltip="Stop now and keep the best result so far.")
        self.status = Label(value="")
        super().__init__(widgets=[
            self.layer, self.operator, self.sigma, self.factor, self.method, self.prior,
            self.restarts, self.steps, self.seed, self.device, self.add_spread, self.add_residual,
            self.run_button, self.cancel_button, self.status])
        self.worker: Any = None
        self._pbar: progress | None = None
        self._preview: Image | None = None
        self._last_prior = NO_PRIOR
        self._busy = False
        self._pending: Any = None
        self.layer.changed.connect(self._on_layer_changed)
        self.operator.changed.connect(self._on_operator_changed)
        self.prior.changed.connect(self._on_prior_changed)
        self.run_button.changed.connect(self.start)
        self.cancel_button.changed.connect(self.cancel)
        SESSION_PRIORS.changed.connect(self._on_session_prior)
        self._on_layer_changed(self.layer.value)
        warm_up()

    # -- choices -----------------------------------------------------------------------------
    def _prior_choices(self, _widget=None) -> list[str]:
        from ..api import list_priors

        return [NO_PRIOR, *list_priors(), *SESSION_PRIORS.names(), LOAD_FILE]

    def _on_session_prior(self, name: str) -> None:
        try:
            self.prior.reset_choices()
        except RuntimeError:  # this widget's Qt side was closed: stop listening
            SESSION_PRIORS.changed.disconnect(self._on_session_prior)

    def load_prior_file(self, path: str) -> str | None:
        """Load a prior file, list it (under its file name) and select it; None on failure."""
        from pathlib import Path

        from ..api import load_prior

        try:
            G = load_prior(path)
        except (OSError, ValueError, TypeError) as exc:
            show_error(f"Cannot load the prior {path}: {exc}")
            return None
        name = SESSION_PRIORS.add(Path(path).name, G)  # reset_choices via the signal
        self.prior.value = name
        return name

    def _ask_prior_file(self) -> None:
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getOpenFileName(self.native, "Load a prior", "",
                                              "Prior files (*.safetensors)")
        if not path or self.load_prior_file(path) is None:
            self.prior.value = self._last_prior

    def _on_prior_changed(self, value: str) -> None:
        if value == LOAD_FILE:
            self._ask_prior_file()
            return
        self._last_prior = value
        self._set_default_method()

    def _on_layer_changed(self, layer: Image | None) -> None:
        has_spec = "operator" in _genprior(layer)  # even if it is nonsense
        self.operator.value = FROM_LAYER if has_spec else DENOISE
        self._on_operator_changed(self.operator.value)

    def _on_operator_changed(self, value: str) -> None:
        self.sigma.visible = value == DEBLUR
        self.factor.visible = value == SUPERRES
        self._set_default_method()

    def _kind(self) -> str:
        """The operator kind the current choices lead to (for defaults)."""
        value = self.operator.value
        if value == FROM_LAYER:
            spec = _genprior(self.layer.value).get("operator")
            return str(spec.get("kind", "")) if isinstance(spec, dict) else ""
        return {DENOISE: "denoise", INPAINT: "inpaint", DEBLUR: "blur",
                SUPERRES: "downsample"}.get(value, "denoise")

    def _set_default_method(self) -> None:
        if self.prior.value not in (NO_PRIOR, LOAD_FILE):
            self.method.value = "csgm"
        else:
            self.method.value = DEFAULT_METHOD.get(self._kind(), "dip")

    def _selected_prior(self) -> Any:
        value = self.prior.value
        if value in (NO_PRIOR, LOAD_FILE):
            return None
        return SESSION_PRIORS.get(value) if value in SESSION_PRIORS.names() else value

    # -- inputs ------------------------------------------------------------------------------
    def measurement(self, layer: Image) -> tuple[np.ndarray, Any]:
        """``(y, A)`` for ``layer`` under the chosen operator; ``y`` may be a stack of planes.

        Raises ValueError with a sentence when the layer does not fit.
        """
        from .._layerdata import measurement_planes
        from ..api import make_operator

        if layer.multiscale or layer.rgb:
            raise ValueError(f"layer {layer.name!r} is {'multiscale' if layer.multiscale else 'RGB'};"
                             " reconstruct needs a single-scale grey image.")
        if self.operator.value == FROM_LAYER:
            return measurement_planes(layer.data, layer.metadata)
        data = layer.data  # a dask-backed layer stays lazy: planes are read one at a time
        if not hasattr(data, "shape"):
            data = np.asarray(data)
        if data.ndim < 2 or min(data.shape[-2:]) < 2:
            raise ValueError(f"layer {layer.name!r} has shape {data.shape}; it needs at least "
                             "2x2 pixels per plane.")
        shape = data.shape[-2:]
        value = self.operator.value
        if value == INPAINT:
            data = np.asarray(data)
            finite = np.isfinite(data).reshape(-1, *shape).all(axis=0)
            if finite.all():
                raise ValueError(f"layer {layer.name!r} has no NaN pixels, so nothing is missing "
                                 "to inpaint; use 'denoise', or Simulate to make a mask.")
            return np.where(np.isfinite(data), data, 0), make_operator("inpaint", shape=shape,
                                                                        mask=finite)
        if value == DEBLUR:
            return data, make_operator("blur", shape=shape, sigma=float(self.sigma.value))
        if value == SUPERRES:
            f = int(self.factor.value)
            return data, make_operator("downsample", shape=(shape[0] * f, shape[1] * f), factor=f)
        return data, make_operator("denoise", shape=shape)

    # -- running -----------------------------------------------------------------------------
    def start(self) -> None:
        """Check the inputs and start the reconstruction in a worker thread."""
        from ..api import iter_reconstruct_stack

        if self.worker is not None:
            show_warning("A reconstruction is already running; cancel it first.")
            return
        layer = self.layer.value
        if layer is None:
            show_warning("Pick an image layer to reconstruct.")
            return
        try:
            y, A = self.measurement(layer)
            restarts = int(self.restarts.value)
            extra = {"restarts": restarts} if restarts > 1 else {}
            run = iter_reconstruct_stack(y, A, self.method.value, self._selected_prior(),
                                         steps=self.steps.value, device=self.device.value,
                                         seed=self.seed.value, **extra)
        except (ValueError, TypeError, OSError) as exc:
            show_error(f"Cannot reconstruct {layer.name!r}: {exc}")
            return
        self._source, self._y, self._A = layer, y, A
        self._planes = int(np.prod(y.shape[:y.ndim - len(A.measurement_shape)]))
        self._total = self.steps.value * self._planes
        self._pbar = progress(total=self._total, desc=f"genprior {self.method.value}")
        self.worker = make_worker(self, run, self._pbar)
        self.run_button.enabled = False
        self.cancel_button.enabled = True
        self.status.value = "starting..."
        self.worker.start()

    def cancel(self) -> None:
        """Ask the running solver to stop; it returns its best result so far."""
        if self.worker is not None:
            self.worker.cancel()
            self.status.value = "cancelling..."

    # -- worker callbacks (main thread) ------------------------------------------------------
    def _result_kwargs(self, ndim: int) -> dict[str, Any]:
        """Placement and look of a result layer of ``ndim`` axes, over the input's image."""
        from .._layerdata import stores_measurement

        src = self._source
        kw = placement(src, ndim)
        if not stores_measurement(self._y[(0,) * (self._y.ndim - len(self._A.measurement_shape))],
                                  self._A):
            # the layer is the measurement itself: a result on a finer grid (super-resolution)
            # has proportionally smaller pixels, and its pixel j (centre j + 1/2 in units of
            # its pixels) lies at (j + 1/2) r - 1/2 in the measurement's pixel coordinates, so
            # that the result covers exactly the area the measurement covers
            ratio = [m / s for m, s in zip(self._A.measurement_shape, self._A.shape)]
            scale = np.array(kw["scale"], dtype=float)  # a copy: never the layer's own
            translate = np.array(kw["translate"], dtype=float)
            for ax, r in zip(range(ndim - 2, ndim), ratio):
                translate[ax] += scale[ax] * (r - 1) / 2
                scale[ax] *= r
            kw.update(scale=tuple(scale), translate=tuple(translate))
            kw.pop("rotate", None)
            kw.pop("shear", None)
            kw["contrast_limits"] = src.contrast_limits
        kw["colormap"] = src.colormap.name
        return kw

    def _on_update(self, u) -> None:
        # napari's progress bar and layer controls call processEvents(), so later updates and
        # even the end of the run can be handled re-entrantly inside this method. A nested call
        # only leaves its update for the outer one to show (else fast solvers recurse without
        # bound); and the run may have ended: check before and after each call that may do so.
        if self._busy:
            self._pending = u
            return
        self._busy = True
        try:
            while u is not None and self.worker is not None:
                self._show_update(u)
                u, self._pending = self._pending, None
        finally:
            self._busy = False
            self._pending = None

    def _show_update(self, u) -> None:
        if u.image is not None:
            if in_viewer(self._viewer, self._preview) and self._preview.data.shape == u.image.shape:
                self._preview.data = u.image
            else:
                if in_viewer(self._viewer, self._preview):
                    self._viewer.layers.remove(self._preview.name)
                layer = self._viewer.add_image(u.image, name=f"{self._source.name} [preview]",
                                               **self._result_kwargs(u.image.ndim))
                if self.worker is None:  # the run ended while the layer was being added
                    self._viewer.layers.remove(layer.name)
                    return
                self._preview = layer
        if self.worker is None:
            return
        plane = f"plane {u.plane + 1}/{u.planes}  " if u.planes > 1 else ""
        self.status.value = f"{plane}step {u.step}/{u.total}  loss {u.loss:.3g}"
        if self._pbar is not None:
            done = u.plane * self.steps.value + min(u.step, self.steps.value)
            self._pbar.update(max(0, done - self._pbar.n))

    def _on_done(self, rec) -> None:
        src = self._source
        meta = {"genprior": {**rec.params, "role": "reconstruction", "source_layer": src.name,
                             "seconds": rec.seconds, "cancelled": rec.cancelled,
                             "history": [float(v) for v in rec.history]}}
        kw = self._result_kwargs(rec.image.ndim)
        name = f"{src.name} [{rec.method}]"
        preview = self._preview
        if in_viewer(self._viewer, preview) and preview.data.shape == rec.image.shape:
            # The preview becomes the result: a new layer's first draw (and removing the
            # preview) can hold the event loop for a few hundred ms under software OpenGL.
            self._preview = None
            preview.data = rec.image
            preview.metadata = meta
            preview.name = name  # napari keeps names unique
            if "contrast_limits" not in kw:
                preview.reset_contrast_limits()
            result = preview
        else:
            result = self._viewer.add_image(rec.image, name=name, metadata=meta, **kw)
        if self.add_spread.value:
            if rec.spread is None:
                show_warning("No uncertainty layer: it needs restarts > 1 with a trained prior.")
            else:
                self._viewer.add_image(rec.spread, name=f"{src.name} [{rec.method} spread]",
                                       colormap="magma", **placement(src, rec.image.ndim),
                                       metadata={"genprior": {"role": "spread"}})
        if self.add_residual.value:
            from ..metrics import residual_image  # here: its scikit-image import takes 0.3 s

            k = len(self._A.measurement_shape)
            lead = self._y.shape[:self._y.ndim - k]
            try:
                res = np.stack([residual_image(self._y[ix], self._A, rec.image[ix])
                                for ix in np.ndindex(*lead)]).reshape(rec.image.shape)
            except ValueError as exc:
                show_warning(f"No residual layer: {exc}")
            else:
                self._viewer.add_image(res, name=f"{src.name} [{rec.method} residual]",
                                       colormap="twilight_shifted",
                                       **placement(src, rec.image.ndim),
                                       metadata={"genprior": {"role": "residual"}})
        for note in rec.params.get("notes", []):
            show_warning(f"{rec.method}: {note}")
        word = "cancelled, kept the best so far" if rec.cancelled else "done"
        planes = f", {rec.params.get('planes_done', 1)}/{self._planes} planes" \
            if self._planes > 1 else ""
        msg = f"{rec.method}: {word} in {rec.seconds:.1f} s ({len(rec.history)} steps{planes})"
        self.status.value = msg
        show_info(msg)
        self.result_added.emit(result)

    def _on_error(self, exc: Exception) -> None:
        show_error(f"Reconstruction failed: {exc}")
        self.status.value = f"failed: {exc}"

    def _on_finished(self) -> None:
        if in_viewer(self._viewer, self._preview):
            self._viewer.layers.remove(self._preview.name)
        self._preview = None
        self._pbar = None  # closed by the worker (make_worker)
        self.worker = None
        self.run_button.enabled = True
        self.cancel_button.enabled = False
