"""Point-spread functions of a microscope: computed from the optics, or measured from beads.

:func:`optics_psf` calls ``psfmodels`` (the Gibson-Lanni scalar and the Aguet et al. vectorial
models; confocal as the product of excitation and emission PSFs with a pinhole) with the image's
voxel size; :func:`bead_psf` averages background-subtracted, centred crops of bead images.
Both return arrays normalised to sum 1, ready for ``make_operator("blur", psf=...)``; a
``blur`` operator made with ``optics=`` stores only these few numbers in its spec.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .base import check_float, check_int

MICROSCOPES = ("widefield", "confocal")
MODELS = ("vectorial", "scalar", "gaussian")
# The lateral extent kept beyond the geometric cone of out-of-focus light (pixels).
_MARGIN = 4

__all__ = ["MICROSCOPES", "MODELS", "bead_psf", "check_optics", "optics_psf", "psf_size"]


def _largest_odd(n: int) -> int:
    return n if n % 2 else n - 1


def check_optics(optics: Any) -> dict[str, Any]:
    """The optics dict with defaults filled in and every value checked (ValueError naming it).

    Keys: ``microscope`` ("widefield" or "confocal"), ``na``, ``wavelength`` (emission, um),
    ``ex_wavelength`` (excitation, um; confocal), ``immersion_index``, ``sample_index``,
    ``dxy`` and ``dz`` (voxel size, um), ``pinhole_au`` (confocal), ``model``
    ("vectorial", "scalar", "gaussian"), ``depth`` (the point's depth below the coverslip, um:
    spherical aberration when the indices differ).
    """
    if not isinstance(optics, dict):
        raise ValueError(f"optics must be a dict of microscope parameters, got {optics!r:.100}.")
    known = {
        "microscope",
        "na",
        "wavelength",
        "ex_wavelength",
        "immersion_index",
        "sample_index",
        "dxy",
        "dz",
        "pinhole_au",
        "model",
        "depth",
    }
    unknown = sorted(set(optics) - known)
    if unknown:
        raise ValueError(f"optics does not take {unknown}; it takes {sorted(known)}.")
    o = {
        "microscope": "widefield",
        "na": 1.2,
        "wavelength": 0.52,
        "ex_wavelength": None,
        "immersion_index": 1.33,
        "sample_index": 1.33,
        "dxy": 0.1,
        "dz": 0.25,
        "pinhole_au": 1.0,
        "model": "vectorial",
        "depth": 0.0,
        **optics,
    }
    if o["microscope"] not in MICROSCOPES:
        raise ValueError(
            f"optics microscope must be one of {MICROSCOPES}, got {o['microscope']!r}."
        )
    if o["model"] not in MODELS:
        raise ValueError(f"optics model must be one of {MODELS}, got {o['model']!r}.")
    ni = check_float("immersion_index", o["immersion_index"], low=1.0, high=2.0)
    ns = check_float("sample_index", o["sample_index"], low=1.0, high=2.0)
    na = check_float("na (numerical aperture)", o["na"], low=0, low_open=True)
    if na >= ni:
        raise ValueError(
            f"the numerical aperture {na} must be below the immersion index {ni} "
            "(NA = n sin(theta) cannot exceed n)."
        )
    wl = check_float("wavelength (emission, um)", o["wavelength"], low=0.2, high=2.0)
    ex = o["ex_wavelength"]
    if o["microscope"] == "confocal":
        ex = check_float(
            "ex_wavelength (excitation, um)", wl if ex is None else ex, low=0.2, high=2.0
        )
    elif ex is not None:
        ex = check_float("ex_wavelength (excitation, um)", ex, low=0.2, high=2.0)
    dxy = check_float("dxy (lateral pixel size, um)", o["dxy"], low=0, high=100, low_open=True)
    dz = check_float("dz (z step, um)", o["dz"], low=0, high=1000, low_open=True)
    pin = check_float("pinhole_au", o["pinhole_au"], low=0, high=50, low_open=True)
    depth = check_float("depth (um)", o["depth"], low=0, high=1000)
    return {
        "microscope": o["microscope"],
        "na": na,
        "wavelength": wl,
        "ex_wavelength": ex,
        "immersion_index": ni,
        "sample_index": ns,
        "dxy": dxy,
        "dz": dz,
        "pinhole_au": pin,
        "model": o["model"],
        "depth": depth,
    }


def psf_size(shape: tuple[int, ...], optics: dict[str, Any]) -> tuple[int, ...]:
    """The PSF's size for an image of ``shape``: odd, no larger than the image, and laterally
    wide enough for the cone of out-of-focus light from the farthest plane of the stack."""
    o = check_optics(optics)
    lateral = min(shape[-2:])
    if len(shape) == 3:
        nz = _largest_odd(shape[0])
        half_depth = (nz // 2) * o["dz"]
        theta = math.asin(min(o["na"] / o["sample_index"], 0.999))
        radius = half_depth * math.tan(theta) + 2.0 * o["wavelength"] / o["na"]
    else:
        nz = None
        radius = 2.0 * o["wavelength"] / o["na"]
    nxy = min(_largest_odd(lateral), 2 * (int(math.ceil(radius / o["dxy"])) + _MARGIN) + 1)
    return (nxy, nxy) if nz is None else (nz, nxy, nxy)


def optics_psf(shape: Any, optics: dict[str, Any] | None = None, **kwargs: Any) -> np.ndarray:
    """A widefield or confocal PSF computed by ``psfmodels`` for images of ``shape``.

    Parameters
    ----------
    shape : tuple of int
        The image shape ``(Z, Y, X)`` (or ``(Y, X)`` for the in-focus plane); the PSF has the
        size :func:`psf_size` gives, centred on its middle pixel.
    optics : dict, optional
        See :func:`check_optics`; keywords override its entries.

    Returns
    -------
    ndarray
        float64, normalised to sum 1.

    Examples
    --------
    >>> psf = optics_psf((33, 128, 128), na=1.2, wavelength=0.52, dxy=0.1, dz=0.25)
    >>> psf.shape, round(float(psf.sum()), 6)
    ((33, 81, 81), 1.0)
    """
    import psfmodels

    o = check_optics({**(optics or {}), **kwargs})
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3):
        raise ValueError(f"an optics PSF is for 2D or 3D images, got shape {shape}.")
    size = psf_size(shape, o)
    nz = size[0] if len(size) == 3 else 1
    common = dict(
        dxy=o["dxy"],
        dz=o["dz"],
        pz=o["depth"],
        NA=o["na"],
        ns=o["sample_index"],
        ni=o["immersion_index"],
        ni0=o["immersion_index"],
        model=o["model"],
    )
    if o["microscope"] == "widefield":
        psf = psfmodels.make_psf(nz, size[-1], wvl=o["wavelength"], **common)
    else:
        psf = psfmodels.confocal_psf(
            nz,
            size[-1],
            ex_wvl=o["ex_wavelength"],
            em_wvl=o["wavelength"],
            pinhole_au=o["pinhole_au"],
            **common,
        )
    psf = np.asarray(psf, dtype=np.float64)
    if len(shape) == 2:
        psf = psf[psf.shape[0] // 2]
    psf = np.clip(psf, 0, None)
    return psf / psf.sum()


def bead_psf(
    image: Any, points: Any = None, size: Any = None, background: float | None = None
) -> np.ndarray:
    """A PSF measured from an image of sub-resolution beads.

    The background (the image's median unless given) is subtracted and negative values
    clipped; each bead is located at the intensity centroid near its point (the brightest
    pixel when no points are given), shifted so that the centroid falls on the crop's middle
    pixel (Fourier shift, sub-pixel), cropped to ``size``, and the crops are averaged.

    Parameters
    ----------
    image : ndarray
        The bead image, 2D or 3D.
    points : array of shape (n, ndim), optional
        Approximate bead positions in pixels (e.g. a napari Points layer's data in the image's
        pixel coordinates); beads whose crop leaves the image are skipped.
    size : int or tuple of int, optional
        The crop size (odd); default: the largest odd size within the image, capped at 33
        laterally.
    background : float, optional
        The background level to subtract.

    Returns
    -------
    ndarray
        float64, normalised to sum 1, odd size along each axis.
    """
    from scipy import ndimage

    img = np.asarray(image)
    if img.dtype == object or not np.issubdtype(img.dtype, np.number) or np.iscomplexobj(img):
        raise ValueError("the bead image must be a real numeric array.")
    if img.ndim not in (2, 3) or img.size == 0:
        raise ValueError(f"the bead image must be 2D or 3D and not empty, got shape {img.shape}.")
    img = img.astype(np.float64)
    if not np.all(np.isfinite(img)):
        raise ValueError("the bead image contains NaN or infinite values.")
    nd = img.ndim
    if size is None:
        size = tuple(min(_largest_odd(s), 33) for s in img.shape)
    else:
        size = tuple(np.broadcast_to(np.asarray(size), (nd,)).tolist())
        size = tuple(check_int("size", s, 1) for s in size)
        if any(s % 2 == 0 for s in size) or any(s > n for s, n in zip(size, img.shape)):
            raise ValueError(f"size must be odd and within the image {img.shape}, got {size}.")
    bg = float(np.median(img)) if background is None else check_float("background", background)
    img = np.clip(img - bg, 0, None)
    if not img.any():
        raise ValueError("the bead image has no signal above its background.")
    if points is None:
        centres = [np.unravel_index(int(np.argmax(img)), img.shape)]
    else:
        pts = np.asarray(points, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != nd or len(pts) == 0:
            raise ValueError(
                f"points must be an (n, {nd}) array of bead positions, got shape {pts.shape}."
            )
        centres = [tuple(int(round(c)) for c in p) for p in pts]
    half = [s // 2 for s in size]
    crops = []
    for c in centres:
        # the centroid within the crop window around the point (or the brightest pixel),
        # then the window moved onto the centroid and the centroid found again in it
        win = None
        for _ in range(2):
            lo = [ci - h for ci, h in zip(c, half)]
            hi = [ci + h + 1 for ci, h in zip(c, half)]
            if any(lo_ < 0 or hi_ > n for lo_, hi_, n in zip(lo, hi, img.shape)):
                win = None
                break
            win = img[tuple(slice(a, b) for a, b in zip(lo, hi))]
            if win.sum() <= 0:
                win = None
                break
            cen = ndimage.center_of_mass(win)
            c = tuple(a + int(round(ci)) for a, ci in zip(lo, cen))
        if win is None:
            continue
        shift = [h - ci for h, ci in zip(half, cen)]
        spec = ndimage.fourier_shift(np.fft.fftn(win), shift)
        crops.append(np.clip(np.fft.ifftn(spec).real, 0, None))
    if not crops:
        raise ValueError(
            f"no bead lies {size} pixels or more inside the image; move the points "
            "or use a smaller size."
        )
    psf = np.mean([c / c.sum() for c in crops], axis=0)
    return psf / psf.sum()
