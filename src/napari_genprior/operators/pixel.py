"""Pixel-wise operators: ``denoise`` (identity) and ``inpaint`` (a mask of observed pixels)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .._io import decode_mask, encode_mask
from .base import Operator, check_float, check_int, draw_seed


class Denoise(Operator):
    """Identity: every pixel is measured, with noise (``measure(noise_std=..., photons=...)``)."""

    kind = "denoise"
    pixelwise = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y


class Inpaint(Operator):
    """Keep the pixels where the mask is True and set the others to zero.

    The measurement is image-shaped (missing pixels hold 0), so a measurement displays as the
    image with holes. The operator is an orthogonal projection: ``adjoint == forward``.

    Parameters
    ----------
    shape : tuple of int
        Image shape (2D or 3D).
    mask : array of bool, optional
        True where a pixel is observed. Any boolean-like array of ``shape`` (e.g. from a napari
        Labels layer: nonzero = observed).
    fraction : float, optional
        Keep exactly ``round(fraction * n)`` pixels chosen at random by ``seed``.
    boxes : int, optional
        Remove this many random boxes (e.g. scratches, dead tiles), each with sides up to
        ``box_size`` times the image's, placed by ``seed``.
    box_size : float
        Largest box side as a fraction of the image side (default 0.15).
    seed : int, optional
        Seed of a random mask; drawn and recorded in :meth:`spec` when omitted.

    With none of ``mask``, ``fraction`` and ``boxes``, half of the pixels are kept at random.
    """

    kind = "inpaint"
    pixelwise = True

    def __init__(
        self,
        shape: Any,
        mask: Any = None,
        fraction: float | None = None,
        boxes: int | None = None,
        box_size: float = 0.15,
        seed: int | None = None,
    ):
        super().__init__(shape)
        given = [
            name
            for name, v in (("mask", mask), ("fraction", fraction), ("boxes", boxes))
            if v is not None
        ]
        if len(given) > 1:
            raise ValueError(f"give one of mask, fraction or boxes for 'inpaint', not {given}.")
        self.fraction = self.boxes = self.seed = None
        self.box_size = None
        if mask is not None:
            if isinstance(mask, dict):
                mask = decode_mask(mask)
            mask = np.asarray(mask)
            if mask.shape != self.shape:
                raise ValueError(f"mask has shape {mask.shape}, but shape is {self.shape}.")
            if (
                mask.dtype == object
                or np.iscomplexobj(mask)
                or not np.all(np.isfinite(mask.astype(float)))
            ):
                raise ValueError("mask must be a real, finite, boolean-like array.")
            mask = mask.astype(bool)
        elif boxes is not None:
            self.boxes = check_int("boxes", boxes, 1, 10_000)
            self.box_size = check_float("box_size", box_size, low=0, high=1, low_open=True)
            self.seed = draw_seed(seed)
            mask = box_mask(self.shape, self.boxes, self.box_size, self.seed)
        else:
            self.fraction = check_float(
                "fraction (of pixels kept)",
                0.5 if fraction is None else fraction,
                low=0,
                high=1,
                low_open=True,
            )
            self.seed = draw_seed(seed)
            mask = random_mask(self.shape, self.fraction, self.seed)
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
        if self.fraction is not None:
            return {"fraction": self.fraction, "seed": self.seed}
        if self.boxes is not None:
            return {"boxes": self.boxes, "box_size": self.box_size, "seed": self.seed}
        return {"mask": encode_mask(self.mask)}


def random_mask(shape: tuple[int, ...], fraction: float, seed: int) -> np.ndarray:
    """A boolean mask keeping exactly ``round(fraction * n)`` pixels (at least one), by ``seed``."""
    n = int(np.prod(shape))
    k = max(1, int(round(fraction * n)))
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(seed).permutation(n)[:k]] = True
    return mask.reshape(shape)


def box_mask(shape: tuple[int, ...], boxes: int, box_size: float, seed: int) -> np.ndarray:
    """All True but ``boxes`` random boxes (sides 1 to ``box_size`` x the image's), by ``seed``."""
    rng = np.random.default_rng(seed)
    mask = np.ones(shape, dtype=bool)
    for _ in range(boxes):
        sl = []
        for s in shape:
            side = int(rng.integers(1, max(1, int(round(box_size * s))) + 1))
            start = int(rng.integers(0, s - side + 1))
            sl.append(slice(start, start + side))
        mask[tuple(sl)] = False
    return mask
