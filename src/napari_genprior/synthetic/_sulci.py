"""The folded cortex of the brain phantoms: sulci and fissures as random curves (used by
:mod:`napari_genprior.synthetic.brain`)."""

from __future__ import annotations

import numpy as np


def _sulci(
    rng: np.random.Generator,
    B: int,
    level: np.ndarray,
    rb: np.ndarray,
    ax: np.ndarray,
    ay: np.ndarray,
    wobble: tuple[np.ndarray, np.ndarray],
    egg: np.ndarray,
    step: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sulci as random curves from the brain surface inwards, in head coordinates (u, v).

    Returns the points (image index, u, v) of every sulcus, sampled every ``step``, and each
    point's CSF half-width (head units): ordinary sulci (curved, some branched), the
    interhemispheric fissure (front and back; through at high slices) and the Sylvian fissures.
    """
    amps, phases = wobble  # (4, B) each, modes 2..5

    def surface(theta: np.ndarray, bi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        wob = 1 + sum(amps[i][bi] * np.cos((i + 2) * theta + phases[i][bi]) for i in range(4))
        r = rb[bi] * wob
        un, vn = r * np.cos(theta), r * np.sin(theta)
        return un * ax[bi] * (1 - egg[bi] * vn), vn * ay[bi]

    # ordinary sulci: 36 to 56 per slice, random spacing
    NS = 64
    count = rng.integers(36, 57, B)
    gaps = rng.gamma(3.0, 1.0, (B, NS)) * (np.arange(NS)[None] < count[:, None])
    theta = np.cumsum(gaps, 1) / gaps.sum(1, keepdims=True) * 2 * np.pi + rng.uniform(0, 7, (B, 1))
    keep = np.arange(NS)[None] < count[:, None]
    # not on top of the fissures
    for special in (np.pi / 2, -np.pi / 2):
        keep &= np.abs(np.angle(np.exp(1j * (theta - special)))) > 0.07
    bi, si = np.nonzero(keep)
    th = theta[bi, si]
    depth = rng.gamma(4.0, 0.032, bi.size) * rng.uniform(0.8, 1.2, B)[bi] + 0.03
    half = rng.uniform(0.002, 0.006, bi.size) * rng.uniform(0.7, 2.2, B)[bi]  # atrophy
    curl = rng.uniform(0.15, 0.45, B)[bi]  # wiggle (rad) about the start direction
    dev = rng.normal(0, 0.25, bi.size)
    # fissures: interhemispheric (front, back), Sylvian (right, left, slightly anterior)
    side = np.deg2rad(rng.uniform(8, 25, B))
    through = level == 0
    fis = np.where(through, 2 * rb * ay, rng.uniform(0.35, 0.5, B))
    syl = np.where(level == 2, rng.uniform(0.2, 0.3, B), rng.uniform(0.08, 0.15, B))
    b4 = np.repeat(np.arange(B), 4)
    th = np.concatenate(
        [
            th,
            np.stack(
                [np.full(B, np.pi / 2), np.full(B, -np.pi / 2), side, np.pi - side], 1
            ).ravel(),
        ]
    )
    depth = np.concatenate(
        [
            depth,
            np.stack(
                [
                    fis,
                    np.where(through, 0.0, fis * rng.uniform(0.85, 1.1, B)),
                    syl,
                    syl * rng.uniform(0.85, 1.15, B),
                ],
                1,
            ).ravel(),
        ]
    )
    syl_half = np.where(level == 2, rng.uniform(0.006, 0.02, B), rng.uniform(0.003, 0.008, B))
    half = np.concatenate(
        [half, np.stack([rng.uniform(0.004, 0.01, B)] * 2 + [syl_half] * 2, 1).ravel()]
    )
    curl = np.concatenate([curl, np.stack([np.zeros(B)] * 2 + [np.full(B, 0.15)] * 2, 1).ravel()])
    dev = np.concatenate(
        [dev, np.stack([np.zeros(B)] * 2 + [rng.normal(0, 0.1, B)] * 2, 1).ravel()]
    )
    bi = np.concatenate([bi, b4])

    u0, v0 = surface(th, bi)
    phi0 = np.arctan2(-v0 / ay[bi] ** 2, -u0 / ax[bi] ** 2) + dev  # inwards, roughly normal
    steps = np.ceil(depth / step).astype(int)
    T = int(steps.max(initial=1))
    # direction: the start direction plus a smooth, bounded wiggle, so
    # sulci stay roughly radial and seldom cross (0.05 head units: ~6 px at 256x256)
    corr = np.exp(-step / 0.05)
    phi = phi0[:, None] + curl[:, None] * _ar1(rng.normal(0, 1, (bi.size, T)), corr)
    pu = u0[:, None] + step * np.cumsum(np.cos(phi), axis=1)
    pv = v0[:, None] + step * np.cumsum(np.sin(phi), axis=1)
    on = np.arange(T)[None] < steps[:, None]
    # branches: from a point half-way along some ordinary sulci, at an angle, shorter
    nb = int(keep.sum())
    has = (rng.random(nb) < 0.3) & (steps[:nb] > 6)
    j = np.nonzero(has)[0]
    if j.size:
        at = (steps[j] * rng.uniform(0.25, 0.6, j.size)).astype(int)
        left = steps[j] - at
        bsteps = np.maximum(2, (left * rng.uniform(0.2, 0.6, j.size)).astype(int))
        bphi0 = phi[j, at] + rng.choice([-1, 1], j.size) * rng.uniform(0.5, 1.1, j.size)
        TB = int(bsteps.max())
        bphi = bphi0[:, None] + curl[j, None] * _ar1(rng.normal(0, 1, (j.size, TB)), corr)
        bu = pu[j, at][:, None] + step * np.cumsum(np.cos(bphi), axis=1)
        bv = pv[j, at][:, None] + step * np.cumsum(np.sin(bphi), axis=1)
        bon = np.arange(TB)[None] < bsteps[:, None]
        pts = (
            np.concatenate(
                [
                    np.broadcast_to(bi[:, None], on.shape)[on],
                    np.broadcast_to(bi[j][:, None], bon.shape)[bon],
                ]
            ),
            np.concatenate([pu[on], bu[bon]]),
            np.concatenate([pv[on], bv[bon]]),
            np.concatenate(
                [
                    np.broadcast_to(half[:, None], on.shape)[on],
                    np.broadcast_to(half[j][:, None] * 0.8, bon.shape)[bon],
                ]
            ),
        )
    else:
        pts = (
            np.broadcast_to(bi[:, None], on.shape)[on],
            pu[on],
            pv[on],
            np.broadcast_to(half[:, None], on.shape)[on],
        )
    return pts


def _ar1(x: np.ndarray, a: float) -> np.ndarray:
    """A stationary AR(1) process of unit variance along the last axis, from white noise x:
    y_0 = x_0, y_t = a y_(t-1) + sqrt(1 - a^2) x_t (a smooth random wiggle)."""
    y = np.empty_like(x)
    acc = x[..., 0]
    y[..., 0] = acc
    b = np.sqrt(1 - a * a)
    for t in range(1, x.shape[-1]):
        acc = a * acc + b * x[..., t]
        y[..., t] = acc
    return y
