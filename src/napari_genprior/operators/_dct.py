"""Orthonormal DCT-II and its inverse along the last axis, with FFTs (O(n log n), any device).

Makhoul's algorithm: reorder ``v = [x0, x2, x4, ..., x5, x3, x1]``, then
``X_k = s_k Re(exp(-i pi k / 2N) FFT(v)_k)`` with ``s_0 = sqrt(1/N)``, ``s_k = sqrt(2/N)``.
Matches ``scipy.fft.dct(x, norm="ortho")``; :func:`idct` is its exact inverse and transpose.
"""

from __future__ import annotations

import math

import torch


def _scale(n: int, like: torch.Tensor) -> torch.Tensor:
    s = torch.full((n,), math.sqrt(2.0 / n), dtype=like.real.dtype, device=like.device)
    s[0] = math.sqrt(1.0 / n)
    return s


def _twiddle(n: int, like: torch.Tensor, sign: float) -> torch.Tensor:
    k = torch.arange(n, dtype=like.real.dtype, device=like.device)
    return torch.polar(torch.ones_like(k), sign * math.pi * k / (2 * n))


def dct(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal DCT-II of real ``x`` along its last axis."""
    n = x.shape[-1]
    v = torch.cat([x[..., ::2], x[..., 1::2].flip(-1)], dim=-1)
    spec = torch.fft.fft(v, dim=-1)
    return (spec * _twiddle(n, x, -1.0)).real * _scale(n, x)


def idct(c: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`dct` (the orthonormal DCT-III) along the last axis."""
    n = c.shape[-1]
    a = c / _scale(n, c)
    a_rev = torch.cat([torch.zeros_like(a[..., :1]), a[..., 1:].flip(-1)], dim=-1)
    v = torch.fft.ifft(torch.complex(a, -a_rev) * _twiddle(n, c, 1.0), dim=-1).real
    half = (n + 1) // 2
    x = torch.empty_like(v)
    x[..., ::2] = v[..., :half]
    x[..., 1::2] = v[..., half:].flip(-1)
    return x
