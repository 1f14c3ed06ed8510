"""``phase``: magnitude-only measurements ``|A x|`` (phase retrieval)."""

from __future__ import annotations

import math
from typing import Any

import torch

from .base import DENSE_MAX_ENTRIES, Operator, check_dense, check_int, draw_seed
from .cs import CompressedSensing, gaussian_matrix

MATRICES = ("auto", "gaussian", "cdp")


class CodedDiffraction(Operator):
    """The linear part of coded diffraction patterns: ``z_l = F(d_l * x) / sqrt(L)``.

    ``d_l`` are ``L`` random unit-modulus masks (uniform phases) and F the orthonormal 2D FFT,
    so that ``A^H A = I``. Measurements are complex, of shape ``(L, *shape)``.
    """

    kind = "cdp"
    complex_measurements = True

    def __init__(self, shape: Any, masks: int, seed: int):
        super().__init__(shape, ndims=(2,))
        self.masks, self.seed = masks, seed
        gen = torch.Generator(device="cpu").manual_seed(seed)
        theta = torch.rand((masks, *self.shape), generator=gen, dtype=torch.float64) * 2 * math.pi
        self._buffers["d"] = torch.polar(torch.ones_like(theta), theta)

    @property
    def measurement_shape(self) -> tuple[int, ...]:
        return (self.masks, *self.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self._buffer("d", x)
        z = torch.fft.fft2(x.unsqueeze(-3) * d, norm="ortho")
        return z / math.sqrt(self.masks)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        d = self._buffer("d", y)
        x = (torch.fft.ifft2(y, norm="ortho") * d.conj()).sum(dim=-3) / math.sqrt(self.masks)
        return x.real

    def _params(self) -> dict[str, Any]:
        return {"masks": self.masks, "seed": self.seed}


class PhaseRetrieval(Operator):
    """``y = |A x|``: magnitudes only, the phase (or sign) is lost.

    Parameters
    ----------
    shape : tuple of int
        Image shape.
    m : int, optional
        Number of measurements for a real Gaussian ``A`` (m x n, i.i.d. N(0, 1/m) entries, as
        in Deep Phase Retrieval). With ``matrix="cdp"`` it sets ``masks = ceil(m / n)``.
    masks : int, optional
        Coded diffraction patterns: ``|F(d_l * x)| / sqrt(L)`` for ``L = masks`` random phase
        masks (2D images only); memory O(L n), time O(L n log n).
    seed : int, optional
        Seed of the random matrix or masks (drawn and recorded in :meth:`spec` when omitted).
    matrix : {"auto", "gaussian", "cdp"}
        ``"auto"``: coded diffraction when ``masks`` is given or the Gaussian matrix would
        exceed 2**22 entries, else Gaussian.

    :attr:`linear_part` is the linear operator inside the magnitude (solvers such as TWF use
    its forward and adjoint).
    """

    kind = "phase"
    linear = False

    def __init__(
        self, shape: Any, m: Any = None, masks: Any = None, seed: Any = None, matrix: str = "auto"
    ):
        super().__init__(shape)
        n = self.size
        if matrix not in MATRICES:
            raise ValueError(f"matrix must be one of {MATRICES}, got {matrix!r}.")
        if m is None and masks is None:
            raise ValueError(
                "'phase' needs m= (Gaussian measurements) or masks= (coded diffraction)."
            )
        if m is not None:  # recovery needs m of a few n; beyond 64 n it only costs memory
            m = check_int("m (number of measurements)", m, 1, 64 * n)
        if masks is not None:
            masks = check_int("masks", masks, 1, 64)
        if matrix == "auto":
            matrix = "cdp" if masks is not None or m * n > DENSE_MAX_ENTRIES else "gaussian"
        self.matrix = matrix
        self.seed = draw_seed(seed)
        if matrix == "gaussian":
            if m is None:
                raise ValueError("matrix='gaussian' needs m=.")
            if masks is not None:
                raise ValueError(
                    "masks= applies to coded diffraction (matrix='cdp'), not 'gaussian'."
                )
            check_dense(m, n, "coded diffraction (masks=, or matrix='cdp')")
            self.m, self.masks = m, None
            self.linear_part: Operator = _GaussianRows(self.shape, m, self.seed)
        else:
            if len(self.shape) != 2:
                raise ValueError("coded diffraction (matrix='cdp') needs a 2D image shape.")
            masks = masks if masks is not None else max(1, math.ceil(m / n))
            self.masks, self.m = masks, masks * n
            self.linear_part = CodedDiffraction(self.shape, masks, self.seed)

    @property
    def measurement_shape(self) -> tuple[int, ...]:
        return self.linear_part.measurement_shape

    def to(self, device):
        super().to(device)
        self.linear_part = self.linear_part.copy().to(device)
        return self

    def copy(self):
        out = super().copy()
        out.linear_part = self.linear_part.copy()
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_part.forward(x).abs()

    def estimate_scale(self, y: torch.Tensor) -> float:
        # E||Ax||^2 = ||x||^2 for both matrices: the image's RMS is about ||y|| / sqrt(n);
        # three times the RMS stands in for its peak.
        rms = float(y.abs().pow(2).sum().sqrt()) / math.sqrt(self.size)
        return 3 * rms if math.isfinite(rms) and rms > 0 else 1.0

    def _params(self) -> dict[str, Any]:
        if self.matrix == "gaussian":
            return {"m": self.m, "seed": self.seed, "matrix": "gaussian"}
        return {"masks": self.masks, "seed": self.seed, "matrix": "cdp"}


class _GaussianRows(CompressedSensing):
    """The dense Gaussian matrix of ``cs`` without its ``m <= n`` limit (phase retrieval
    needs more measurements than pixels)."""

    kind = "gaussian-matrix"

    def __init__(self, shape: tuple[int, ...], m: int, seed: int):
        Operator.__init__(self, shape)
        self.m, self.seed, self.matrix = m, seed, "dense"
        self._buffers["A"] = gaussian_matrix(m, self.size, seed)
