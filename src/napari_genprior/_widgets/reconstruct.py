"""The Reconstruct dock widget.

It starts :func:`napari_genprior.api.iter_reconstruct_stack` in a ``thread_worker`` (a single
image is a stack of one plane), shows its progress (its own progress bar and a status line with
the time left; napari's activity-panel bar was hidden from view and cost the run time),
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
    ProgressBar,
    PushButton,
    SpinBox,
    create_widget,
)
from napari.layers import Image
from napari.utils.notifications import show_error, show_info, show_warning
from psygnal import Signal

from ..advice import ENCODER_METHODS, LATENT_METHODS, NO_PRIOR_METHOD
from ._dock import mark, wrapping_label
from ._layers import in_viewer, placement
from ._psf import PSFControls
from ._session import SESSION_PRIORS
from ._worker import make_worker, qt_alive, warm_up

if TYPE_CHECKING:  # pragma: no cover
    import napari

FROM_LAYER = "from the layer's metadata"
DENOISE = "denoise"
INPAINT = "inpaint (NaN pixels are missing)"
DEBLUR = "deblur / deconvolve (PSF)"
SUPERRES = "super-resolve"
PLAIN_OPERATORS = [DENOISE, INPAINT, DEBLUR, SUPERRES]
NO_PRIOR = "(none: Deep Image Prior or a baseline)"
LOAD_FILE = "load from file..."

# What runs when nothing else is chosen: with a trained prior, what advice.recommend says;
# without one, the method that does best on that kind of measurement in benchmarks/ (README
# "Which method when").
DEFAULT_METHOD = NO_PRIOR_METHOD
#: The method dropdown in words a microscopist reads (the value is the API's method name).
METHOD_LABELS = {
    "csgm": "csgm: search the prior's latent space",
    "ia": "ia: prior adapted to this image",
    "twist": "twist: latent search with sign flips",
    "sparse-gen": "sparse-gen: prior + sparse deviation",
    "dip": "dip: Deep Image Prior (no training)",
    "adjoint": "back-projection only (adjoint, no prior)",
    "cg": "cg: conjugate gradients (least squares, no prior)",
    "lasso-dct": "lasso-dct: L1 in the DCT (classical)",
    "lasso-wavelet": "lasso-wavelet: L1 in wavelets (classical)",
    "tv": "tv: total variation (classical)",
    "richardson-lucy": "richardson-lucy: deconvolution (classical)",
    "twf": "twf: Wirtinger flow (phase only)",
    "sparta": "sparta: sparse phase retrieval (phase only)",
    "copram": "copram: sparse phase retrieval (phase only)",
}
#: Roles of the layers this plugin makes from a reconstruction: selecting one in the layer
#: list does not make it the measurement (the result of a run is selected when it is added).
RESULT_ROLES = ("reconstruction", "spread", "residual", "adjoint", "preview", "phase",
                "coil maps")
#: Results with more than this many times the pixels of the input need a second click on Run.
CONFIRM_RATIO = 4.0
#: ... and more pixels than this (a 28x28 digit from 100 measurements needs no confirmation).
CONFIRM_PIXELS = 512 * 512
#: Runs estimated (from their first second) at more than this many seconds stop and wait for a
#: second click on Run; None: never.
CONFIRM_SECONDS = 60.0


def shown(image: np.ndarray) -> np.ndarray:
    """What a layer shows of a result: the image itself, or the magnitude of a complex one
    (multi-coil MRI reconstructs complex images; their phase is a separate layer)."""
    return np.abs(image).astype(np.float32) if np.iscomplexobj(image) else image


def _multicoil(layer: Image | None) -> bool:
    """Whether ``layer``'s metadata describes a multi-coil MRI measurement (made by Simulate,
    or a multi-coil k-space file opened by the HDF5 reader)."""
    from .._layerdata import is_multicoil

    spec = _genprior(layer).get("operator")
    return (isinstance(spec, dict) and spec.get("kind") == "mri" and bool(spec.get("coils"))) \
        or (layer is not None and is_multicoil(layer.metadata))


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
        # the PSF to undo (Gaussian, optics, PSF or bead layer), shared with Simulate; a 3D
        # layer is deconvolved as one volume with a 3D PSF
        self.psf = PSFControls(viewer, lambda: self.layer.value)
        self.sigma = self.psf.sigma
        self.factor = SpinBox(label="factor", value=2, min=2, max=16,
                              tooltip="Super-resolution factor: the result has this many times "
                                      "more pixels along each axis.")
        self.method = ComboBox(label="method",
                               choices=[(METHOD_LABELS.get(m, m), m) for m in list_methods()],
                               value="dip",
                               tooltip="csgm / twist / sparse-gen / ia: search the latent space "
                                       "of the trained prior (ia then adapts the prior to this "
                                       "image). dip: Deep Image Prior, an untrained network "
                                       "stopped early by held-out measurements. tv, lasso-dct, "
                                       "lasso-wavelet: classical compressed sensing. "
                                       "Back-projection: the measurement mapped back to an "
                                       "image, no prior.")
        self.prior = ComboBox(label="prior", choices=self._prior_choices, value=NO_PRIOR,
                              tooltip="The trained generator for csgm, twist and sparse-gen: a "
                                      "bundled prior, one trained in this session (Train prior), "
                                      "or a .safetensors file. Its patch size must match the "
                                      "image.")
        self.restarts = SpinBox(label="restarts", value=1, min=1, max=64,
                                tooltip="Random starts of the latent search, run together in one "
                                        "batch; the best fit wins. With more than one, the "
                                        "spread over starts is an uncertainty map. Only for "
                                        "methods with a trained prior.")
        self.init = ComboBox(label="start", choices=[("random codes", "random"),
                                                     ("encoder of the measurement", "encoder")],
                             value="random",
                             tooltip="Where the latent search starts: random codes, or (first "
                                     "restart) the prior's encoder applied to the back-projected "
                                     "measurement: a warm start for denoise, inpaint, deblur.")
        self.advice = wrapping_label(value="")
        self.check_fit = CheckBox(text="check the prior suits the image first", value=True,
                                  tooltip="Before the run, a few steps test whether the prior "
                                          "can represent this image, and warn if not.")
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
        self.show_phase = CheckBox(text="show phase", value=False, visible=False,
                                   tooltip="Multi-coil MRI reconstructs a complex image: the "
                                           "result layer shows its magnitude; this also adds "
                                           "its phase (radians) as a layer.")
        self.show_coil_maps = CheckBox(text="show coil maps", value=False, visible=False,
                                       tooltip="Also add the magnitudes of the coil sensitivity "
                                               "maps of this multi-coil measurement as a layer "
                                               "(one plane a coil).")
        self.run_button = PushButton(text="Run", tooltip="Start the reconstruction.")
        self.cancel_button = PushButton(text="Cancel", enabled=False,
                                        tooltip="Stop now and keep the best result so far.")
        self.status = wrapping_label(value="")
        self.progress = ProgressBar(value=0, min=0, max=1, label="progress", visible=False)
        super().__init__(widgets=[
            self.layer, self.operator, *self.psf.widgets, self.factor, self.prior, self.method,
            self.advice, self.restarts, self.init, self.steps, self.seed, self.device,
            self.check_fit, self.add_spread, self.add_residual, self.show_phase,
            self.show_coil_maps, self.run_button,
            self.cancel_button, self.progress, self.status])
        mark(self)  # tabbed with the plugin's other docked widgets
        self.worker: Any = None
        self._preview: Image | None = None
        self._last_prior = NO_PRIOR
        self._busy = False
        self._pending: Any = None
        self.confirm_seconds: float | None = CONFIRM_SECONDS
        self._confirmed: Any = None  # the settings a second click on Run goes ahead with
        self._paused: Any = None  # a run stopped before its long part, waiting for Run again
        self._priors: dict[str, Any] = {}
        self.layer.changed.connect(self._on_layer_changed)
        self.operator.changed.connect(self._on_operator_changed)
        self.prior.changed.connect(self._on_prior_changed)
        self.method.changed.connect(self._on_method_changed)
        self.run_button.changed.connect(self.start)
        self.cancel_button.changed.connect(self.cancel)
        SESSION_PRIORS.changed.connect(self._on_session_prior)
        viewer.layers.selection.events.active.connect(self._on_active_layer)
        self._pick_initial_layer()
        self._on_layer_changed(self.layer.value)
        self._on_method_changed(self.method.value)
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

    # -- which layer -------------------------------------------------------------------------
    @staticmethod
    def _role(layer: Any) -> str:
        return str(_genprior(layer).get("role", ""))

    def _follows(self, layer: Any) -> bool:
        """Whether selecting ``layer`` in the layer list makes it the measurement here: image
        layers, except those this plugin made from a reconstruction (a run's result is selected
        when it is added) and this widget's own preview."""
        return (isinstance(layer, Image) and self._role(layer) not in RESULT_ROLES
                and not layer.name.endswith("[preview]"))

    def _pick_initial_layer(self) -> None:
        """The selected layer if it is an image; else the newest measurement layer."""
        active = self._viewer.layers.selection.active
        if self._follows(active):
            self.layer.value = active
            return
        for lyr in reversed(list(self._viewer.layers)):
            if self._follows(lyr) and "operator" in _genprior(lyr):
                self.layer.value = lyr
                return

    def _on_active_layer(self, event: Any) -> None:
        if not qt_alive(self):  # this widget was closed: stop listening
            self._viewer.layers.selection.events.active.disconnect(self._on_active_layer)
            return
        layer = event.value
        if self.worker is not None or not self._follows(layer) or layer is self.layer.value:
            return
        try:
            self.layer.reset_choices()  # a layer just added may not be listed yet
            self.layer.value = layer
        except (ValueError, RuntimeError):
            pass

    def _on_layer_changed(self, layer: Image | None) -> None:
        has_spec = "operator" in _genprior(layer)  # even if it is nonsense
        self.psf.read_voxel_size()
        self.operator.value = FROM_LAYER if has_spec else DENOISE
        self._on_operator_changed(self.operator.value)

    def _on_operator_changed(self, value: str) -> None:
        self.psf.update_visibility(value == DEBLUR)
        self.factor.visible = value == SUPERRES
        multicoil = value == FROM_LAYER and _multicoil(self.layer.value)
        for box in (self.show_phase, self.show_coil_maps):  # only complex (multi-coil) results
            box.visible = box.enabled = multicoil
        self._set_default_method()

    def _on_method_changed(self, method: str) -> None:
        """Controls that do not apply to ``method`` are disabled (and say why)."""
        latent = method in LATENT_METHODS
        self.restarts.enabled = latent
        self.add_spread.enabled = latent
        self.init.enabled = method in ENCODER_METHODS
        self.check_fit.enabled = latent
        if not latent:
            self.restarts.tooltip = f"{method} runs a single start (only methods with a " \
                                    "trained prior take restarts)."

    def _kind(self) -> str:
        """The operator kind the current choices lead to (for defaults)."""
        value = self.operator.value
        if value == FROM_LAYER:
            spec = _genprior(self.layer.value).get("operator")
            return str(spec.get("kind", "")) if isinstance(spec, dict) else ""
        return {DENOISE: "denoise", INPAINT: "inpaint", DEBLUR: "blur",
                SUPERRES: "downsample"}.get(value, "denoise")

    def _volume(self) -> bool:
        """Whether the current choices make one 3D problem of the layer (3D deconvolution)."""
        layer = self.layer.value
        if layer is None:
            return False
        if self.operator.value == FROM_LAYER:
            spec = _genprior(layer).get("operator")
            return isinstance(spec, dict) and len(spec.get("shape", ())) == 3
        return self.operator.value == DEBLUR and layer.ndim >= 3

    def _prior_object(self) -> Any:
        """The chosen prior, loaded (bundled ones once per widget), or None."""
        from ..api import load_prior

        value = self._selected_prior()
        if value is None or not isinstance(value, str):
            return value
        if value not in self._priors:
            try:
                self._priors[value] = load_prior(value)
            except (OSError, ValueError, TypeError):
                return None
        return self._priors[value]

    def _set_default_method(self) -> None:
        """Set the method, restarts and start that README "Which method when" recommends for
        this measurement and prior, and say so in the widget (never silently)."""
        from ..advice import recommend

        prior = self._prior_object()
        kind = self._kind() or "denoise"
        advice = recommend(kind, prior, volume=self._volume())
        self.method.value = advice.method
        self.restarts.value = advice.restarts
        self.init.value = advice.init
        shown = f"{advice.method}"
        if advice.method in LATENT_METHODS:
            shown += f", {advice.restarts} restart{'s' if advice.restarts > 1 else ''}, " \
                     f"{'encoder' if advice.init == 'encoder' else 'random'} start"
        self.advice.value = f"recommended: {shown}"
        self.advice.tooltip = f"README 'Which method when': {advice.why}."
        self._on_method_changed(self.method.value)

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
            from .._layerdata import is_multicoil, kspace_slice

            source = _genprior(layer).get("source")
            slices = source.get("slices") if isinstance(source, dict) else None
            if is_multicoil(layer.metadata) and isinstance(slices, int) and slices > 1:
                # a multi-coil volume: each slice has its own coil maps, so the slice shown
                # is read from the file (its maps estimated by ESPIRiT) and reconstructed
                step = self._viewer.dims.current_step
                index = int(step[-3]) if len(step) >= 3 else 0
                return kspace_slice(layer.metadata, min(max(index, 0), slices - 1))
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
            # a stack (z, y, x) is one volume under a 3D PSF (a 4D layer: one per time point)
            shape = tuple(data.shape[-3:]) if data.ndim >= 3 else shape
            return data, make_operator("blur", shape=shape, **self.psf.params(shape))
        if value == SUPERRES:
            f = int(self.factor.value)
            return data, make_operator("downsample", shape=(shape[0] * f, shape[1] * f), factor=f)
        return data, make_operator("denoise", shape=shape)

    # -- running -----------------------------------------------------------------------------
    def _settings(self, layer: Image, A: Any) -> tuple:
        """What a confirmation applies to: the same layer, operator and settings."""
        return (layer.unique_id, A.kind, A.shape, self.method.value, str(self.prior.value),
                int(self.steps.value), int(self.restarts.value))

    def _run_options(self) -> dict[str, Any]:
        method = self.method.value
        extra: dict[str, Any] = {}
        if method in LATENT_METHODS and int(self.restarts.value) > 1:
            extra["restarts"] = int(self.restarts.value)
        if method in ENCODER_METHODS and self.init.value == "encoder":
            prior = self._prior_object()
            if prior is not None and getattr(prior, "encoder", None) is not None:
                extra["init"] = "encoder"
        return extra

    def start(self) -> None:
        """Check the inputs and start the reconstruction in a worker thread.

        A result over :data:`CONFIRM_RATIO` times the input's pixels, a prior that does not suit
        the image, or a run estimated at over a minute stops with a message first; clicking Run
        again (same settings) goes ahead (a paused run resumes where it stopped).
        """
        from ..advice import output_ratio
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
            key = self._settings(layer, A)
            if self._paused is not None and self._paused[0] == key:
                run, self._paused = self._paused[1], None
                self._confirmed = key
                self._launch(layer, y, A, run, checks=False)
                return
            self._paused = None
            planes = int(np.prod(y.shape[:y.ndim - len(A.measurement_shape)]))
            shown = np.prod(layer.data.shape[-2:]) if layer.data.ndim >= 2 else 1
            ratio = float(np.prod(A.shape)) / float(shown) if shown else output_ratio(A)
            confirmed = self._confirmed == key
            if ratio > CONFIRM_RATIO and np.prod(A.shape) > CONFIRM_PIXELS and not confirmed:
                mb = np.prod(A.shape) * planes * 4 / 2**20
                self._confirmed = key
                msg = (f"The result will be {A.shape[-2]}x{A.shape[-1]} pixels"
                       f"{f' x {planes} planes' if planes > 1 else ''} ({ratio:.0f}x the "
                       f"input, {mb:.0f} MiB). Click Run again to go ahead.")
                self.status.value = msg
                show_warning(msg)
                return
            run = iter_reconstruct_stack(y, A, self.method.value, self._selected_prior(),
                                         steps=self.steps.value, device=self.device.value,
                                         seed=self.seed.value, **self._run_options())
        except (ValueError, TypeError, OSError) as exc:
            show_error(f"Cannot reconstruct {layer.name!r}: {exc}")
            return
        self._launch(layer, y, A, run, checks=not confirmed)
        self._confirmed = key

    def _launch(self, layer: Image, y: Any, A: Any, run: Any, checks: bool) -> None:
        from ._checks import checked_run

        self._source, self._y, self._A = layer, y, A
        self._planes = int(np.prod(y.shape[:y.ndim - len(A.measurement_shape)]))
        fit = None
        if checks and self.check_fit.value and self.method.value in LATENT_METHODS \
                and self._selected_prior() is not None:
            k = len(A.measurement_shape)
            fit = {"y": np.asarray(y[(0,) * (y.ndim - k)]), "A": A,
                   "prior": self._prior_object(), "seed": int(self.seed.value),
                   "device": self.device.value}
        self.progress.max = max(1, self.steps.value * self._planes)
        self.progress.value = 0
        self.progress.visible = True
        self._t0 = None
        limit = self.confirm_seconds if checks else None
        self.worker = make_worker(self, checked_run(run, fit, confirm_after=limit))
        self.run_button.enabled = False
        self.cancel_button.enabled = True
        self.status.value = "checking the prior..." if fit else "starting..."
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
            image = shown(u.image)
            if in_viewer(self._viewer, self._preview) and self._preview.data.shape == image.shape:
                self._preview.data = image
            else:
                if in_viewer(self._viewer, self._preview):
                    self._viewer.layers.remove(self._preview.name)
                layer = self._viewer.add_image(image, name=f"{self._source.name} [preview]",
                                               **self._result_kwargs(image.ndim))
                if self.worker is None:  # the run ended while the layer was being added
                    self._viewer.layers.remove(layer.name)
                    return
                self._preview = layer
        if self.worker is None:
            return
        import time

        from ..advice import remaining_seconds

        now = time.perf_counter()
        if self._t0 is None:
            self._t0 = (now, u.plane * u.total + u.step)
        # the solver's own count: at most u.total steps a plane (tv and the lasso methods
        # search their weight first; most methods may stop early)
        total, done = u.total * u.planes, u.plane * u.total + u.step
        left = remaining_seconds(now - self._t0[0], done - self._t0[1], total - self._t0[1])
        plane = f"plane {u.plane + 1}/{u.planes}  " if u.planes > 1 else ""
        eta = f"  ~{left:.0f} s left at most" if left is not None else ""
        self.status.value = f"{plane}step {u.step} of at most {u.total}  loss {u.loss:.3g}{eta}"
        self.progress.max = total
        self.progress.value = min(done, total)

    def _on_stopped(self, stop) -> None:
        """A run stopped before its long part (see ``_checks``): say why; keep a paused run."""
        msg = " ".join(stop.messages)
        if stop.reason == "slow":
            self._paused = (self._settings(self._source, self._A), stop.run)
            self.run_button.text = "Continue"
        else:
            msg += " Click Run again to run anyway."
        self.status.value = msg
        show_warning(msg)

    def _on_done(self, rec) -> None:
        from ._checks import Stopped

        if isinstance(rec, Stopped):
            self._on_stopped(rec)
            return
        self.progress.value = self.progress.max
        src = self._source
        meta = {"genprior": {**rec.params, "role": "reconstruction", "source_layer": src.name,
                             "seconds": rec.seconds, "cancelled": rec.cancelled,
                             "history": [float(v) for v in rec.history]}}
        image = shown(rec.image)  # a complex result: its magnitude (its phase: show_phase)
        if image is not rec.image:
            meta["genprior"]["shown"] = "magnitude"
        kw = self._result_kwargs(image.ndim)
        prior = rec.params.get("prior")
        prior_name = prior.get("source") if isinstance(prior, dict) else None
        tags = [rec.method] + ([str(prior_name)] if prior_name else []) \
            + (["cancelled"] if rec.cancelled else [])
        name = f"{src.name} [{', '.join(tags)}]"
        preview = self._preview
        if in_viewer(self._viewer, preview) and preview.data.shape == image.shape:
            # The preview becomes the result: a new layer's first draw (and removing the
            # preview) can hold the event loop for a few hundred ms under software OpenGL.
            self._preview = None
            preview.data = image
            preview.metadata = meta
            preview.name = name  # napari keeps names unique
            if "contrast_limits" not in kw:
                preview.reset_contrast_limits()
            result = preview
        else:
            result = self._viewer.add_image(image, name=name, metadata=meta, **kw)
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
                res = shown(np.stack([residual_image(self._y[ix], self._A, rec.image[ix])
                                      for ix in np.ndindex(*lead)]).reshape(rec.image.shape))
            except ValueError as exc:
                show_warning(f"No residual layer: {exc}")
            else:
                self._viewer.add_image(res, name=f"{src.name} [{rec.method} residual]",
                                       colormap="twilight_shifted",
                                       **placement(src, rec.image.ndim),
                                       metadata={"genprior": {"role": "residual"}})
        self._add_complex_layers(rec)
        for note in rec.params.get("notes", []):
            show_warning(f"{rec.method}: {note}")
        word = "cancelled, kept the best so far" if rec.cancelled else "done"
        planes = f", {rec.params.get('planes_done', 1)}/{self._planes} planes" \
            if self._planes > 1 else ""
        msg = f"{rec.method}: {word} in {rec.seconds:.1f} s ({len(rec.history)} steps{planes})"
        self.status.value = msg
        show_info(msg)
        self.result_added.emit(result)

    def _add_complex_layers(self, rec) -> None:
        """The phase of a complex result and the coil maps of its operator, when asked for."""
        src = self._source
        complex_result = np.iscomplexobj(rec.image)
        if self.show_phase.value and self.show_phase.enabled and complex_result:
            self._viewer.add_image(np.angle(rec.image).astype(np.float32),
                                   name=f"{src.name} [{rec.method} phase]", colormap="twilight",
                                   contrast_limits=(-np.pi, np.pi),
                                   **placement(src, rec.image.ndim),
                                   metadata={"genprior": {"role": "phase"}})
        maps = getattr(self._A, "maps", None)
        if self.show_coil_maps.value and self.show_coil_maps.enabled and maps is not None:
            maps = np.abs(np.asarray(maps)).astype(np.float32)
            self._viewer.add_image(maps, name=f"{src.name} [coil maps]", colormap="viridis",
                                   **placement(src, maps.ndim),
                                   metadata={"genprior": {"role": "coil maps"}})

    def _on_error(self, exc: Exception) -> None:
        show_error(f"Reconstruction failed: {exc}")
        self.status.value = f"failed: {exc}"

    def _on_finished(self) -> None:
        if in_viewer(self._viewer, self._preview):
            self._viewer.layers.remove(self._preview.name)
        self._preview = None
        self.worker = None
        self.run_button.enabled = True
        if self._paused is None:
            self.run_button.text = "Run"
        self.cancel_button.enabled = False
