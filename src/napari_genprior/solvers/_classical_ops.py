"""Linear building blocks of the classical solvers: sparsifying transforms, TV, power iteration.

Every function works on batches: an image batch has shape ``(B, *shape)`` with ``shape`` 2D or
3D, and the transforms act on the last ``len(shape)`` axes. Everything stays in torch, on the
device and in the dtype of its input.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..operators import _dct

#: Multiplies power-iteration estimates of largest eigenvalues (a step of 1 / estimate must stay
#: below 1 / the true value).
SAFETY = 1.05
POWER_ITERATIONS = 30


def soft_threshold(u: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """Soft-thresholding ``sgn(u) max(|u| - threshold, 0)``, the prox of ``threshold ||.||_1``
    (for complex ``u``, ``sgn(u) = u / |u|``: the modulus shrinks, the phase stays)."""
    return torch.sgn(u) * torch.clamp(u.abs() - threshold, min=0)


def complex_parts(
    transform: Callable[[torch.Tensor], torch.Tensor],
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A real linear transform extended to complex input, applied to the real and imaginary
    parts in one batched call (real input passes straight through)."""

    def apply(self: object, x: torch.Tensor) -> torch.Tensor:
        if not x.is_complex():
            return transform(self, x)
        out = transform(self, torch.cat([x.real, x.imag]))
        return torch.complex(*out.chunk(2))

    apply.__doc__, apply.__name__ = transform.__doc__, transform.__name__
    return apply


def _along(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, axis: int) -> torch.Tensor:
    """Apply a last-axis transform ``fn`` along ``axis`` of ``x``."""
    if axis == -1:
        return fn(x)
    return fn(x.transpose(axis, -1)).transpose(axis, -1)


