"""Procedural fluorescence images of stained nuclei: :func:`nuclei_images`."""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from ._common import _blur, _check_n, _check_shape, _resample, _smooth_noise

_REF_AREA = 64 * 64  # densities are "per 64x64 patch"


def _place_nuclei(
    rng: np.random.Generator,
    counts: np.ndarray,
    radius: np.ndarray,
    shape: tuple[int, int],
    margin: float,
    clustered: np.ndarray,
    spread: np.ndarray,
    overlap: np.ndarray,
    tries: int = 8,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centres (C, K) for ``counts[i]`` nuclei of image i, by rejection of heavy overlaps.

    Nucleus j of every image is placed at once (vectorised over images); a candidate is kept if
    its distance to every earlier nucleus is at least ``overlap[i] * (r_j + r_k)``; after
    ``tries`` rejected candidates the nucleus is dropped. Returns (cy, cx, valid).
    """
    C, K = radius.shape
    h, w = shape
    cy = np.zeros((C, K), np.float32)
    cx = np.zeros((C, K), np.float32)
    valid = np.zeros((C, K), bool)
    # clusters (colonies): 1 to 3 per 64x64 area, so larger fields have more of them
    ncl = np.maximum(1, np.round(rng.uniform(1, 3, C) * (h * w) / _REF_AREA)).astype(int)
    ccy = rng.uniform(0, h, (C, int(ncl.max()))).astype(np.float32)
    ccx = rng.uniform(0, w, (C, int(ncl.max()))).astype(np.float32)
    rows = np.arange(C)
    for j in range(K):
        active = counts > j
        if not active.any():
            break
        idx = rows[active]
        m = idx.size
        uy = rng.uniform(-margin, h + margin, (m, tries))
        ux = rng.uniform(-margin, w + margin, (m, tries))
        pick = (rng.random((m, tries)) * ncl[idx, None]).astype(int)
        gy = ccy[idx[:, None], pick] + spread[idx, None] * rng.standard_normal((m, tries))
        gx = ccx[idx[:, None], pick] + spread[idx, None] * rng.standard_normal((m, tries))
        cl = clustered[idx, None]
        py = np.where(cl, gy, uy).astype(np.float32)
        px = np.where(cl, gx, ux).astype(np.float32)
        ok = (py > -margin) & (py < h + margin) & (px > -margin) & (px < w + margin)
        if j > 0:
            d = np.hypot(py[:, :, None] - cy[idx, None, :j], px[:, :, None] - cx[idx, None, :j])
            need = overlap[idx, None, None] * (radius[idx, None, j : j + 1] + radius[idx, None, :j])
            clash = (d < need) & valid[idx, None, :j]
            ok &= ~clash.any(axis=2)
        first = np.argmax(ok, axis=1)
        cy[idx, j] = py[np.arange(m), first]
        cx[idx, j] = px[np.arange(m), first]
        valid[idx, j] = ok.any(axis=1)
    return cy, cx, valid


_TILE = 96  # texture tiles (chromatin) are cut from a bank of smooth-noise tiles this size


def _texture_bank(rng: np.random.Generator, count: int) -> np.ndarray:
    """(2, count, _TILE, _TILE): coarse (sigma 2.5 px) and fine (sigma 0.9 px) unit-std noise."""
    return np.stack(
        [
            _smooth_noise(rng, (count, _TILE, _TILE), 2.5),
            _smooth_noise(rng, (count, _TILE, _TILE), 0.9),
        ]
    )


def _nuclei_chunk(
    rng: np.random.Generator,
    C: int,
    shape: tuple[int, int],
    density: float | None,
    bank: np.ndarray,
) -> np.ndarray:
    """C clean nuclei images in raw units (a typical nucleus ~0.6-1, background ~0.05)."""
    f32 = np.float32
    h, w = shape
    area_scale = (h * w) / _REF_AREA
    # ---- per-image style --------------------------------------------------------------------
    if density is None:
        lam = rng.uniform(0.0, 1.0, C) ** 0.8 * 8.0  # nuclei per 64x64, 0..8
        lam = np.where(rng.random(C) < 0.04, 0.0, lam)  # some empty fields
    else:
        lam = np.full(C, float(density))
    margin = 6.0  # centres up to 6 px outside
    ext = ((h + 2 * margin) * (w + 2 * margin)) / (h * w)
    counts = rng.poisson(lam * area_scale * ext)
    K = max(int(counts.max(initial=0)), 1)
    mean_r = rng.uniform(5.0, 10.0, C)  # cell type: small or large nuclei
    r_spread = rng.uniform(0.08, 0.22, C)
    elong = rng.uniform(0.05, 0.35, C)  # how elongated the nuclei are
    bright_sd = rng.uniform(0.08, 0.4, C)  # bright and dim nuclei
    gain = rng.uniform(0.55, 1.0, C)
    clustered = rng.random(C) < 0.4
    spread = rng.uniform(8.0, 22.0, C)
    overlap = rng.uniform(0.72, 0.95, C)
    edge_w = rng.uniform(0.35, 1.0, C).astype(f32)  # soft edge width (px)

    radius = mean_r[:, None] * np.exp(r_spread[:, None] * rng.standard_normal((C, K)))
    # largest first, in every image: windows shrink slot by slot, and big ones are placed first
    radius = -np.sort(-np.clip(radius, 4.0, 12.0), axis=1).astype(f32)
    cy, cx, valid = _place_nuclei(rng, counts, radius, shape, margin, clustered, spread, overlap)

    q = np.clip(1.0 + np.abs(elong[:, None] * rng.standard_normal((C, K))), 1.0, 1.9)
    a = (radius * np.sqrt(q)).astype(f32)  # semi-axes
    b = (radius / np.sqrt(q)).astype(f32)
    theta = rng.uniform(0, np.pi, (C, K))
    bright = gain[:, None] * np.exp(bright_sd[:, None] * rng.standard_normal((C, K)))
    # a few small, very bright, condensed (mitotic / apoptotic) nuclei
    condensed = rng.random((C, K)) < 0.03
    a = np.where(condensed, a * f32(0.55), a)
    b = np.where(condensed, b * f32(0.55), b)
    bright = np.where(condensed, bright * 1.5, bright).astype(f32)
    e3 = rng.uniform(0.0, 0.06, (C, K)).astype(f32)  # outline irregularity (mode 3)
    p3 = rng.uniform(0, 2 * np.pi, (C, K))
    dome = rng.uniform(-0.1, 0.35, (C, K)).astype(f32)  # rim-bright, flat or domed
    tex_c = rng.uniform(0.03, 0.18, (C, K)).astype(f32)  # chromatin texture amplitudes
    tex_f = rng.uniform(0.02, 0.12, (C, K)).astype(f32)
    tile = rng.integers(0, bank.shape[1], (C, K))
    # spots: bright chromocentres (positive) or dark nucleoli (negative)
    S = 3
    spot_on = rng.random((C, K, S)) < 0.3
    spot_amp = (
        np.where(
            rng.random((C, K, S)) < 0.7,
            rng.uniform(0.15, 0.6, (C, K, S)),
            -rng.uniform(0.1, 0.35, (C, K, S)),
        )
        * spot_on
    ).astype(f32)
    spot_sig = rng.uniform(0.7, 1.8, (C, K, S)).astype(f32)
    spot_rho = np.sqrt(rng.uniform(0, 0.45, (C, K, S)))
    spot_ang = rng.uniform(0, 2 * np.pi, (C, K, S))
    spot_u = (spot_rho * np.cos(spot_ang) * a[:, :, None]).astype(f32)
    spot_v = (spot_rho * np.sin(spot_ang) * b[:, :, None]).astype(f32)

    # ---- render nucleus j of all images at once --------------------------------------------
    reach = np.ceil(a * 1.1 + 3.0).astype(int)  # window half-size per nucleus
    P = int(reach.max(initial=4)) + int(np.ceil(margin)) + 1
    canvas = np.zeros((C, h + 2 * P, w + 2 * P), f32)
    for j in range(K):
        idx = np.nonzero(valid[:, j])[0]
        if idx.size == 0:
            continue
        pj = int(reach[idx, j].max())
        off = np.arange(-pj, pj + 1, dtype=f32)
        col = (slice(None), None, None)
        cyj, cxj = cy[idx, j], cx[idx, j]
        iy, ix = np.floor(cyj).astype(int), np.floor(cxj).astype(int)
        y = off[None, :, None] - (cyj - iy).astype(f32)[col]  # (m, L, 1)
        x = off[None, None, :] - (cxj - ix).astype(f32)[col]  # (m, 1, L)
        ct = np.cos(theta[idx, j]).astype(f32)[col]
        st = np.sin(theta[idx, j]).astype(f32)[col]
        u = x * ct + y * st
        v = y * ct - x * st
        aj, bj = a[idx, j][col], b[idx, j][col]
        rho = np.sqrt((u / aj) ** 2 + (v / bj) ** 2)
        # slightly irregular outline: mode 3 of the polar angle (no arctan)
        rr = np.sqrt(u * u + v * v) + f32(1e-6)
        c1, s1 = u / rr, v / rr
        c3, s3 = c1 * (4 * c1 * c1 - 3), s1 * (3 - 4 * s1 * s1)
        ph = p3[idx, j]
        rho /= 1 + e3[idx, j][col] * (
            c3 * np.cos(ph).astype(f32)[col] + s3 * np.sin(ph).astype(f32)[col]
        )
        mask = expit((1 - rho) * (np.sqrt(aj * bj) / edge_w[idx][col]))
        prof = 1 - dome[idx, j][col] * np.minimum(rho, 1) ** 2
        L = 2 * pj + 1
        ty, tx = rng.integers(0, _TILE - L + 1, (2, idx.size))
        tr = (ty[col] + np.arange(L)[None, :, None], tx[col] + np.arange(L)[None, None, :])
        tt = tile[idx, j][col]
        prof += tex_c[idx, j][col] * bank[0][tt, tr[0], tr[1]]
        prof += tex_f[idx, j][col] * bank[1][tt, tr[0], tr[1]]
        for s in range(S):
            sel = np.nonzero(spot_amp[idx, j, s])[0]
            if sel.size == 0:
                continue
            k = idx[sel]
            sg2 = 2 * spot_sig[k, j, s][col] ** 2
            d2 = (u[sel] - spot_u[k, j, s][col]) ** 2 + (v[sel] - spot_v[k, j, s][col]) ** 2
            prof[sel] += spot_amp[k, j, s][col] * np.exp(-d2 / sg2)
        rows = (iy + P)[col] + np.arange(-pj, pj + 1)[None, :, None]
        cols = (ix + P)[col] + np.arange(-pj, pj + 1)[None, None, :]
        canvas[idx[col], rows, cols] += bright[idx, j][col] * mask * np.maximum(prof, 0)

    # ---- optics: Gaussian PSF (sigma ~1 px) and a faint out-of-focus haze --------------------
    m = 6
    img = canvas[:, P - m : P + h + m, P - m : P + w + m]
    haze_amp = rng.uniform(0.0, 0.12, C).astype(f32)[:, None, None]
    # the haze (blur sigma ~6 px) is made at a quarter of the resolution and interpolated
    H4, W4 = img.shape[1] // 4, img.shape[2] // 4
    small = img[:, : 4 * H4, : 4 * W4].reshape(C, H4, 4, W4, 4).mean(axis=(2, 4))
    small = _blur(small, 1.5, 1.5)
    haze = _resample(
        small, (np.arange(m, m + h) + 0.5) / 4 - 0.5, (np.arange(m, m + w) + 0.5) / 4 - 0.5
    )
    # PSF sigma 0.8-1.3 px per image: a per-image mix of the two extreme blurs
    mix = rng.uniform(0.0, 1.0, C).astype(f32)[:, None, None]
    sharp = _blur(img, 0.8, 0.8)[:, m : m + h, m : m + w]
    soft = _blur(img, 1.3, 1.3)[:, m : m + h, m : m + w]
    out = sharp + mix * (soft - sharp) + haze_amp * haze

    # ---- dark, slightly uneven background: offset + plane + two long-wavelength waves --------
    yy = (np.arange(h, dtype=f32) / max(h, w))[None, :, None]
    xx = (np.arange(w, dtype=f32) / max(h, w))[None, None, :]
    offset = rng.uniform(0.02, 0.12, C) * gain
    gy, gx = rng.uniform(-0.04, 0.04, (2, C)) * gain
    out += (
        offset.astype(f32)[:, None, None]
        + gy.astype(f32)[:, None, None] * yy
        + gx.astype(f32)[:, None, None] * xx
    )
    for _ in range(2):
        kk = rng.uniform(0.5, 2.0, C) * 2 * np.pi  # wavelength >= half the image
        ang = rng.uniform(0, 2 * np.pi, C)
        ph = rng.uniform(0, 2 * np.pi, C).astype(f32)[:, None, None]
        amp = (rng.uniform(0.0, 0.02, C) * gain).astype(f32)[:, None, None]
        kx = (kk * np.cos(ang)).astype(f32)[:, None, None]
        ky = (kk * np.sin(ang)).astype(f32)[:, None, None]
        out += amp * np.cos(kx * xx + ky * yy + ph)
    return np.maximum(out, 0, out=out).astype(f32, copy=False)


def nuclei_images(
    n: int,
    shape: tuple[int, int] = (64, 64),
    seed: int = 0,
    density: float | None = None,
    photons: float | None = None,
    *,
    normalise: str = "batch",
) -> np.ndarray:
    """Procedural fluorescence-microscopy images of stained cell nuclei.

    Images in the style of widefield/confocal DAPI or Hoechst images (like the fluorescence
    images of the 2018 Data Science Bowl): a dark, slightly uneven background (a small offset,
    a gentle gradient and long-wavelength variation) and a random number of nuclei. Each nucleus
    is an ellipse of random size (mean radius 5-10 px per image, 4-12 px per nucleus, so about
    0 to 8 nuclei per 64x64 field), orientation, elongation and brightness (bright and dim
    nuclei in one field), with a slightly irregular outline, soft edges, a flat or domed profile,
    chromatin texture (smooth noise at two scales) and occasional spots (bright chromocentres or
    dark nucleoli); a few are small, condensed and very bright (mitotic). Nuclei may touch,
    overlap slightly, form clusters, and are cut by the border. The image is blurred by a
    Gaussian PSF (sigma 0.8-1.3 px) plus a faint out-of-focus haze.

    Sizes are in pixels: a larger ``shape`` is a larger field of view at the same scale, with
    the number of nuclei scaled with the area (so a 256x256 image holds about 16 times as many).

    Parameters
    ----------
    n : int
        Number of images.
    shape : tuple of int, optional
        Image shape (rows, columns), default (64, 64).
    seed : int, optional
        Seed of ``numpy.random.default_rng``; the same seed gives the same images.
    density : float or None, optional
        Mean number of nuclei per 64x64 area (Poisson distributed, some dropped when they would
        overlap too much). None (default): a random density in [0, 8] per image.
    photons : float or None, optional
        Poisson (shot) noise: the mean photon count at the peak level (the level that maps to
        1), darker pixels, background included, getting proportionally fewer. None (default):
        clean images. The noisy images use the clean images' normalisation and the same seed
        gives the same underlying clean images, so ``nuclei_images(n, seed=s)`` and
        ``nuclei_images(n, seed=s, photons=p)`` are matched clean/noisy pairs (noisy values
        above the peak are clipped to 1).
    normalise : {"batch", "image"}, optional
        "batch" (default): one linear map for the whole batch, from the 1st and 99.8th
        percentiles of all its (clean) pixels to 0 and 1 (the upper level is floored at a
        typical nucleus' intensity, so a batch without nuclei is not stretched); relative
        brightness between images is kept. "image": each image from its own 1st and 99.8th
        percentiles, as ``train_prior(normalise="percentile")`` does.

    Returns
    -------
    numpy.ndarray
        float32 array of shape ``(n, *shape)``, values in [0, 1].
    """
    n = _check_n(n)
    shape = _check_shape(shape)
    if normalise not in ("batch", "image"):
        raise ValueError(f"normalise must be 'batch' or 'image', got {normalise!r}.")
    if density is not None and not (np.isfinite(density) and density >= 0):
        raise ValueError(f"density must be a non-negative number or None, got {density!r}.")
    if photons is not None and not (np.isfinite(photons) and photons > 0):
        raise ValueError(f"photons must be a positive number or None, got {photons!r}.")
    h, w = shape
    gen_ss, noise_ss = np.random.SeedSequence(seed).spawn(2)
    rng = np.random.default_rng(gen_ss)
    out = np.empty((n, h, w), np.float32)
    bank = _texture_bank(rng, int(np.clip(n * h * w // 20_000, 16, 256)))
    chunk = max(1, int(1_000_000 // (h * w)))
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        out[start:stop] = _nuclei_chunk(rng, stop - start, shape, density, bank)
    if n == 0:
        return out

    def levels(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if normalise == "image":
            flat = x.reshape(x.shape[0], -1)
            lo, hi = np.percentile(flat, [1.0, 99.8], axis=1)
            hi = np.maximum(hi, lo + 1e-3)
            return lo[:, None, None], hi[:, None, None]
        flat = x.ravel()
        flat = flat[:: max(1, flat.size // 4_000_000)]
        lo, hi = np.percentile(flat, [1.0, 99.8])
        return np.float32(lo), np.float32(max(hi, lo + 0.6))

    lo, hi = levels(out)
    if photons is not None:
        # the peak level (normalised 1) gets `photons` photons on average; darker pixels,
        # background included, proportionally fewer
        noise_rng = np.random.default_rng(noise_ss)
        per_unit = np.broadcast_to(float(photons) / np.asarray(hi, np.float64), (n, 1, 1))
        for start in range(0, n, chunk):  # in chunks: bounded memory
            sl = slice(start, min(n, start + chunk))
            counts = noise_rng.poisson(np.maximum(out[sl], 0.0) * per_unit[sl])
            out[sl] = counts / per_unit[sl]
    out -= lo
    out /= hi - lo
    np.clip(out, 0.0, 1.0, out=out)
    return out.astype(np.float32, copy=False)
