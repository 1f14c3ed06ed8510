"""Pixel-wise operators: ``denoise`` (identity) and ``inpaint`` (a mask of observed pixels)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .._io import decode_mask, encode_mask
from .base import Operator


class Denoise(Operator):
    """Identity: every pixel is measured, with noise."""

    kind = "denoise"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y


class Inpaint(Operator):
    """Keep the pixels where ``mask`` is True and set the others to zero.

    The measurement is image-shaped (missing pixels hold 0), so a measurement displays as the
    image with holes. The operator is an orthogonal projection: ``adjoint == forward``.

    Parameters
    ----------
    shape : tuple of int
        Image shape.
    mask : array of bool, optional
        True where a pixel is observed. Any boolean-like array of ``shape`` (e.g. from a napari
        Labels layer: nonzero = observed).
    fraction : float, optional
        Without ``mask``: keep exactly ``round(fraction * n)`` pixels chosen at random by ``seed``.
    seed : int, optional
        Seed of the random mask. When omitted a seed is drawn and recorded in :meth:`spec`, so the
        operator can always be rebuilt.
    """

    kind = "inpaint"

    def __init__(self, shape: Any, mask: Any = None, fraction: float | None = None,
                 seed: int | None = None):
        super().__init__(shape)
        self.fraction = self.seed = None
        if mask is not None:
            if fraction is not None:
                raise ValueError("give either mask or fraction for 'inpaint', not both.")
            if isinstance(mask, dict):
                mask = decode_mask(mask)
            mask = np.asarray(mask)
            if mask.shape != self.shape:
                raise ValueError(f"mask has shape {mask.shape}, but shape is {self.shape}.")
            if np.iscomplexobj(mask) or not np.all(np.isfinite(mask.astype(float))):
                raise ValueError("mask must be a real, finite, boolean-like array.")
            mask = mask.astype(bool)
            self._explicit = True
        else:
            fraction = 0.5 if fraction is None else float(fraction)
            if not 0.0 < fraction <= 1.0:
                raise ValueError(f"fraction (of pixels kept) must be in (0, 1], got {fraction}.")
            if seed is None:
                seed = int(np.random.default_rng().integers(2**31))
            self.fraction, self.seed = fraction, int(seed)
            mask = random_mask(self.shape, fraction, self.seed)
            self._explicit = False
        if not mask.any():
            raise ValueError("the inpainting mask observes no pixel; nothing can be reconstructed.")
        self.mask = mask
        self._buffers["mask"] = torch.from_numpy(mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self._buffer("mask", x)

    adjoint = forward

    def observed(self) -> np.ndarray:
        return self.mask

    def _params(self) -> dict[str, Any]:
        if self._explicit:
            return {"mask": encode_mask(self.mask)}
        return {"fraction": self.fraction, "seed": self.seed}


def random_mask(shape: tuple[int, ...], fraction: float, seed: int) -> np.ndarray:
    """A boolean mask keeping exactly ``round(fraction * n)`` pixels (at least one), by ``seed``."""
    n = int(np.prod(shape))
    k = max(1, int(round(fraction * n)))
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(seed).permutation(n)[:k]] = True
    return mask.reshape(shape)
