"""Measurements as napari layer data, and back: one convention for every place that makes or reads them.

A measurement layer is an image layer whose ``metadata["genprior"]`` holds

- ``"role": "measurement"``, ``"operator"``: the operator's spec (:meth:`Operator.spec`),
- ``"noise_std"`` / ``"photons"`` when known,
- ``"measurement"``: the exact measurement (:func:`napari_genprior._io.encode_array`) when the
  layer's pixels are only a picture of it: complex k-space (shown as log-magnitude), or a
  vector of ``cs`` / ``phase`` measurements (shown as a one-row strip).

The Simulate widget, the sample data, the HDF5 reader and the batch writer make such layers with
:func:`measurement_layer`; the Reconstruct widget reads them back with :func:`measurement_of`.

K-space layers of the HDF5 reader also carry ``"source"`` (the file, dataset and slice count)
and are read back one slice at a time with :func:`kspace_slice` (or :func:`kspace_slices`).
A multi-coil layer (``"coils": {"count": C, "maps": "espirit"}``) keeps only a single-coil
operator of the sampled columns: its coil maps are estimated per slice, from that slice's
k-space, when the slice is read, so a multi-coil volume has no one operator for all slices.
Pure numpy: nothing here imports napari (h5py and SigPy are imported when a slice is read).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from ._io import decode_array, encode_array
from .operators import Operator, from_spec

__all__ = [
    "display_of",
    "is_multicoil",
    "kspace_slice",
    "kspace_slices",
    "measurement_layer",
    "measurement_of",
    "measurement_planes",
    "read_slice",
    "stores_measurement",
]


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


def measurement_layer(
    y: Any,
    A: Operator,
    name: str,
    *,
    noise_std: float | None = None,
    photons: float | None = None,
    camera: dict[str, float] | None = None,
    modality: str | None = None,
    **layer_kwargs: Any,
) -> tuple:
    """A napari layer-data tuple ``(data, kwargs, "image")`` for the measurement ``y`` of ``A``.

    ``layer_kwargs`` (scale, translate, colormap, ...) are passed on; a ``downsample``
    measurement is shown at the operator's factor so that it lies over its image. ``modality``
    records what the image is (a key of :data:`napari_genprior.advice.MODALITY_WORDS`), which the
    prior check reads (:func:`napari_genprior.advice.layer_image_kind`).
    """
    y = np.asarray(y)
    if y.shape != A.measurement_shape:
        raise ValueError(
            f"measurement has shape {y.shape}, but the {A.kind!r} operator makes "
            f"measurements of shape {A.measurement_shape}."
        )
    meta: dict[str, Any] = {"role": "measurement", "operator": A.spec()}
    if noise_std is not None:
        meta["noise_std"] = float(noise_std)
    if photons is not None:
        meta["photons"] = float(photons)
    if camera is not None:  # the simulated camera (Reconstruct fits its own from the noise)
        meta["camera"] = {k: float(v) for k, v in camera.items()}
    if modality is not None:
        meta["modality"] = str(modality)
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
        raise ValueError(
            "the layer carries no operator in metadata['genprior']; it was not made "
            "by this plugin, so choose the operator by hand."
        )
    if is_multicoil(metadata) and "measurement" not in info:
        return _one_multicoil_slice(metadata)
    try:
        A = from_spec(info["operator"])
    except (TypeError, KeyError) as exc:
        raise ValueError(f"the operator in the layer's metadata cannot be rebuilt: {exc}") from exc
    if "measurement" in info:
        y = decode_array(info["measurement"])
    else:
        y = np.asarray(data)
    if y.shape != A.measurement_shape:
        raise ValueError(
            f"the layer's measurement has shape {y.shape}, but its {A.kind!r} operator "
            f"expects {A.measurement_shape}; the data or the metadata was changed."
        )
    return y, A


def _info(metadata: Any) -> Any:
    """``metadata["genprior"]`` (None when absent); TypeError when metadata is not a dict."""
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        raise TypeError(
            f"metadata must be a dict (a layer's metadata), got {type(metadata).__name__}."
        )
    return metadata.get("genprior")


def measurement_planes(data: Any, metadata: dict | None) -> tuple[np.ndarray, Operator]:
    """``(Y, A)`` for a measurement layer: ``Y`` is one measurement, or a stack of them for a
    single-coil k-space volume read by the HDF5 reader (one ``A`` for every slice).

    Raises
    ------
    ValueError
        For a multi-coil k-space volume of more than one slice: each slice has its own coil
        maps, so there is no one operator; use :func:`kspace_slice` per slice. (A one-slice
        multi-coil file gives that slice's ``(y, A)``.)
    """
    info = _info(metadata)
    if is_multicoil(metadata) and "measurement" not in info:
        return _one_multicoil_slice(metadata)
    source = info.get("source") if isinstance(info, dict) else None
    slices = source.get("slices") if isinstance(source, dict) else None
    if slices and "measurement" not in info:
        planes = [kspace_slice(metadata, k) for k in range(_count(slices, "source slices"))]
        return np.stack([y for y, _ in planes]), planes[0][1]
    return measurement_of(data, metadata)


def is_multicoil(metadata: Any) -> bool:
    """Whether ``metadata`` is that of a multi-coil k-space layer made by the HDF5 reader."""
    info = _info(metadata)
    return (
        isinstance(info, dict)
        and isinstance(info.get("coils"), dict)
        and isinstance(info.get("source"), dict)
    )


def _one_multicoil_slice(metadata: dict) -> tuple[np.ndarray, Operator]:
    """``(y, A)`` of a one-slice multi-coil layer, or the ValueError for a volume."""
    source = _info(metadata)["source"]
    slices = _count(source.get("slices"), "source slices")
    if slices == 1:
        return kspace_slice(metadata, 0)
    raise ValueError(
        f"the layer is multi-coil k-space of {slices} slices; each slice has its own "
        "coil maps (estimated from that slice), so there is no one operator for the "
        "whole volume. Reconstruct one slice at a time: kspace_slice(metadata, i) "
        "gives (y, A) of slice i (the Reconstruct widget takes the displayed slice)."
    )


def read_slice(path: Any, dataset: str, index: int) -> np.ndarray:
    """Slice ``index`` of the HDF5 ``dataset`` in ``path``: the file is opened, that one slice is
    read (``ds[index]``) and the file is closed again.

    Raises
    ------
    ValueError
        When the file or the dataset cannot be read.
    """
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return np.asarray(f[dataset][int(index)])
    except (OSError, KeyError, IndexError) as exc:
        raise ValueError(
            f"slice {index} of {str(path)!r} cannot be read ({exc}); the k-space is "
            "not stored in the layer, so the file is needed."
        ) from exc


def _count(value: Any, what: str) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or not 0 < value < 100_000
    ):
        raise ValueError(
            f"the layer's metadata gives {what} = {value!r:.80}; expected a positive "
            "integer. The metadata was changed."
        )
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
        Complex k-space of shape ``(H, W)``, or ``(coils, H, W)`` for a multi-coil layer,
        0 outside the sampled columns.
    A : Operator
        The layer's ``mri`` operator; for a multi-coil layer the SENSE operator of this slice,
        with coil maps estimated by ESPIRiT from its fully sampled centre
        (:func:`~napari_genprior.operators.coils.espirit_maps`).

    Raises
    ------
    ValueError
        When the metadata is not a k-space layer's, the index is out of range, the source
        file (for a volume that was too large to embed, or multi-coil) can no longer be read,
        or (multi-coil) the slice holds NaN or has too narrow a fully sampled centre for ESPIRiT.
    """
    info = _info(metadata)
    if (
        not isinstance(info, dict)
        or "operator" not in info
        or not isinstance(info.get("source"), dict)
    ):
        raise ValueError(
            "the layer is not a k-space layer made by the napari-genprior HDF5 "
            "reader (its metadata['genprior'] has no operator and source)."
        )
    if "measurement" in info:
        return measurement_of(None, metadata)
    A = from_spec(info["operator"])
    source = info["source"]
    slices = _count(source.get("slices"), "source slices")
    multicoil = is_multicoil(metadata)
    if index is None and multicoil and slices == 1:
        index = 0
    if index is None or not 0 <= int(index) < slices:
        raise ValueError(f"index must be a slice number from 0 to {slices - 1}, got {index!r}.")
    index = int(index)
    if multicoil:
        return _multicoil_slice(info, A, index)
    if "volume" in info:
        y = decode_array(info["volume"])[index]
    else:
        y = read_slice(source["path"], source["dataset"], index)
    if y.shape != A.shape:
        raise ValueError(
            f"slice {index} has shape {y.shape}, but the layer's operator expects "
            f"{A.shape}; the file or the metadata changed."
        )
    return y * A.mask, A


def _multicoil_slice(info: dict, A: Operator, index: int) -> tuple[np.ndarray, Operator]:
    """``(y, A)`` of slice ``index`` of a multi-coil file: its k-space and its SENSE operator."""
    from .operators.coils import espirit_maps, espirit_reference

    source = info["source"]
    coils = _count(source.get("coils"), "source coils")
    y = read_slice(source["path"], source["dataset"], index)
    where = f"slice {index} of {source['path']!r}"
    if y.shape != (coils, *A.shape):
        raise ValueError(
            f"{where} has shape {y.shape}, but the layer expects ({coils}, "
            f"{A.shape[0]}, {A.shape[1]}) (coils, H, W); the file or the metadata "
            "changed."
        )
    if not np.iscomplexobj(y):
        raise ValueError(f"{where} has dtype {y.dtype}, but k-space must be complex.")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{where} contains NaN or infinite values.")
    y = y * A.mask  # unsampled columns are 0, as the operator measures them
    try:
        maps = espirit_maps(y)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc
    spec = {**A.spec(), "coils": encode_array(maps, single=True)}
    # the spec (in every result's params) refers to the file's slice instead of holding the maps
    return y, from_spec(spec).refer_maps(
        espirit_reference(source["path"], source["dataset"], index)
    )


def kspace_slices(metadata: dict[str, Any]) -> Iterator[tuple[np.ndarray, Operator]]:
    """``(y, A)`` of each slice of a k-space layer made by the HDF5 reader, one at a time
    (:func:`kspace_slice`; a multi-coil file is read, and its maps estimated, slice by slice)."""
    info = _info(metadata)
    source = info.get("source") if isinstance(info, dict) else None
    slices = source.get("slices") if isinstance(source, dict) else None
    if not slices or (isinstance(info, dict) and "measurement" in info):
        yield kspace_slice(metadata)
        return
    for index in range(_count(slices, "source slices")):
        yield kspace_slice(metadata, index)
