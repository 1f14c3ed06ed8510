"""Generated 3D fluorescence-nuclei volumes (no wheel ships a real 3D nuclei stack large enough).

:func:`nuclei_volume` makes a stack of a cell monolayer's nuclei as a widefield or confocal
microscope with a given voxel size would see them before blurring: ellipsoidal nuclei of
5-10 um across and 4-6 um deep, touching at realistic density, with chromatin texture (smooth
3D noise), darker nucleoli and bright chromocentres, soft edges a few hundred nanometres wide,
and a dim, uneven background. Everything is in micrometres, so the same call at another voxel
size gives the same sample more or less finely sampled.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

__all__ = ["nuclei_volume"]


def _ellipsoid(
    grid: tuple[np.ndarray, ...], centre: np.ndarray, semi: np.ndarray, angle: float, edge: float
) -> np.ndarray:
    """A soft-edged ellipsoid (1 inside, 0 outside, ``edge`` um wide) on ``grid`` (um)."""
    z, y, x = (g - c for g, c in zip(grid, centre))
    ca, sa = math.cos(angle), math.sin(angle)
    u, v = ca * y + sa * x, -sa * y + ca * x
    r = np.sqrt((z / semi[0]) ** 2 + (u / semi[1]) ** 2 + (v / semi[2]) ** 2)
    return 1.0 / (1.0 + np.exp(np.clip((r - 1.0) * semi.min() / edge, -40, 40)))


def nuclei_volume(
    shape: tuple[int, int, int] = (32, 256, 256),
    voxel: tuple[float, float, float] = (0.25, 0.1, 0.1),
    seed: int = 0,
    density: float = 0.45,
) -> np.ndarray:
    """A clean 3D nuclei volume, float32 in about [0, 1].

    Parameters
    ----------
    shape : (Z, Y, X)
        Voxels.
    voxel : (dz, dy, dx)
        Voxel size in micrometres.
    seed : int
        Random seed; the same seed gives the same volume.
    density : float
        Fraction of the field's area covered by nuclei (0.45: a confluent monolayer).
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be (Z, Y, X) with positive sizes, got {shape!r}.")
    voxel_a = np.asarray(voxel, dtype=np.float64)
    if voxel_a.shape != (3,) or np.any(voxel_a <= 0):
        raise ValueError(f"voxel must be three positive sizes (dz, dy, dx) in um, got {voxel!r}.")
    rng = np.random.default_rng(seed)
    extent = np.asarray(shape) * voxel_a  # um
    vol = np.zeros(shape, dtype=np.float64)
    # smooth 3D noise for chromatin texture (about 0.4 um grain) and an uneven background
    sig = 0.4 / voxel_a
    texture = ndimage.gaussian_filter(rng.standard_normal(shape), sig, mode="wrap")
    texture /= texture.std() + 1e-12
    # nuclei placed one by one where they overlap their neighbours little
    area, covered, placed, tries = extent[1] * extent[2], 0.0, [], 0
    while covered < density * area and tries < 2000:
        tries += 1
        semi = np.array([rng.uniform(2.0, 3.0), rng.uniform(2.5, 5.0), rng.uniform(2.5, 5.0)])
        centre = np.array(
            [
                extent[0] / 2 + rng.uniform(-0.15, 0.15) * extent[0],
                rng.uniform(0, extent[1]),
                rng.uniform(0, extent[2]),
            ]
        )
        r_xy = math.sqrt(semi[1] * semi[2])
        if any(np.hypot(*(centre[1:] - c[1:])) < 0.85 * (r_xy + r) for c, r in placed):
            continue
        placed.append((centre, r_xy))
        covered += math.pi * semi[1] * semi[2]
        lo = np.maximum(((centre - semi.max() - 0.5) / voxel_a).astype(int), 0)
        hi = np.minimum(((centre + semi.max() + 0.5) / voxel_a).astype(int) + 1, shape)
        if np.any(hi <= lo):
            continue
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        grid = tuple((np.arange(a, b) + 0.5) * v for a, b, v in zip(lo, hi, voxel_a))
        grid = np.meshgrid(*grid, indexing="ij", sparse=True)
        angle = rng.uniform(0, math.pi)
        body = _ellipsoid(grid, centre, semi, angle, edge=0.25)
        level = rng.uniform(0.45, 0.9)
        inside = level * (1.0 + 0.22 * texture[box])
        for _ in range(rng.integers(1, 4)):  # nucleoli: darker, about 1-1.5 um across
            off = rng.uniform(-0.5, 0.5, 3) * semi
            n_semi = np.full(3, rng.uniform(0.5, 0.8))
            inside *= 1.0 - 0.55 * _ellipsoid(grid, centre + off, n_semi, 0.0, edge=0.15)
        for _ in range(rng.integers(3, 9)):  # chromocentres: bright, about 0.5 um
            off = rng.uniform(-0.7, 0.7, 3) * semi
            s_semi = np.full(3, rng.uniform(0.25, 0.4))
            inside += 0.5 * level * _ellipsoid(grid, centre + off, s_semi, 0.0, edge=0.1)
        vol[box] = np.maximum(vol[box], body * np.clip(inside, 0, None))
    zz, yy, xx = np.meshgrid(*(np.linspace(0, 1, s) for s in shape), indexing="ij", sparse=True)
    background = 0.03 + 0.02 * (yy + xx) / 2 + 0.01 * zz
    out = vol + background
    return (out / max(float(out.max()), 1e-12)).astype(np.float32)
