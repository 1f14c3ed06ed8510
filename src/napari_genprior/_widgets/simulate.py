"""The Simulate dock widget: measure a clean image layer with a forward operator.

It builds the operator with :func:`napari_genprior.api.make_operator`, measures with
:meth:`Operator.measure` and back-projects with ``reconstruct(..., method="adjoint")``: all the
maths happens in the library; this module only reads the controls, rasterises mask layers and
adds two layers. The measurement layer is made by :func:`napari_genprior._layerdata.measurement_layer`,
so it carries its operator spec (and, where the pixels are only a picture of it, the exact
measurement) in ``metadata["genprior"]`` and the Reconstruct widget needs no re-entry of
parameters. The clean layer is never modified.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    ComboBox,
    Container,
    FloatSpinBox,
    PushButton,
    SpinBox,
    Widget,
    create_widget,
)
from napari.layers import Image, Labels, Layer, Shapes
from napari.utils.notifications import show_error, show_warning

from ..operators import OPERATORS
from ..operators.mri import MASKS
from ._dock import mark, wrapping_label
from ._layers import placement
from ._noise import CAMERA, NoiseControls
from ._psf import PSFControls

if TYPE_CHECKING:  # pragma: no cover
    import napari

    from ..operators import Operator

RANDOM_MASK = "random pixels (fraction)"
# Shapes that enclose an area; lines and paths mark no region.
CLOSED_SHAPES = ("rectangle", "ellipse", "polygon")


class SimulateWidget(Container):
    """Simulate a measurement of a clean image layer, and show it next to its back-projection.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer whose layers are read and to which the results are added.

    Attributes
    ----------
    last_layers : list of napari.layers.Layer
        The layers added by the last successful :meth:`simulate`: the measurement, then the
        adjoint (back-projection) when the operator is linear.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        self._viewer = viewer
        self.last_layers: list[Layer] = []
        self.layer = create_widget(
            annotation=Image,
            label="clean image",
            options={
                "tooltip": "The clean (ground-truth) image to measure; "
                "a single 2D grey plane. It is never modified."
            },
        )
        self.kind = ComboBox(
            label="operator",
            choices=list(OPERATORS),
            value="blur",
            tooltip="denoise: noise only. inpaint: missing pixels. blur: convolution with a PSF. "
            "downsample: a low-resolution camera. cs: random projections. mri: "
            "undersampled k-space. phase: magnitude-only measurements.",
        )
        # inpaint
        self.mask_source = ComboBox(
            label="observed pixels",
            choices=self._mask_choices,
            tooltip="Which pixels are measured: a random fraction, a Labels layer of the image's "
            "shape (nonzero = observed), or a Shapes layer whose rectangles, ellipses "
            "and polygons mark MISSING regions.",
        )
        self.fraction = FloatSpinBox(
            label="fraction observed",
            value=0.5,
            min=0.001,
            max=1.0,
            step=0.05,
            tooltip="Fraction of the pixels kept, chosen at random by the seed.",
        )
        # blur: the PSF controls shared with Reconstruct
        self.psf = PSFControls(viewer, lambda: self.layer.value)
        self.psf_source, self.sigma = self.psf.source, self.psf.sigma
        self.boundary = self.psf.boundary
        # downsample
        self.factor = SpinBox(
            label="factor",
            value=2,
            min=2,
            max=64,
            tooltip="Average factor x factor blocks of pixels; each image side "
            "must be a multiple of it.",
        )
        # cs, phase
        self.m = SpinBox(
            label="measurements m",
            value=1000,
            min=1,
            max=2**31 - 1,
            step=100,
            tooltip="Number of random measurements (cs: at most the number of "
            "pixels; phase: may exceed it).",
        )
        # mri
        self.acceleration = FloatSpinBox(
            label="acceleration",
            value=4.0,
            min=1.0,
            max=64.0,
            step=0.5,
            tooltip="Undersampling factor: 4 keeps about a quarter of the k-space columns.",
        )
        self.center_fraction = FloatSpinBox(
            label="center fraction",
            value=0.08,
            min=0.0,
            max=1.0,
            step=0.01,
            tooltip="Fraction of central (low-frequency) columns always sampled.",
        )
        self.mri_mask = ComboBox(
            label="k-space mask",
            choices=list(MASKS),
            value="random",
            tooltip="How the other columns are chosen (fastMRI conventions).",
        )
        self.coils = SpinBox(
            label="coils",
            value=1,
            min=1,
            max=32,
            tooltip="Receive coils: 1 is a single-coil scan (real image). More "
            "simulates a multi-coil (SENSE) scan with birdcage "
            "sensitivity maps; the image is then complex and "
            "reconstructions show its magnitude.",
        )
        # noise and the camera
        noise = NoiseControls()
        self.noise_std, self.photons = noise.noise_std, noise.photons
        self.background, self.camera = noise.background, noise.camera
        self.seed = SpinBox(
            label="seed",
            value=0,
            min=0,
            max=2**31 - 1,
            tooltip="Seeds the random operator (mask, matrix) and the noise: same "
            "seed, same measurement.",
        )
        self.simulate_button = PushButton(
            text="Simulate", tooltip="Add the measurement and its back-projection as new layers."
        )
        self.status = wrapping_label(value="")
        self._per_kind: dict[str, list[Widget]] = {
            "inpaint": [self.mask_source, self.fraction],
            "blur": self.psf.widgets,
            "downsample": [self.factor],
            "cs": [self.m],
            "mri": [self.acceleration, self.center_fraction, self.mri_mask, self.coils],
            "phase": [self.m],
        }
        self._parameters: list[Widget] = [
            self.mask_source,
            self.fraction,
            *self.psf.widgets,
            self.factor,
            self.m,
            self.acceleration,
            self.center_fraction,
            self.mri_mask,
            self.coils,
        ]
        super().__init__(
            widgets=[
                self.layer,
                self.kind,
                *self._parameters,
                self.noise_std,
                self.photons,
                self.background,
                self.camera,
                self.seed,
                self.simulate_button,
                self.status,
            ]
        )
        mark(self)  # tabbed with the plugin's other docked widgets
        for control in (self.kind, self.mask_source, self.psf_source, self.psf.microscope):
            control.changed.connect(self._update_visibility)
        self.layer.changed.connect(self._on_layer_changed)
        self.psf.read_voxel_size()
        self.simulate_button.changed.connect(self.simulate)
        self._update_visibility()

    # -- controls ----------------------------------------------------------------------------
    def _mask_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        layers = [lyr for lyr in self._viewer.layers if isinstance(lyr, (Labels, Shapes))]
        return [(RANDOM_MASK, RANDOM_MASK), *((lyr.name, lyr) for lyr in layers)]

    def _on_layer_changed(self, *_: Any) -> None:
        self.psf.read_voxel_size()
        self._update_visibility()

    def _update_visibility(self, *_: Any) -> None:
        """Show the parameters of the chosen operator kind only."""
        shown = self._per_kind.get(self.kind.value, [])
        hidden = [self.fraction] if isinstance(self.mask_source.value, Layer) else []
        psf = [id(w) for w in self.psf.widgets]
        for control in self._parameters:
            if id(control) in psf:
                continue
            control.visible = any(control is w for w in shown) and not any(
                control is w for w in hidden
            )
        self.psf.update_visibility(self.kind.value == "blur")

    def operator_params(self, shape: tuple[int, ...]) -> dict[str, Any]:
        """The keywords of ``make_operator(self.kind.value, shape=shape, ...)`` from the controls.

        Parameters
        ----------
        shape : tuple of int
            The clean image's shape (masks from layers are rasterised for it).

        Raises
        ------
        ValueError
            A mask or PSF layer that does not fit (wrong dimensions or shape, no closed shapes).
        """
        kind, seed = self.kind.value, self.seed.value
        if kind == "inpaint":
            source = self.mask_source.value
            if isinstance(source, Layer):
                return {"mask": observed_mask(source, self.layer.value, shape)}
            return {"fraction": self.fraction.value, "seed": seed}
        if kind == "blur":
            return {**self.psf.params(shape), "boundary": self.boundary.value}
        if kind == "downsample":
            return {"factor": self.factor.value}
        if kind in ("cs", "phase"):
            return {"m": self.m.value, "seed": seed}
        if kind == "mri":
            params = {
                "acceleration": self.acceleration.value,
                "center_fraction": self.center_fraction.value,
                "mask": self.mri_mask.value,
                "seed": seed,
            }
            if int(self.coils.value) > 1:  # 1: the single-coil operator, real images
                params["coils"] = int(self.coils.value)
            return params
        return {}

    # -- running -----------------------------------------------------------------------------
    def simulate(self) -> list[Layer]:
        """Measure the clean layer and add the measurement and its back-projection.

        Returns
        -------
        list of napari.layers.Layer
            The added layers (also kept in :attr:`last_layers`); empty when the inputs were
            rejected, in which case a notification says why and nothing is added.
        """
        from .._layerdata import measurement_layer
        from ..advice import layer_image_kind
        from ..api import make_operator, reconstruct

        clean = self.layer.value
        if clean is None:
            show_warning("Pick the clean image layer to simulate a measurement of.")
            return []
        noise_std = self.noise_std.value
        photons = self.photons.value or None
        camera = dict(CAMERA) if self.camera.value else None
        try:
            x = image_plane(clean, "image")
            params = self.operator_params(x.shape)
            A = make_operator(self.kind.value, shape=x.shape, **params)
            y = A.measure(
                x,
                noise_std=noise_std,
                photons=photons,
                seed=self.seed.value,
                background=self.background.value,
                camera=camera,
            )
            back = reconstruct(y, A, method="adjoint", device="cpu").image if A.linear else None
            if back is not None and np.iscomplexobj(back):  # multi-coil: show the magnitude
                back = np.abs(back).astype(np.float32)
        except (ValueError, TypeError) as exc:
            show_error(f"Cannot simulate from {clean.name!r}: {exc}")
            return []

        label = describe(A)
        data, kwargs, _ = measurement_layer(
            y,
            A,
            f"{clean.name} [{label}]",
            noise_std=noise_std,
            photons=photons,
            camera=camera,
            modality=layer_image_kind(clean.metadata, getattr(clean, "units", ())),
            **_measurement_look(clean, A, y),
        )
        added = [self._viewer.add_image(data, **kwargs)]
        if back is not None:
            added.append(
                self._viewer.add_image(
                    back,
                    name=f"{clean.name} [{A.kind} back-projection]",
                    colormap=clean.colormap.name,
                    metadata={"genprior": {"role": "adjoint", "operator": A.spec()}},
                    **placement(clean),
                )
            )
        self.last_layers = added
        self.status.value = f"{label}: added {', '.join(repr(lyr.name) for lyr in added)}"
        from ..advice import check_simulation

        warnings = check_simulation(
            x, self.kind.value, params, noise_std=noise_std, photons=photons
        )
        for w in warnings:  # implausible, not impossible: made anyway, with the reason
            show_warning(f"Simulate: {w}")
        if warnings:
            self.status.value += " (but: " + " ".join(warnings) + ")"
        return added


