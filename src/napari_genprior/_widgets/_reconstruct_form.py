"""The Reconstruct widget's form: its controls, what they offer and what they mean.

:class:`ReconstructForm` builds the controls (measurement layer, operator, PSF, prior, method
and its options, the run controls), follows the layer selected in the viewer, recommends a
method for the measurement and prior (README "Which method when") and says so. Reading the
measurement from the layer and running are
:class:`~napari_genprior._widgets.reconstruct.ReconstructWidget`'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    ProgressBar,
    PushButton,
    SpinBox,
    create_widget,
)
from napari.layers import Image

from ..advice import ENCODER_METHODS, LATENT_METHODS, NO_PRIOR_METHOD
from ._dock import mark, wrapping_label
from ._psf import PSFControls
from ._session import SESSION_PRIORS
from ._worker import qt_alive

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
    "score": "score: diffusion prior (annealed denoising)",
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
RESULT_ROLES = ("reconstruction", "spread", "residual", "adjoint", "preview", "phase", "coil maps")


def _multicoil(layer: Image | None) -> bool:
    """Whether ``layer``'s metadata describes a multi-coil MRI measurement (made by Simulate,
    or a multi-coil k-space file opened by the HDF5 reader)."""
    from .._layerdata import is_multicoil

    spec = _genprior(layer).get("operator")
    return (isinstance(spec, dict) and spec.get("kind") == "mri" and bool(spec.get("coils"))) or (
        layer is not None and is_multicoil(layer.metadata)
    )


def _genprior(layer: Image | None) -> dict:
    """``layer.metadata["genprior"]``, or ``{}`` when there is none or it is not a dict (the
    metadata may have been edited by hand)."""
    info = layer.metadata.get("genprior") if layer is not None else None
    return info if isinstance(info, dict) else {}


class ReconstructForm(Container):
    """The controls of the Reconstruct widget and what they mean (no running here).

    Notifications go through ``_notify(level, message)``, the widget's.
    """

    worker: Any = None  # the widget's run: the measurement does not follow the selection then

    def __init__(self, viewer: napari.viewer.Viewer):
        from ..api import list_methods
        from ..devices import available_devices

        self._viewer = viewer
        self.layer = create_widget(
            annotation=Image,
            label="measurement",
            options={"tooltip": "The image layer to reconstruct from. It is never modified."},
        )
        self.operator = ComboBox(
            label="operator",
            choices=[FROM_LAYER, *PLAIN_OPERATORS],
            value=DENOISE,
            tooltip="How the measurement was made. Layers made by this plugin (Simulate, sample "
            "data, the HDF5 reader) carry their operator in their metadata. For a plain "
            "image: denoise it, fill its NaN pixels, deblur it or super-resolve it.",
        )
        # the PSF to undo (Gaussian, optics, PSF or bead layer), shared with Simulate; a 3D
        # layer is deconvolved as one volume with a 3D PSF
        self.psf = PSFControls(viewer, lambda: self.layer.value)
        self.sigma = self.psf.sigma
        self.factor = SpinBox(
            label="factor",
            value=2,
            min=2,
            max=16,
            tooltip="Super-resolution factor: the result has this many times "
            "more pixels along each axis.",
        )
        self.method = ComboBox(
            label="method",
            choices=[(METHOD_LABELS.get(m, m), m) for m in list_methods()],
            value="dip",
            tooltip="csgm / twist / sparse-gen / ia: search the latent space "
            "of the trained prior (ia then adapts the prior to this "
            "image). dip: Deep Image Prior, an untrained network "
            "stopped early by held-out measurements. tv, lasso-dct, "
            "lasso-wavelet: classical compressed sensing. "
            "Back-projection: the measurement mapped back to an "
            "image, no prior.",
        )
        self.prior = ComboBox(
            label="prior",
            choices=self._prior_choices,
            value=NO_PRIOR,
            tooltip="The trained generator for csgm, twist and sparse-gen: a "
            "bundled prior, one trained in this session (Train prior), "
            "or a .safetensors file. Its patch size must match the "
            "image.",
        )
        self.restarts = SpinBox(
            label="restarts",
            value=1,
            min=1,
            max=64,
            tooltip="Random starts of the latent search, run together in one "
            "batch; the best fit wins. With more than one, the "
            "spread over starts is an uncertainty map. Only for "
            "methods with a trained prior.",
        )
        self.init = ComboBox(
            label="start",
            choices=[("random codes", "random"), ("encoder of the measurement", "encoder")],
            value="random",
            tooltip="Where the latent search starts: random codes, or (first "
            "restart) the prior's encoder applied to the back-projected "
            "measurement: a warm start for denoise, inpaint, deblur.",
        )
        self.advice = wrapping_label(value="")
        self.check_fit = CheckBox(
            text="check the prior suits the image first",
            value=True,
            tooltip="Before the run, a few steps test whether the prior "
            "can represent this image, and warn if not.",
        )
        self.steps = SpinBox(
            label="max steps",
            value=2000,
            min=1,
            max=100_000,
            step=100,
            tooltip="Upper bound on iterations, set to the method's own when a method is "
            "chosen; most methods stop earlier by a rule (held-out measurements, SURE).",
        )
        self.seed = SpinBox(
            label="seed", value=0, min=0, max=2**31 - 1, tooltip="Same seed, same result."
        )
        self.device = ComboBox(
            label="device",
            choices=["auto", *available_devices()],
            value="auto",
            tooltip="auto: CUDA if present, else Apple MPS, else CPU.",
        )
        self.add_spread = CheckBox(
            text="add uncertainty (spread over restarts)",
            value=False,
            tooltip="Also add the per-pixel standard deviation over the "
            "restarts as a layer (needs restarts > 1).",
        )
        self.add_residual = CheckBox(
            text="add residual",
            value=False,
            tooltip="Also add what the result does not explain of the measurement, as an image.",
        )
        self.show_phase = CheckBox(
            text="show phase",
            value=False,
            visible=False,
            tooltip="Multi-coil MRI reconstructs a complex image: the "
            "result layer shows its magnitude; this also adds "
            "its phase (radians) as a layer.",
        )
        self.show_coil_maps = CheckBox(
            text="show coil maps",
            value=False,
            visible=False,
            tooltip="Also add the magnitudes of the coil sensitivity "
            "maps of this multi-coil measurement as a layer "
            "(one plane a coil).",
        )
        self.run_button = PushButton(text="Run", tooltip="Start the reconstruction.")
        self.cancel_button = PushButton(
            text="Cancel", enabled=False, tooltip="Stop now and keep the best result so far."
        )
        self.status = wrapping_label(value="")
        self.progress = ProgressBar(value=0, min=0, max=1, label="progress", visible=False)
        super().__init__(
            widgets=[
                self.layer,
                self.operator,
                *self.psf.widgets,
                self.factor,
                self.prior,
                self.method,
                self.advice,
                self.restarts,
                self.init,
                self.steps,
                self.seed,
                self.device,
                self.check_fit,
                self.add_spread,
                self.add_residual,
                self.show_phase,
                self.show_coil_maps,
                self.run_button,
                self.cancel_button,
                self.progress,
                self.status,
            ]
        )
        mark(self)  # tabbed with the plugin's other docked widgets
        self._last_prior = NO_PRIOR
        self._priors: dict[str, Any] = {}
        self.layer.changed.connect(self._on_layer_changed)
        self.operator.changed.connect(self._on_operator_changed)
        self.prior.changed.connect(self._on_prior_changed)
        self.method.changed.connect(self._on_method_changed)
        SESSION_PRIORS.changed.connect(self._on_session_prior)
        viewer.layers.selection.events.active.connect(self._on_active_layer)
        self._pick_initial_layer()
        self._on_layer_changed(self.layer.value)
        self._on_method_changed(self.method.value)

    def _notify(self, level: str, message: str) -> None:
        raise NotImplementedError  # pragma: no cover - the widget's

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
            self._notify("error", f"Cannot load the prior {path}: {exc}")
            return None
        name = SESSION_PRIORS.add(Path(path).name, G)  # reset_choices via the signal
        self.prior.value = name
        return name

    def _ask_prior_file(self) -> None:
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getOpenFileName(
            self.native, "Load a prior", "", "Prior files (*.safetensors)"
        )
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
        return (
            isinstance(layer, Image)
            and self._role(layer) not in RESULT_ROLES
            and not layer.name.endswith("[preview]")
        )

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
        """Controls that do not apply to ``method`` are disabled (and say why); max steps
        shows the method's own (a lowered count does not carry over to another method)."""
        from .._recommend import DEFAULT_STEPS

        if method in DEFAULT_STEPS:
            self.steps.value = DEFAULT_STEPS[method]
        self.steps.enabled = method in DEFAULT_STEPS  # (adjoint takes no steps)
        latent = method in LATENT_METHODS
        self.restarts.enabled = latent
        self.add_spread.enabled = latent
        self.init.enabled = method in ENCODER_METHODS
        self.check_fit.enabled = latent
        if not latent:
            self.restarts.tooltip = (
                f"{method} runs a single start (only methods with a trained prior take restarts)."
            )

    def _kind(self) -> str:
        """The operator kind the current choices lead to (for defaults)."""
        value = self.operator.value
        if value == FROM_LAYER:
            spec = _genprior(self.layer.value).get("operator")
            return str(spec.get("kind", "")) if isinstance(spec, dict) else ""
        return {DENOISE: "denoise", INPAINT: "inpaint", DEBLUR: "blur", SUPERRES: "downsample"}.get(
            value, "denoise"
        )

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
            shown += (
                f", {advice.restarts} restart{'s' if advice.restarts > 1 else ''}, "
                f"{'encoder' if advice.init == 'encoder' else 'random'} start"
            )
        self.advice.value = f"recommended: {shown}"
        self.advice.tooltip = f"README 'Which method when': {advice.why}."
        self._on_method_changed(self.method.value)  # (max steps: the method's own, again)

    def _selected_prior(self) -> Any:
        value = self.prior.value
        if value in (NO_PRIOR, LOAD_FILE):
            return None
        return SESSION_PRIORS.get(value) if value in SESSION_PRIORS.names() else value
