"""napari reader for fastMRI-style HDF5 files: single- or multi-coil k-space as layers.

A file holds a complex dataset ``kspace``, with the phase-encoding direction on the last axis
(columns), in one of three layouts:

- ``(H, W)``: one single-coil slice;
- ``(slices, H, W)``: a single-coil volume (fastMRI ``singlecoil_*``);
- ``(slices, coils, H, W)``: a multi-coil volume (fastMRI ``multicoil_*``; a 16-coil knee
  volume is GBs). A 4D dataset with more than :data:`MAX_COILS` entries on its second axis, or
  as many as a slice has along a side, or a 5D one, is refused ("coils in an unexpected axis").

Optional: ``mask`` ``(W,)``, the sampled columns (fastMRI's test and challenge files have it);
``reconstruction_rss`` / ``reconstruction_esc``, reference images (fastMRI centre-crops them,
e.g. to 320x320, so they may be smaller than k-space); attributes such as ``acquisition``.

:func:`get_reader` gives napari, for each file, up to four image layers:

- ``"<stem> [mri <a>x k-space]"``: the measurement, shown as ``log(1 + |k|)``. Its
  ``metadata["genprior"]`` follows :mod:`napari_genprior._layerdata`: ``"role": "measurement"``
  and ``"operator"``, the spec of an ``mri`` operator for ONE slice ``(H, W)`` whose sampled
  columns are the file's ``mask`` when it has one, else the columns where k-space is nonzero in
  any slice. ``"source": {"path", "dataset", "slices"}`` names where the k-space came from.
  K-space outside the sampled columns is set to 0 (the operator's convention).

  How the exact, complex k-space is kept:

  * one slice: in ``"measurement"``, as for every measurement layer, so
    :func:`napari_genprior._layerdata.measurement_of` rebuilds ``(y, A)``;
  * a volume: in ``"volume"`` (:func:`napari_genprior._io.encode_array`) when it is smaller
    than :data:`EMBED_MAX_BYTES` as complex128, else only by reference to ``"source"`` (a
    fastMRI volume is ~100 MB). :func:`kspace_slice` gives ``(y, A)`` of one slice either way;
    :func:`measurement_of` refuses a volume (its data is not one slice).

- ``"<stem> [zero-filled]"``: ``|F^-1 k|`` slice by slice (fastMRI's zero-filled baseline).
  The ``mri`` operator models real images, so its adjoint (``reconstruct(..., "adjoint")``) is
  the real part ``Re(F^-1 k)``; the two agree where the image's phase is zero.
- ``"<stem> [rss]"`` / ``"<stem> [esc]"``: the file's reference reconstructions, translated so
  that a centre crop lies over the middle of the k-space image (fastMRI's ``center_crop``).

Multi-coil files are never read whole. Opening one reads the ``mask`` (or, without one, the
middle slice, to find the sampled columns), the references and the attributes; its layers are

- ``"<stem> [mri <a>x k-space, <C> coils]"``: a lazy dask array ``(slices, H, W)`` showing
  ``log(1 + rss_c |k_c|)``; each slice is read from the file (opened, one ``ds[i]`` read,
  closed) only when napari shows it. ``metadata["genprior"]`` holds the single-coil ``mri``
  spec of the sampled columns, ``"coils": {"count": C, "maps": "espirit"}`` and ``"source":
  {"path", "dataset", "slices", "coils"}``; no k-space is embedded. :func:`kspace_slice`
  reads one slice ``(C, H, W)``, estimates its coil maps by ESPIRiT from its fully sampled
  centre (at least 8 columns) and returns ``(y, A)`` with ``A`` that slice's SENSE operator.
  As maps differ per slice, a volume has no one operator: ``measurement_of`` /
  ``measurement_planes`` refuse a multi-coil volume of more than one slice.
- ``"<stem> [zero-filled]"``: a lazy dask array ``(slices, H, W)`` float32, the
  root-sum-of-squares over coils of the zero-filled coil images ``|F^-1 k_c|``.
- the references, as for single-coil files (read whole: they are small).

NaN in a multi-coil file is found in the slice that is read (the middle one on opening, then
each slice :func:`kspace_slice` reads), not by scanning the file.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from . import _layerdata
from ._io import EMBED_MAX_BYTES, encode_array
from ._layerdata import display_of, kspace_slice, kspace_slices, measurement_layer
from ._omezarr import is_ome_zarr, read_ome_zarr_levels
from .operators import MRI
from .operators.coils import rss
from .operators.mri import ifft2c

__all__ = [
    "EMBED_MAX_BYTES",
    "MAX_COILS",
    "REFERENCES",
    "get_reader",
    "kspace_slice",
    "kspace_slices",
    "read_kspace_file",
]

PathLike = str | os.PathLike
LayerData = tuple[Any, dict[str, Any], str]

KSPACE = "kspace"
#: Reference reconstructions a file may carry, and the suffix of their layers' names.
REFERENCES = {"reconstruction_rss": "rss", "reconstruction_esc": "esc"}
#: Most receive coils a multi-coil file may have (more on the coil axis means a wrong layout).
MAX_COILS = 64


def get_reader(path: PathLike | list[PathLike]) -> Callable[[Any], list[LayerData]] | None:
    """The npe2 reader contribution: :func:`read_kspace_file` for HDF5 files with k-space, and
    OME-Zarr images (folders) as one lazy, multiscale layer with their voxel size.

    Parameters
    ----------
    path : path or list of paths
        What napari was asked to open.

    Returns
    -------
    callable or None
        A function from the path(s) to a list of layer-data tuples, or None when any path is
        not an HDF5 file with a ``kspace`` dataset (so napari tries other readers). A file
        that has ``kspace`` but in a form this reader does not take (real-valued, coils in an
        unexpected axis) is accepted here and the reader raises a ValueError that says why.
    """
    paths = path if isinstance(path, (list, tuple)) else [path]
    if paths and all(is_ome_zarr(p) for p in paths):
        return _read_ome_zarr
    if not paths or not all(_has_kspace(p) for p in paths):
        return None
    return _read


def _read_ome_zarr(path: PathLike | list[PathLike]) -> list[LayerData]:
    """An OME-Zarr image (a stack larger than memory, a chunked deconvolution's output) as one
    lazy layer: its pyramid levels as dask arrays, its voxel size as the scale, its
    ``genprior`` attributes (a result's parameters) in the metadata."""
    paths = path if isinstance(path, (list, tuple)) else [path]
    layers = []
    for p in paths:
        levels, voxel, attrs = read_ome_zarr_levels(p)
        meta: dict[str, Any] = {"ome_zarr": str(p)}
        if isinstance(attrs.get("genprior"), dict):  # what wrote it (a chunked deconvolution)
            meta["genprior"] = {"role": "result", **attrs["genprior"]}
        kwargs: dict[str, Any] = {"name": Path(p).stem, "metadata": meta}
        if voxel is not None:
            kwargs["scale"] = voxel
        layers.append((levels if len(levels) > 1 else levels[0], kwargs, "image"))
    return layers


def _has_kspace(path: Any) -> bool:
    """Whether ``path`` is an HDF5 file with a ``kspace`` dataset (any error means no)."""
    try:
        with h5py.File(path, "r") as f:
            return isinstance(f.get(KSPACE), h5py.Dataset)
    except (OSError, ValueError, TypeError):
        return False


def _read(path: PathLike | list[PathLike]) -> list[LayerData]:
    paths = path if isinstance(path, (list, tuple)) else [path]
    return [layer for p in paths for layer in read_kspace_file(p)]


def read_kspace_file(path: PathLike) -> list[LayerData]:
    """The layers of one fastMRI-style file (see the module docstring).

    Parameters
    ----------
    path : str or PathLike
        An HDF5 file with a complex ``kspace`` dataset of shape ``(H, W)`` or ``(slices, H, W)``
        (single-coil), or ``(slices, coils, H, W)`` (multi-coil, read lazily).

    Returns
    -------
    list of (data, kwargs, "image")
        The k-space measurement, the zero-filled image and any reference reconstructions.
        For a multi-coil file the first two are dask arrays, computed a slice at a time.

    Raises
    ------
    ValueError
        When the file cannot be read, has no complex 2D, 3D or 4D ``kspace`` (4D with the
        coils on the second axis), its ``mask`` does not fit it, or the k-space read (all of
        a single-coil file, the middle slice of a multi-coil one) is not finite.
    """
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            ds = _kspace_dataset(f, path)
            attrs = {key: _plain(value) for key, value in f.attrs.items()}
            if ds.ndim == 4:
                scan = _scan_multicoil(f, ds, path)
            else:
                scan = None
                kspace = _check_kspace(ds, path)
                columns = _sampled_columns(f, kspace, path)
            references = {
                key: np.asarray(f[key])
                for key in REFERENCES
                if isinstance(f.get(key), h5py.Dataset)
            }
    except OSError as exc:
        raise ValueError(f"{path} cannot be read as an HDF5 file: {exc}") from exc
    if scan is not None:
        return _multicoil_layers(path, scan, references, attrs)
    volume = kspace.ndim == 3
    A = _operator(kspace.shape[-2:], columns)
    kspace = kspace * A.mask  # unsampled entries are 0, as the operator measures them
    stem = path.stem
    source = {
        "path": str(path.resolve()),
        "dataset": KSPACE,
        "slices": int(kspace.shape[0]) if volume else None,
    }
    name = f"{stem} [mri {A.acceleration:.3g}x k-space]"
    first = kspace[0] if volume else kspace
    data, kwargs, kind = measurement_layer(first, A, name, metadata={"hdf5_attrs": attrs})
    meta = kwargs["metadata"]["genprior"]
    meta["source"] = source
    if volume:
        del meta["measurement"]  # one slice of a volume would pass for the whole measurement
        data = display_of(kspace)
        if kspace.size * np.dtype(np.complex128).itemsize <= EMBED_MAX_BYTES:
            meta["volume"] = encode_array(kspace)
    layers: list[LayerData] = [(data, kwargs, kind)]
    zero_filled = np.abs(_ifft2c(kspace)).astype(np.float32)
    layers.append(
        (
            zero_filled,
            {
                "name": f"{stem} [zero-filled]",
                "colormap": "gray",
                "metadata": {"genprior": {"role": "zero-filled", "source": dict(source)}},
            },
            "image",
        )
    )
    for key, ref in references.items():
        layer = _reference_layer(ref, kspace.shape, f"{stem} [{REFERENCES[key]}]", path, key)
        if layer is not None:
            layers.append(layer)
    return layers


# -- helpers ---------------------------------------------------------------------------------


def _kspace_dataset(f: Any, path: Path) -> Any:
    """The ``kspace`` dataset, unread, or a ValueError that says what is wrong with it."""
    # ValueError throughout: these are faults of the file, not of the caller's argument types
    ds = f.get(KSPACE)
    if not isinstance(ds, h5py.Dataset):
        raise ValueError(
            f"{path} has no 'kspace' dataset; this reader opens "  # noqa: TRY004
            "fastMRI-style k-space files."
        )
    if not np.issubdtype(ds.dtype, np.complexfloating):
        raise ValueError(
            f"{path}: 'kspace' has dtype {ds.dtype}, but k-space must be complex "
            "(e.g. complex64, as fastMRI stores it)."
        )
    if ds.ndim > 4:
        raise ValueError(
            f"{path}: 'kspace' has shape {ds.shape}: coils in an unexpected axis, or "
            "extra axes. Expected one slice (H, W), a volume (slices, H, W), or "
            "multi-coil k-space (slices, coils, H, W) as fastMRI stores it."
        )
    if ds.ndim < 2:
        raise ValueError(
            f"{path}: 'kspace' has shape {ds.shape}; expected one slice (H, W), a "
            "volume (slices, H, W), or multi-coil k-space (slices, coils, H, W)."
        )
    if 0 in ds.shape:
        raise ValueError(f"{path}: 'kspace' is empty (shape {ds.shape}).")
    if ds.ndim == 4:
        coils, h, w = ds.shape[1:]
        if coils > MAX_COILS or coils >= min(h, w):
            raise ValueError(
                f"{path}: 'kspace' has shape {ds.shape}: coils in an unexpected axis. "
                "Multi-coil k-space must be (slices, coils, H, W), as fastMRI stores "
                f"it, with at most {MAX_COILS} coils and fewer coils than pixels "
                f"along a side; its second axis has {coils} entries."
            )
    return ds


def _check_kspace(ds: Any, path: Path) -> np.ndarray:
    """A single-coil ``kspace`` dataset read whole, or a ValueError when it is not finite."""
    kspace = np.asarray(ds)
    if not np.all(np.isfinite(kspace)):
        raise ValueError(f"{path}: 'kspace' contains NaN or infinite values.")
    return kspace


def _sampled_columns(f: Any, kspace: np.ndarray, path: Path) -> np.ndarray:
    """Sampled columns: the file's ``mask`` when present, else where k-space is nonzero (in any
    slice or coil of ``kspace``)."""
    width = kspace.shape[-1]
    if isinstance(f.get("mask"), h5py.Dataset):
        mask = np.asarray(f["mask"])
        if mask.shape != (width,) or not (
            mask.dtype == bool or np.issubdtype(mask.dtype, np.number)
        ):
            raise ValueError(
                f"{path}: 'mask' has shape {mask.shape} and dtype {mask.dtype}; "
                f"expected one number or bool per k-space column, shape ({width},)."
            )
        columns = mask != 0
    else:
        columns = np.any(kspace != 0, axis=tuple(range(kspace.ndim - 1)))
    if not columns.any():
        raise ValueError(
            f"{path}: no k-space column is sampled (the k-space is all zeros or the mask is empty)."
        )
    return columns


# -- multi-coil files: read slice by slice ------------------------------------------------------


def _scan_multicoil(f: Any, ds: Any, path: Path) -> dict[str, Any]:
    """What the layers of a multi-coil file need, from its ``mask`` and ONE slice (the middle):
    the sampled columns and the display ranges. The k-space is never read whole."""
    slices, coils, h, w = (int(n) for n in ds.shape)
    middle = slices // 2
    k = np.asarray(ds[middle])  # one slice, (coils, H, W)
    if not np.all(np.isfinite(k)):
        raise ValueError(f"{path}: slice {middle} of 'kspace' contains NaN or infinite values.")
    columns = _sampled_columns(f, k, path)
    k = k * columns
    shown = np.log1p(rss(np.abs(k)))
    image = _rss_image(k)
    return {
        "shape": (slices, coils, h, w),
        "columns": columns,
        "limits": (_top(shown, 99.5), _top(image, 99.9)),
    }


def _top(values: np.ndarray, percentile: float) -> list[float]:
    """Contrast limits ``[0, p]`` (given so that napari does not compute slices to find them)."""
    positive = values[values > 0]
    top = float(np.percentile(positive, percentile)) if positive.size else 1.0
    return [0.0, top if top > 0 else 1.0]


def _rss_image(k: np.ndarray) -> np.ndarray:
    """Root-sum-of-squares over coils of the zero-filled coil images of one slice ``(C, H, W)``."""
    return rss(_ifft2c(k)).astype(np.float32)


def _kspace_picture(path: str, index: int, columns: np.ndarray) -> np.ndarray:
    """``log(1 + rss_c |k_c|)`` of slice ``index``, read from the file when it is shown."""
    k = _layerdata.read_slice(path, KSPACE, index) * columns
    return np.log1p(rss(np.abs(k))).astype(np.float32)


def _zero_filled_rss(path: str, index: int, columns: np.ndarray) -> np.ndarray:
    """The zero-filled RSS image of slice ``index``, read from the file when it is shown."""
    return _rss_image(_layerdata.read_slice(path, KSPACE, index) * columns)


def _lazy(
    fn: Callable[[str, int, np.ndarray], np.ndarray],
    path: str,
    slices: int,
    shape: tuple[int, int],
    columns: np.ndarray,
) -> Any:
    """A dask array ``(slices, H, W)`` float32 whose slice ``i`` is ``fn(path, i, columns)``,
    computed only when asked for."""
    import dask
    import dask.array as da

    planes = [
        da.from_delayed(
            dask.delayed(fn, pure=True)(path, i, columns), shape=shape, dtype=np.float32
        )
        for i in range(slices)
    ]
    return da.stack(planes)


def _multicoil_layers(
    path: Path, scan: dict[str, Any], references: dict[str, np.ndarray], attrs: dict[str, Any]
) -> list[LayerData]:
    """The lazy k-space and zero-filled RSS layers of a multi-coil file, and its references."""
    slices, coils, h, w = scan["shape"]
    columns = scan["columns"]
    A = _operator((h, w), columns)
    resolved = str(path.resolve())
    source = {"path": resolved, "dataset": KSPACE, "slices": slices, "coils": coils}
    stem = path.stem
    meta = {
        "role": "measurement",
        "operator": A.spec(),
        "coils": {"count": coils, "maps": "espirit"},
        "source": source,
    }
    shown_limits, image_limits = scan["limits"]
    layers: list[LayerData] = [
        (
            _lazy(_kspace_picture, resolved, slices, (h, w), columns),
            {
                "name": f"{stem} [mri {A.acceleration:.3g}x k-space, {coils} coils]",
                "colormap": "gray",
                "contrast_limits": shown_limits,
                "metadata": {"hdf5_attrs": attrs, "genprior": meta},
            },
            "image",
        ),
        (
            _lazy(_zero_filled_rss, resolved, slices, (h, w), columns),
            {
                "name": f"{stem} [zero-filled]",
                "colormap": "gray",
                "contrast_limits": image_limits,
                "metadata": {
                    "genprior": {"role": "zero-filled", "combine": "rss", "source": dict(source)}
                },
            },
            "image",
        ),
    ]
    for key, ref in references.items():
        layer = _reference_layer(ref, (slices, h, w), f"{stem} [{REFERENCES[key]}]", path, key)
        if layer is not None:
            layers.append(layer)
    return layers


def _operator(shape: tuple[int, int], columns: np.ndarray) -> MRI:
    """The ``mri`` operator of one slice sampling ``columns``, with its acceleration and
    centre fraction read off them (for the record; an explicit mask decides what is sampled).
    Its images are complex: a scanner's k-space carries the image's phase (B0, receive coils),
    which a real-image model would halve away."""
    width = columns.size
    centre = width // 2
    run = 0
    if columns[centre]:  # the contiguous block of sampled columns around the centre
        lo, hi = centre, centre
        while lo > 0 and columns[lo - 1]:
            lo -= 1
        while hi < width - 1 and columns[hi + 1]:
            hi += 1
        run = hi - lo + 1
    return MRI(
        shape,
        acceleration=width / int(columns.sum()),
        center_fraction=run / width,
        mask=columns,
        complex_images=True,
    )


def _ifft2c(kspace: np.ndarray) -> np.ndarray:
    """Complex images of k-space slices, with the operator's centred orthonormal inverse FFT."""
    return ifft2c(torch.from_numpy(np.ascontiguousarray(kspace))).numpy()


def _reference_layer(
    ref: np.ndarray, kshape: tuple[int, ...], name: str, path: Path, key: str
) -> LayerData | None:
    """A reference reconstruction as a layer centred over the k-space image, or None (with a
    warning) when it does not match the k-space's slices."""
    if ref.ndim != len(kshape) or ref.shape[:-2] != kshape[:-2] or not np.isrealobj(ref):
        warnings.warn(
            f"{path}: {key!r} of shape {ref.shape} and dtype {ref.dtype} does not match "
            f"k-space of shape {kshape}; it is not shown.",
            stacklevel=3,
        )
        return None
    offset = [0.0] * (ref.ndim - 2) + [
        float((k - r) // 2) for k, r in zip(kshape[-2:], ref.shape[-2:])
    ]
    return (
        ref.astype(np.float32, copy=False),
        {
            "name": name,
            "colormap": "gray",
            "translate": tuple(offset),
            "metadata": {"genprior": {"role": "reference", "dataset": key}},
        },
        "image",
    )


def _plain(value: Any) -> Any:
    """An HDF5 attribute as a JSON-friendly Python value."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()] if value.dtype.kind in "OS" else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
