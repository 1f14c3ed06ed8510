"""The forward-operator base class: one measurement process, in torch, batched, on any device."""

from __future__ import annotations

import copy as _copy
import math
from typing import Any, ClassVar

import numpy as np
import torch

# Dense random matrices up to this many entries (16 MB in float32); structured operators beyond.
DENSE_MAX_ENTRIES = 2**22
DENSE_LIMIT = 2**27  # entries of an explicitly requested dense matrix (512 MB of float32)
#: The longest image side accepted (larger sizes overflowed FFT size helpers with a bare
#: OverflowError instead of a sentence).
MAX_SIDE = 2**31 - 1
#: Pixels of one image (4 GiB of float32 a copy): larger images and stacks go plane by plane or
#: tile by tile (``napari-genprior batch``), never through one operator.
MAX_PIXELS = 2**30


def check_dense(m: int, n: int, other: str) -> None:
    """A ValueError when an ``m x n`` dense matrix would not fit in a workstation's memory."""
    if m * n > DENSE_LIMIT:
        raise ValueError(
            f"a dense {m} x {n} matrix would take {m * n * 4 / 2**30:.1f} GiB; "
            f"use {other}, which needs memory in proportion to the image only."
        )


def as_image_shape(shape: Any, ndims: tuple[int, ...] = (2, 3)) -> tuple[int, ...]:
    """Validate an image shape argument: a tuple of positive ints with an allowed length."""
    try:
        out = tuple(int(s) for s in shape)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"shape must be a tuple of ints such as (128, 128), got {shape!r}."
        ) from exc
    if len(out) not in ndims or any(s < 1 for s in out):
        dims = " or ".join(f"{d}D" for d in ndims)
        raise ValueError(f"shape must be {dims} with positive sizes, got {shape!r}.")
    if any(s > MAX_SIDE for s in out):
        raise ValueError(
            f"shape {shape!r} has a side over {MAX_SIDE} pixels; no image is that large."
        )
    if math.prod(out) > MAX_PIXELS:
        raise ValueError(
            f"shape {shape!r} has {math.prod(out):,} pixels, {math.prod(out) * 4 / 2**30:.0f} "
            f"GiB a copy in float32 (at most {MAX_PIXELS:,}); reconstruct it plane by plane or "
            "tile by tile (napari-genprior batch)."
        )
    return out


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """An integer argument within [low, high], or a ValueError that names it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            value = int(value)
        else:
            raise ValueError(f"{name} must be an integer, got {value!r}.")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        rng = f">= {low}" if high is None else f"between {low} and {high}"
        raise ValueError(f"{name} must be {rng}, got {value}.")
    return value


def check_float(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> float:
    """A finite float argument within bounds, or a ValueError that names it."""
    try:
        out = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number, got {value!r}.") from exc
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {value!r}.")
    if low is not None and (out < low or (low_open and out == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {out}.")
    if high is not None and out > high:
        raise ValueError(f"{name} must be <= {high}, got {out}.")
    return out


def is_numeric(arr: np.ndarray) -> bool:
    """Whether an array holds numbers (bool included), not objects or strings."""
    return arr.dtype != object and (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool)


def draw_seed(seed: Any) -> int:
    """The given seed, or a fresh one (recorded in the spec so the operator can be rebuilt)."""
    if seed is None:
        return int(np.random.default_rng().integers(2**31))
    return check_int("seed", seed, 0)


def real_inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """<a, b> = Re(sum conj(a) b): the inner product adjoints are defined with."""
    return (a.conj() * b).real.sum() if (a.is_complex() or b.is_complex()) else (a * b).sum()


def _quantile(values: torch.Tensor, q: float) -> float:
    """``torch.quantile(values, q)`` (linear interpolation) from the top ``(1 - q) n + 1`` values
    alone: ``torch.quantile`` sorts them all (25 ms for a 512x512 image, 2.6 ms this way)."""
    n = values.numel()
    pos = q * (n - 1)
    lo = int(pos)
    top = values.topk(n - lo).values  # descending: [-1] is order statistic lo, [-2] lo + 1
    return float(torch.lerp(top[-1], top[max(-2, -len(top))], pos - lo))


class Operator:
    """A forward model ``y = A(x)`` acting on images of shape :attr:`shape`.

    Tensors carry any number of leading batch dimensions: ``forward`` maps ``(..., *shape)`` to
    ``(..., *measurement_shape)`` and ``adjoint`` maps back. Adjoints are taken with respect to
    the real inner product ``Re <a, b>``, so an operator from real images to complex
    measurements (``mri``) has a real-valued adjoint. Subclasses implement :meth:`forward`,
    :meth:`adjoint` (when linear) and :meth:`_params`, and keep their tensors in
    :attr:`_buffers` so that :meth:`to` moves them.
    """

    kind: ClassVar[str] = ""
    linear: ClassVar[bool] = True
    complex_measurements: ClassVar[bool] = False
    #: Whether images are complex (multi-coil MRI); solvers then estimate complex images.
    complex_images: bool = False
    #: Whether each measurement entry reads one pixel (``denoise``, ``inpaint``): then
    #: ``A^T diag(w) A`` is diagonal for any entry weights ``w``, and ``tv`` solves its data term
    #: exactly in each step instead of linearising it.
    pixelwise: ClassVar[bool] = False

    def __init__(self, shape: Any, ndims: tuple[int, ...] = (2, 3)):
        self.shape = as_image_shape(shape, ndims)
        self.device = torch.device("cpu")
        self._buffers: dict[str, torch.Tensor] = {}
        self._cache: dict[tuple, torch.Tensor] = {}

    # -- what subclasses provide -------------------------------------------------------------
    @property
    def measurement_shape(self) -> tuple[int, ...]:
        return self.shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """``A(x)`` for a tensor batch ``(..., *shape)`` on the operator's device.

        Differentiable (solvers take gradients through it); returns ``(...,
        *measurement_shape)``, complex for complex measurements. Calling the operator,
        ``A(x)``, calls this.
        """
        raise NotImplementedError

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``A^T y`` for a linear operator: the exact adjoint of :meth:`forward` under the real
        inner product ``Re <a, b>`` (the dot-product test holds), from ``(...,
        *measurement_shape)`` to ``(..., *shape)``.

        Raises
        ------
        ValueError
            The operator is not linear (``phase``).
        """
        raise ValueError(f"operator {self.kind!r} is not linear and has no adjoint.")

    def _params(self) -> dict[str, Any]:
        """JSON-serialisable keyword arguments that rebuild this operator (besides shape)."""
        return {}

    def observed(self) -> np.ndarray | None:
        """Boolean array over :attr:`measurement_shape`: the entries that carry data.

        None means all of them. Entries outside it (missing pixels when inpainting, unsampled
        k-space) are zero in every measurement; solvers neither fit them nor hold them out.
        """
        return None

    def normal_multiplier(self, weight: torch.Tensor) -> torch.Tensor | None:
        """``A^T diag(weight) A`` as a multiplier ``m`` of ``rfft2`` over the last two axes,
        ``irfft2(rfft2(x) * m)``, where it is one (single-coil ``mri``); else None. ``tv`` then
        solves its data term exactly in each step, with two FFTs."""
        return None

    # -- shared behaviour --------------------------------------------------------------------

    def holdout_candidates(self) -> np.ndarray | None:
        """Boolean array over :attr:`measurement_shape`: the entries a solver may hold out to
        choose its weight or its stopping step (None: all observed entries).

        Operators whose few largest entries no prior can predict (the centre of k-space) leave
        those out, so that the held-out misfit measures what the choice is for.
        """
        return self.observed()

    @property
    def domain_shape(self) -> tuple[int, ...]:
        """The shape of the image the solvers estimate: :attr:`shape`, or larger where the
        measurement depends on the scene beyond the field of view (``blur`` with
        ``boundary="unknown"``: the field of view plus the PSF's reach on each side)."""
        return self.shape

    def for_solver(self) -> tuple[Operator, tuple[slice, ...] | None]:
        """The operator the solvers use, on images of :attr:`domain_shape`, and the slices of
        that domain that are the field of view (None: the whole domain, this operator)."""
        return self, None

    def compacted(self, y: np.ndarray) -> tuple[Operator, np.ndarray]:
        """An equivalent operator for solvers that stores only the entries that carry data,
        and ``y`` in its form (the operator itself and ``y`` unless a subclass can do better;
        multi-coil ``mri`` drops the unsampled k-space columns)."""
        return self, y

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)

    @property
    def size(self) -> int:
        """Number of pixels of an image."""
        return math.prod(self.shape)

    def spec(self) -> dict[str, Any]:
        """A JSON-serialisable dict from which :func:`operators.from_spec` rebuilds this operator."""
        return {"kind": self.kind, "shape": list(self.shape), **self._params()}

    def to(self, device: str | torch.device) -> Operator:
        """Move the operator's tensors to ``device`` (in place) and return it."""
        self.device = torch.device(device)
        for name, buf in self._buffers.items():
            self._buffers[name] = buf.to(self.device)
        self._cache = {}
        return self

    def copy(self) -> Operator:
        """A shallow copy whose :meth:`to` leaves this operator where it is."""
        out = _copy.copy(self)
        out._buffers = dict(self._buffers)
        out._cache = {}
        return out

    def _buffer(self, name: str, like: torch.Tensor) -> torch.Tensor:
        """Buffer ``name`` on the device of ``like``, in its precision (cast copies are cached)."""
        buf = self._buffers[name]
        double = like.dtype in (torch.float64, torch.complex128)
        if buf.is_complex():
            dtype = torch.complex128 if double else torch.complex64
        elif buf.is_floating_point():
            dtype = torch.float64 if double else torch.float32
        else:
            dtype = buf.dtype
        if buf.device == like.device and buf.dtype == dtype:
            return buf
        key = (name, like.device, dtype)
        if key not in self._cache:
            self._cache[key] = buf.to(device=like.device, dtype=dtype)
        return self._cache[key]

    def check_image(self, x: Any, name: str = "x") -> np.ndarray:
        """Validate a numpy image (or a batch of them) for this operator; return it as float64."""
        x = np.asarray(x)
        if not is_numeric(x):
            raise TypeError(f"{name} must be a numeric array, got dtype {x.dtype}.")
        if np.iscomplexobj(x) and not self.complex_images:
            raise TypeError(f"{name} must be a real image, got a complex array.")
        if x.shape[x.ndim - len(self.shape) :] != self.shape or x.ndim < len(self.shape):
            raise ValueError(
                f"{name} has shape {x.shape}, but the {self.kind!r} operator was made "
                f"for images of shape {self.shape}."
            )
        x = x.astype(np.complex128 if np.iscomplexobj(x) else np.float64)
        if not np.all(np.isfinite(x)):
            raise ValueError(
                f"{name} contains NaN or infinite values; replace them before measuring."
            )
        return x

    def measure(
        self,
        x: Any,
        noise_std: float = 0.0,
        photons: float | None = None,
        seed: int | None = None,
        *,
        background: float = 0.0,
        camera: dict[str, float] | None = None,
    ) -> np.ndarray:
        """Simulate a measurement ``y = A(x)`` with noise, from a numpy image.

        Parameters
        ----------
        x : ndarray
            Clean image of shape :attr:`shape` (or a batch ``(..., *shape)``), any real dtype
            (complex too for operators with complex images: multi-coil ``mri``).
        noise_std : float
            Standard deviation of additive white Gaussian noise, in the units of the
            measurement. For complex measurements the noise is circular complex Gaussian with
            ``E|n|^2 = noise_std^2``.
        photons : float, optional
            Poisson (shot) noise as in fluorescence microscopy: the largest value of ``A(x)``
            is taken to be ``photons`` expected photon counts, each entry is drawn from a
            Poisson distribution and scaled back to the units of ``x``. Applied before the
            Gaussian noise when both are given (camera read noise on top of shot noise).
        seed : int, optional
            Seed of the noise; the same seed gives the same measurement.
        background : float
            Light added to ``A(x)`` before the noise, in the units of ``x`` (out-of-focus
            haze, autofluorescence); with ``photons`` it adds ``photons * background / peak``
            expected photons to every entry.
        camera : dict, optional
            Record the photon counts with a camera, as a microscope does: ``{"offset": ADU at
            zero light, "gain": ADU per photoelectron, "read_noise": electrons rms}`` (needs
            ``photons``). The result is then in ADU, rounded to integers and clipped at 0,
            ``offset + gain * (counts + read noise)``, not in the units of ``x``.

        Returns
        -------
        ndarray
            float32 (complex64 for complex measurements), shape ``(..., *measurement_shape)``.
        """
        x = self.check_image(x)
        noise_std = check_float("noise_std", noise_std, low=0)
        background = check_float("background", background, low=0)
        if camera is not None and photons is None:
            raise ValueError("camera= records photon counts: give photons= too.")
        with torch.no_grad():
            y = self.forward(torch.from_numpy(x).to(self.device)).cpu().numpy()
        rng = np.random.default_rng(seed)
        if photons is not None:
            photons = check_float("photons", photons, low=0, low_open=True)
            if np.iscomplexobj(y):
                raise ValueError(
                    f"photons= (Poisson noise) needs intensities, but the {self.kind!r} "
                    "operator measures complex values; use noise_std."
                )
            peak = float(y.max())
            if peak <= 0:
                raise ValueError(
                    "photons= needs a measurement with some positive signal; "
                    "A(x) is <= 0 everywhere."
                )
            counts = rng.poisson((np.clip(y, 0, None) + background) * (photons / peak))
            if camera is not None:
                offset, gain = camera.get("offset", 100.0), camera.get("gain", 1.0)
                read = camera.get("read_noise", 0.0)
                check_float("camera gain", gain, low=0, low_open=True)
                check_float("camera read_noise", read, low=0)
                y = offset + gain * (counts + read * rng.standard_normal(y.shape))
            else:
                y = counts * (peak / photons)
        elif background:
            y = y + background
        if noise_std > 0:
            if np.iscomplexobj(y):
                noise = rng.standard_normal(y.shape) + 1j * rng.standard_normal(y.shape)
                noise *= noise_std / math.sqrt(2)
            else:
                noise = noise_std * rng.standard_normal(y.shape)
            y = y + noise
        if camera is not None:  # a camera's ADU are integers, never below 0
            y = np.clip(np.round(y), 0, None)
        observed = self.observed()
        if observed is not None:
            y = y * observed
        return y.astype(np.complex64 if np.iscomplexobj(y) else np.float32)

    def estimate_scale(self, y: torch.Tensor) -> float:
        """A robust size of the image behind ``y`` (its 99.9th percentile magnitude).

        Solvers divide by it so that they work on images of unit scale. Linear operators take
        it from the back-projection ``A^T y``; non-linear ones override this.
        """
        with torch.no_grad():
            back = self.adjoint(y).abs().flatten()
        if back.numel() > 1_000_000:  # a strided sample suffices
            back = back[:: back.numel() // 1_000_000 + 1]
        scale = _quantile(back.to("cpu", torch.float64), 0.999) if back.numel() else 0.0
        return scale if math.isfinite(scale) and scale > 0 else 1.0

    def __repr__(self) -> str:
        params = ", ".join(
            f"{k}={v!r}" for k, v in self._params().items() if not isinstance(v, dict)
        )
        return f"{type(self).__name__}(shape={self.shape}{', ' if params else ''}{params})"
