"""``mri``: Cartesian MRI, undersampled k-space (fastMRI conventions), single- or multi-coil."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .._io import decode_array, decode_mask, encode_array, encode_mask
from .base import Operator, check_float, check_int, draw_seed
from .coils import birdcage_maps, check_maps, maps_from_reference

MASKS = ("random", "equispaced", "variable-density")


def _center(width: int, center_fraction: float) -> tuple[np.ndarray, int]:
    num_low = int(round(width * center_fraction))
    mask = np.zeros(width, dtype=bool)
    pad = (width - num_low + 1) // 2
    mask[pad : pad + num_low] = True
    return mask, num_low


def column_mask(
    width: int, kind: str, acceleration: float, center_fraction: float, seed: int
) -> np.ndarray:
    """Which k-space columns (phase-encoding lines) are sampled, as in fastMRI.

    - ``random``: the central ``center_fraction`` of the columns, plus each other column with the
      probability that makes ``width / acceleration`` columns in expectation
      (fastMRI's ``RandomMaskFunc``).
    - ``equispaced``: the centre, plus every ``a``-th column from a random offset, with ``a``
      adjusted so that ``width / acceleration`` columns are sampled (``EquispacedMaskFunc``).
    - ``variable-density``: the centre, plus random columns with a probability falling off as
      ``(1 - |k| / k_max)^2`` away from the centre, scaled to ``width / acceleration`` columns
      in expectation.
    """
    rng = np.random.default_rng(seed)
    mask, num_low = _center(width, center_fraction)
    target = width / acceleration
    if acceleration == 1:
        return np.ones(width, dtype=bool)
    if num_low >= target:
        return mask
    if kind == "random":
        prob = (target - num_low) / (width - num_low)
        mask |= rng.uniform(size=width) < prob
    elif kind == "equispaced":
        adjusted = acceleration * (num_low - width) / (num_low * acceleration - width)
        offset = int(rng.integers(0, max(1, round(adjusted))))
        cols = np.round(np.arange(offset, width - 1, adjusted)).astype(int)
        mask[cols[cols < width]] = True
    elif kind == "variable-density":
        k = np.abs(np.arange(width) - width // 2) / (width / 2)
        density = np.clip(1 - k, 0, 1) ** 2
        density[mask] = 0
        lo, hi = 0.0, 1e6
        for _ in range(100):  # scale so that the expected count hits the target
            mid = (lo + hi) / 2
            if np.minimum(density * mid, 1).sum() < target - num_low:
                lo = mid
            else:
                hi = mid
        mask |= rng.uniform(size=width) < np.minimum(density * hi, 1)
    else:
        raise ValueError(f"mask must be one of {MASKS} or a boolean array, got {kind!r}.")
    return mask


def fft2c(x: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2D FFT over the last two axes (fastMRI's ``fft2c``)."""
    dims = (-2, -1)
    return torch.fft.fftshift(
        torch.fft.fft2(torch.fft.ifftshift(x, dim=dims), norm="ortho"), dim=dims
    )


def fftc(x: torch.Tensor, dim: int, inverse: bool = False) -> torch.Tensor:
    """Centred orthonormal 1D FFT (or its inverse) along ``dim``."""
    fn = torch.fft.ifft if inverse else torch.fft.fft
    return torch.fft.fftshift(fn(torch.fft.ifftshift(x, dim=dim), dim=dim, norm="ortho"), dim=dim)


def ifft2c(k: torch.Tensor) -> torch.Tensor:
    """Inverse (and adjoint) of :func:`fft2c`."""
    dims = (-2, -1)
    return torch.fft.fftshift(
        torch.fft.ifft2(torch.fft.ifftshift(k, dim=dims), norm="ortho"), dim=dims
    )


class MRI(Operator):
    """``y = M F x``: centred orthonormal 2D FFT, then a k-space sampling mask M.

    Measurements are complex and k-space shaped (unsampled entries are 0); the phase-encoding
    direction is the last axis (columns). Single-coil images are real by default (a magnitude
    image simulated with :meth:`measure`), so the adjoint is ``Re(F^H M y)``; with
    ``acceleration=1`` every column is sampled and the adjoint returns the image exactly. A
    scanner's k-space is of a complex image (B0 and receive-coil phase): with
    ``complex_images=True`` (what the HDF5 reader gives single-coil files) the unknown is that
    complex image and the adjoint ``F^H M y``; taking the real part of such data throws half of
    it away (a held-out slice with a smooth phase, 4x: ``tv`` 19.8 dB that way, 39.0 on the complex image).

    With ``coils`` (SENSE): ``y_c = M F (S_c x)`` for coil sensitivity maps ``S`` of shape
    ``(coils, H, W)``. Images are then complex (:attr:`complex_images`), measurements have
    shape ``(coils, H, W)`` and the adjoint is the SENSE combination ``sum_c conj(S_c) F^H M y_c``.

    Parameters
    ----------
    shape : tuple of int
        The 2D slice shape.
    acceleration : float
        Undersampling factor >= 1 (4 means a quarter of the columns).
    center_fraction : float
        Fraction of central (low-frequency) columns always sampled (fastMRI: 0.08 at 4x,
        0.04 at 8x).
    mask : {"random", "equispaced", "variable-density"} or array of bool
        Sampling pattern (see :func:`column_mask`), or an explicit mask of ``shape`` or of
        ``(shape[1],)`` (columns).
    seed : int, optional
        Seed of a random mask (drawn and recorded in :meth:`spec` when omitted).
    coils : int, array or dict, optional
        Multi-coil acquisition: the coil sensitivity maps, complex ``(coils, H, W)`` (e.g. from
        :func:`~napari_genprior.operators.coils.espirit_maps`), or a number of coils for
        simulated birdcage maps (:func:`~napari_genprior.operators.coils.birdcage_maps`), or
        the ``"coils"`` entry of a spec. None (default): single-coil.
    complex_images : bool
        Single-coil: whether images are complex (True: measured k-space, with its phase) or
        real (False, default: simulations from a magnitude). Multi-coil images are complex.
    """

    kind = "mri"
    complex_measurements = True

    def __init__(
        self,
        shape: Any,
        acceleration: float = 4.0,
        center_fraction: float = 0.08,
        mask: Any = "random",
        seed: Any = None,
        coils: Any = None,
        complex_images: bool = False,
    ):
        super().__init__(shape, ndims=(2,))
        self.coils, self.maps, self._coil_spec = 0, None, None
        if not isinstance(complex_images, (bool, np.bool_)):
            raise TypeError(f"complex_images must be True or False, got {complex_images!r}.")
        self.complex_images = bool(complex_images)
        self.acceleration = check_float("acceleration", acceleration, low=1)
        self.center_fraction = check_float("center_fraction", center_fraction, low=0, high=1)
        self.seed = None
        if isinstance(mask, str):
            self.mask_kind = mask
            if mask not in MASKS:
                raise ValueError(f"mask must be one of {MASKS} or a boolean array, got {mask!r}.")
            self.seed = draw_seed(seed)
            cols = column_mask(
                self.shape[1], mask, self.acceleration, self.center_fraction, self.seed
            )
            full = np.broadcast_to(cols, self.shape).copy()
        else:
            self.mask_kind = "array"
            arr = decode_mask(mask) if isinstance(mask, dict) else np.asarray(mask)
            if arr.shape == (self.shape[1],):
                arr = np.broadcast_to(arr, self.shape)
            if arr.shape != self.shape:
                raise ValueError(
                    f"mask has shape {arr.shape}; expected {self.shape} or "
                    f"({self.shape[1]},) (columns)."
                )
            full = np.asarray(arr, dtype=bool).copy()
        if not full.any():
            raise ValueError("the k-space mask samples nothing.")
        self.mask = full
        self._buffers["mask"] = torch.from_numpy(full)
        if coils is not None:
            self._set_coils(coils)

    def refer_maps(self, reference: dict) -> MRI:
        """Record that the coil maps are ESPIRiT's estimate from a file's slice
        (:func:`~napari_genprior.operators.coils.espirit_reference`): the spec then stores that
        reference instead of the maps, and :func:`from_spec` re-estimates them from the file."""
        if not self.coils or "espirit" not in reference or "source" not in reference:
            raise ValueError(
                "only the ESPIRiT maps of a multi-coil operator can be referred to "
                "a file; use espirit_reference(path, dataset, slice)."
            )
        self._coil_spec = {
            "espirit": dict(reference["espirit"] or {}),
            "source": dict(reference["source"]),
        }
        return self

    def _set_coils(self, coils: Any) -> None:
        """Coil maps from a number (birdcage), an array, or a spec's ``coils`` dict (the maps
        encoded, a birdcage recipe, or an ESPIRiT reference to a file's slice)."""
        if isinstance(coils, dict) and "espirit" in coils:  # by reference to a file's slice
            maps = check_maps(maps_from_reference(coils, self.mask), self.shape)
            spec = {"espirit": dict(coils["espirit"] or {}), "source": dict(coils["source"])}
        elif isinstance(coils, dict) and "birdcage" in coils:
            n = check_int("coils['birdcage']", coils["birdcage"], 1, 64)
            radius = check_float("coils['radius']", coils.get("radius", 1.5), low=0, low_open=True)
            maps, spec = birdcage_maps(self.shape, n, radius), {"birdcage": n, "radius": radius}
        elif isinstance(coils, dict):
            maps, spec = check_maps(decode_array(coils), self.shape), None
        elif isinstance(coils, (int, np.integer)) and not isinstance(coils, bool):
            n = check_int("coils", coils, 1, 64)
            maps, spec = birdcage_maps(self.shape, n), {"birdcage": n, "radius": 1.5}
        else:
            maps, spec = check_maps(coils, self.shape), None
        self.coils, self.maps, self._coil_spec = maps.shape[0], maps, spec
        self.complex_images = True
        self._buffers["maps"] = torch.from_numpy(maps)

    @property
    def measurement_shape(self) -> tuple[int, ...]:
        return (self.coils, *self.shape) if self.coils else self.shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_complex():
            x = x.to(torch.complex128 if x.dtype == torch.float64 else torch.complex64)
        if self.coils:
            x = x.unsqueeze(-3) * self._buffer("maps", x)
        return fft2c(x) * self._buffer("mask", x)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        images = ifft2c(y * self._buffer("mask", y))
        if self.coils:
            return (images * self._buffer("maps", y).conj()).sum(-3)
        return images if self.complex_images else images.real

    def normal_multiplier(self, weight: torch.Tensor) -> torch.Tensor | None:
        """Single-coil: ``A^T W A x = irfft2(rfft2(x) * m)`` with ``m`` the weighted mask,
        uncentred (the centring shifts cancel around a convolution) and averaged with its
        mirror ``k -> -k`` (the adjoint's real part: for real ``x`` each frequency's weight
        pairs with its mirror's), cut to ``rfft2``'s half plane. None for complex images (with
        coils their maps mix frequencies)."""
        if self.complex_images:
            return None
        d = (weight * self._buffer("mask", weight)).expand(self.shape)
        mirror = d.flip((-2, -1))  # k -> -k on the centred grid: a flip, then for an even
        for axis, n in zip((-2, -1), self.shape):  # length a roll by one (-n/2 is its own)
            if n % 2 == 0:
                mirror = mirror.roll(1, dims=axis)
        sym = torch.fft.ifftshift((d + mirror) / 2, dim=(-2, -1))
        return sym[..., : self.shape[1] // 2 + 1].contiguous()

    def coil_images(self, y: torch.Tensor) -> torch.Tensor:
        """The zero-filled image of each coil, ``F^H M y_c`` (complex, the measurement's shape)."""
        return ifft2c(y * self._buffer("mask", y))

    def observed(self) -> np.ndarray:
        return np.broadcast_to(self.mask, self.measurement_shape) if self.coils else self.mask

    def compacted(self, y: np.ndarray) -> tuple[Operator, np.ndarray]:
        """For solvers: an equivalent operator that measures only the sampled columns, and
        ``y`` restricted to them (see :class:`SampledColumns`); single-coil and non-column
        masks are returned as they are."""
        cols = self.mask.all(axis=0)
        if not self.coils or not np.array_equal(self.mask, np.broadcast_to(cols, self.shape)):
            return self, y
        return SampledColumns(self, cols), np.ascontiguousarray(np.asarray(y)[..., cols])

    def holdout_candidates(self) -> np.ndarray:
        """The sampled entries outside the centre of k-space.

        The central box (as wide as the fully sampled centre columns, at least 4 entries a side)
        holds the image's largest coefficients: a held-out misfit over them measures how well a
        method guesses the image's mean and coarsest waves, not the aliasing that undersampling
        causes, and picked TV weights 100x too large (22.9 dB, below zero-filled, on the MRI
        sample; 38.0 dB with the centre left out).
        """
        h, w = self.shape
        half = max(2, int(round(w * self.center_fraction / 2)))
        keep = self.mask.copy()
        keep[max(0, h // 2 - half) : h // 2 + half, max(0, w // 2 - half) : w // 2 + half] = False
        return np.broadcast_to(keep, self.measurement_shape) if self.coils else keep

    @property
    def sampled_fraction(self) -> float:
        return float(self.mask.mean())

    def _params(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "acceleration": self.acceleration,
            "center_fraction": self.center_fraction,
        }
        if self.mask_kind == "array":
            out["mask"] = encode_mask(self.mask)
        else:
            out.update(mask=self.mask_kind, seed=self.seed)
        if self.complex_images and not self.coils:
            out["complex_images"] = True
        if self.coils:
            # simulated maps by their recipe and a file's ESPIRiT maps by reference (a few bytes),
            # others exactly in single precision
            out["coils"] = (
                dict(self._coil_spec) if self._coil_spec else encode_array(self.maps, single=True)
            )
        return out


def low_resolution_phase(y: np.ndarray, A: MRI) -> np.ndarray:
    """The smooth phase of the image, from the fully sampled centre of k-space alone.

    The central columns (and as many central rows) are weighted by a Hann window and
    combined as the adjoint combines them (SENSE for multi-coil data); the angle of that
    low-resolution image is the phase. Real MR images have a smooth phase (B0 and receive-coil
    phase), which this window resolves; it is what partial-Fourier (homodyne) reconstruction
    assumes too.
    """
    from .coils import centre_columns

    width = max(4, centre_columns(A.mask))
    h, w = A.shape

    def hann(n: int) -> np.ndarray:
        k = np.arange(n) - n // 2
        return np.where(np.abs(k) < width / 2, np.cos(np.pi * k / width) ** 2, 0.0)

    window = np.outer(hann(h), hann(w))
    with torch.no_grad():
        low = A.adjoint(torch.from_numpy(np.asarray(y) * window).to(torch.complex128))
    return np.angle(low.numpy() if low.is_complex() else low.numpy() + 0j)


class FixedPhase(Operator):
    """A complex-image operator restricted to real images ``m`` with a known phase:
    ``A_phi(m) = A(m e^{i phi})``, adjoint ``Re(e^{-i phi} A^H y)``.

    How methods that model magnitudes (the learned priors, ``dip``) reconstruct complex MR
    images: the prior makes the magnitude, :func:`low_resolution_phase` gives the phase. Its
    :meth:`spec` is the complex operator's, so a result's parameters rebuild that.
    """

    complex_measurements = True

    def __init__(self, A: Operator, phase: np.ndarray):
        super().__init__(A.shape, ndims=(len(A.shape),))
        self.inner = A
        self.kind = A.kind
        self.phase = np.asarray(phase, dtype=np.float64)
        self._buffers["rotation"] = torch.polar(
            torch.ones(()), torch.from_numpy(self.phase).float()
        )

    @property
    def measurement_shape(self) -> tuple[int, ...]:
        return self.inner.measurement_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_complex():
            raise TypeError("a fixed-phase operator takes real images (magnitudes).")
        return self.inner.forward(x * self._buffer("rotation", x))

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return (self.inner.adjoint(y) * self._buffer("rotation", y).conj()).real

    def observed(self) -> np.ndarray | None:
        return self.inner.observed()

    def holdout_candidates(self) -> np.ndarray | None:
        return self.inner.holdout_candidates()

    def rotation(self, like: torch.Tensor) -> torch.Tensor:
        """``e^{i phi}`` on ``like``'s device."""
        return self._buffer("rotation", like)

    def rotated(self, rotation: torch.Tensor) -> FixedPhase:
        """The same operator with the phase ``angle(rotation)`` (unit-modulus, complex), on
        ``rotation``'s device: for solvers that refine the phase as they go."""
        out = self.copy()
        out.phase = None  # known only as the tensor (read it back with :meth:`rotation`)
        out._buffers["rotation"] = rotation
        return out

    def compacted(self, y: np.ndarray) -> tuple[Operator, np.ndarray]:
        inner, y = self.inner.compacted(y)
        return (self if inner is self.inner else FixedPhase(inner, self.phase)), y

    def spec(self) -> dict[str, Any]:
        return self.inner.spec()

    def to(self, device: str | torch.device) -> FixedPhase:
        super().to(device)
        self.inner = self.inner.copy().to(device)
        return self

    def copy(self) -> FixedPhase:
        out = super().copy()
        out.inner = self.inner.copy()
        return out


class SampledColumns(Operator):
    """Multi-coil SENSE restricted to the sampled k-space columns: ``y_c = P F (S_c x)``.

    The same maths as :class:`MRI` with coils, with the unsampled columns dropped from the
    measurement instead of zeroed: the FFT along the columns runs only over the sampled ones,
    and every solver step touches 1/acceleration of the k-space entries. The centring shifts
    of each 1D FFT are folded into sign flips (for an even length ``n``,
    ``fftshift(fft(ifftshift(x)))[k] = (-1)^(k + n/2) fft((-1)^j x)[k]``), the input flips
    into the coil maps, so the full-size arrays see one multiplication, one FFT and one
    gather. Solvers get it from :meth:`MRI.compacted`; its :meth:`spec` is the full operator's.
    """

    kind = "mri"
    complex_measurements = True
    complex_images = True

    def __init__(self, A: MRI, columns: np.ndarray):
        super().__init__(A.shape, ndims=(2,))
        self.inner, self.columns = A, np.flatnonzero(columns)
        h, w = self.shape
        self._fold = h % 2 == 0 and w % 2 == 0
        if self._fold:
            sign_w = (-1.0) ** np.arange(w)
            sign_h = (-1.0) ** np.arange(h)
            maps = A.maps * sign_w  # the input flip along the rows' FFT
            out_w = sign_w[self.columns] * (-1.0) ** (w // 2)
            self._buffers["sign_h"] = torch.from_numpy(sign_h.astype(np.float32))[:, None]
            # output flip along the columns' FFT, times the rows' output flip of each column
            self._buffers["out"] = torch.from_numpy(
                (np.outer(sign_h * (-1.0) ** (h // 2), out_w)).astype(np.float32)
            )
            self._buffers["maps"] = torch.from_numpy(maps.astype(np.complex64))
        else:
            self._buffers["maps"] = A._buffers["maps"]
        self._buffers["columns"] = torch.from_numpy(self.columns)

    @property
    def measurement_shape(self) -> tuple[int, ...]:
        return (self.inner.coils, self.shape[0], self.columns.size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_complex():
            x = x.to(torch.complex128 if x.dtype == torch.float64 else torch.complex64)
        cols = self._buffer("columns", x)
        coil = x.unsqueeze(-3) * self._buffer("maps", x)
        if not self._fold:
            return fftc(fftc(coil, -1).index_select(-1, cols), -2)
        rows = torch.fft.fft(coil, dim=-1, norm="ortho").index_select(-1, cols)
        out = torch.fft.fft(rows * self._buffer("sign_h", rows.real), dim=-2, norm="ortho")
        return out * self._buffer("out", rows.real)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        cols = self._buffer("columns", y)
        full = torch.zeros((*y.shape[:-1], self.shape[1]), dtype=y.dtype, device=y.device)
        if not self._fold:
            full.index_copy_(-1, cols, fftc(y, -2, inverse=True))
            return (fftc(full, -1, inverse=True) * self._buffer("maps", y).conj()).sum(-3)
        part = torch.fft.ifft(y * self._buffer("out", y.real), dim=-2, norm="ortho")
        full.index_copy_(-1, cols, part * self._buffer("sign_h", y.real))
        return (torch.fft.ifft(full, dim=-1, norm="ortho") * self._buffer("maps", y).conj()).sum(-3)

    def holdout_candidates(self) -> np.ndarray:
        return np.ascontiguousarray(self.inner.holdout_candidates()[..., self.columns])

    def spec(self) -> dict[str, Any]:
        return self.inner.spec()
