"""``cs``: compressed sensing, ``m`` linear measurements of an ``n``-pixel image."""

from __future__ import annotations

import math
from typing import Any

import torch

from . import _dct
from .base import DENSE_MAX_ENTRIES, Operator, check_dense, check_int, draw_seed

MATRICES = ("auto", "dense", "structured")


def gaussian_matrix(m: int, n: int, seed: int) -> torch.Tensor:
    """An ``m x n`` float32 matrix with i.i.d. N(0, 1/m) entries, fully determined by ``seed``."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randn((m, n), generator=gen, dtype=torch.float32) / math.sqrt(m)


class CompressedSensing(Operator):
    """``y = A x`` with ``m`` rows, for images of ``n`` pixels (``m <= n``).

    Parameters
    ----------
    shape : tuple of int
        Image shape.
    m : int
        Number of measurements, 1 <= m <= n.
    seed : int, optional
        Seed of the random matrix (drawn and recorded in :meth:`spec` when omitted).
    matrix : {"auto", "dense", "structured"}
        ``"dense"``: i.i.d. Gaussian N(0, 1/m) entries, as in the theory of Bora et al. and
        Hand-Voroninski; memory m*n. ``"structured"``: ``sqrt(n/m) S C D`` with D random signs,
        C the orthonormal DCT of the flattened image and S a random choice of m rows: memory
        O(n), time O(n log n), the same ``E ||Ax||^2 = ||x||^2`` as the dense matrix.
        ``"auto"`` (default) picks dense up to 2**22 matrix entries, structured beyond.
    """

    kind = "cs"

    def __init__(self, shape: Any, m: Any = None, seed: Any = None, matrix: str = "auto"):
        super().__init__(shape)
        n = self.size
        if m is None:
            raise ValueError("'cs' needs m=, the number of measurements.")
        self.m = check_int("m (number of measurements)", m, 1, n)
        if matrix not in MATRICES:
            raise ValueError(f"matrix must be one of {MATRICES}, got {matrix!r}.")
        if matrix == "auto":
            matrix = "dense" if self.m * n <= DENSE_MAX_ENTRIES else "structured"
        self.matrix = matrix
        self.seed = draw_seed(seed)
        if matrix == "dense":
            check_dense(self.m, n, "matrix='structured'")
            self._buffers["A"] = gaussian_matrix(self.m, n, self.seed)
        else:
            gen = torch.Generator(device="cpu").manual_seed(self.seed)
            signs = torch.randint(0, 2, (n,), generator=gen, dtype=torch.int64) * 2 - 1
            rows = torch.randperm(n, generator=gen)[: self.m].sort().values
            self._buffers["signs"] = signs.to(torch.float32)
            self._buffers["rows"] = rows
            self._gain = math.sqrt(n / self.m)

    @property
    def measurement_shape(self) -> tuple[int, ...]:
        return (self.m,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[: x.ndim - len(self.shape)]
        flat = x.reshape(*batch, self.size)
        if self.matrix == "dense":
            return flat @ self._buffer("A", x).T
        coeffs = _dct.dct(flat * self._buffer("signs", x))
        return coeffs[..., self._buffer("rows", x)] * self._gain

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        batch = y.shape[:-1]
        if self.matrix == "dense":
            flat = y @ self._buffer("A", y)
        else:
            coeffs = y.new_zeros((*batch, self.size))
            coeffs[..., self._buffer("rows", y)] = y
            flat = _dct.idct(coeffs) * self._buffer("signs", y) * self._gain
        return flat.reshape(*batch, *self.shape)

    def _params(self) -> dict[str, Any]:
        return {"m": self.m, "seed": self.seed, "matrix": self.matrix}
