"""Where a Reconstruct run's layers go: what they show, where they sit, what they carry.

A result (and its preview) is placed exactly over its input; on a finer grid than the layer it
came from (super-resolution) with proportionally smaller pixels. The extra layers (the spread
over restarts, the residual, the phase of a complex result, the coil maps) are placed over the
input too and say their ``role`` in ``metadata["genprior"]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from napari.layers import Image

from ._layers import placement


def shown(image: np.ndarray) -> np.ndarray:
    """What a layer shows of a result: the image itself, or the magnitude of a complex one
    (multi-coil MRI reconstructs complex images; their phase is a separate layer)."""
    return np.abs(image).astype(np.float32) if np.iscomplexobj(image) else image


def result_kwargs(src: Image, y: Any, A: Any, ndim: int) -> dict[str, Any]:
    """Placement and look of a result layer of ``ndim`` axes, over the input layer ``src``
    (whose measurement is ``y`` under ``A``)."""
    from .._layerdata import stores_measurement

    kw = placement(src, ndim)
    if not stores_measurement(y[(0,) * (y.ndim - len(A.measurement_shape))], A):
        # the layer is the measurement itself: a result on a finer grid (super-resolution)
        # has proportionally smaller pixels, and its pixel j (centre j + 1/2 in units of
        # its pixels) lies at (j + 1/2) r - 1/2 in the measurement's pixel coordinates, so
        # that the result covers exactly the area the measurement covers
        ratio = [m / s for m, s in zip(A.measurement_shape, A.shape)]
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


def describe(rec: Any, src: Image, y: Any = None) -> tuple[np.ndarray, dict[str, Any], str]:
    """The image a result layer shows of ``rec`` (a run's record), its metadata and its name.
    The metadata holds the measurement ``y`` too, where it is small enough
    (:func:`~napari_genprior.api._rerun.embed_measurement`), so that ``ngp.rerun(layer)``
    reproduces the result on its own."""
    from ..api._rerun import embed_measurement

    meta = {
        "genprior": {
            **rec.params,
            "role": "reconstruction",
            "source_layer": src.name,
            "seconds": rec.seconds,
            "cancelled": rec.cancelled,
            "history": [float(v) for v in rec.history],
        }
    }
    embedded = embed_measurement(y)
    if embedded is not None:
        meta["genprior"]["measurement"] = embedded
    image = shown(rec.image)  # a complex result: its magnitude (its phase: show_phase)
    if image is not rec.image:
        meta["genprior"]["shown"] = "magnitude"
    prior = rec.params.get("prior")
    prior_name = prior.get("source") if isinstance(prior, dict) else None
    tags = (
        [rec.method]
        + ([str(prior_name)] if prior_name else [])
        + (["cancelled"] if rec.cancelled else [])
    )
    return image, meta, f"{src.name} [{', '.join(tags)}]"


def add_extra_layers(
    viewer: Any,
    rec: Any,
    src: Image,
    y: Any,
    A: Any,
    *,
    spread: bool,
    residual: bool,
    phase: bool,
    coil_maps: bool,
    warn: Callable[[str], Any],
) -> None:
    """The layers asked for next to a result: the spread over restarts, the residual, the phase
    of a complex result and the coil maps of its operator. What cannot be made is ``warn``-ed."""
    if spread:
        if rec.spread is None:
            warn("No uncertainty layer: it needs restarts > 1 with a trained prior.")
        else:
            viewer.add_image(
                rec.spread,
                name=f"{src.name} [{rec.method} spread]",
                colormap="magma",
                **placement(src, rec.image.ndim),
                metadata={"genprior": {"role": "spread"}},
            )
    if residual:
        from ..metrics import residual_image  # here: its scikit-image import takes 0.3 s

        lead = y.shape[: y.ndim - len(A.measurement_shape)]
        try:
            res = shown(
                np.stack(
                    [residual_image(y[ix], A, rec.image[ix]) for ix in np.ndindex(*lead)]
                ).reshape(rec.image.shape)
            )
        except ValueError as exc:
            warn(f"No residual layer: {exc}")
        else:
            viewer.add_image(
                res,
                name=f"{src.name} [{rec.method} residual]",
                colormap="twilight_shifted",
                **placement(src, rec.image.ndim),
                metadata={"genprior": {"role": "residual"}},
            )
    if phase and np.iscomplexobj(rec.image):
        viewer.add_image(
            np.angle(rec.image).astype(np.float32),
            name=f"{src.name} [{rec.method} phase]",
            colormap="twilight",
            contrast_limits=(-np.pi, np.pi),
            **placement(src, rec.image.ndim),
            metadata={"genprior": {"role": "phase"}},
        )
    maps = getattr(A, "maps", None)
    if coil_maps and maps is not None:
        maps = np.abs(np.asarray(maps)).astype(np.float32)
        viewer.add_image(
            maps,
            name=f"{src.name} [coil maps]",
            colormap="viridis",
            **placement(src, maps.ndim),
            metadata={"genprior": {"role": "coil maps"}},
        )
