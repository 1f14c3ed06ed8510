"""Helpers shared by the procedural generators: argument checks, blurs, bilinear resampling,
smooth Gaussian noise fields, random crops of noise tiles and the pixel grid of a slice."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def _check_shape(shape) -> tuple[int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2 or min(shape) < 8:
        raise ValueError(f"shape must be two sizes of at least 8 pixels, got {shape}.")
    return shape


def _check_n(n) -> int:
    if int(n) != n or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}.")
    return int(n)


def _blur(x: np.ndarray, sy: float, sx: float) -> np.ndarray:
    """Gaussian blur of each image of a (C, H, W) stack (edges: nearest value).

    ``scipy.ndimage`` rather than matrix products: multithreaded BLAS on small, busy machines
    was measured many times slower at random.
    """
    return ndimage.gaussian_filter(x, (0, sy, sx), truncate=3.0, mode="nearest")


def _resample(x: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of a (C, h, w) stack at rows ``ys`` and columns ``xs`` (in the
    stack's pixel coordinates, clamped to it): (C, len(ys), len(xs))."""
    _, h, w = x.shape

    def axis(pos: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = np.clip(pos, 0, n - 1)
        i0 = np.minimum(np.floor(pos).astype(int), max(n - 2, 0))
        t = (pos - i0).astype(np.float32)
        return i0, np.minimum(i0 + 1, n - 1), t

    r0, r1, ty = axis(ys, h)
    c0, c1, tx = axis(xs, w)
    rows = x[:, r0] * (1 - ty)[None, :, None] + x[:, r1] * ty[None, :, None]
    return rows[:, :, c0] * (1 - tx) + rows[:, :, c1] * tx


def _smooth_noise(
    rng: np.random.Generator, shape: tuple[int, int, int], sigma: float
) -> np.ndarray:
    """(C, H, W) smooth Gaussian noise: white noise blurred by ``sigma`` px, scaled to unit std.

    Blurred periodically in the Fourier domain; fields smoother than ~3 px are made on a
    coarser grid and interpolated bilinearly, which is much cheaper.
    """
    c, h, w = shape
    f = max(1, int(sigma // 1.5))
    hs, ws = (h, w) if f == 1 else (h // f + 3, w // f + 3)
    noise = rng.standard_normal((c, hs, ws), dtype=np.float32)
    fy = np.fft.fftfreq(hs).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(ws).astype(np.float32)[None, :]
    transfer = np.exp(np.float32(-2.0 * np.pi**2 * (sigma / f) ** 2) * (fy * fy + fx * fx))
    field = np.fft.irfft2(np.fft.rfft2(noise) * transfer, s=(hs, ws)).astype(np.float32)
    if f > 1:
        field = _resample(field, np.arange(h) / f + 1.0, np.arange(w) / f + 1.0)
    return field / np.float32(max(float(field.std()), 1e-12))


def _crops(rng: np.random.Generator, bank: np.ndarray, count: int, h: int, w: int) -> np.ndarray:
    """``count`` random (h, w) crops of a (K, T, T) bank of noise tiles, randomly flipped."""
    k = rng.integers(0, bank.shape[0], count)
    oy = rng.integers(0, bank.shape[1] - h + 1, count)
    ox = rng.integers(0, bank.shape[2] - w + 1, count)
    rows = oy[:, None, None] + np.arange(h)[None, :, None]
    cols = ox[:, None, None] + np.arange(w)[None, None, :]
    out = bank[k[:, None, None], rows, cols]
    fy, fx = rng.random((2, count)) < 0.5
    out[fy] = out[fy, ::-1]
    out[fx] = out[fx, :, ::-1]
    return out


def _grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (x right, y up); the shorter side's first and last pixel centres
    are at -1 and 1 (as ``numpy.linspace(-1, 1, n)``, the convention of scikit-image's copy)."""
    h, w = shape
    s = (min(h, w) - 1) / 2.0
    x = (np.arange(w, dtype=np.float32) - (w - 1) / 2.0) / np.float32(s)
    y = ((h - 1) / 2.0 - np.arange(h, dtype=np.float32)) / np.float32(s)
    return x[None, None, :], y[None, :, None]
