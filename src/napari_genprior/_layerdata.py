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

from collections.abc import Mapping
from typing import Any

import numpy as np

from ._io import decode_array, encode_array
from .operators import Operator, from_spec

__all__ = ["display_of", "kspace_slice", "measurement_layer", "measurement_of", "measurement_planes",
           "stores_measurement"]


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
    shown = display_of(y)
    kwargs = {"name": name, "colormap": "gray", **layer_kwargs}
    if np.iscomplexobj(y) and "contrast_limits" not in layer_kwargs:
        # k-space: a few central entries are orders of magnitude above the rest
        positive = shown[shown > 0]
        top = float(np.percentile(positive, 99.5)) if positive.size else 1.0
        kwargs["contrast_limits"] = [0.0, top if top > 0 else 1.0]
    if A.kind == "downsample" and "scale" not in layer_kwargs:
        # each measured pixel averages a factor x factor block: its centre is the block's
        kwargs["scale"] = tuple(float(a) / float(b) for a, b in zip(A.shape, y.shape))
        kwargs.setdefault("translate", tuple((s - 1) / 2 for s in kwargs["scale"]))
    user_meta = dict(kwargs.pop("metadata", {}) or {})
    kwargs["metadata"] = {**user_meta, "genprior": meta}
    return shown, kwargs, "image"


def measurement_of(data: Any, metadata: dict | None) -> tuple[np.ndarray, Operator]:
    """``(y, A)`` from a measurement layer's data and metadata.

    Raises
    ------
    ValueError
        When the metadata carries no operator, a spec that cannot be rebuilt, or a measurement
        that does not fit the operator (e.g. metadata edited by hand, or another layer's data).
    """
    info = _info(metadata)
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


def _info(metadata: Any) -> Any:
    """``metadata["genprior"]`` (None when absent); TypeError when metadata is not a dict."""
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a dict (a layer's metadata), got "
                        f"{type(metadata).__name__}.")
    return metadata.get("genprior")


def measurement_planes(data: Any, metadata: dict | None) -> tuple[np.ndarray, Operator]:
    """``(Y, A)`` for a measurement layer: ``Y`` is one measurement, or a stack of them for a
    k-space volume read by the HDF5 reader (one ``A`` for every slice)."""
    info = _info(metadata)
    source = info.get("source") if isinstance(info, dict) else None
    slices = source.get("slices") if isinstance(source, dict) else None
    if slices and "measurement" not in info:
        planes = [kspace_slice(metadata, k) for k in range(_count(slices, "source slices"))]
        return np.stack([y for y, _ in planes]), planes[0][1]
    return measurement_of(data, metadata)


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 < value < 100_000:
        raise ValueError(f"the layer's metadata gives {what} = {value!r:.80}; expected a positive "
                         "integer. The metadata was changed.")
    return int(value)


def kspace_slice(metadata: dict[str, Any], index: int | None = None) -> tuple[np.ndarray, Operator]:
    """``(y, A)`` for one slice of a k-space layer made by this reader.

    Parameters
    ----------
    metadata : dict
        The layer's metadata (with ``metadata["genprior"]`` as this reader writes it).
    index : int, optional
        The slice of a volume (``0 <= index < slices``); ignored for a one-slice file.

    Returns
    -------
    y : ndarray
        Complex k-space of shape ``(H, W)``, 0 outside the sampled columns.
    A : Operator
        The layer's ``mri`` operator.

    Raises
    ------
    ValueError
        When the metadata is not a k-space layer's, the index is out of range, or the source
        file (for a volume that was too large to embed) can no longer be read.
    """
    info = _info(metadata)
    if not isinstance(info, dict) or "operator" not in info or not isinstance(info.get("source"),
                                                                                 dict):
        raise ValueError("the layer is not a k-space layer made by the napari-genprior HDF5 "
                         "reader (its metadata['genprior'] has no operator and source).")
    if "measurement" in info:
        return measurement_of(None, metadata)
    A = from_spec(info["operator"])
    source = info["source"]
    slices = _count(source.get("slices"), "source slices")
    if index is None or not 0 <= int(index) < slices:
        raise ValueError(f"index must be a slice number from 0 to {slices - 1}, got {index!r}.")
    index = int(index)
    if "volume" in info:
        y = decode_array(info["volume"])[index]
    else:
        try:
            import h5py

            with h5py.File(source["path"], "r") as f:
                y = np.asarray(f[source["dataset"]][index])
        except (OSError, KeyError) as exc:
            raise ValueError(f"slice {index} of {source['path']!r} cannot be read ({exc}); the "
                             "k-space was not stored in the layer, so the file is needed.") from exc
    if y.shape != A.shape:
        raise ValueError(f"slice {index} has shape {y.shape}, but the layer's operator expects "
                         f"{A.shape}; the file or the metadata changed.")
    return y * A.mask, A