# -- helpers (pure functions of layers) --------------------------------------------------------
def image_plane(layer: Image, role: str = "image") -> np.ndarray:
    """The data of a single-scale, grey, 2D image or 3D stack layer, or a ValueError that says
    what is wrong.

    Parameters
    ----------
    layer : napari.layers.Image
        The layer to read (not modified).
    role : str
        What the layer is used as ("image", "PSF"), for the message.

    Raises
    ------
    ValueError
        Multiscale, RGB, not 2D (stacks are not supported by Simulate) or empty.
    """
    what = f"the {role} layer {layer.name!r}"
    if layer.multiscale:
        raise ValueError(f"{what} is multiscale; Simulate needs a single-scale 2D image.")
    if layer.rgb:
        raise ValueError(f"{what} is RGB; Simulate needs a grey 2D image (split the channels).")
    if layer.ndim not in (2, 3):
        raise ValueError(
            f"{what} has {layer.ndim} dimensions (shape {tuple(layer.data.shape)}); "
            "Simulate measures a 2D image or a 3D (z, y, x) stack."
        )
    data = np.asarray(layer.data)
    if data.size == 0:
        raise ValueError(f"{what} is empty.")
    return data


def observed_mask(layer: Labels | Shapes, image: Image, shape: tuple[int, ...]) -> np.ndarray:
    """Boolean mask of observed pixels (True) over ``shape`` from a Labels or Shapes layer.

    Parameters
    ----------
    layer : napari.layers.Labels or napari.layers.Shapes
        Labels: nonzero = observed; its data must have ``shape``. Shapes: the rectangles,
        ellipses and polygons are MISSING regions; they are mapped through world coordinates
        into ``image``'s pixel grid, so they may be drawn on a layer with another scale.
    image : napari.layers.Image
        The image the mask is for (its placement in the world).
    shape : tuple of int
        The image's shape.

    Raises
    ------
    ValueError
        A Labels layer of another shape, or a Shapes layer with no closed 2D shape.
    """
    if isinstance(layer, Labels):
        if layer.multiscale:
            raise ValueError(f"the mask layer {layer.name!r} is multiscale.")
        labels = np.asarray(layer.data)
        if labels.shape != tuple(shape):
            raise ValueError(
                f"the mask layer {layer.name!r} has shape {labels.shape}, but the "
                f"image has shape {tuple(shape)}."
            )
        return labels != 0
    if layer.ndim != 2:
        raise ValueError(
            f"the Shapes layer {layer.name!r} is {layer.ndim}D; draw the missing "
            "regions on a 2D Shapes layer."
        )
    closed = [
        (verts, kind) for verts, kind in zip(layer.data, layer.shape_type) if kind in CLOSED_SHAPES
    ]
    if not closed:
        raise ValueError(
            f"the Shapes layer {layer.name!r} has no rectangle, ellipse or polygon "
            "to mark missing pixels."
        )
    in_image = [
        np.array([image.world_to_data(layer.data_to_world(v)) for v in verts])
        for verts, _ in closed
    ]
    raster = Shapes(in_image, shape_type=[kind for _, kind in closed])
    return ~np.asarray(raster.to_masks(mask_shape=tuple(shape))).any(axis=0)


