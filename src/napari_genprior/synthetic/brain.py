"""Procedural brain MRI axial slices (:func:`brain_phantoms`) and background-free patches of
them (:func:`brain_patches`)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.special import expit

from ._common import _blur, _check_n, _check_shape, _crops, _grid, _smooth_noise
from ._sulci import _sulci
from .shepp import _shepp_logan_variants

# Tissue intensities per contrast: scalp (fat), skull (cortical bone), diploe (marrow), CSF,
# grey matter, white matter, deep grey matter, lesion. Jittered per image.
_TISSUES = ("scalp", "skull", "diploe", "csf", "gm", "wm", "deep", "lesion")
_CONTRASTS = {
    #         scalp skull diploe csf   gm    wm    deep  lesion
    "T1": (0.90, 0.08, 0.55, 0.10, 0.46, 0.70, 0.54, 0.32),
    "T2": (0.55, 0.04, 0.35, 1.00, 0.58, 0.40, 0.47, 0.88),
    "PD": (0.70, 0.06, 0.45, 0.80, 0.72, 0.56, 0.66, 0.85),
    "FLAIR": (0.50, 0.04, 0.35, 0.08, 0.58, 0.42, 0.50, 0.95),
}
_CONTRAST_P = (0.35, 0.3, 0.15, 0.2)


def _soft(x: np.ndarray, width: np.ndarray | float) -> np.ndarray:
    """A soft step: 1 where x > 0, 0 where x < 0, over about ``width``."""
    return expit(x / width)


def _brain_chunk(
    rng: np.random.Generator, B: int, shape: tuple[int, int], tex_bank: np.ndarray
) -> np.ndarray:
    """B brain-like axial slices in raw units (air 0, tissues ~0.05-1), before normalisation."""
    f32 = np.float32
    h, w = shape
    col = (slice(None), None, None)
    X, Y = _grid(shape)  # (1, 1, w), (1, h, 1); y up
    S = (min(h, w) - 1) / 2.0  # pixels per unit
    px = 1.0 / S  # one pixel in these units

    # ---- head geometry ----------------------------------------------------------------------
    ay = rng.uniform(0.78, 0.9, B)  # anterior-posterior semi-axis
    ax = ay * rng.uniform(0.74, 0.86, B)  # left-right semi-axis
    rot = np.deg2rad(np.where(rng.random(B) < 0.9, rng.normal(0, 8, B), rng.uniform(-180, 180, B)))
    tx, ty = rng.uniform(-0.04, 0.04, (2, B))
    egg = rng.uniform(0.0, 0.15, B)  # wider at the back
    c, s = np.cos(rot), np.sin(rot)
    dx, dy = X - tx.astype(f32)[col], Y - ty.astype(f32)[col]
    u = dx * c.astype(f32)[col] + dy * s.astype(f32)[col]  # left-right
    v = dy * c.astype(f32)[col] - dx * s.astype(f32)[col]  # back (-) to front (+)
    vn = v / ay.astype(f32)[col]
    un = u / (ax.astype(f32)[col] * (1 - egg.astype(f32)[col] * vn))
    rho = np.sqrt(un * un + vn * vn)
    theta = np.arctan2(vn, un)
    amps = rng.uniform(0, 0.008, (4, B))  # head outline irregularity, modes 2-5
    phases = rng.uniform(0, 2 * np.pi, (4, B))
    wob = np.ones_like(rho)
    for i in range(4):
        wob += amps[i].astype(f32)[col] * np.cos((i + 2) * theta + phases[i].astype(f32)[col])
    rho /= wob
    rpx = np.sqrt(ax * ay) * S  # ~head radius in pixels
    e = (0.6 / rpx).astype(f32)[col]  # soft edges of ~0.6 px, head units
    depth = 1 - rho  # below the scalp surface

    # layers (fractions of the head radius): scalp, skull (with diploe), outer CSF
    t_scalp = rng.uniform(0.035, 0.065, B).astype(f32)[col]
    t_skull = rng.uniform(0.04, 0.075, B).astype(f32)[col]
    t_csf = rng.uniform(0.008, 0.025, B).astype(f32)[col]
    rb = 1 - (t_scalp + t_skull + t_csf)  # brain radius (head units)
    d = rb - rho  # depth below the brain surface

    # ---- intensities ------------------------------------------------------------------------
    kind = rng.choice(len(_CONTRASTS), B, p=_CONTRAST_P)
    table = np.array(list(_CONTRASTS.values()), np.float64)[kind]
    table = table * rng.uniform(0.9, 1.1, table.shape)
    tissue = {name: table[:, k].astype(f32)[col] for k, name in enumerate(_TISSUES)}

    # ---- cortex: sulci as curves, grey matter within a cortical thickness of CSF ---------------
    level = rng.choice(3, B, p=(0.25, 0.4, 0.35))  # high, ventricle bodies, basal ganglia
    pb, pu_, pv_, phalf = _sulci(
        rng, B, level, rb.reshape(B).astype(np.float64), ax, ay, (amps, phases), egg, step=0.5 * px
    )
    # head (u, v) -> pixel (row, col)
    cb, sb = c[pb], s[pb]
    Xp = pu_ * cb - pv_ * sb + tx[pb]
    Yp = pu_ * sb + pv_ * cb + ty[pb]
    cc = np.rint(Xp * S + (w - 1) / 2).astype(int)
    rr = np.rint((h - 1) / 2 - Yp * S).astype(int)
    ok = (cc >= 0) & (cc < w) & (rr >= 0) & (rr < h)
    halfw = np.zeros((B, h, w), f32)
    np.maximum.at(halfw, (pb[ok], rr[ok], cc[ok]), (phalf[ok] * S).astype(f32))
    skel = halfw > 0
    sd = np.empty((B, h, w), f32)  # signed distance to sulcal CSF, px
    for i in range(B):
        if skel[i].any():
            dist, (ir, ic) = ndimage.distance_transform_edt(~skel[i], return_indices=True)
            sd[i] = dist - halfw[i][ir, ic]
        else:
            sd[i] = 1e3
    d_px = d * rpx.astype(f32)[col]
    nz = _smooth_noise(rng, (B, h, w), max(1.0, 0.015 * min(h, w)))
    cortex = (rng.uniform(0.03, 0.042, B) * rpx).astype(f32)[col] * (1 + 0.25 * nz)
    to_csf = np.minimum(d_px, sd)
    gm = _soft(cortex - to_csf, f32(0.6))
    csf_sulci = _soft(-sd, f32(0.5))

    # ---- deep structures: ventricles, deep grey matter, lesions --------------------------------
    # (kind, on, centre u, centre v, semi-axis u, semi-axis v, angle deg, bend), in brain units
    vsz = rng.uniform(0.7, 1.7, B)  # ventricle size (age, atrophy)
    vsep = rng.uniform(0.025, 0.05, B)
    ell = []
    for sgn in (-1, 1):
        body, bg = level == 1, level == 2
        ell += [
            # lateral ventricle bodies: long crescents either side of the septum
            (
                "csf",
                body,
                sgn * (vsep + 0.05 * vsz),
                rng.uniform(-0.06, 0.02, B),
                0.05 * vsz,
                rng.uniform(0.26, 0.34, B),
                sgn * rng.uniform(3, 12, B),
                sgn * rng.uniform(0.5, 1.5, B),
            ),
            # frontal horns (comma shapes), occipital horns
            (
                "csf",
                bg,
                sgn * (vsep + 0.04 * vsz),
                0.2 + rng.uniform(-0.03, 0.03, B),
                0.04 * vsz,
                0.11 * np.sqrt(vsz),
                sgn * rng.uniform(20, 35, B),
                sgn * 2.0,
            ),
            (
                "csf",
                bg & (rng.random(B) < 0.7),
                sgn * (0.1 + 0.03 * vsz),
                -0.33 + rng.uniform(-0.04, 0.03, B),
                0.025 * vsz,
                0.09 * np.sqrt(vsz),
                -sgn * rng.uniform(15, 35, B),
                0.0,
            ),
            # caudate heads (against the frontal horns), lentiform nuclei, thalami
            (
                "deep",
                bg,
                sgn * (vsep + 0.08 * vsz + 0.05),
                0.19,
                rng.uniform(0.045, 0.06, B),
                rng.uniform(0.07, 0.095, B),
                sgn * 25.0,
                0.0,
            ),
            (
                "deep",
                bg,
                sgn * rng.uniform(0.24, 0.29, B),
                rng.uniform(0.0, 0.06, B),
                rng.uniform(0.05, 0.07, B),
                rng.uniform(0.13, 0.17, B),
                -sgn * rng.uniform(10, 22, B),
                -sgn * 1.0,
            ),
            (
                "deep",
                bg,
                sgn * rng.uniform(0.085, 0.11, B),
                rng.uniform(-0.17, -0.11, B),
                rng.uniform(0.07, 0.09, B),
                rng.uniform(0.085, 0.11, B),
                sgn * rng.uniform(0, 15, B),
                0.0,
            ),
        ]
    ell += [
        ("csf", level == 2, 0.0, rng.uniform(-0.14, -0.08, B), 0.01 * vsz, 0.07, 0.0, 0.0),
        (
            "csf",
            (level == 0) & (rng.random(B) < 0.3),
            rng.choice([-1, 1], B) * 0.07,
            rng.uniform(-0.05, 0.05, B),
            0.02 * vsz,
            rng.uniform(0.05, 0.15, B),
            0.0,
            0.0,
        ),
    ]
    # lesions: small, in the white matter
    nles = np.minimum(rng.poisson(rng.uniform(0, 2.0, B)), 6)
    for j in range(int(nles.max(initial=0))):
        rr_ = np.sqrt(rng.uniform(0.02, 1.0, B)) * 0.5
        aa = rng.uniform(0, 2 * np.pi, B)
        su = rng.uniform(0.012, 0.04, B)
        ell.append(
            (
                "lesion",
                nles > j,
                rr_ * np.cos(aa),
                rr_ * np.sin(aa),
                su,
                su * rng.uniform(0.6, 1.6, B),
                0.0,
                0.0,
            )
        )
    maps = {k: np.zeros((B, h, w), f32) for k in ("csf", "deep", "lesion")}
    rbv = rb.reshape(B)
    uh = u / ay.astype(f32)[col]  # head units, both axes scaled by ay
    for target, on, cu, cv, su, sv, deg, bend in ell:
        idx = np.nonzero(np.asarray(on, bool) & np.ones(B, bool))[0]
        if idx.size == 0:
            continue
        cu, cv, su, sv, deg, bend = (
            np.broadcast_to(np.asarray(q, np.float64), (B,))[idx]
            for q in (cu, cv, su, sv, deg, bend)
        )
        k = rbv[idx]  # structures scale with the brain
        cu, cv, su, sv = cu * k * ax[idx] / ay[idx], cv * k, su * k, sv * k
        ph = np.deg2rad(deg)
        cp, sp = np.cos(ph).astype(f32)[col], np.sin(ph).astype(f32)[col]
        du = uh[idx] - cu.astype(f32)[col]
        dv = vn[idx] - cv.astype(f32)[col]
        qu, qv = du * cp + dv * sp, dv * cp - du * sp
        qu -= bend.astype(f32)[col] * qv * qv  # bent (crescent) ellipses
        r = np.sqrt((qu / su.astype(f32)[col]) ** 2 + (qv / sv.astype(f32)[col]) ** 2)
        soft_w = e[idx] * {"csf": 1, "deep": 3, "lesion": 2}[target]  # deep nuclei: fuzzy
        wgt = _soft((1 - r) * np.sqrt(su * sv).astype(f32)[col], soft_w)
        maps[target][idx] = np.maximum(maps[target][idx], wgt)
    csf_deep, deep, lesion = maps["csf"], maps["deep"], maps["lesion"]

    # ---- compose ----------------------------------------------------------------------------
    brain = tissue["wm"] * (1 + 0.04 * _smooth_noise(rng, (B, h, w), 0.08 * min(h, w)))
    brain += (tissue["gm"] - brain) * gm
    brain += (tissue["deep"] - brain) * deep * (1 - gm)
    brain += (tissue["lesion"] - brain) * lesion * (1 - gm)
    brain += (tissue["csf"] - brain) * np.maximum(csf_sulci, csf_deep)
    tex = _crops(rng, tex_bank, B, h, w)
    brain *= 1 + rng.uniform(0.008, 0.025, B).astype(f32)[col] * tex
    # head layers from the outside in: scalp, skull (patchy diploe), outer CSF, brain
    img = tissue["scalp"] * _soft(depth, e)
    img += (tissue["skull"] - tissue["scalp"]) * _soft(depth - t_scalp, e)
    dip = _soft(t_skull * 0.22 - np.abs(depth - t_scalp - 0.5 * t_skull), e)
    dip *= np.clip(0.6 + 0.6 * _smooth_noise(rng, (B, h, w), 0.03 * min(h, w)), 0, 1)
    img += (tissue["diploe"] - tissue["skull"]) * dip
    img += (tissue["csf"] - img) * _soft(depth - t_scalp - t_skull, e)
    img += (brain - img) * _soft(d, e)
    # smooth multiplicative bias field (receive-coil sensitivity)
    cbias = rng.normal(0, 0.12, (5, B)).astype(f32)
    Xb, Yb = X + 0 * Y, Y + 0 * X
    img *= np.exp(
        cbias[0][col] * Xb
        + cbias[1][col] * Yb
        + cbias[2][col] * Xb * Yb
        + cbias[3][col] * Xb * Xb
        + cbias[4][col] * Yb * Yb
    )
    img = _blur(img, 0.6, 0.6)  # partial volume
    return np.maximum(img, 0)


def brain_phantoms(
    n: int, shape: tuple[int, int] = (64, 64), seed: int = 0, *, shepp_logan_fraction: float = 0.1
) -> np.ndarray:
    """Procedural brain MRI axial slices (T1, T2, PD or FLAIR-like), whole heads at ``shape``.

    Each slice is a head: a bright scalp ring (fat), a dark skull with a thin marrow (diploe)
    layer, a thin CSF layer, and a brain with a folded cortex (grey matter ribbon along the
    surface and along 34-52 sulci of random spacing, depth, width and wiggle, plus the
    interhemispheric and Sylvian fissures), white matter inside, and, depending on a random
    slice level, lateral ventricles (bodies, or frontal and occipital horns with the third
    ventricle), caudate, lentiform nuclei and thalami (deep grey matter); a few small lesions;
    tissue texture; a smooth multiplicative bias field; a slight blur. Shapes, sizes, rotations,
    ventricle size (atrophy) and the contrast (T1: CSF dark, white matter bright; T2: CSF
    bright, grey over white; PD; FLAIR: CSF dark, lesions bright) are random per image. A
    fraction ``shepp_logan_fraction`` of the slices are randomly perturbed modified Shepp-Logan
    phantoms instead.

    The head spans 78-90% of the shorter side whatever ``shape`` is: a 256x256 slice and a
    64x64 slice are both a whole head (the 64x64 one with less detail).

    Parameters
    ----------
    n : int
        Number of slices.
    shape : tuple of int, optional
        Slice shape (rows, columns), default (64, 64).
    seed : int, optional
        Seed of ``numpy.random.default_rng``; the same seed gives the same slices.
    shepp_logan_fraction : float, optional
        Probability that a slice is a perturbed Shepp-Logan phantom (default 0.1).

    Returns
    -------
    numpy.ndarray
        float32 array ``(n, *shape)`` in [0, 1]: each slice divided by its own 99.8th
        percentile of the head's pixels (air stays 0) and clipped.
    """
    n = _check_n(n)
    shape = _check_shape(shape)
    if not 0.0 <= shepp_logan_fraction <= 1.0:
        raise ValueError(f"shepp_logan_fraction must be in [0, 1], got {shepp_logan_fraction}.")
    h, w = shape
    rng = np.random.default_rng(seed)
    out = np.empty((n, h, w), np.float32)
    # fine tissue texture: crops of a few noise tiles (cheaper than a new field per slice)
    tex_bank = _smooth_noise(rng, (4, h + 64, w + 64), max(0.6, 0.004 * min(h, w)))
    chunk = max(1, int(400_000 // (h * w)))
    for start in range(0, n, chunk):
        B = min(n, start + chunk) - start
        sl = rng.random(B) < shepp_logan_fraction
        imgs = _brain_chunk(rng, B, shape, tex_bank)
        if sl.any():
            imgs[sl] = _shepp_logan_variants(rng, int(sl.sum()), shape)
        out[start : start + B] = imgs
    # per image: 99.8th percentile of the non-air pixels -> 1
    flat = out.reshape(n, -1)
    for i in range(n):
        fg = flat[i][flat[i] > 0.02 * flat[i].max(initial=0.0)]
        hi = float(np.percentile(fg, 99.8)) if fg.size else 1.0
        flat[i] /= max(hi, 1e-6)
    np.clip(out, 0.0, 1.0, out=out)
    return out


def brain_patches(
    n: int,
    patch: int = 64,
    slice_shape: tuple[int, int] = (256, 256),
    seed: int = 0,
    *,
    per_slice: int = 8,
    min_foreground: float = 0.05,
) -> np.ndarray:
    """Random square patches of :func:`brain_phantoms` slices, background patches skipped.

    The MRI prior works on 64x64 patches of 256x256 slices (a mosaic); this makes its training
    data: slices of ``slice_shape`` (normalised as :func:`brain_phantoms` does, so a patch keeps
    the slice's intensity scale) are cut at random positions, and a patch is kept only if at
    least ``min_foreground`` of its pixels are above 0.05 (not almost all air).

    Parameters
    ----------
    n : int
        Number of patches.
    patch : int, optional
        Patch size (default 64).
    slice_shape : tuple of int, optional
        Shape of the slices the patches are cut from (default (256, 256)).
    seed : int, optional
        Seed of ``numpy.random.default_rng``; the same seed gives the same patches.
    per_slice : int, optional
        Patches taken from each slice (default 8).
    min_foreground : float, optional
        Smallest fraction of a patch's pixels above 0.05 (default 0.05).

    Returns
    -------
    numpy.ndarray
        float32 array ``(n, patch, patch)`` in [0, 1].
    """
    n = _check_n(n)
    slice_shape = _check_shape(slice_shape)
    patch = int(patch)
    if not 1 <= patch <= min(slice_shape):
        raise ValueError(f"patch {patch} must be between 1 and the slice size {slice_shape}.")
    if int(per_slice) < 1:
        raise ValueError(f"per_slice must be at least 1, got {per_slice}.")
    per_slice = int(per_slice)
    h, w = slice_shape
    if not 0.0 <= min_foreground <= 1.0:
        raise ValueError(f"min_foreground must be in [0, 1], got {min_foreground}.")
    ss_slices, ss_cut = np.random.SeedSequence(seed).spawn(2)
    cut = np.random.default_rng(ss_cut)
    out = np.empty((n, patch, patch), np.float32)
    got, barren = 0, 0
    batch = max(1, min(64, -(-n // per_slice)))
    while got < n:
        # every block of slices has a seed of its own, drawn from ``seed``
        block_seed = int(ss_slices.spawn(1)[0].generate_state(1)[0])
        slices = brain_phantoms(batch, slice_shape, seed=block_seed)
        fg = np.pad((slices > 0.05).astype(np.float32), ((0, 0), (1, 0), (1, 0)))
        sat = fg.cumsum(1).cumsum(2)  # summed-area table
        # candidates: a jittered grid of patch-sized cells in random order (patches of one
        # slice overlap little), then uniformly random positions
        gy, gx = np.meshgrid(
            np.arange(max(1, h // patch)), np.arange(max(1, w // patch)), indexing="ij"
        )
        cells = gy.size
        order = np.argsort(cut.random((batch, cells)), axis=1)
        jy, jx = cut.uniform(-0.5, 0.5, (2, batch, cells)) * patch
        oy_g = np.clip(np.rint(gy.ravel()[order] * patch + jy), 0, h - patch).astype(int)
        ox_g = np.clip(np.rint(gx.ravel()[order] * patch + jx), 0, w - patch).astype(int)
        extra = 4 * per_slice
        oy = np.concatenate([oy_g, cut.integers(0, h - patch + 1, (batch, extra))], axis=1)
        ox = np.concatenate([ox_g, cut.integers(0, w - patch + 1, (batch, extra))], axis=1)
        bi = np.arange(batch)[:, None]
        area = (
            sat[bi, oy + patch, ox + patch]
            - sat[bi, oy, ox + patch]
            - sat[bi, oy + patch, ox]
            + sat[bi, oy, ox]
        )
        ok = area >= min_foreground * patch * patch
        rank = np.cumsum(ok, axis=1)
        take = ok & (rank <= per_slice)
        bsel, tsel = np.nonzero(take)
        bsel, tsel = bsel[: n - got], tsel[: n - got]
        rows = oy[bsel, tsel][:, None, None] + np.arange(patch)[None, :, None]
        cols = ox[bsel, tsel][:, None, None] + np.arange(patch)[None, None, :]
        out[got : got + bsel.size] = slices[bsel[:, None, None], rows, cols]
        got += bsel.size
        barren = 0 if bsel.size else barren + 1
        if barren >= 20:
            raise ValueError(
                f"no patch of {patch}x{patch} pixels has {min_foreground:.0%} "
                "of foreground; lower min_foreground."
            )
    return out
