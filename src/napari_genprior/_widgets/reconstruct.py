"""The Reconstruct dock widget.

It starts :func:`napari_genprior.api.iter_reconstruct_stack` in a ``thread_worker`` (a single
image is a stack of one plane), shows its progress (its own progress bar and a status line with
the time left; napari's activity-panel bar was hidden from view and cost the run time),
keeps ONE preview layer updated in place, and on Cancel sends False into the running generator so
that the solver stops and returns its best result so far. The input layer is never written to:
results go to new layers that carry the input's placement and, in ``metadata["genprior"]``,
everything that reproduces them. No maths lives here: operators, solvers and metrics are the API's.

Its controls and what they mean are :mod:`._reconstruct_form`'s; where its layers go,
:mod:`._reconstruct_results`'; starting, cancelling and finishing a run, :mod:`._runs`' (shared
with Train). Notifications are this module's ``show_*`` functions (tests patch them here).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Image
from napari.utils.notifications import show_error, show_info, show_warning
from psygnal import Signal

from .._recommend import typical_share
from ..advice import ENCODER_METHODS, LATENT_METHODS
from ._layers import in_viewer
from ._reconstruct_form import (  # noqa: F401 - the widget's constants, importable from here
    DEBLUR,
    DEFAULT_METHOD,
    DENOISE,
    FROM_LAYER,
    INPAINT,
    LOAD_FILE,
    METHOD_LABELS,
    NO_PRIOR,
    PLAIN_OPERATORS,
    RESULT_ROLES,
    SUPERRES,
    ReconstructForm,
    _genprior,
    _multicoil,
)
from ._reconstruct_results import add_extra_layers, describe, result_kwargs, shown
from ._runs import RunControls
from ._worker import warm_up

if TYPE_CHECKING:  # pragma: no cover
    import napari

#: Results with more than this many times the pixels of the input need a second click on Run.
CONFIRM_RATIO = 4.0
#: ... and more pixels than this (a 28x28 digit from 100 measurements needs no confirmation).
CONFIRM_PIXELS = 512 * 512
#: Runs estimated (from their first second) at more than this many seconds stop and wait for a
#: second click on Run; None: never.
CONFIRM_SECONDS = 60.0


class ReconstructWidget(RunControls, ReconstructForm):
    """Reconstruct an image layer (a measurement) with a generative-prior method."""

    result_added = Signal(object)
    """Emitted with the result layer when a reconstruction has been added to the viewer."""
    _already_running = "A reconstruction is already running; cancel it first."
    _cancelling = "cancelling..."
    _failure = "Reconstruction failed"

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(viewer)  # the form: its controls, on the layer selected
        self._start_button = self.run_button
        self._preview: Image | None = None
        self._busy = False
        self._pending: Any = None
        self.confirm_seconds: float | None = CONFIRM_SECONDS
        self._confirmed: Any = None  # the settings a second click on Run goes ahead with
        self._paused: Any = None  # a run stopped before its long part, waiting for Run again
        self._awaiting = False  # the status asks for a second click on Run (or Continue)
        self._share = 1.0  # the share of its max steps the running method typically runs
        self.run_button.changed.connect(self.start)
        self.cancel_button.changed.connect(self.cancel)
        # any setting changed: a paused run or a confirmation no longer applies
        for control in (
            self.layer,
            self.operator,
            *self.psf.widgets,
            self.factor,
            self.prior,
            self.method,
            self.restarts,
            self.init,
            self.steps,
            self.seed,
            self.device,
        ):
            control.changed.connect(self._settings_changed)
        warm_up()

    def _settings_changed(self, _value: Any = None) -> None:
        """Forget a paused run (closing it) and a pending confirmation: the next Run starts
        afresh with the settings now shown, and the button and the status say so."""
        if self.worker is not None:
            return
        if self._paused is not None:
            self._paused[1].close()
        self._paused = self._confirmed = None
        if self._awaiting:  # the status asked for a second click: it no longer applies
            self._awaiting = False
            self.run_button.text = "Run"
            self.status.value = "settings changed: Run starts afresh, with its checks"
            self.progress.visible = False

    def _refused(self, message: str, level: str = "error") -> None:
        """A run refused before it started: the status line says so too (not a stale "done")
        and the progress bar goes."""
        self.status.value = message
        self.progress.value = 0
        self.progress.visible = False
        self._notify(level, message)

    def _notify(self, level: str, message: str) -> None:
        # this module's functions, looked up when called (tests patch them here)
        {"warning": show_warning, "error": show_error}[level](message)

    # -- inputs ------------------------------------------------------------------------------
    def measurement(self, layer: Image) -> tuple[np.ndarray, Any]:
        """``(y, A)`` for ``layer`` under the chosen operator; ``y`` may be a stack of planes.

        Raises ValueError with a sentence when the layer does not fit.
        """
        from .._layerdata import measurement_planes
        from ..api import make_operator

        if layer.multiscale or layer.rgb:
            raise ValueError(
                f"layer {layer.name!r} is {'multiscale' if layer.multiscale else 'RGB'};"
                " reconstruct needs a single-scale grey image."
            )
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
            raise ValueError(
                f"layer {layer.name!r} has shape {data.shape}; it needs at least "
                "2x2 pixels per plane."
            )
        shape = data.shape[-2:]
        value = self.operator.value
        if value == INPAINT:
            data = np.asarray(data)
            finite = np.isfinite(data).reshape(-1, *shape).all(axis=0)
            if finite.all():
                raise ValueError(
                    f"layer {layer.name!r} has no NaN pixels, so nothing is missing "
                    "to inpaint; use 'denoise', or Simulate to make a mask."
                )
            return np.where(np.isfinite(data), data, 0), make_operator(
                "inpaint", shape=shape, mask=finite
            )
        if value == DEBLUR:
            # a stack (z, y, x) is one volume under a 3D PSF (a 4D layer: one per time point)
            shape = tuple(data.shape[-3:]) if data.ndim >= 3 else shape
            return data, make_operator(
                "blur", shape=shape, boundary=self.psf.boundary.value, **self.psf.params(shape)
            )
        if value == SUPERRES:
            f = int(self.factor.value)
            return data, make_operator("downsample", shape=(shape[0] * f, shape[1] * f), factor=f)
        return data, make_operator("denoise", shape=shape)

    # -- running -----------------------------------------------------------------------------
    def _settings(self, layer: Image, A: Any) -> tuple:
        """What a confirmation applies to: the same layer, operator and settings."""
        return (
            layer.unique_id,
            A.kind,
            A.shape,
            self.method.value,
            str(self.prior.value),
            int(self.steps.value),
            int(self.restarts.value),
        )

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

        if self._refuse_while_running():
            return
        layer = self.layer.value
        if layer is None:
            self._refused("Pick an image layer to reconstruct.", "warning")
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
            planes = int(np.prod(y.shape[: y.ndim - len(A.measurement_shape)]))
            shown = np.prod(layer.data.shape[-2:]) if layer.data.ndim >= 2 else 1
            ratio = float(np.prod(A.shape)) / float(shown) if shown else output_ratio(A)
            confirmed = self._confirmed == key
            if ratio > CONFIRM_RATIO and np.prod(A.shape) > CONFIRM_PIXELS and not confirmed:
                mb = np.prod(A.shape) * planes * 4 / 2**20
                self._confirmed = key
                msg = (
                    f"The result will be {A.shape[-2]}x{A.shape[-1]} pixels"
                    f"{f' x {planes} planes' if planes > 1 else ''} ({ratio:.0f}x the "
                    f"input, {mb:.0f} MiB). Click Run again to go ahead."
                )
                self.status.value = msg
                self._awaiting = True
                show_warning(msg)
                return
            run = iter_reconstruct_stack(
                y,
                A,
                self.method.value,
                self._selected_prior(),
                steps=self.steps.value,
                device=self.device.value,
                seed=self.seed.value,
                **self._run_options(),
            )
        except (ValueError, TypeError, OSError) as exc:
            self._refused(f"Cannot reconstruct {layer.name!r}: {exc}")
            return
        self._launch(layer, y, A, run, checks=not confirmed)
        self._confirmed = key

    def _launch(self, layer: Image, y: Any, A: Any, run: Any, checks: bool) -> None:
        from ..advice import layer_image_kind
        from ._checks import checked_run

        self._awaiting = False
        self._source, self._y, self._A = layer, y, A
        self._planes = int(np.prod(y.shape[: y.ndim - len(A.measurement_shape)]))
        fit = None
        if (
            checks
            and self.check_fit.value
            and self.method.value in LATENT_METHODS
            and self._selected_prior() is not None
        ):
            k = len(A.measurement_shape)
            fit = {
                "y": np.asarray(y[(0,) * (y.ndim - k)]),
                "A": A,
                "prior": self._prior_object(),
                "image_kind": layer_image_kind(layer.metadata, getattr(layer, "units", ())),
                "seed": int(self.seed.value),
                "device": self.device.value,
            }
        self.progress.max = max(1, self.steps.value * self._planes)
        self.progress.value = 0
        self.progress.visible = True
        self._t0 = None
        limit = self.confirm_seconds if checks else None
        self._share = typical_share(self.method.value, A.kind)
        self._start_worker(
            checked_run(run, fit, confirm_after=limit, typical=self._share),
            "checking the prior..." if fit else "starting...",
        )

    # -- worker callbacks (main thread) ------------------------------------------------------
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
                layer = self._viewer.add_image(
                    image,
                    name=f"{self._source.name} [preview]",
                    **result_kwargs(self._source, self._y, self._A, image.ndim),
                )
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
        elapsed, since = now - self._t0[0], done - self._t0[1]
        left = remaining_seconds(elapsed, since, total - self._t0[1])
        typical = self._share * total  # where the method's rule usually stops it
        likely = remaining_seconds(elapsed, since, typical - self._t0[1])
        plane = f"plane {u.plane + 1}/{u.planes}  " if u.planes > 1 else ""
        if left is None:
            eta = ""
        elif likely is not None and done < typical < total:
            eta = f"  ~{likely:.0f} s left (at most {left:.0f} s)"
        else:
            eta = f"  ~{left:.0f} s left at most"
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
        self._awaiting = True
        show_warning(msg)

    def _on_done(self, rec) -> None:
        from ._checks import Stopped

        if isinstance(rec, Stopped):
            self._on_stopped(rec)
            return
        self.progress.value = self.progress.max
        src = self._source
        image, meta, name = describe(rec, src, self._y)
        kw = result_kwargs(src, self._y, self._A, image.ndim)
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
        add_extra_layers(
            self._viewer,
            rec,
            src,
            self._y,
            self._A,
            spread=self.add_spread.value,
            residual=self.add_residual.value,
            phase=self.show_phase.value and self.show_phase.enabled,
            coil_maps=self.show_coil_maps.value and self.show_coil_maps.enabled,
            warn=show_warning,
        )
        for note in rec.params.get("notes", []):
            show_warning(f"{rec.method}: {note}")
        word = "cancelled, kept the best so far" if rec.cancelled else "done"
        planes = (
            f", {rec.params.get('planes_done', 1)}/{self._planes} planes"
            if self._planes > 1
            else ""
        )
        msg = f"{rec.method}: {word} in {rec.seconds:.1f} s ({len(rec.history)} steps{planes})"
        if rec.params.get("rule") == "sure":  # what SURE chose, and the noise it assumed
            p = rec.params
            msg += (
                f"; noise std {p['noise_std']:.3g} (estimated), weight {p['lam']:.3g} "
                f"stopped at step {p['iterations']}"
            )
        elif rec.params.get("rule") == "early":  # deconvolution: FISTA's weight and step
            p = rec.params
            msg += (
                f"; weight {p['lam']:.3g} and stop at step {p['iterations']} chosen on "
                f"{p['heldout_entries']} held-out pixels"
            )
        self.status.value = msg
        show_info(msg)
        self.result_added.emit(result)

    def _on_finished(self) -> None:
        if in_viewer(self._viewer, self._preview):
            self._viewer.layers.remove(self._preview.name)
        self._preview = None
        super()._on_finished()
        if self._paused is None:
            self.run_button.text = "Run"
