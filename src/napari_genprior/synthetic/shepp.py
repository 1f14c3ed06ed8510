"""The modified Shepp-Logan phantom (:func:`shepp_logan`) and randomly perturbed copies of it
(a share of :func:`~napari_genprior.synthetic.brain_phantoms`' slices)."""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from ._common import _check_shape, _grid

# The modified Shepp-Logan phantom (P. Toft, "The Radon Transform", 1996): one row per ellipse,
# (intensity, semi-axis a (x), semi-axis b (y), centre x0, centre y0, angle in degrees), on
# [-1, 1]^2 with y pointing up (the top of the image). Intensities add where ellipses overlap.
_SHEPP_LOGAN_TOFT = np.array(
    [
        [1.00, 0.6900, 0.9200, 0.00, 0.0000, 0.0],
        [-0.80, 0.6624, 0.8740, 0.00, -0.0184, 0.0],
        [-0.20, 0.1100, 0.3100, 0.22, 0.0000, -18.0],
        [-0.20, 0.1600, 0.4100, -0.22, 0.0000, 18.0],
        [0.10, 0.2100, 0.2500, 0.00, 0.3500, 0.0],
        [0.10, 0.0460, 0.0460, 0.00, 0.1000, 0.0],
        [0.10, 0.0460, 0.0460, 0.00, -0.1000, 0.0],
        [0.10, 0.0460, 0.0230, -0.08, -0.6050, 0.0],
        [0.10, 0.0230, 0.0230, 0.00, -0.6060, 0.0],
        [0.10, 0.0230, 0.0460, 0.06, -0.6050, 0.0],
    ]
)


def _ellipses(table: np.ndarray, shape: tuple[int, int], edge: float = 0.0) -> np.ndarray:
    """Sum of ellipses for a batch: ``table`` (B, E, 6) rows as in ``_SHEPP_LOGAN_TOFT``.

    ``edge`` > 0 gives soft edges of about that many pixels (anti-aliasing); 0: hard edges.
    """
    x, y = _grid(shape)
    B, E, _ = table.shape
    t = table.astype(np.float32)[:, :, :, None, None]  # (B, E, 6, 1, 1)
    out = np.zeros((B, *shape), np.float32)
    px = 2.0 / min(shape)  # one pixel in these units
    for e in range(E):
        amp, a, b, x0, y0, phi = (t[:, e, k] for k in range(6))
        ph = np.deg2rad(phi)
        c, s = np.cos(ph), np.sin(ph)
        dx, dy = x - x0, y - y0
        u, v = dx * c + dy * s, dy * c - dx * s
        r = np.sqrt((u / a) ** 2 + (v / b) ** 2)
        if edge > 0:
            inside = expit((1 - r) * np.sqrt(a * b) / np.float32(edge * px))
        else:
            inside = (r <= 1).astype(np.float32)
        out += amp * inside
    return out


def shepp_logan(shape: tuple[int, int] = (256, 256)) -> np.ndarray:
    """The modified Shepp-Logan phantom (Toft's table), rasterised at ``shape``.

    Parameters
    ----------
    shape : tuple of int, optional
        (rows, columns); the phantom spans the shorter side, centred. Default (256, 256).

    Returns
    -------
    numpy.ndarray
        float32 array of ``shape`` in [0, 1] (1: the skull, 0: air and ventricles, brain 0.2-0.4),
        hard edges (a pixel is inside an ellipse if its centre is).
    """
    shape = _check_shape(shape)
    out = _ellipses(_SHEPP_LOGAN_TOFT[None], shape)[0]
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _shepp_logan_variants(rng: np.random.Generator, B: int, shape: tuple[int, int]) -> np.ndarray:
    """B randomly perturbed modified Shepp-Logan phantoms (positions, sizes, angles, values)."""
    t = np.repeat(_SHEPP_LOGAN_TOFT[None], B, axis=0).copy()
    E = t.shape[1]
    scale = rng.uniform(0.78, 0.95, B)[:, None]
    t[:, :, 1] *= rng.uniform(0.85, 1.15, (B, E))
    t[:, :, 2] *= rng.uniform(0.85, 1.15, (B, E))
    t[:, 0, 1:3] = _SHEPP_LOGAN_TOFT[0, 1:3] * rng.uniform(0.9, 1.05, (B, 2))  # in the field
    # keep the skull a ring: the inner (brain) ellipse follows the outer one
    t[:, 1, 1] = t[:, 0, 1] * rng.uniform(0.93, 0.975, B)
    t[:, 1, 2] = t[:, 0, 2] * rng.uniform(0.93, 0.975, B)
    t[:, 2:, 3] += rng.normal(0, 0.03, (B, E - 2))
    t[:, 2:, 4] += rng.normal(0, 0.03, (B, E - 2))
    t[:, 2:, 5] += rng.normal(0, 8.0, (B, E - 2))
    t[:, 2:, 0] *= rng.uniform(0.6, 1.6, (B, E - 2))
    t[:, 1, 0] = -t[:, 0, 0] * rng.uniform(0.7, 0.85, B)  # brain level 0.15-0.3
    # global rotation, scale and shift
    rot = rng.uniform(-20, 20, B)
    ang = np.deg2rad(rot)[:, None]
    x0, y0 = t[:, :, 3].copy(), t[:, :, 4].copy()
    t[:, :, 3] = (x0 * np.cos(ang) - y0 * np.sin(ang)) * scale + rng.uniform(-0.03, 0.03, (B, 1))
    t[:, :, 4] = (x0 * np.sin(ang) + y0 * np.cos(ang)) * scale + rng.uniform(-0.03, 0.03, (B, 1))
    t[:, :, 1] *= scale
    t[:, :, 2] *= scale
    t[:, :, 5] += rot[:, None]
    out = np.clip(_ellipses(t, shape, edge=0.5), 0.0, None)
    return out
