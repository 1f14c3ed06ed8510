"""Receive-coil sensitivity maps for multi-coil MRI: simulated, estimated, checked, combined.

- :func:`birdcage_maps`: simulated maps of a birdcage coil array (SigPy's ``birdcage_maps``),
  scaled so that ``sum_c |S_c|^2 = 1`` everywhere: the root-sum-of-squares of the coil images
  of ``x`` is then ``|x|``, so a simulation's ground truth and its fully sampled RSS agree.
- :func:`espirit_maps`: maps estimated from the fully sampled centre of measured k-space with
  ESPIRiT (Uecker et al. 2014), by SigPy's ``EspiritCalib``.
- :func:`rss` and :func:`sense_combine`: the two images a user looks at first, the
  root-sum-of-squares of the zero-filled coil images and their SENSE combination
  ``sum_c conj(S_c) F^-1 y_c``.

SigPy (and numba under it) is imported only when maps are simulated or estimated.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .base import check_int

#: Fewest fully sampled central columns ESPIRiT can calibrate from (its kernel is 6 wide).
MIN_CALIB = 8


def birdcage_maps(shape: Any, coils: int, radius: float = 1.5) -> np.ndarray:
    """Simulated sensitivities of a birdcage array of ``coils`` coils around a 2D slice.

    Parameters
    ----------
    shape : tuple of int
        The slice shape ``(H, W)``.
    coils : int
        Number of coils (at least 1).
    radius : float
        Radius of the coil ring relative to the field of view (SigPy's ``r``).

    Returns
    -------
    ndarray
        complex64, ``(coils, H, W)``, with ``sum_c |S_c|^2 = 1`` at every pixel.
    """
    import sigpy.mri

    coils = check_int("coils", coils, 1, 64)
    h, w = (int(s) for s in shape)
    maps = sigpy.mri.birdcage_maps((coils, h, w), r=radius, nzz=coils)
    maps = maps / np.sqrt((np.abs(maps) ** 2).sum(0, keepdims=True))
    return maps.astype(np.complex64)


def centre_columns(mask: np.ndarray) -> int:
    """Width of the contiguous block of sampled columns around the centre of k-space."""
    cols = np.asarray(mask, dtype=bool)
    cols = cols.any(axis=tuple(range(cols.ndim - 1))) if cols.ndim > 1 else cols
    width, centre = cols.size, cols.size // 2
    if not cols[centre]:
        return 0
    lo = hi = centre
    while lo > 0 and cols[lo - 1]:
        lo -= 1
    while hi < width - 1 and cols[hi + 1]:
        hi += 1
    return hi - lo + 1


def espirit_maps(
    kspace: Any, calib_width: int | None = None, thresh: float = 0.02, crop: float = 0.95
) -> np.ndarray:
    """Coil maps estimated from the fully sampled centre of multi-coil k-space (ESPIRiT).

    Parameters
    ----------
    kspace : ndarray
        Complex, ``(coils, H, W)``, phase encoding along the last axis; unsampled columns 0.
    calib_width : int, optional
        Side of the square calibration region; by default the fully sampled central columns,
        at most 24 (SigPy's default).
    thresh, crop : float
        ESPIRiT's threshold on the calibration matrix's singular values and on the maps'
        eigenvalues (pixels outside the object get 0).

    Returns
    -------
    ndarray
        complex64, ``(coils, H, W)``.

    Raises
    ------
    ValueError
        When k-space is not ``(coils, H, W)`` complex, or its fully sampled centre is narrower
        than :data:`MIN_CALIB` columns (ESPIRiT needs one).
    """
    import sigpy as sp
    from sigpy.mri.app import EspiritCalib

    ksp = np.asarray(kspace)
    if ksp.ndim != 3 or not np.iscomplexobj(ksp):
        raise ValueError(
            f"ESPIRiT needs complex multi-coil k-space (coils, H, W), got shape "
            f"{ksp.shape} and dtype {ksp.dtype}."
        )
    centre = centre_columns(ksp != 0)
    if centre < MIN_CALIB:
        raise ValueError(
            f"ESPIRiT needs a fully sampled centre of k-space of at least {MIN_CALIB} "
            f"columns to estimate the coil maps; this k-space has {centre}. Pass "
            "coil maps yourself, or sample more central columns."
        )
    width = (
        min(24, centre)
        if calib_width is None
        else check_int("calib_width", calib_width, MIN_CALIB, centre)
    )
    maps = EspiritCalib(
        ksp.astype(np.complex128),
        calib_width=width,
        thresh=thresh,
        crop=crop,
        device=sp.cpu_device,
        show_pbar=False,
    ).run()
    return np.asarray(maps, dtype=np.complex64)


def espirit_reference(path: Any, dataset: str, index: int) -> dict[str, Any]:
    """The ``coils`` entry of an operator spec whose maps are ESPIRiT's estimate from slice
    ``index`` of multi-coil k-space in an HDF5 file: a reference of a few bytes, where the maps
    themselves would take megabytes (16 coils of 640x368: 30 MB)."""
    return {
        "espirit": {},
        "source": {"path": str(path), "dataset": str(dataset), "slice": int(index)},
    }


def maps_from_reference(ref: dict, mask: np.ndarray) -> np.ndarray:
    """Coil maps from a spec's :func:`espirit_reference`: the slice is read again from its
    file (only that slice), its unsampled columns zeroed, and ESPIRiT run with the same
    options, which gives the same maps."""
    import h5py

    source = ref.get("source")
    if not isinstance(source, dict) or not {"path", "dataset", "slice"} <= set(source):
        raise ValueError(
            f"the coil maps' reference {ref!r:.200} needs a source with path, dataset and slice."
        )
    try:
        with h5py.File(source["path"], "r") as f:
            kspace = np.asarray(f[source["dataset"]][int(source["slice"])])
    except (OSError, KeyError, ValueError, IndexError) as exc:
        raise ValueError(
            f"the coil maps refer to slice {source['slice']} of "
            f"{source['path']!r}, which cannot be read ({exc}); pass the maps "
            "instead."
        ) from exc
    options = ref.get("espirit") or {}
    return espirit_maps(
        kspace * mask, **{k: options[k] for k in ("calib_width", "thresh", "crop") if k in options}
    )


def check_maps(maps: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Coil maps as complex64 ``(coils, H, W)`` matching the slice ``shape``, or a ValueError."""
    arr = np.asarray(maps)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number)):
        raise TypeError(f"coil maps must be a numeric array, got dtype {arr.dtype}.")
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or tuple(arr.shape[1:]) != tuple(shape):
        raise ValueError(
            f"coil maps have shape {arr.shape}; expected (coils, {shape[0]}, "
            f"{shape[1]}) for slices of shape {tuple(shape)}."
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError("coil maps contain NaN or infinite values.")
    if not np.any(arr):
        raise ValueError("coil maps are all zero: no coil sees the image.")
    return np.ascontiguousarray(arr, dtype=np.complex64)  # ESPIRiT gives coils-last strides


def rss(images: Any, axis: int = -3) -> np.ndarray:
    """Root-sum-of-squares over the coil axis of coil images (numpy or torch)."""
    if isinstance(images, torch.Tensor):
        return images.abs().pow(2).sum(axis).sqrt()
    return np.sqrt((np.abs(np.asarray(images)) ** 2).sum(axis))
