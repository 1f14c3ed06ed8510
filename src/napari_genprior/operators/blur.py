"""``blur``: convolution with a point-spread function (widefield microscopy, defocus)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .._io import decode_array, encode_array
from .base import Operator, check_float

BOUNDARIES = ("zero", "periodic")


def gaussian_psf(sigma: tuple[float, ...], shape: tuple[int, ...] | None = None,
                 truncate: float = 4.0) -> np.ndarray:
    """A normalised Gaussian PSF with per-axis ``sigma``, ``2*ceil(truncate*sigma)+1`` pixels a
    side (clipped to the odd size that fits ``shape``); an axis with sigma 0 is not blurred."""
    axes = []
    for i, s in enumerate(sigma):
        radius = int(math.ceil(truncate * s))
        if shape is not None:
            radius = min(radius, (shape[i] - 1) // 2)
        r = np.arange(-radius, radius + 1, dtype=np.float64)
        g = np.exp(-0.5 * (r / s) ** 2) if s > 0 else (r == 0).astype(np.float64)
        axes.append(g / g.sum())
    psf = axes[0]
    for g in axes[1:]:
        psf = np.multiply.outer(psf, g)
    return psf / psf.sum()


class Blur(Operator):
    """Convolution with a PSF, computed with FFTs; 2D or 3D.

    Parameters
    ----------
    shape : tuple of int
        Image shape.
    sigma : float or tuple of float, optional
        Gaussian PSF; one sigma per axis for anisotropic blur (e.g. ``(3, 1, 1)`` for a
        microscope's longer axial PSF), in pixels.
    psf : array, optional
        A measured or computed PSF with one axis per image axis, no larger than the image,
        finite, with a positive sum; it is normalised to sum 1. Its centre is the pixel
        ``(s - 1) // 2`` along each axis (the middle for odd sizes).
    boundary : {"zero", "periodic"}
        ``"zero"`` (default): the image is zero outside its frame, and the measurement is the
        frame-sized central part of the full linear convolution (scipy's ``mode="same"``
        with zero padding). ``"periodic"``: circular convolution (the image wraps around).
        Forward and adjoint use the same boundary rule, so the adjoint is exact for either.
    """

    kind = "blur"

    def __init__(self, shape: Any, sigma: Any = None, psf: Any = None, boundary: str = "zero"):
        super().__init__(shape)
        nd = len(self.shape)
        if (sigma is None) == (psf is None):
            raise ValueError("'blur' needs exactly one of sigma= (a Gaussian PSF) or psf= (an array).")
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}.")
        self.boundary = boundary
        self.sigma = None
        if sigma is not None:
            sig = np.atleast_1d(np.asarray(sigma, dtype=object))
            if sig.size == 1:
                sig = np.repeat(sig, nd)
            if sig.size != nd:
                raise ValueError(f"sigma needs one value or {nd} (one per axis), got {sigma!r}.")
            self.sigma = tuple(check_float("sigma", s, low=0) for s in sig)
            if not any(self.sigma):
                raise ValueError("sigma is 0 on every axis: that is no blur; use 'denoise'.")
            kernel = gaussian_psf(self.sigma, self.shape)
        else:
            kernel = decode_array(psf) if isinstance(psf, dict) else np.asarray(psf)
            if kernel.dtype == object or np.iscomplexobj(kernel):
                raise ValueError("psf must be a real numeric array.")
            kernel = kernel.astype(np.float64)
            if kernel.ndim != nd:
                raise ValueError(f"psf has {kernel.ndim} axes, but the image has {nd}.")
            if any(k > s for k, s in zip(kernel.shape, self.shape)):
                raise ValueError(f"psf of shape {kernel.shape} is larger than the image {self.shape}; "
                                 "crop it around its centre.")
            if not np.all(np.isfinite(kernel)) or kernel.sum() <= 0:
                raise ValueError("psf must be finite with a positive sum.")
            kernel = kernel / kernel.sum()
        self.psf = kernel
        self._dims = tuple(range(-nd, 0))
        center = tuple((k - 1) // 2 for k in kernel.shape)
        if boundary == "zero":
            self._fft_shape = tuple(s + k - 1 for s, k in zip(self.shape, kernel.shape))
            self._crop = tuple(slice(c, c + s) for c, s in zip(center, self.shape))
            grid = np.zeros(self._fft_shape)
            grid[tuple(slice(0, k) for k in kernel.shape)] = kernel
        else:
            self._fft_shape = self.shape
            grid = np.zeros(self.shape)
            grid[tuple(slice(0, k) for k in kernel.shape)] = kernel
            grid = np.roll(grid, [-c for c in center], axis=tuple(range(nd)))
        otf = torch.fft.rfftn(torch.from_numpy(grid), dim=self._dims)
        self._buffers["otf"] = otf

    def _conv(self, x: torch.Tensor, adjoint: bool) -> torch.Tensor:
        otf = self._buffer("otf", x)
        spec = torch.fft.rfftn(x, s=self._fft_shape, dim=self._dims)
        spec = spec * (otf.conj() if adjoint else otf)
        return torch.fft.irfftn(spec, s=self._fft_shape, dim=self._dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        full = self._conv(x, adjoint=False)
        if self.boundary == "periodic":
            return full
        return full[(..., *self._crop)]

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        if self.boundary == "periodic":
            return self._conv(y, adjoint=True)
        padded = y.new_zeros((*y.shape[: y.ndim - len(self.shape)], *self._fft_shape))
        padded[(..., *self._crop)] = y
        full = self._conv(padded, adjoint=True)
        return full[(..., *(slice(0, s) for s in self.shape))]

    def _params(self) -> dict[str, Any]:
        if self.sigma is not None:
            return {"sigma": list(self.sigma), "boundary": self.boundary}
        return {"psf": encode_array(self.psf), "boundary": self.boundary}
