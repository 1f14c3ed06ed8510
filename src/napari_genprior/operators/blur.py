"""``blur``: convolution with a point-spread function (widefield microscopy, defocus)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from scipy.fft import next_fast_len

from .._io import decode_array, encode_array
from .base import Operator, check_float

#: ``"unknown"`` (the default): the field of view is a window onto a larger scene; ``"zero"``: the
#: scene is dark outside the frame; ``"periodic"``: the image wraps around.
BOUNDARIES = ("unknown", "zero", "periodic")


def margins(kernel_shape: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """``(before, after)`` per axis: how far outside the field of view light reaches it through
    a kernel of this shape, whose centre is the pixel ``(k - 1) // 2`` along each axis."""
    return tuple((k - 1 - (k - 1) // 2, (k - 1) // 2) for k in kernel_shape)


def mirror_index(n: int, before: int, after: int) -> np.ndarray:
    """Indices into an axis of length ``n`` that extend it by ``before`` and ``after`` samples by
    mirroring (numpy's ``mode="symmetric"``, repeated for extensions longer than ``n``)."""
    p = np.arange(-before, n + after) % (2 * n)
    return np.where(p >= n, 2 * n - 1 - p, p)


_SCIPY_DTYPES = (torch.float32, torch.float64)


class _FFTConvolution:
    """Convolution with ``self``'s kernel buffer by FFTs of size ``_fft_shape`` over the last
    ``len(_dims)`` axes, and the linear convolution cut to the window ``_crop`` with its exact
    adjoint: what the zero-boundary :class:`Blur` and :class:`_WindowedBlur` share (they
    differ only in the window and the FFT size)."""

    def _otf(self, like: torch.Tensor) -> torch.Tensor:
        kernel = self._buffer("kernel", like)
        key = ("otf", kernel.device, kernel.dtype)
        if key not in self._cache:
            if self.boundary != "periodic":  # rfftn pads the kernel with zeros up to the size
                otf = torch.fft.rfftn(kernel, s=self._fft_shape, dim=self._dims)
            else:
                grid = kernel.new_zeros(self._fft_shape)
                grid[tuple(slice(0, k) for k in kernel.shape)] = kernel
                grid = torch.roll(grid, [-c for c in self._center], dims=self._dims)
                otf = torch.fft.rfftn(grid, dim=self._dims)
            self._cache[key] = otf
        return self._cache[key]

    def _conv(self, x: torch.Tensor, adjoint: bool) -> torch.Tensor:
        if x.device.type == "cpu" and not x.requires_grad and x.dtype in _SCIPY_DTYPES:
            return self._conv_scipy(x, adjoint)
        otf = self._otf(x)
        spec = torch.fft.rfftn(x, s=self._fft_shape, dim=self._dims)
        spec = spec * (otf.conj() if adjoint else otf)
        return torch.fft.irfftn(spec, s=self._fft_shape, dim=self._dims)

    def _conv_scipy(self, x: torch.Tensor, adjoint: bool) -> torch.Tensor:
        """:meth:`_conv` on the CPU where no gradient is wanted (Richardson-Lucy, FISTA's
        steps, measuring): scipy's pocketfft, on ``torch.get_num_threads()`` workers, is
        1.4-1.7x faster than torch's CPU FFT on stacks (one thread: an FFT pair of
        64x512x512 float32 0.215 s against 0.369 s; 80x288x288 0.072 s against 0.104 s)."""
        import scipy.fft as sf

        key = ("otf-numpy", x.dtype, adjoint)
        if key not in self._cache:
            otf = self._otf(x).numpy()
            self._cache[key] = np.conj(otf) if adjoint else otf
        otf = self._cache[key]
        axes = tuple(self._dims)
        workers = max(1, torch.get_num_threads())
        spec = sf.rfftn(x.numpy(), s=self._fft_shape, axes=axes, workers=workers)
        spec *= otf
        out = sf.irfftn(spec, s=self._fft_shape, axes=axes, workers=workers, overwrite_x=True)
        return torch.from_numpy(np.ascontiguousarray(out, dtype=out.dtype))

    def _cropped(self, x: torch.Tensor) -> torch.Tensor:
        """The linear convolution of ``x`` (zero beyond it), cut to ``_crop``."""
        return self._conv(x, adjoint=False)[(..., *self._crop)]

    def _cropped_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """The adjoint of :meth:`_cropped`."""
        padded = y.new_zeros((*y.shape[: y.ndim - len(self._dims)], *self._fft_shape))
        padded[(..., *self._crop)] = y
        full = self._conv(padded, adjoint=True)
        return full[(..., *(slice(0, s) for s in self.shape))]


class _WindowedBlur(_FFTConvolution, Operator):
    """The blur of a scene larger than the field of view (the solvers' operator for
    ``boundary="unknown"``): images have the field of view's shape plus the kernel's reach on
    each side (:func:`margins`), and the measurement is the part of their linear convolution
    with the kernel that the scene outside them cannot reach (the "valid" part), i.e. the field
    of view. No assumption is made about the scene beyond the field of view: the margins are
    unknowns like any other pixel, which the data constrain only through the light they send
    into the field of view (Bertero and Boccacci, A&A 437, 2005; deconwolf's approach).
    """

    kind = "blur"

    def __init__(self, fov: tuple[int, ...], kernel: np.ndarray, public: Blur):
        ext = tuple(s + k - 1 for s, k in zip(fov, kernel.shape))
        super().__init__(ext)
        self._fov = tuple(fov)
        self._public = public
        self.boundary = "unknown"
        self.psf = kernel
        self._dims = tuple(range(-len(fov), 0))
        # a circular convolution of any length >= the extended size has no wrap-around in the
        # valid part: y[i] = (x * k)[i + k - 1]
        self._fft_shape = tuple(next_fast_len(n, real=True) for n in ext)
        self._crop = tuple(slice(k - 1, k - 1 + s) for s, k in zip(fov, kernel.shape))
        self._buffers["kernel"] = torch.from_numpy(kernel)

    @property
    def measurement_shape(self) -> tuple[int, ...]:
        return self._fov

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._cropped(x)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self._cropped_adjoint(y)

    def spec(self) -> dict[str, Any]:
        return self._public.spec()

    def extend(self, y: torch.Tensor) -> torch.Tensor:
        """A field-of-view image (the measurement) extended by mirroring to this operator's
        images: a plausible start for solvers that would otherwise start from zero."""
        return self._public._extend(y)


def gaussian_psf(
    sigma: tuple[float, ...], shape: tuple[int, ...] | None = None, truncate: float = 4.0
) -> np.ndarray:
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


class Blur(_FFTConvolution, Operator):
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
    optics : dict, optional
        A PSF computed from the microscope's optics by ``psfmodels``
        (:func:`~napari_genprior.operators.psf.optics_psf`: ``microscope``, ``na``,
        ``wavelength``, ``dxy``, ``dz``, ...); the spec stores these numbers, not the array.
    boundary : {"unknown", "zero", "periodic"}
        What lies outside the field of view. ``"unknown"`` (default; right for nearly every real
        acquisition, a window onto a larger sample whose light reaches the border): the
        solvers estimate the scene on the field of view extended by the PSF's reach on each
        side (along z too), fit only the field of view, and return the field of view; the
        operator's own ``forward`` on a field-of-view image (what :meth:`measure` and Simulate
        use) extends it by mirroring, a plausible scene that the solvers do not assume.
        ``"zero"``: the scene is dark outside the frame (beads or nuclei on a black
        background with nothing bright near the border, or a simulation that made it so); the
        measurement is the frame-sized central part of the full linear convolution (scipy's
        ``mode="same"`` with zero padding). ``"periodic"``: circular convolution, right only
        for data that really wrap around (a simulation by FFT). With ``"zero"`` or
        ``"periodic"`` on a crop of a larger field, deconvolution frames the result with
        bright and dark bands. Forward and adjoint use the same rule, so the adjoint is exact
        for each.
    """

    kind = "blur"

    def __init__(
        self,
        shape: Any,
        sigma: Any = None,
        psf: Any = None,
        boundary: str = "unknown",
        optics: dict[str, Any] | None = None,
    ):
        super().__init__(shape)
        nd = len(self.shape)
        if sum(v is not None for v in (sigma, psf, optics)) != 1:
            raise ValueError(
                "'blur' needs exactly one of sigma= (a Gaussian PSF), psf= (an "
                "array) or optics= (a microscope's PSF from its optics)."
            )
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}.")
        self.boundary = boundary
        self.sigma = None
        self.optics = None
        if optics is not None:
            from .psf import check_optics, optics_psf

            self.optics = check_optics(optics)
            psf_shape = self.shape
            if boundary == "unknown" and nd == 3:
                # planes up to a stack's depth away, above and below it, send their light
                # into it: the PSF spans twice the depth (a 16x64x64 crop of a thicker
                # widefield volume: tv 23.2 dB with a 31-plane PSF, 21.2 with 15 planes)
                psf_shape = (2 * self.shape[0] - 1, *self.shape[1:])
            psf = optics_psf(psf_shape, self.optics)
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
            if kernel.size == 0:
                raise ValueError(
                    "psf is empty: give the point spread function as a 2D or 3D array."
                )
            if kernel.dtype == object or np.iscomplexobj(kernel):
                raise ValueError("psf must be a real numeric array.")
            kernel = kernel.astype(np.float64)
            if kernel.ndim != nd:
                hint = (
                    " A 2D PSF does not describe the blur between the planes of a stack: "
                    "use a 3D PSF (optics= or a bead stack)."
                    if kernel.ndim == 2
                    else ""
                )
                raise ValueError(f"psf has {kernel.ndim} axes, but the image has {nd}.{hint}")
            # (an optics PSF under the unknown border spans twice a stack's depth: allowed)
            if self.optics is None and any(k > s for k, s in zip(kernel.shape, self.shape)):
                raise ValueError(
                    f"psf of shape {kernel.shape} is larger than the image {self.shape}; "
                    "crop it around its centre."
                )
            if not np.all(np.isfinite(kernel)):
                raise ValueError("psf contains NaN or infinite values.")
            if kernel.min() < 0:
                raise ValueError(
                    f"psf has negative values (down to {kernel.min():.3g}); a PSF "
                    "is an intensity: subtract the background and clip at 0."
                )
            if kernel.sum() <= 0:
                raise ValueError("psf must have a positive sum.")
            kernel = kernel / kernel.sum()
        self.psf = kernel
        self._dims = tuple(range(-nd, 0))
        center = tuple((k - 1) // 2 for k in kernel.shape)
        self._center = center
        if boundary == "unknown":
            self._margins = margins(kernel.shape)
            self._pad_index = [
                torch.from_numpy(mirror_index(s, a, b))
                for s, (a, b) in zip(self.shape, self._margins)
            ]
            self._window = _WindowedBlur(self.shape, kernel, self)
        elif boundary == "zero":
            # any size >= s + k - 1 gives the linear convolution: take sizes whose prime
            # factors are small (an FFT of 438 = 2*3*73 points is several times slower than 450)
            self._fft_shape = tuple(
                next_fast_len(s + k - 1, real=True) for s, k in zip(self.shape, kernel.shape)
            )
            self._crop = tuple(slice(c, c + s) for c, s in zip(center, self.shape))
        else:
            self._fft_shape = self.shape
        # only the small kernel is kept; its transfer function is made on first use, once per
        # device and precision (a 64x512x512 stack's OTF alone is 0.4 GB in complex64)
        self._buffers["kernel"] = torch.from_numpy(kernel)

    def _extend(self, x: torch.Tensor) -> torch.Tensor:
        """The field-of-view image extended by mirroring over the kernel's reach."""
        lead = x.ndim - len(self.shape)
        for axis, idx in enumerate(self._pad_index):
            x = x.index_select(lead + axis, idx.to(x.device))
        return x

    def _extend_adjoint(self, z: torch.Tensor) -> torch.Tensor:
        """The adjoint of :meth:`_extend`: each mirrored sample added back onto its source."""
        lead = z.ndim - len(self.shape)
        for axis, idx in reversed(list(enumerate(self._pad_index))):
            shape = list(z.shape)
            shape[lead + axis] = self.shape[axis]
            z = z.new_zeros(shape).index_add_(lead + axis, idx.to(z.device), z)
        return z

    @property
    def domain_shape(self) -> tuple[int, ...]:
        if self.boundary == "unknown":
            return self._window.shape
        return self.shape

    def for_solver(self) -> tuple[Operator, tuple[slice, ...] | None]:
        if self.boundary != "unknown":
            return self, None
        window = self._window.copy().to(self.device)
        return window, tuple(slice(a, a + s) for (a, _), s in zip(self._margins, self.shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.boundary == "unknown":
            return self._window.forward(self._extend(x))
        if self.boundary == "periodic":
            return self._conv(x, adjoint=False)
        return self._cropped(x)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        if self.boundary == "unknown":
            return self._extend_adjoint(self._window.adjoint(y))
        if self.boundary == "periodic":
            return self._conv(y, adjoint=True)
        return self._cropped_adjoint(y)

    def to(self, device: str | torch.device) -> Blur:
        super().to(device)
        if self.boundary == "unknown":
            self._window.to(device)
        return self

    def copy(self) -> Blur:
        out = super().copy()
        if self.boundary == "unknown":
            out._window = self._window.copy()
            out._window._public = out
        return out

    def _params(self) -> dict[str, Any]:
        if self.sigma is not None:
            return {"sigma": list(self.sigma), "boundary": self.boundary}
        if self.optics is not None:
            return {"optics": dict(self.optics), "boundary": self.boundary}
        return {"psf": encode_array(self.psf), "boundary": self.boundary}
