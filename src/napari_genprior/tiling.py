"""Images larger than a prior's patch: a mosaic of generator patches (DESIGN, "Large images").

A generator ``G`` makes ``P x Q`` patches. :class:`Mosaic` makes an ``H x W`` image from a grid
of ``T`` latent codes: the window-weighted overlap-add

    x = sum_t w_t * G(z_t)  /  sum_t w_t      (each term placed at its tile's position)

with ``w`` a separable window that is 1 in a tile's interior and falls smoothly (sin^2) to near 0
across the ``overlap`` it shares with its neighbours, so that neighbouring patches blend instead
of meeting at a seam. The mosaic is itself a prior with latent dimension ``T * k``: the solvers
optimise all tiles (times restarts) in ONE batch against the operator applied to the WHOLE
image, so ``blur``, ``downsample`` and ``mri`` stay exact across tile borders.

The tile grid covers the image with stride ``P - overlap``; when the image is not a whole number
of strides the grid is a little larger and centred on the image (the margin is made but not
measured). Memory: the generator runs on at most ``max_batch`` (256) patches at a time; when a batch
holds more, the chunks are evaluated under activation checkpointing (recomputed in the backward
pass), so the peak memory is that of ``max_batch`` patches, not of the whole mosaic.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

__all__ = ["Mosaic", "tile_grid", "window"]


def window(size: int, overlap: int, device: Any = "cpu") -> torch.Tensor:
    """1D taper: sin^2 over the first and last ``overlap`` samples, 1 between; never 0."""
    w = torch.ones(size, dtype=torch.float32, device=device)
    if overlap > 0:
        ramp = torch.sin(math.pi / 2 * (torch.arange(overlap, device=device) + 0.5) / overlap) ** 2
        w[:overlap] = ramp
        w[size - overlap :] = torch.minimum(w[size - overlap :], ramp.flip(0))
    return w


def tile_grid(length: int, patch: int, overlap: int) -> tuple[int, int, int]:
    """``(tiles, stride, padded length)`` of a grid of ``patch``-long tiles over ``length``."""
    stride = patch - overlap
    tiles = max(1, math.ceil((length - patch) / stride) + 1) if length > patch else 1
    return tiles, stride, patch + stride * (tiles - 1)


class Mosaic(nn.Module):
    """A prior for ``image_shape`` images made of overlapping patches of ``G``.

    Parameters
    ----------
    G : Generator
        A 2D patch prior (``G.image_shape == (P, Q)``).
    image_shape : (int, int)
        The size of the images to make; at least the patch size along each axis.
    overlap : int, optional
        Pixels shared by neighbouring tiles (default: a quarter of the patch); less than the
        patch size.
    max_batch : int
        Most patches the generator makes in one call (see the module docstring).
    """

    def __init__(
        self,
        G: nn.Module,
        image_shape: tuple[int, ...],
        overlap: int | None = None,
        max_batch: int = 256,
    ):
        super().__init__()
        patch = tuple(int(s) for s in G.image_shape)
        shape = tuple(int(s) for s in image_shape)
        if len(patch) != 2 or len(shape) not in (2, 3):
            raise ValueError(
                f"a mosaic needs a 2D patch prior and a 2D image or a 3D stack; got "
                f"patches of shape {patch} for images of shape {shape}."
            )
        planes, plane = (shape[0], shape[1:]) if len(shape) == 3 else (1, shape)
        if plane[0] < patch[0] or plane[1] < patch[1]:
            raise ValueError(
                f"the image ({plane[0]}x{plane[1]}) is smaller than the prior's "
                f"patch ({patch[0]}x{patch[1]}); use a prior for smaller images."
            )
        ov = min(patch) // 4 if overlap is None else overlap
        if isinstance(ov, bool) or not isinstance(ov, int) or not 0 <= ov < min(patch):
            raise ValueError(
                f"overlap must be an integer from 0 to {min(patch) - 1}, got {overlap!r}."
            )
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ValueError(f"max_batch must be a positive integer, got {max_batch!r}.")
        self.G, self.patch, self.overlap, self.max_batch = G, patch, ov, max_batch
        (ny, sy, hp), (nx, sx, wp) = (
            tile_grid(plane[0], patch[0], ov),
            tile_grid(plane[1], patch[1], ov),
        )
        self.grid, self.stride, self.padded = (ny, nx), (sy, sx), (hp, wp)
        self.crop = ((hp - plane[0]) // 2, (wp - plane[1]) // 2)
        # a stack: every plane is a mosaic of its own tiles (its own latent codes), all
        # optimised together against the operator on the whole stack (a 3D blur couples them)
        self.planes, self.plane_shape = planes, plane
        self.plane_tiles = ny * nx
        self.tiles = planes * ny * nx
        self.tile_latent = int(G.latent_dim)
        self.latent_dim = self.tiles * self.tile_latent
        self.image_shape = shape
        self.card = {
            **G.card,
            "mosaic": {
                "patch": list(patch),
                "overlap": ov,
                "grid": [ny, nx],
                "image_shape": list(shape),
                **({"planes": planes} if len(shape) == 3 else {}),
            },
        }
        w2 = window(patch[0], ov)[:, None] * window(patch[1], ov)[None, :]
        self.register_buffer("w2", w2, persistent=False)
        self.register_buffer(
            "norm", self._fold(w2.expand(1, self.plane_tiles, *patch)), persistent=False
        )
        encoder = getattr(G, "encoder", None)
        self.encoder = _MosaicEncoder(self, encoder) if encoder is not None else None

    # -- geometry ----------------------------------------------------------------------------
    def _fold(self, patches: torch.Tensor) -> torch.Tensor:
        """Overlap-add ``(B, T, P, Q)`` patches of one plane into ``(B, Hp, Wp)`` padded images."""
        B = patches.shape[0]
        cols = patches.reshape(B, self.plane_tiles, -1).transpose(1, 2)
        return F.fold(cols, self.padded, self.patch, stride=self.stride)[:, 0]

    def tiles_of(self, images: torch.Tensor) -> torch.Tensor:
        """The ``(B, T, P, Q)`` tiles of ``(B, *image_shape)`` images (the margin padded by
        replication; a stack's tiles plane after plane)."""
        (ty, tx), (hp, wp) = self.crop, self.padded
        h, w = self.plane_shape
        B = images.shape[0]
        x = F.pad(
            images.reshape(B * self.planes, 1, h, w),
            (tx, wp - w - tx, ty, hp - h - ty),
            mode="replicate",
        )
        cols = F.unfold(x, self.patch, stride=self.stride)  # (B*Z, P*Q, T)
        return cols.transpose(1, 2).reshape(B, self.tiles, *self.patch)

    # -- the prior ---------------------------------------------------------------------------
    def _patches(self, z: torch.Tensor) -> torch.Tensor:
        flat = z.reshape(-1, self.tile_latent)
        if flat.shape[0] <= self.max_batch:
            return self.G(flat)
        chunks = []
        for part in flat.split(self.max_batch):
            if torch.is_grad_enabled() and part.requires_grad:
                chunks.append(checkpoint(self.G, part, use_reentrant=False))
            else:
                chunks.append(self.G(part))
        return torch.cat(chunks)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, T * k)`` latent codes -> ``(B, *image_shape)`` images."""
        B = z.shape[0]
        return self.from_patches(self._patches(z).reshape(B, self.tiles, *self.patch))

    def from_patches(self, patches: torch.Tensor) -> torch.Tensor:
        """``(B, T, P, Q)`` patches (one per tile) -> ``(B, *image_shape)`` images: the
        window-weighted overlap-add, cropped to the image, plane by plane for a stack."""
        B = patches.shape[0]
        planes = patches.reshape(B * self.planes, self.plane_tiles, *self.patch)
        full = self._fold(planes * self.w2) / self.norm
        (ty, tx), (h, w) = self.crop, self.plane_shape
        return full[:, ty : ty + h, tx : tx + w].reshape(B, *self.image_shape)

    def sample_latent(
        self, n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
    ) -> torch.Tensor:
        """``n`` latent vectors from the prior N(0, I), each holding every tile's code."""
        return torch.randn((n, self.latent_dim), generator=generator).to(device)


class _MosaicEncoder(nn.Module):
    """The patch encoder applied tile by tile: ``(B, *image_shape)`` -> ``(mu, logvar)`` of
    ``(B, T*k)``."""

    def __init__(self, mosaic: Mosaic, encoder: nn.Module):
        super().__init__()
        self._mosaic = [mosaic]  # not a submodule (no cycle)
        self.encoder = encoder

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self._mosaic[0]
        tiles = m.tiles_of(images).reshape(-1, *m.patch)
        out = [self.encoder(part) for part in tiles.split(m.max_batch)]
        mu = torch.cat([o[0] for o in out]).reshape(images.shape[0], -1)
        logvar = torch.cat([o[1] for o in out]).reshape(images.shape[0], -1)
        return mu, logvar
