"""Measurements as napari layer data, and back: one convention for every place that makes or reads them.

A measurement layer is an image layer whose ``metadata["genprior"]`` holds

- ``"role": "measurement"``, ``"operator"``: the operator's spec (:meth:`Operator.spec`),
- ``"noise_std"`` / ``"photons"`` when known,
- ``"measurement"``: the exact measurement (:func:`napari_genprior._io.encode_array`) when the
  layer's pixels are only a picture of it: complex k-space (shown as log-magnitude), or a
  vector of ``cs`` / ``phase`` measurements (shown as a one-row strip).

The Simulate widget, the sample data, the HDF5 reader and the batch writer make such layers with
:func:`measurement_layer`; the Reconstruct widget reads them back with :func:`measurement_of`.
Pure numpy: nothing here imports napari.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._io import decode_array, encode_array
from .operators import Operator, from_spec

__all__ = ["display_of", "measurement_layer", "measurement_of", "stores_measurement"]


def stores_measurement(y: np.ndarray, A: Operator) -> bool:
    """Whether a layer can show ``y`` only as a picture (so the exact values go in metadata)."""
    return bool(np.iscomplexobj(y) or y.ndim != len(A.shape))


def display_of(y: np.ndarray) -> np.ndarray:
    """A float32 picture of a measurement: ``log(1 + |y|)`` for complex data, a strip for vectors."""
    y = np.asarray(y)
    shown = np.log1p(np.abs(y)) if np.iscomplexobj(y) else y
    if shown.ndim == 1:
        shown = shown[None, :]
    return np.asarray(shown, dtype=np.float32)


def measurement_layer(y: Any, A: Operator, name: str, *, noise_std: float | None = None,
                      photons: float | None = None, **layer_kwargs: Any) -> tuple:
    """A napari layer-data tuple ``(data, kwargs, "image")`` for the measurement ``y`` of ``A``.

    ``layer_kwargs`` (scale, translate, colormap, ...) are passed on; a ``downsample``
    measurement is shown at the operator's factor so that it lies over its image.
    """
    y = np.asarray(y)
    if y.shape != A.measurement_shape:
        raise ValueError(f"measurement has shape {y.shape}, but the {A.kind!r} operator makes "
                         f"measurements of shape {A.measurement_shape}.")
    meta: dict[str, Any] = {"role": "measurement", "operator": A.spec()}
    if noise_std is not None:
        meta["noise_std"] = float(noise_std)
    if photons is not None:
        meta["photons"] = float(photons)
    if stores_measurement(y, A):
        meta["measurement"] = encode_array(y)
    kwargs = {"name": name, "colormap": "gray", **layer_kwargs}
    if A.kind == "downsample" and "scale" not in layer_kwargs:
        kwargs["scale"] = tuple(float(a) / float(b) for a, b in zip(A.shape, y.shape))
    user_meta = dict(kwargs.pop("metadata", {}) or {})
    kwargs["metadata"] = {**user_meta, "genprior": meta}
    return display_of(y), kwargs, "image"


def measurement_of(data: Any, metadata: dict | None) -> tuple[np.ndarray, Operator]:
    """``(y, A)`` from a measurement layer's data and metadata.

    Raises
    ------
    ValueError
        When the metadata carries no operator, a spec that cannot be rebuilt, or a measurement
        that does not fit the operator (e.g. metadata edited by hand, or another layer's data).
    """
    info = (metadata or {}).get("genprior")
    if not isinstance(info, dict) or "operator" not in info:
        raise ValueError("the layer carries no operator in metadata['genprior']; it was not made "
                         "by this plugin, so choose the operator by hand.")
    try:
        A = from_spec(info["operator"])
    except (TypeError, KeyError) as exc:
        raise ValueError(f"the operator in the layer's metadata cannot be rebuilt: {exc}") from exc
    if "measurement" in info:
        y = decode_array(info["measurement"])
    else:
        y = np.asarray(data)
    if y.shape != A.measurement_shape:
        raise ValueError(f"the layer's measurement has shape {y.shape}, but its {A.kind!r} operator "
                         f"expects {A.measurement_shape}; the data or the metadata was changed.")
    return y, A