def describe(A: Operator) -> str:
    """A short label of an operator for layer names, e.g. ``"mri 4x"`` or ``"blur sigma 2"``."""
    spec = A.spec()
    kind = A.kind
    if kind == "inpaint":
        observed = A.observed()
        return f"inpaint {100 * float(np.mean(observed)):.0f}%"
    if kind == "blur":
        sigma = spec.get("sigma")
        if "optics" in spec:
            o = spec["optics"]
            return f"blur {o['microscope']} NA {o['na']:g}"
        if sigma is None:
            return "blur psf"
        return "blur sigma " + "/".join(f"{s:g}" for s in dict.fromkeys(sigma))
    if kind == "downsample":
        return "downsample " + "x".join(f"{f}" for f in dict.fromkeys(spec["factor"])) + "x"
    if kind == "mri":
        coils = int(getattr(A, "coils", 0) or 0)
        plural = "s" if coils > 1 else ""
        return f"mri {spec['acceleration']:g}x" + (f", {coils} coil{plural}" if coils else "")
    if kind == "cs":
        return f"cs m={spec['m']}"
    if kind == "phase":
        return f"phase m={spec['m']}" if "m" in spec else f"phase {spec['masks']} masks"
    return kind


def _measurement_look(clean: Image, A: Operator, y: np.ndarray) -> dict[str, Any]:
    """Placement, colormap and contrast of a measurement layer of ``clean``.

    A measurement shown as it is (real, image-shaped) is in the image's units and gets the clean
    layer's colormap and contrast limits; a picture of one (k-space, a vector) is grey and
    auto-contrasted. A ``downsample`` measurement's pixel covers ``factor`` clean pixels a side:
    its scale is the factor times the clean scale, and it is shifted so that each pixel sits
    over the centre of its block.
    """
    from .._layerdata import stores_measurement

    look = placement(clean)
    if A.kind == "downsample":
        factor = np.asarray(A.spec()["factor"], dtype=float)
        look["scale"] = np.asarray(clean.scale, dtype=float) * factor
        look["translate"] = np.asarray(clean.data_to_world((factor - 1) / 2), dtype=float)
    if not stores_measurement(y, A):
        look.update(colormap=clean.colormap.name, contrast_limits=clean.contrast_limits)
    return look
