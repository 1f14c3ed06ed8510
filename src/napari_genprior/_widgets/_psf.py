"""The PSF controls that Simulate and Reconstruct share: Gaussian, microscope optics, a PSF
image layer, or beads in an image layer (optionally marked by a Points layer).

:meth:`PSFControls.params` turns the controls into the keywords of
``make_operator("blur", shape=..., ...)``; the maths (psfmodels, bead averaging) lives in
:mod:`napari_genprior.operators.psf`. The voxel size is read from the image layer's ``scale``
(taken to be micrometres) when it is not all ones, and shown.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, FloatSpinBox, Widget
from napari.layers import Image, Layer, Points

from ._dock import wrapping_label

GAUSSIAN = "Gaussian (sigma)"
OPTICS = "microscope optics (psfmodels)"
BRIGHTEST = "(the brightest bead)"


class PSFControls:
    """The PSF widgets (to be placed in a container) and what they mean.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Where PSF, bead and Points layers are listed from.
    image : callable
        Returns the image layer the PSF is for (its scale gives the voxel size), or None.
    """

    def __init__(self, viewer: Any, image: Any):
        self._viewer, self._image = viewer, image
        self.source = ComboBox(
            label="PSF",
            choices=self._choices,
            tooltip="Gaussian: a sigma in pixels (along z scaled by the voxel size). Microscope "
            "optics: a widefield or confocal PSF computed by psfmodels. 'PSF image': "
            "an image layer holding the PSF (3D for a stack). 'beads in': a PSF "
            "measured from an image of sub-resolution beads.",
        )
        self.sigma = FloatSpinBox(
            label="sigma (pixels)",
            value=2.0,
            min=0.1,
            max=100.0,
            step=0.5,
            tooltip="Standard deviation of the Gaussian PSF, in lateral "
            "pixels; for a stack, the same width in micrometres "
            "along z (from the voxel size).",
        )
        self.microscope = ComboBox(
            label="microscope", choices=["widefield", "confocal"], value="widefield"
        )
        self.na = FloatSpinBox(
            label="NA",
            value=1.2,
            min=0.05,
            max=1.7,
            step=0.05,
            tooltip="Numerical aperture of the objective (below the immersion index).",
        )
        self.emission = FloatSpinBox(
            label="emission (nm)", value=520.0, min=200.0, max=2000.0, step=10.0
        )
        self.excitation = FloatSpinBox(
            label="excitation (nm)",
            value=488.0,
            min=200.0,
            max=2000.0,
            step=10.0,
            tooltip="Confocal only.",
        )
        self.immersion = FloatSpinBox(
            label="immersion index",
            value=1.33,
            min=1.0,
            max=2.0,
            step=0.01,
            tooltip="1.0 air, 1.33 water, 1.515 oil.",
        )
        self.sample = FloatSpinBox(label="sample index", value=1.33, min=1.0, max=2.0, step=0.01)
        self.dxy = FloatSpinBox(
            label="pixel size (um)",
            value=0.1,
            min=0.001,
            max=100.0,
            step=0.01,
            tooltip="Lateral pixel size in the sample; read from "
            "the layer's scale when it has one.",
        )
        self.dz = FloatSpinBox(
            label="z step (um)",
            value=0.25,
            min=0.001,
            max=1000.0,
            step=0.05,
            tooltip="Distance between planes; read from the layer's scale when it has one.",
        )
        self.points = ComboBox(
            label="bead points",
            choices=self._point_choices,
            tooltip="A Points layer marking beads to average; or the brightest bead alone.",
        )
        self.voxel = wrapping_label(value="")
        self._optics = [
            self.microscope,
            self.na,
            self.emission,
            self.excitation,
            self.immersion,
            self.sample,
        ]
        # what lies beyond the field of view (operators.blur.BOUNDARIES)
        self.boundary = ComboBox(
            label="boundary",
            choices=["unknown", "zero", "periodic"],
            value="unknown",
            tooltip=(
                "What lies outside the image. unknown (right for nearly every real image, a "
                "window onto a larger sample): the light from beyond the border is estimated, "
                "no frame. zero: dark outside (nuclei or beads on black with nothing bright at "
                "the border). periodic: the image wraps around (only FFT simulations)."
            ),
        )
        self.widgets: list[Widget] = [
            self.source,
            self.sigma,
            *self._optics,
            self.dxy,
            self.dz,
            self.points,
            self.voxel,
            self.boundary,
        ]
        self.source.changed.connect(lambda *_: self.update_visibility(True))
        self.microscope.changed.connect(lambda *_: self.update_visibility(True))

    # -- choices -----------------------------------------------------------------------------
    def _choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        layers = [lyr for lyr in self._viewer.layers if isinstance(lyr, Image)]
        return [
            (GAUSSIAN, GAUSSIAN),
            (OPTICS, OPTICS),
            *((f"PSF image: {lyr.name}", ("psf", lyr)) for lyr in layers),
            *((f"beads in: {lyr.name}", ("beads", lyr)) for lyr in layers),
        ]

    def _point_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        layers = [lyr for lyr in self._viewer.layers if isinstance(lyr, Points)]
        return [(BRIGHTEST, BRIGHTEST), *((lyr.name, lyr) for lyr in layers)]

    def reset_choices(self) -> None:
        for w in (self.source, self.points):
            w.reset_choices()

    # -- voxel size ----------------------------------------------------------------------------
    def read_voxel_size(self) -> None:
        """Take the voxel size from the image layer's scale (when it is not all ones)."""
        layer = self._image()
        if layer is None:
            return
        scale = np.asarray(layer.scale, dtype=float)
        if len(scale) >= 2 and not np.allclose(scale, 1.0):
            self.dxy.value = float(scale[-1])
            if len(scale) >= 3:
                self.dz.value = float(scale[-3])
        self.update_visibility(True)

    def update_visibility(self, shown: bool) -> None:
        """Show the controls that apply to the chosen source (all hidden when not ``shown``)."""
        src = self.source.value
        kind = src[0] if isinstance(src, tuple) else src
        layer = self._image()
        three_d = layer is not None and layer.ndim >= 3
        self.source.visible = shown
        self.sigma.visible = shown and kind == GAUSSIAN
        for w in self._optics:
            w.visible = shown and kind == OPTICS
        self.excitation.visible = shown and kind == OPTICS and self.microscope.value == "confocal"
        self.dxy.visible = shown and kind in (OPTICS, GAUSSIAN)
        self.dz.visible = shown and three_d and kind in (OPTICS, GAUSSIAN)
        self.points.visible = shown and kind == "beads"
        self.voxel.visible = shown
        self.boundary.visible = shown
        if layer is not None:
            scale = np.asarray(layer.scale, dtype=float)
            from_layer = not np.allclose(scale, 1.0)
            size = (
                f"{self.dz.value:g} x {self.dxy.value:g} x {self.dxy.value:g} um"
                if three_d
                else f"{self.dxy.value:g} x {self.dxy.value:g} um"
            )
            self.voxel.value = (
                f"voxel size {size} ({'from the layer scale' if from_layer else 'set here'})"
            )

    # -- the operator's keywords -----------------------------------------------------------
    def params(self, shape: tuple[int, ...]) -> dict[str, Any]:
        """``sigma=``, ``optics=`` or ``psf=`` for ``make_operator("blur", shape=shape, ...)``.

        Raises
        ------
        ValueError
            A PSF or bead layer that does not fit the image (its message names the problem).
        """
        from ..operators.psf import bead_psf

        src = self.source.value
        if src == GAUSSIAN:
            s = float(self.sigma.value)
            if len(shape) == 3:  # the same width in micrometres along z
                return {"sigma": (s * float(self.dxy.value) / float(self.dz.value), s, s)}
            return {"sigma": s}
        if src == OPTICS:
            optics = {
                "microscope": self.microscope.value,
                "na": float(self.na.value),
                "wavelength": float(self.emission.value) / 1000,
                "immersion_index": float(self.immersion.value),
                "sample_index": float(self.sample.value),
                "dxy": float(self.dxy.value),
                "dz": float(self.dz.value),
            }
            if self.microscope.value == "confocal":
                optics["ex_wavelength"] = float(self.excitation.value) / 1000
            return {"optics": optics}
        kind, layer = src
        if layer.multiscale or layer.rgb:
            raise ValueError(f"the PSF layer {layer.name!r} must be a single-scale grey image.")
        data = np.asarray(layer.data, dtype=np.float64)
        if data.ndim != len(shape):
            raise ValueError(
                f"the {'bead' if kind == 'beads' else 'PSF'} layer {layer.name!r} "
                f"is {data.ndim}D but the image is {len(shape)}D"
                + (
                    ": a stack needs a 3D PSF (a bead stack or the optics)."
                    if len(shape) == 3
                    else "."
                )
            )
        if kind == "psf":
            return {"psf": data}
        pts = self.points.value
        points = None
        if isinstance(pts, Layer):
            points = np.array([layer.world_to_data(pts.data_to_world(p)) for p in pts.data])
            if points.size == 0:
                raise ValueError(f"the Points layer {pts.name!r} is empty; mark the beads.")
            points = points[:, -data.ndim :]
        # the largest odd crop within the image and the bead layer, at most 65 pixels laterally
        odd = [min(s - 1 + s % 2, b - 1 + b % 2) for s, b in zip(shape, data.shape)]
        size = tuple(min(o, 65) if i >= data.ndim - 2 else o for i, o in enumerate(odd))
        return {"psf": bead_psf(data, points=points, size=size)}
