"""Procedural training images for the bundled priors: fluorescence nuclei and brain MRI slices.

Everything here is generated from a seed (``numpy.random.default_rng``), with numpy, scipy and
scikit-image only; nothing is downloaded. The generators are vectorised over images (and, for
nuclei, over the nuclei of many images at once), so that tens of thousands of 64x64 patches take
seconds on a 2-core CPU.

- :func:`nuclei_images`: widefield/confocal images of DAPI/Hoechst-stained nuclei, in the style of
  the 2018 Data Science Bowl fluorescence images.
- :func:`brain_phantoms`: axial brain MRI slices (T1-, T2- or PD-weighted looking), whole heads
  at the requested shape, with a share of perturbed Shepp-Logan phantoms.
- :func:`brain_patches`: random patches of :func:`brain_phantoms` slices, background skipped.
- :func:`shepp_logan`: the modified Shepp-Logan phantom (Toft's table).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.special import expit

__all__ = ["brain_patches", "brain_phantoms", "nuclei_images", "shepp_logan"]

_REF_AREA = 64 * 64  # densities are "per 64x64 patch"


def _check_shape(shape) -> tuple[int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2 or min(shape) < 8:
        raise ValueError(f"shape must be two sizes of at least 8 pixels, got {shape}.")
    return shape


def _check_n(n) -> int:
    if int(n) != n or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}.")
    return int(n)


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------

def _blur(x: np.ndarray, sy: float, sx: float) -> np.ndarray:
    """Gaussian blur of each image of a (C, H, W) stack (edges: nearest value).

    ``scipy.ndimage`` rather than matrix products: multithreaded BLAS on small, busy machines
    was measured many times slower at random.
    """
    return ndimage.gaussian_filter(x, (0, sy, sx), truncate=3.0, mode="nearest")


def _resample(x: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of a (C, h, w) stack at rows ``ys`` and columns ``xs`` (in the
    stack's pixel coordinates, clamped to it): (C, len(ys), len(xs))."""
    _, h, w = x.shape

    def axis(pos: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = np.clip(pos, 0, n - 1)
        i0 = np.minimum(np.floor(pos).astype(int), max(n - 2, 0))
        t = (pos - i0).astype(np.float32)
        return i0, np.minimum(i0 + 1, n - 1), t

    r0, r1, ty = axis(ys, h)
    c0, c1, tx = axis(xs, w)
    rows = x[:, r0] * (1 - ty)[None, :, None] + x[:, r1] * ty[None, :, None]
    return rows[:, :, c0] * (1 - tx) + rows[:, :, c1] * tx


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int, int],
                  sigma: float) -> np.ndarray:
    """(C, H, W) smooth Gaussian noise: white noise blurred by ``sigma`` px, scaled to unit std.

    Blurred periodically in the Fourier domain; fields smoother than ~3 px are made on a
    coarser grid and interpolated bilinearly, which is much cheaper.
    """
    c, h, w = shape
    f = max(1, int(sigma // 1.5))
    hs, ws = (h, w) if f == 1 else (h // f + 3, w // f + 3)
    noise = rng.standard_normal((c, hs, ws), dtype=np.float32)
    fy = np.fft.fftfreq(hs).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(ws).astype(np.float32)[None, :]
    transfer = np.exp(np.float32(-2.0 * np.pi ** 2 * (sigma / f) ** 2) * (fy * fy + fx * fx))
    field = np.fft.irfft2(np.fft.rfft2(noise) * transfer, s=(hs, ws)).astype(np.float32)
    if f > 1:
        field = _resample(field, np.arange(h) / f + 1.0, np.arange(w) / f + 1.0)
    return field / np.float32(max(float(field.std()), 1e-12))


def _crops(rng: np.random.Generator, bank: np.ndarray, count: int, h: int, w: int
           ) -> np.ndarray:
    """``count`` random (h, w) crops of a (K, T, T) bank of noise tiles, randomly flipped."""
    k = rng.integers(0, bank.shape[0], count)
    oy = rng.integers(0, bank.shape[1] - h + 1, count)
    ox = rng.integers(0, bank.shape[2] - w + 1, count)
    rows = oy[:, None, None] + np.arange(h)[None, :, None]
    cols = ox[:, None, None] + np.arange(w)[None, None, :]
    out = bank[k[:, None, None], rows, cols]
    fy, fx = rng.random((2, count)) < 0.5
    out[fy] = out[fy, ::-1]
    out[fx] = out[fx, :, ::-1]
    return out


# --------------------------------------------------------------------------------------------
# Fluorescence nuclei
# --------------------------------------------------------------------------------------------

def _place_nuclei(rng: np.random.Generator, counts: np.ndarray, radius: np.ndarray,
                  shape: tuple[int, int], margin: float, clustered: np.ndarray,
                  spread: np.ndarray, overlap: np.ndarray, tries: int = 8
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
            need = overlap[idx, None, None] * (radius[idx, None, j:j + 1] + radius[idx, None, :j])
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
    return np.stack([_smooth_noise(rng, (count, _TILE, _TILE), 2.5),
                     _smooth_noise(rng, (count, _TILE, _TILE), 0.9)])


def _nuclei_chunk(rng: np.random.Generator, C: int, shape: tuple[int, int],
                  density: float | None, bank: np.ndarray) -> np.ndarray:
    """C clean nuclei images in raw units (a typical nucleus ~0.6-1, background ~0.05)."""
    f32 = np.float32
    h, w = shape
    area_scale = (h * w) / _REF_AREA
    # ---- per-image style --------------------------------------------------------------------
    if density is None:
        lam = rng.uniform(0.0, 1.0, C) ** 0.8 * 8.0          # nuclei per 64x64, 0..8
        lam = np.where(rng.random(C) < 0.04, 0.0, lam)        # some empty fields
    else:
        lam = np.full(C, float(density))
    margin = 6.0                                              # centres up to 6 px outside
    ext = ((h + 2 * margin) * (w + 2 * margin)) / (h * w)
    counts = rng.poisson(lam * area_scale * ext)
    K = max(int(counts.max(initial=0)), 1)
    mean_r = rng.uniform(5.0, 10.0, C)                        # cell type: small or large nuclei
    r_spread = rng.uniform(0.08, 0.22, C)
    elong = rng.uniform(0.05, 0.35, C)                        # how elongated the nuclei are
    bright_sd = rng.uniform(0.08, 0.4, C)                     # bright and dim nuclei
    gain = rng.uniform(0.55, 1.0, C)
    clustered = rng.random(C) < 0.4
    spread = rng.uniform(8.0, 22.0, C)
    overlap = rng.uniform(0.72, 0.95, C)
    edge_w = rng.uniform(0.35, 1.0, C).astype(f32)           # soft edge width (px)

    radius = mean_r[:, None] * np.exp(r_spread[:, None] * rng.standard_normal((C, K)))
    # largest first, in every image: windows shrink slot by slot, and big ones are placed first
    radius = -np.sort(-np.clip(radius, 4.0, 12.0), axis=1).astype(f32)
    cy, cx, valid = _place_nuclei(rng, counts, radius, shape, margin, clustered, spread, overlap)

    q = np.clip(1.0 + np.abs(elong[:, None] * rng.standard_normal((C, K))), 1.0, 1.9)
    a = (radius * np.sqrt(q)).astype(f32)                     # semi-axes
    b = (radius / np.sqrt(q)).astype(f32)
    theta = rng.uniform(0, np.pi, (C, K))
    bright = gain[:, None] * np.exp(bright_sd[:, None] * rng.standard_normal((C, K)))
    # a few small, very bright, condensed (mitotic / apoptotic) nuclei
    condensed = rng.random((C, K)) < 0.03
    a = np.where(condensed, a * f32(0.55), a)
    b = np.where(condensed, b * f32(0.55), b)
    bright = np.where(condensed, bright * 1.5, bright).astype(f32)
    e3 = rng.uniform(0.0, 0.06, (C, K)).astype(f32)          # outline irregularity (mode 3)
    p3 = rng.uniform(0, 2 * np.pi, (C, K))
    dome = rng.uniform(-0.1, 0.35, (C, K)).astype(f32)       # rim-bright, flat or domed
    tex_c = rng.uniform(0.03, 0.18, (C, K)).astype(f32)      # chromatin texture amplitudes
    tex_f = rng.uniform(0.02, 0.12, (C, K)).astype(f32)
    tile = rng.integers(0, bank.shape[1], (C, K))
    # spots: bright chromocentres (positive) or dark nucleoli (negative)
    S = 3
    spot_on = rng.random((C, K, S)) < 0.3
    spot_amp = (np.where(rng.random((C, K, S)) < 0.7, rng.uniform(0.15, 0.6, (C, K, S)),
                         -rng.uniform(0.1, 0.35, (C, K, S))) * spot_on).astype(f32)
    spot_sig = rng.uniform(0.7, 1.8, (C, K, S)).astype(f32)
    spot_rho = np.sqrt(rng.uniform(0, 0.45, (C, K, S)))
    spot_ang = rng.uniform(0, 2 * np.pi, (C, K, S))
    spot_u = (spot_rho * np.cos(spot_ang) * a[:, :, None]).astype(f32)
    spot_v = (spot_rho * np.sin(spot_ang) * b[:, :, None]).astype(f32)

    # ---- render nucleus j of all images at once --------------------------------------------
    reach = np.ceil(a * 1.1 + 3.0).astype(int)               # window half-size per nucleus
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
        y = off[None, :, None] - (cyj - iy).astype(f32)[col]   # (m, L, 1)
        x = off[None, None, :] - (cxj - ix).astype(f32)[col]   # (m, 1, L)
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
        rho /= 1 + e3[idx, j][col] * (c3 * np.cos(ph).astype(f32)[col]
                                      + s3 * np.sin(ph).astype(f32)[col])
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
    img = canvas[:, P - m:P + h + m, P - m:P + w + m]
    haze_amp = rng.uniform(0.0, 0.12, C).astype(f32)[:, None, None]
    # the haze (blur sigma ~6 px) is made at a quarter of the resolution and interpolated
    H4, W4 = img.shape[1] // 4, img.shape[2] // 4
    small = img[:, :4 * H4, :4 * W4].reshape(C, H4, 4, W4, 4).mean(axis=(2, 4))
    small = _blur(small, 1.5, 1.5)
    haze = _resample(small, (np.arange(m, m + h) + 0.5) / 4 - 0.5,
                     (np.arange(m, m + w) + 0.5) / 4 - 0.5)
    # PSF sigma 0.8-1.3 px per image: a per-image mix of the two extreme blurs
    mix = rng.uniform(0.0, 1.0, C).astype(f32)[:, None, None]
    sharp = _blur(img, 0.8, 0.8)[:, m:m + h, m:m + w]
    soft = _blur(img, 1.3, 1.3)[:, m:m + h, m:m + w]
    out = sharp + mix * (soft - sharp) + haze_amp * haze

    # ---- dark, slightly uneven background: offset + plane + two long-wavelength waves --------
    yy = (np.arange(h, dtype=f32) / max(h, w))[None, :, None]
    xx = (np.arange(w, dtype=f32) / max(h, w))[None, None, :]
    offset = rng.uniform(0.02, 0.12, C) * gain
    gy, gx = rng.uniform(-0.04, 0.04, (2, C)) * gain
    out += (offset.astype(f32)[:, None, None] + gy.astype(f32)[:, None, None] * yy
            + gx.astype(f32)[:, None, None] * xx)
    for _ in range(2):
        kk = rng.uniform(0.5, 2.0, C) * 2 * np.pi             # wavelength >= half the image
        ang = rng.uniform(0, 2 * np.pi, C)
        ph = rng.uniform(0, 2 * np.pi, C).astype(f32)[:, None, None]
        amp = (rng.uniform(0.0, 0.02, C) * gain).astype(f32)[:, None, None]
        kx = (kk * np.cos(ang)).astype(f32)[:, None, None]
        ky = (kk * np.sin(ang)).astype(f32)[:, None, None]
        out += amp * np.cos(kx * xx + ky * yy + ph)
    return np.maximum(out, 0, out=out).astype(f32, copy=False)


def nuclei_images(n: int, shape: tuple[int, int] = (64, 64), seed: int = 0,
                  density: float | None = None, photons: float | None = None, *,
                  normalise: str = "batch") -> np.ndarray:
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
        for start in range(0, n, chunk):                  # in chunks: bounded memory
            sl = slice(start, min(n, start + chunk))
            counts = noise_rng.poisson(np.maximum(out[sl], 0.0) * per_unit[sl])
            out[sl] = counts / per_unit[sl]
    out -= lo
    out /= (hi - lo)
    np.clip(out, 0.0, 1.0, out=out)
    return out.astype(np.float32, copy=False)


# --------------------------------------------------------------------------------------------
# Shepp-Logan
# --------------------------------------------------------------------------------------------

# The modified Shepp-Logan phantom (P. Toft, "The Radon Transform", 1996): one row per ellipse,
# (intensity, semi-axis a (x), semi-axis b (y), centre x0, centre y0, angle in degrees), on
# [-1, 1]^2 with y pointing up (the top of the image). Intensities add where ellipses overlap.
_SHEPP_LOGAN_TOFT = np.array([
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
])


def _grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (x right, y up); the shorter side's first and last pixel centres
    are at -1 and 1 (as ``numpy.linspace(-1, 1, n)``, the convention of scikit-image's copy)."""
    h, w = shape
    s = (min(h, w) - 1) / 2.0
    x = (np.arange(w, dtype=np.float32) - (w - 1) / 2.0) / np.float32(s)
    y = ((h - 1) / 2.0 - np.arange(h, dtype=np.float32)) / np.float32(s)
    return x[None, None, :], y[None, :, None]


def _ellipses(table: np.ndarray, shape: tuple[int, int], edge: float = 0.0) -> np.ndarray:
    """Sum of ellipses for a batch: ``table`` (B, E, 6) rows as in ``_SHEPP_LOGAN_TOFT``.

    ``edge`` > 0 gives soft edges of about that many pixels (anti-aliasing); 0: hard edges.
    """
    x, y = _grid(shape)
    B, E, _ = table.shape
    t = table.astype(np.float32)[:, :, :, None, None]        # (B, E, 6, 1, 1)
    out = np.zeros((B, *shape), np.float32)
    px = 2.0 / min(shape)                                      # one pixel in these units
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


def _shepp_logan_variants(rng: np.random.Generator, B: int, shape: tuple[int, int]
                          ) -> np.ndarray:
    """B randomly perturbed modified Shepp-Logan phantoms (positions, sizes, angles, values)."""
    t = np.repeat(_SHEPP_LOGAN_TOFT[None], B, axis=0).copy()
    E = t.shape[1]
    scale = rng.uniform(0.78, 0.95, B)[:, None]
    t[:, :, 1] *= rng.uniform(0.85, 1.15, (B, E))
    t[:, :, 2] *= rng.uniform(0.85, 1.15, (B, E))
    t[:, 0, 1:3] = _SHEPP_LOGAN_TOFT[0, 1:3] * rng.uniform(0.9, 1.05, (B, 2))   # in the field
    # keep the skull a ring: the inner (brain) ellipse follows the outer one
    t[:, 1, 1] = t[:, 0, 1] * rng.uniform(0.93, 0.975, B)
    t[:, 1, 2] = t[:, 0, 2] * rng.uniform(0.93, 0.975, B)
    t[:, 2:, 3] += rng.normal(0, 0.03, (B, E - 2))
    t[:, 2:, 4] += rng.normal(0, 0.03, (B, E - 2))
    t[:, 2:, 5] += rng.normal(0, 8.0, (B, E - 2))
    t[:, 2:, 0] *= rng.uniform(0.6, 1.6, (B, E - 2))
    t[:, 1, 0] = -t[:, 0, 0] * rng.uniform(0.7, 0.85, B)     # brain level 0.15-0.3
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


# --------------------------------------------------------------------------------------------
# Brain MRI phantoms
# --------------------------------------------------------------------------------------------

# Tissue intensities per contrast: scalp (fat), skull (cortical bone), diploe (marrow), CSF,
# grey matter, white matter, deep grey matter, lesion. Jittered per image.
_TISSUES = ("scalp", "skull", "diploe", "csf", "gm", "wm", "deep", "lesion")
_CONTRASTS = {
    #         scalp skull diploe csf   gm    wm    deep  lesion
    "T1":    (0.90, 0.08, 0.55, 0.10, 0.46, 0.70, 0.54, 0.32),
    "T2":    (0.55, 0.04, 0.35, 1.00, 0.58, 0.40, 0.47, 0.88),
    "PD":    (0.70, 0.06, 0.45, 0.80, 0.72, 0.56, 0.66, 0.85),
    "FLAIR": (0.50, 0.04, 0.35, 0.08, 0.58, 0.42, 0.50, 0.95),
}
_CONTRAST_P = (0.35, 0.3, 0.15, 0.2)


def _soft(x: np.ndarray, width: np.ndarray | float) -> np.ndarray:
    """A soft step: 1 where x > 0, 0 where x < 0, over about ``width``."""
    return expit(x / width)


def _sulci(rng: np.random.Generator, B: int, level: np.ndarray, rb: np.ndarray, ax: np.ndarray,
           ay: np.ndarray, wobble: tuple[np.ndarray, np.ndarray], egg: np.ndarray, step: float
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sulci as random curves from the brain surface inwards, in head coordinates (u, v).

    Returns the points (image index, u, v) of every sulcus, sampled every ``step``, and each
    point's CSF half-width (head units): ordinary sulci (curved, some branched), the
    interhemispheric fissure (front and back; through at high slices) and the Sylvian fissures.
    """
    amps, phases = wobble                                  # (4, B) each, modes 2..5

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
    half = rng.uniform(0.002, 0.006, bi.size) * rng.uniform(0.7, 2.2, B)[bi]     # atrophy
    curl = rng.uniform(0.15, 0.45, B)[bi]                 # wiggle (rad) about the start direction
    dev = rng.normal(0, 0.25, bi.size)
    # fissures: interhemispheric (front, back), Sylvian (right, left, slightly anterior)
    side = np.deg2rad(rng.uniform(8, 25, B))
    through = level == 0
    fis = np.where(through, 2 * rb * ay, rng.uniform(0.35, 0.5, B))
    syl = np.where(level == 2, rng.uniform(0.2, 0.3, B), rng.uniform(0.08, 0.15, B))
    b4 = np.repeat(np.arange(B), 4)
    th = np.concatenate([th, np.stack([np.full(B, np.pi / 2), np.full(B, -np.pi / 2),
                                       side, np.pi - side], 1).ravel()])
    depth = np.concatenate([depth, np.stack([fis, np.where(through, 0.0, fis * rng.uniform(
                                                 0.85, 1.1, B)),
                                             syl, syl * rng.uniform(0.85, 1.15, B)], 1).ravel()])
    syl_half = np.where(level == 2, rng.uniform(0.006, 0.02, B), rng.uniform(0.003, 0.008, B))
    half = np.concatenate([half, np.stack([rng.uniform(0.004, 0.01, B)] * 2 + [syl_half] * 2,
                                          1).ravel()])
    curl = np.concatenate([curl, np.stack([np.zeros(B)] * 2 + [np.full(B, 0.15)] * 2,
                                          1).ravel()])
    dev = np.concatenate([dev, np.stack([np.zeros(B)] * 2 + [rng.normal(0, 0.1, B)] * 2,
                                        1).ravel()])
    bi = np.concatenate([bi, b4])

    u0, v0 = surface(th, bi)
    phi0 = np.arctan2(-v0 / ay[bi] ** 2, -u0 / ax[bi] ** 2) + dev     # inwards, roughly normal
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
        pts = (np.concatenate([np.broadcast_to(bi[:, None], on.shape)[on],
                               np.broadcast_to(bi[j][:, None], bon.shape)[bon]]),
               np.concatenate([pu[on], bu[bon]]), np.concatenate([pv[on], bv[bon]]),
               np.concatenate([np.broadcast_to(half[:, None], on.shape)[on],
                               np.broadcast_to(half[j][:, None] * 0.8, bon.shape)[bon]]))
    else:
        pts = (np.broadcast_to(bi[:, None], on.shape)[on], pu[on], pv[on],
               np.broadcast_to(half[:, None], on.shape)[on])
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


def _brain_chunk(rng: np.random.Generator, B: int, shape: tuple[int, int],
                 tex_bank: np.ndarray) -> np.ndarray:
    """B brain-like axial slices in raw units (air 0, tissues ~0.05-1), before normalisation."""
    f32 = np.float32
    h, w = shape
    col = (slice(None), None, None)
    X, Y = _grid(shape)                                   # (1, 1, w), (1, h, 1); y up
    S = (min(h, w) - 1) / 2.0                             # pixels per unit
    px = 1.0 / S                                          # one pixel in these units

    # ---- head geometry ----------------------------------------------------------------------
    ay = rng.uniform(0.78, 0.9, B)                        # anterior-posterior semi-axis
    ax = ay * rng.uniform(0.74, 0.86, B)                  # left-right semi-axis
    rot = np.deg2rad(np.where(rng.random(B) < 0.9, rng.normal(0, 8, B),
                              rng.uniform(-180, 180, B)))
    tx, ty = rng.uniform(-0.04, 0.04, (2, B))
    egg = rng.uniform(0.0, 0.15, B)                       # wider at the back
    c, s = np.cos(rot), np.sin(rot)
    dx, dy = X - tx.astype(f32)[col], Y - ty.astype(f32)[col]
    u = dx * c.astype(f32)[col] + dy * s.astype(f32)[col]          # left-right
    v = dy * c.astype(f32)[col] - dx * s.astype(f32)[col]          # back (-) to front (+)
    vn = v / ay.astype(f32)[col]
    un = u / (ax.astype(f32)[col] * (1 - egg.astype(f32)[col] * vn))
    rho = np.sqrt(un * un + vn * vn)
    theta = np.arctan2(vn, un)
    amps = rng.uniform(0, 0.008, (4, B))                  # head outline irregularity, modes 2-5
    phases = rng.uniform(0, 2 * np.pi, (4, B))
    wob = np.ones_like(rho)
    for i in range(4):
        wob += amps[i].astype(f32)[col] * np.cos((i + 2) * theta + phases[i].astype(f32)[col])
    rho /= wob
    rpx = np.sqrt(ax * ay) * S                            # ~head radius in pixels
    e = (0.6 / rpx).astype(f32)[col]                      # soft edges of ~0.6 px, head units
    depth = 1 - rho                                       # below the scalp surface

    # layers (fractions of the head radius): scalp, skull (with diploe), outer CSF
    t_scalp = rng.uniform(0.035, 0.065, B).astype(f32)[col]
    t_skull = rng.uniform(0.04, 0.075, B).astype(f32)[col]
    t_csf = rng.uniform(0.008, 0.025, B).astype(f32)[col]
    rb = 1 - (t_scalp + t_skull + t_csf)                  # brain radius (head units)
    d = rb - rho                                          # depth below the brain surface

    # ---- intensities ------------------------------------------------------------------------
    kind = rng.choice(len(_CONTRASTS), B, p=_CONTRAST_P)
    table = np.array(list(_CONTRASTS.values()), np.float64)[kind]
    table = table * rng.uniform(0.9, 1.1, table.shape)
    I = {name: table[:, k].astype(f32)[col] for k, name in enumerate(_TISSUES)}

    # ---- cortex: sulci as curves, grey matter within a cortical thickness of CSF ---------------
    level = rng.choice(3, B, p=(0.25, 0.4, 0.35))         # high, ventricle bodies, basal ganglia
    pb, pu_, pv_, phalf = _sulci(rng, B, level, rb.reshape(B).astype(np.float64), ax, ay,
                                 (amps, phases), egg, step=0.5 * px)
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
    sd = np.empty((B, h, w), f32)                         # signed distance to sulcal CSF, px
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
    vsz = rng.uniform(0.7, 1.7, B)                        # ventricle size (age, atrophy)
    vsep = rng.uniform(0.025, 0.05, B)
    ell = []
    for sgn in (-1, 1):
        body, bg = level == 1, level == 2
        ell += [
            # lateral ventricle bodies: long crescents either side of the septum
            ("csf", body, sgn * (vsep + 0.05 * vsz), rng.uniform(-0.06, 0.02, B),
             0.05 * vsz, rng.uniform(0.26, 0.34, B), sgn * rng.uniform(3, 12, B),
             sgn * rng.uniform(0.5, 1.5, B)),
            # frontal horns (comma shapes), occipital horns
            ("csf", bg, sgn * (vsep + 0.04 * vsz), 0.2 + rng.uniform(-0.03, 0.03, B),
             0.04 * vsz, 0.11 * np.sqrt(vsz), sgn * rng.uniform(20, 35, B), sgn * 2.0),
            ("csf", bg & (rng.random(B) < 0.7), sgn * (0.1 + 0.03 * vsz),
             -0.33 + rng.uniform(-0.04, 0.03, B), 0.025 * vsz, 0.09 * np.sqrt(vsz),
             -sgn * rng.uniform(15, 35, B), 0.0),
            # caudate heads (against the frontal horns), lentiform nuclei, thalami
            ("deep", bg, sgn * (vsep + 0.08 * vsz + 0.05), 0.19, rng.uniform(0.045, 0.06, B),
             rng.uniform(0.07, 0.095, B), sgn * 25.0, 0.0),
            ("deep", bg, sgn * rng.uniform(0.24, 0.29, B), rng.uniform(0.0, 0.06, B),
             rng.uniform(0.05, 0.07, B), rng.uniform(0.13, 0.17, B),
             -sgn * rng.uniform(10, 22, B), -sgn * 1.0),
            ("deep", bg, sgn * rng.uniform(0.085, 0.11, B), rng.uniform(-0.17, -0.11, B),
             rng.uniform(0.07, 0.09, B), rng.uniform(0.085, 0.11, B),
             sgn * rng.uniform(0, 15, B), 0.0),
        ]
    ell += [("csf", level == 2, 0.0, rng.uniform(-0.14, -0.08, B), 0.01 * vsz, 0.07, 0.0, 0.0),
            ("csf", (level == 0) & (rng.random(B) < 0.3), rng.choice([-1, 1], B) * 0.07,
             rng.uniform(-0.05, 0.05, B), 0.02 * vsz, rng.uniform(0.05, 0.15, B), 0.0, 0.0)]
    # lesions: small, in the white matter
    nles = np.minimum(rng.poisson(rng.uniform(0, 2.0, B)), 6)
    for j in range(int(nles.max(initial=0))):
        rr_ = np.sqrt(rng.uniform(0.02, 1.0, B)) * 0.5
        aa = rng.uniform(0, 2 * np.pi, B)
        su = rng.uniform(0.012, 0.04, B)
        ell.append(("lesion", nles > j, rr_ * np.cos(aa), rr_ * np.sin(aa), su,
                    su * rng.uniform(0.6, 1.6, B), 0.0, 0.0))
    maps = {k: np.zeros((B, h, w), f32) for k in ("csf", "deep", "lesion")}
    rbv = rb.reshape(B)
    uh = u / ay.astype(f32)[col]                          # head units, both axes scaled by ay
    for target, on, cu, cv, su, sv, deg, bend in ell:
        idx = np.nonzero(np.asarray(on, bool) & np.ones(B, bool))[0]
        if idx.size == 0:
            continue
        cu, cv, su, sv, deg, bend = (np.broadcast_to(np.asarray(q, np.float64), (B,))[idx]
                                     for q in (cu, cv, su, sv, deg, bend))
        k = rbv[idx]                                      # structures scale with the brain
        cu, cv, su, sv = cu * k * ax[idx] / ay[idx], cv * k, su * k, sv * k
        ph = np.deg2rad(deg)
        cp, sp = np.cos(ph).astype(f32)[col], np.sin(ph).astype(f32)[col]
        du = uh[idx] - cu.astype(f32)[col]
        dv = vn[idx] - cv.astype(f32)[col]
        qu, qv = du * cp + dv * sp, dv * cp - du * sp
        qu -= bend.astype(f32)[col] * qv * qv             # bent (crescent) ellipses
        r = np.sqrt((qu / su.astype(f32)[col]) ** 2 + (qv / sv.astype(f32)[col]) ** 2)
        soft_w = e[idx] * {"csf": 1, "deep": 3, "lesion": 2}[target]   # deep nuclei: fuzzy
        wgt = _soft((1 - r) * np.sqrt(su * sv).astype(f32)[col], soft_w)
        maps[target][idx] = np.maximum(maps[target][idx], wgt)
    csf_deep, deep, lesion = maps["csf"], maps["deep"], maps["lesion"]

    # ---- compose ----------------------------------------------------------------------------
    brain = I["wm"] * (1 + 0.04 * _smooth_noise(rng, (B, h, w), 0.08 * min(h, w)))
    brain += (I["gm"] - brain) * gm
    brain += (I["deep"] - brain) * deep * (1 - gm)
    brain += (I["lesion"] - brain) * lesion * (1 - gm)
    brain += (I["csf"] - brain) * np.maximum(csf_sulci, csf_deep)
    tex = _crops(rng, tex_bank, B, h, w)
    brain *= 1 + rng.uniform(0.008, 0.025, B).astype(f32)[col] * tex
    # head layers from the outside in: scalp, skull (patchy diploe), outer CSF, brain
    img = I["scalp"] * _soft(depth, e)
    img += (I["skull"] - I["scalp"]) * _soft(depth - t_scalp, e)
    dip = _soft(t_skull * 0.22 - np.abs(depth - t_scalp - 0.5 * t_skull), e)
    dip *= np.clip(0.6 + 0.6 * _smooth_noise(rng, (B, h, w), 0.03 * min(h, w)), 0, 1)
    img += (I["diploe"] - I["skull"]) * dip
    img += (I["csf"] - img) * _soft(depth - t_scalp - t_skull, e)
    img += (brain - img) * _soft(d, e)
    # smooth multiplicative bias field (receive-coil sensitivity)
    cbias = rng.normal(0, 0.12, (5, B)).astype(f32)
    Xb, Yb = X + 0 * Y, Y + 0 * X
    img *= np.exp(cbias[0][col] * Xb + cbias[1][col] * Yb + cbias[2][col] * Xb * Yb
                  + cbias[3][col] * Xb * Xb + cbias[4][col] * Yb * Yb)
    img = _blur(img, 0.6, 0.6)                            # partial volume
    return np.maximum(img, 0)


def brain_phantoms(n: int, shape: tuple[int, int] = (64, 64), seed: int = 0, *,
                   shepp_logan_fraction: float = 0.1) -> np.ndarray:
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
        out[start:start + B] = imgs
    # per image: 99.8th percentile of the non-air pixels -> 1
    flat = out.reshape(n, -1)
    for i in range(n):
        fg = flat[i][flat[i] > 0.02 * flat[i].max(initial=0.0)]
        hi = float(np.percentile(fg, 99.8)) if fg.size else 1.0
        flat[i] /= max(hi, 1e-6)
    np.clip(out, 0.0, 1.0, out=out)
    return out


def brain_patches(n: int, patch: int = 64, slice_shape: tuple[int, int] = (256, 256),
                  seed: int = 0, *, per_slice: int = 8,
                  min_foreground: float = 0.05) -> np.ndarray:
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
        sat = fg.cumsum(1).cumsum(2)                     # summed-area table
        # candidates: a jittered grid of patch-sized cells in random order (patches of one
        # slice overlap little), then uniformly random positions
        gy, gx = np.meshgrid(np.arange(max(1, h // patch)), np.arange(max(1, w // patch)),
                             indexing="ij")
        cells = gy.size
        order = np.argsort(cut.random((batch, cells)), axis=1)
        jy, jx = cut.uniform(-0.5, 0.5, (2, batch, cells)) * patch
        oy_g = np.clip(np.rint(gy.ravel()[order] * patch + jy), 0, h - patch).astype(int)
        ox_g = np.clip(np.rint(gx.ravel()[order] * patch + jx), 0, w - patch).astype(int)
        extra = 4 * per_slice
        oy = np.concatenate([oy_g, cut.integers(0, h - patch + 1, (batch, extra))], axis=1)
        ox = np.concatenate([ox_g, cut.integers(0, w - patch + 1, (batch, extra))], axis=1)
        bi = np.arange(batch)[:, None]
        area = (sat[bi, oy + patch, ox + patch] - sat[bi, oy, ox + patch]
                - sat[bi, oy + patch, ox] + sat[bi, oy, ox])
        ok = area >= min_foreground * patch * patch
        rank = np.cumsum(ok, axis=1)
        take = ok & (rank <= per_slice)
        bsel, tsel = np.nonzero(take)
        bsel, tsel = bsel[: n - got], tsel[: n - got]
        rows = oy[bsel, tsel][:, None, None] + np.arange(patch)[None, :, None]
        cols = ox[bsel, tsel][:, None, None] + np.arange(patch)[None, None, :]
        out[got:got + bsel.size] = slices[bsel[:, None, None], rows, cols]
        got += bsel.size
        barren = 0 if bsel.size else barren + 1
        if barren >= 20:
            raise ValueError(f"no patch of {patch}x{patch} pixels has {min_foreground:.0%} "
                             "of foreground; lower min_foreground.")
    return out