class DCT:
    """The separable orthonormal DCT-II over the last ``ndim`` axes (and its inverse).

    Parameters
    ----------
    shape : tuple of int
        Image shape (2D or 3D). Coefficients have the same shape as the image.
    """

    orthogonal = True

    def __init__(self, shape: Sequence[int]):
        self.shape = tuple(shape)
        self.coeff_shape = self.shape
        self.shrink = None  # every coefficient is thresholded

    @complex_parts
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Analysis ``C x``: images ``(B, *shape)`` to coefficients ``(B, *shape)``."""
        for axis in range(-1, -len(self.shape) - 1, -1):
            x = _along(_dct.dct, x, axis)
        return x

    @complex_parts
    def inverse(self, c: torch.Tensor) -> torch.Tensor:
        """Synthesis ``C^T c``, the inverse (and adjoint) of :meth:`forward`."""
        for axis in range(-len(self.shape), 0):
            c = _along(_dct.idct, c, axis)
        return c


class _PeriodicFilterBank:
    """One level of the periodised orthonormal two-channel DWT along the last axis.

    Matches ``pywt.dwt(x, wavelet, mode="periodization")``:
    ``a[k] = sum_j h[j] x[(2k + j - p) mod n]`` with ``h`` the reversed decomposition low-pass
    filter of ``L`` taps and ``p = L/2 - 1`` (the high-pass likewise): a strided convolution of
    the periodically extended signal. The inverse is its transpose: a transposed convolution
    whose overhang is folded back periodically.
    """

    def __init__(
        self,
        n: int,
        dec_lo: Sequence[float],
        dec_hi: Sequence[float],
        device: torch.device | str,
        dtype: torch.dtype,
    ):
        taps = len(dec_lo)
        if n % 2 or n < taps:
            raise ValueError(
                f"a periodised level needs an even length of at least {taps}, got {n}."
            )
        self.n, self.taps, self.shift = n, taps, taps // 2 - 1
        filters = torch.tensor([dec_lo[::-1], dec_hi[::-1]], dtype=dtype)  # cast on the CPU
        self.weight = filters.unsqueeze(1).to(device)  # (2 bands, 1 channel, L)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Low- and high-pass coefficients, each of half the length of ``x``."""
        n, p = self.n, self.shift
        flat = x.reshape(-1, 1, n)
        # periodic extension: padded[u] = x[(u - p) mod n], u < n + L - 2
        padded = torch.cat([flat[..., n - p :], flat, flat[..., : self.taps - 2 - p]], dim=-1)
        bands = torch.nn.functional.conv1d(padded, self.weight, stride=2)
        bands = bands.reshape(*x.shape[:-1], 2, n // 2)
        return bands[..., 0, :], bands[..., 1, :]

    def inverse(self, a: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """The adjoint (and inverse) of :meth:`forward`."""
        n, p = self.n, self.shift
        bands = torch.stack([a, d], dim=-2).reshape(-1, 2, n // 2)
        z = torch.nn.functional.conv_transpose1d(bands, self.weight, stride=2)[:, 0]
        x = z[:, p : p + n].clone()  # fold the periodic overhang back
        if p:
            x[:, n - p :] += z[:, :p]
        tail = z.shape[-1] - p - n
        if tail:
            x[:, :tail] += z[:, p + n :]
        return x.reshape(*a.shape[:-1], n)


def wavelet_levels(shape: Sequence[int], filter_length: int, wanted: int) -> int:
    """The most levels, up to ``wanted``, for which every level's input (the image padded to a
    multiple of ``2**levels``) is at least a filter long along every axis; 0 if none."""
    for levels in range(wanted, 0, -1):
        padded = [-(-s // 2**levels) * 2**levels for s in shape]
        if all(p // 2 ** (levels - 1) >= filter_length for p in padded):
            return levels
    return 0


class Wavelet:
    """The periodised orthonormal discrete wavelet transform (PyWavelets' filters), 2D or 3D.

    Coefficients are stored in one tensor per image in the layout of
    ``pywt.coeffs_to_array`` (the coarsest approximation in the leading corner, each level's
    detail sub-bands around it) and agree with ``pywt.wavedecn(x, wavelet,
    mode="periodization", level=levels, axes=axes)``. Axes of length 1 are not transformed
    (``axes`` are the others), so that a signal of shape ``(1, n)`` gets the 1D transform of
    its ``n`` values. The image is zero-padded at the far end of each transformed axis to a
    multiple of ``2**levels``:

    - when no padding is needed (``orthogonal`` True), :meth:`forward` is orthonormal and
      :meth:`inverse` is its inverse and adjoint;
    - otherwise :meth:`inverse` (synthesis: transform back, then crop) has orthonormal rows,
      ``inverse(forward(x)) == x``, and :meth:`forward` (zero-pad, then transform) is its
      adjoint: a Parseval frame whose padded margin is free for the solver to fill.

    Parameters
    ----------
    shape : tuple of int
        Image shape (2D or 3D).
    wavelet : str
        A PyWavelets name of an orthogonal wavelet ("haar", "db1" to "db38", "sym2"...).
    levels : int
        Decomposition levels wanted; fewer are used when a level's input would be shorter than
        the filter along some axis.
    device, dtype
        Where the filters live and the precision of the transform.

    Attributes
    ----------
    shrink : Tensor of bool
        Over the coefficients: False on the coarsest approximation (which is not penalised).
    """

    def __init__(
        self,
        shape: Sequence[int],
        wavelet: str = "db4",
        levels: int = 3,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ):
        import pywt

        self.shape = tuple(int(s) for s in shape)
        if len(self.shape) not in (2, 3):
            raise ValueError(f"wavelets need a 2D or 3D image, got shape {self.shape}.")
        try:
            wav = pywt.Wavelet(wavelet)
        except (ValueError, TypeError) as exc:
            raise ValueError(
                f"unknown wavelet {wavelet!r}; use a discrete orthogonal one such "
                "as 'haar', 'db2', 'db4' or 'sym4'."
            ) from exc
        if not wav.orthogonal:
            raise ValueError(f"wavelet {wavelet!r} is not orthogonal; use e.g. 'db4' or 'sym4'.")
        self.name = wavelet
        ndim = len(self.shape)
        # the transformed axes (negative indices): all but those of length 1
        self.axes = tuple(a - ndim for a, s in enumerate(self.shape) if s > 1)
        sizes = [self.shape[a] for a in self.axes]
        self.levels = wavelet_levels(sizes, wav.dec_len, int(levels)) if sizes else 0
        if self.levels < 1:
            raise ValueError(
                f"images of shape {self.shape} are shorter than the {wavelet!r} "
                f"filter ({wav.dec_len} taps) along some axis; use a shorter "
                "wavelet (e.g. 'haar') or 'lasso-dct'."
            )
        step = 2**self.levels
        self.coeff_shape = tuple(-(-s // step) * step if s > 1 else 1 for s in self.shape)
        self.orthogonal = self.coeff_shape == self.shape
        self._banks: dict[int, _PeriodicFilterBank] = {}
        for size in {self.coeff_shape[a] for a in self.axes}:
            for level in range(self.levels):
                n = size // 2**level
                if n not in self._banks:
                    self._banks[n] = _PeriodicFilterBank(n, wav.dec_lo, wav.dec_hi, device, dtype)
        self.shrink = torch.ones(self.coeff_shape, dtype=torch.bool, device=device)
        self.shrink[self._block(self.levels)] = False

    def _block(self, level: int) -> tuple[slice, ...]:
        """The leading corner of the coefficients that level ``level`` transforms."""
        return tuple(slice(0, s // 2**level) if s > 1 else slice(None) for s in self.coeff_shape)

    @complex_parts
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Analysis: images ``(B, *shape)`` to coefficients ``(B, *coeff_shape)``."""
        if self.orthogonal:
            c = x.clone()  # transformed in place below
        else:  # zero-pad at the far end of each axis (F.pad lists the last axis first)
            pad = [(0, p - s) for s, p in zip(self.shape, self.coeff_shape)]
            c = torch.nn.functional.pad(x, [n for pair in reversed(pad) for n in pair])
        for level in range(self.levels):
            block = self._block(level)
            sub = c[(..., *block)]
            for axis in self.axes:
                bank = self._banks[sub.shape[axis]]
                lo, hi = bank.forward(sub.transpose(axis, -1))
                sub = torch.cat([lo, hi], dim=-1).transpose(axis, -1)
            c[(..., *block)] = sub
        return c

    @complex_parts
    def inverse(self, c: torch.Tensor) -> torch.Tensor:
        """Synthesis, the adjoint of :meth:`forward` (its inverse when ``orthogonal``)."""
        x = c.clone()
        for level in reversed(range(self.levels)):
            block = self._block(level)
            sub = x[(..., *block)]
            for axis in reversed(self.axes):
                moved = sub.transpose(axis, -1)
                half = moved.shape[-1] // 2
                bank = self._banks[2 * half]
                sub = bank.inverse(moved[..., :half], moved[..., half:]).transpose(axis, -1)
            x[(..., *block)] = sub
        return x[(..., *(slice(0, s) for s in self.shape))]


def gradient(x: torch.Tensor, ndim: int) -> torch.Tensor:
    """Forward differences along the last ``ndim`` axes, zero at the far edge (Neumann).

    Maps ``(B, *shape)`` to ``(B, ndim, *shape)``.
    """
    parts = []
    for axis in range(x.ndim - ndim, x.ndim):
        d = torch.zeros_like(x)
        n = x.shape[axis]
        if n > 1:
            d.narrow(axis, 0, n - 1).copy_(x.narrow(axis, 1, n - 1) - x.narrow(axis, 0, n - 1))
        parts.append(d)
    return torch.stack(parts, dim=1)


def divergence(q: torch.Tensor, ndim: int) -> torch.Tensor:
    """``-gradient^T``: maps ``(B, ndim, *shape)`` to ``(B, *shape)``."""
    out = torch.zeros_like(q[:, 0])
    for i, axis in enumerate(range(out.ndim - ndim, out.ndim)):
        qi = q[:, i]
        n = qi.shape[axis]
        if n == 1:
            continue
        # (div q)_0 = q_0, (div q)_k = q_k - q_{k-1}, (div q)_{n-1} = -q_{n-2}
        out.narrow(axis, 0, n - 1).add_(qi.narrow(axis, 0, n - 1))
        out.narrow(axis, 1, n - 1).sub_(qi.narrow(axis, 0, n - 1))
    return out


def abs_squared(z: torch.Tensor) -> torch.Tensor:
    """``|z|^2`` elementwise, real. For complex ``z`` as ``(z conj(z)).real``: ``z.abs()`` takes a
    square root per entry and was 4x slower (16-coil k-space, one thread)."""
    return (z * z.conj()).real if z.is_complex() else z * z


def batch_norm(z: torch.Tensor) -> torch.Tensor:
    """Euclidean norm per batch member (over every axis but the first), real. Complex tensors
    are read as real pairs: torch's norm of a complex tensor was 90x slower on one thread."""
    return (torch.view_as_real(z) if z.is_complex() else z).flatten(1).norm(dim=1)


def pixel_norm(g: torch.Tensor) -> torch.Tensor:
    """Euclidean norm over the component axis 1 of a gradient field, kept as a size-1 axis."""
    return abs_squared(g).sum(dim=1, keepdim=True).sqrt()


def total_variation(g: torch.Tensor) -> torch.Tensor:
    """Isotropic TV per batch member from its gradient field ``(B, ndim, *shape)``."""
    return pixel_norm(g).flatten(1).sum(1)


def largest_eigenvalue(
    apply: Callable[[torch.Tensor], torch.Tensor],
    shape: Sequence[int],
    *,
    seed: int,
    device: torch.device | str,
    iterations: int = 30,
    dtype: torch.dtype = torch.float32,
) -> float:
    """Estimate the largest eigenvalue of a symmetric positive semi-definite map by power iteration.

    Parameters
    ----------
    apply : callable
        The map, on batches ``(1, *shape)``.
    shape : tuple of int
        The shape it acts on.
    seed : int
        Seed of the random start vector.
    device
        Device of the start vector.
    iterations : int
        Power iterations.
    dtype : torch.dtype
        Of the start vector (complex for maps on complex images).

    Returns
    -------
    float
        ``||M v||`` for the last unit vector ``v``: a lower bound of the largest eigenvalue that
        converges to it (callers add a safety factor).
    """
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    v = torch.randn((1, *shape), generator=gen, dtype=dtype).to(device)
    v = v / v.norm()
    estimate = 0.0
    for _ in range(iterations):
        w = apply(v)
        norm = float(w.norm())
        if norm == 0.0 or not math.isfinite(norm):
            return estimate
        estimate, v = norm, w / norm
    return estimate


def normal_bound(
    problem: Any, extra: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> float:
    """:data:`SAFETY` times the largest eigenvalue of ``A^T W A`` (``W``: the observed
    measurement entries, times their inverse noise variance where the problem has one), plus
    ``extra(v)`` where given (``tv``: ``grad^T grad``), by
    :data:`POWER_ITERATIONS` power iterations on the problem's image shape, device and dtype.

    ``problem`` is a ``solvers.common.Problem``, not imported: this module sits beside
    ``common`` in the solvers' layers."""
    A, y = problem.A, problem.y
    weight = (
        None
        if problem.observed is None
        else problem.observed.to(device=y.device, dtype=y.real.dtype)
    )
    precision = getattr(problem, "precision", None)
    if precision is not None:  # entries weighed by their inverse noise variance
        precision = precision.to(device=y.device, dtype=y.real.dtype)
        weight = precision if weight is None else weight * precision

    def normal(v: torch.Tensor) -> torch.Tensor:
        Av = A(v)
        out = A.adjoint(Av if weight is None else Av * weight)
        return out if extra is None else out + extra(v)

    return SAFETY * largest_eigenvalue(
        normal,
        problem.shape,
        seed=problem.seed,
        device=problem.device,
        iterations=POWER_ITERATIONS,
        dtype=problem.dtype,
    )


def relative_change(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """``||new - old|| / ||new||`` per batch member."""
    return batch_norm(new - old) / batch_norm(new).clamp_min(1e-12)
