"""``downsample``: a low-resolution camera, for super-resolution."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .base import Operator, check_int
from .blur import Blur


class Downsample(Operator):
    """Average ``factor x factor`` blocks of pixels (area/box downsampling), 2D or 3D.

    Parameters
    ----------
    shape : tuple of int
        The high-resolution image shape; each side must be a multiple of its factor.
    factor : int or tuple of int
        Downsampling factor, one for all axes or one per axis (e.g. ``(1, 2, 2)`` for a stack).
    antialias : bool
        Blur with a Gaussian of sigma ``(factor - 1) / 2`` (scikit-image's ``rescale`` rule)
        before averaging; the blur uses the zero boundary of :class:`Blur`.
    """

    kind = "downsample"

    def __init__(self, shape: Any, factor: Any = 2, antialias: bool = False):
        super().__init__(shape)
        nd = len(self.shape)
        fac = np.atleast_1d(np.asarray(factor, dtype=object))
        if fac.size == 1:
            fac = np.repeat(fac, nd)
        if fac.size != nd:
            raise ValueError(f"factor needs one value or {nd} (one per axis), got {factor!r}.")
        self.factor = tuple(check_int("factor", f, 1) for f in fac)
        if all(f == 1 for f in self.factor):
            raise ValueError("factor is 1 on every axis: that is no downsampling; use 'denoise'.")
        bad = [(s, f) for s, f in zip(self.shape, self.factor) if s % f]
        if bad:
            raise ValueError(
                f"image shape {self.shape} is not a multiple of factor {self.factor}; "
                "crop or pad the image so that every side divides by its factor."
            )
        self.antialias = bool(antialias)
        self._blur = None
        if self.antialias:
            sigma = tuple((f - 1) / 2 for f in self.factor)
            self._blur = Blur(self.shape, sigma=sigma)

    @property
    def measurement_shape(self) -> tuple[int, ...]:
        return tuple(s // f for s, f in zip(self.shape, self.factor))

    def to(self, device):
        super().to(device)
        if self._blur is not None:
            self._blur = self._blur.copy().to(device)
        return self

    def copy(self):
        out = super().copy()
        out._blur = None if self._blur is None else self._blur.copy()
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._blur is not None:
            x = self._blur.forward(x)
        nd = len(self.shape)
        batch = x.shape[: x.ndim - nd]
        split = []
        for m, f in zip(self.measurement_shape, self.factor):
            split += [m, f]
        x = x.reshape(*batch, *split)
        block_dims = tuple(len(batch) + 2 * i + 1 for i in range(nd))
        return x.mean(dim=block_dims)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        nd = len(self.shape)
        x = y / float(np.prod(self.factor))
        for i, f in enumerate(self.factor):
            x = x.repeat_interleave(f, dim=y.ndim - nd + i)
        if self._blur is not None:
            x = self._blur.adjoint(x)
        return x

    def _params(self) -> dict[str, Any]:
        return {"factor": list(self.factor), "antialias": self.antialias}
