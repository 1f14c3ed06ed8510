"""``self-supervised``: priors learned from noisy measurements alone, on real nuclei (issue 36).

Images: the quadrant ``[256:512, 0:256]`` of stardist's real ``img2d.tif`` (BBBC038
fluorescence nuclei), which no bundled prior trained on (``nuclei-score`` and ``nuclei-vae``
trained on the rest of the image), as four 128x128 tiles. The raw image carries camera noise,
so the reference is the quadrant denoised by non-local means, as in ``real-nuclei``.

Denoising: the quadrant recorded by a camera at ``photons`` expected photoelectrons at the
brightest pixel, ``Poisson(photons * x) + N(0, READ_NOISE^2)`` (electrons; offset 0, gain 1,
known), at 5, 20 and 100 photons; every method denoises the whole 256x256 record, as a user
denoises a whole image (until 7 December 2026 ``score`` and ``tv`` denoised each tile apart
while BM3D saw the quadrant: the own prior lost 0.75 dB at 20 photons by it), and each tile of
the result is scored. Methods:

- ``score (own)``: :func:`napari_genprior.train_prior` (``kind="score", noisy=True``) on the
  noisy quadrant itself, nothing else (the user's own noisy data; :data:`OWN_TRAINING` sets
  its size), then method ``score``, which mixes the prior's estimate with ``tv``'s by a weight
  fitted on a split of the record (``combine``), then filters the record by the empirical
  Wiener filter under that estimate (``wiener``; both its defaults); ``score (own, not
  Wiener-filtered)``: ``wiener=False``; ``score (own, prior alone)``: neither;
- ``score (nuclei-score)``: the bundled prior, learned from the rest of the real image's own
  noisy pixels alone (``scripts/train_bundled_priors.py nuclei-score``);
- BM3D (pip ``bm3d``) through the generalised Anscombe transform at its known noise (sigma 1
  there) and the closed-form unbiased inverse;
- Noise2Void (CAREamics, trained on the same noisy quadrant; run in its own environment,
  ``GENPRIOR_N2V_PYTHON``, since CAREamics pins older numpy and zarr);
- ``tv`` with its weight and stop by SURE (the package's default for denoising), and, as an
  ablation, the record Wiener-filtered under ``tv``'s estimate (``score``'s last step without
  the prior, :func:`tv_wiener`).

Deconvolution, without the inverse crime: the whole reference quadrant blurred by scipy
(Gaussian sigma 2, reflecting border), tiles cut from it (light from outside reaches their
borders), Poisson at 100 photons; ``score`` with ``nuclei-score``, ``score (own, through the
blur)``: a prior trained (``operator=`` the blur) on nothing but the whole blurred noisy record
(256x256), which then denoises each tile and deconvolves it (the user's own blurred data), ``tv``
(its early rule) and Richardson-Lucy at its best count (chosen on the truth: RL's best case),
all with the blur's unknown border and the camera given.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import Result, markdown_table
from ._common import median, scores

#: Read noise of the simulated camera, electrons rms.
READ_NOISE = 1.0
PHOTONS = (5, 20, 100)
TILES = [(slice(a, a + 128), slice(b, b + 128)) for a in (0, 128) for b in (0, 128)]
CAMERA = {"offset": 0.0, "gain": 1.0, "read_noise": READ_NOISE}
#: Training on the user's own noisy quadrant (256x256): epochs, patches per epoch, batch.
OWN_TRAINING = {"epochs": 24, "patches_per_epoch": 480, "batch_size": 16, "channels": 32}
QUICK_TRAINING = {"epochs": 2, "patches_per_epoch": 64, "batch_size": 16, "channels": 8}
#: Noise2Void: epochs of CAREamics' default N2V on the same quadrant (it takes its 16 64x64
#: patches per epoch), about the time ``score (own)`` takes to train.
N2V_EPOCHS = 300
RL_COUNTS = (5, 10, 20, 40, 80, 160)
PRIOR = "nuclei-score"


def learned_prior() -> Any:
    """The prior learned from the real image's other noisy pixels: ``nuclei-score`` where it is
    bundled, else the file ``GENPRIOR_NUCLEI_SCORE`` names (what
    ``scripts/train_bundled_priors.py nuclei-score`` writes), else None (not measured)."""
    import napari_genprior as ngp

    if PRIOR in ngp.list_priors():
        return PRIOR
    path = os.environ.get("GENPRIOR_NUCLEI_SCORE")
    return ngp.load_prior(path) if path else None


def reference() -> tuple[np.ndarray, float]:
    """The held-out quadrant scaled to [0, 1] and denoised by non-local means, and the raw
    quadrant's noise std."""
    from skimage.restoration import denoise_nl_means, estimate_sigma

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    from train_bundled_priors import HELD_OUT, load_stardist_img2d

    raw = load_stardist_img2d().astype(np.float64)[HELD_OUT]
    lo, hi = np.percentile(raw, [1, 99.8])
    raw = np.clip((raw - lo) / (hi - lo), 0, 1)
    sigma = float(estimate_sigma(raw))
    clean = denoise_nl_means(
        raw, h=0.8 * sigma, sigma=sigma, patch_size=5, patch_distance=6, fast_mode=True
    )
    return np.clip(clean, 0, 1), sigma


def camera_record(x: np.ndarray, photons: float, seed: int) -> np.ndarray:
    """Electrons recorded from the image ``x`` (in [0, 1]) at ``photons`` at its brightest."""
    rng = np.random.default_rng(seed)
    return (rng.poisson(photons * x) + rng.normal(0, READ_NOISE, x.shape)).astype(np.float32)


def bm3d_gat(y: np.ndarray) -> np.ndarray:
    """BM3D through the generalised Anscombe transform for Poisson counts with Gaussian read
    noise (gain 1, known read noise), sigma 1 there, and the closed-form approximation of the
    exact unbiased inverse (Makitalo and Foi 2011, 2013), in electrons."""
    import bm3d

    t = 2 * np.sqrt(np.maximum(y + 3 / 8 + READ_NOISE**2, 0))
    d = np.maximum(np.asarray(bm3d.bm3d(t, sigma_psd=1.0), np.float64), 1e-3)
    s = math.sqrt(1.5)
    inv = 0.25 * d**2 + 0.25 * s / d - 11 / 8 / d**2 + 0.625 * s / d**3 - 1 / 8
    return np.maximum(inv - READ_NOISE**2, 0)


def noise2void(y: np.ndarray, epochs: int, seed: int) -> tuple[np.ndarray | None, float, str]:
    """CAREamics' Noise2Void trained on ``y`` and applied to it, or None (and why) when its
    environment is not set up."""
    python = os.environ.get("GENPRIOR_N2V_PYTHON")
    if not python:
        return None, 0.0, "GENPRIOR_N2V_PYTHON not set"
    runner = Path(__file__).resolve().parents[1] / "n2v_runner.py"
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "y.npy", Path(tmp) / "d.npy"
        np.save(src, y)
        import torch

        out = subprocess.run(
            [python, str(runner), str(src), str(dst), str(epochs), "1", str(seed)]
            + [str(torch.get_num_threads())],
            capture_output=True,
            text=True,
            timeout=3600,
        )
        if out.returncode != 0:
            return None, 0.0, out.stderr[-500:]
        seconds = json.loads(out.stdout.strip().splitlines()[-1])["seconds"]
        return np.load(dst), seconds, "ok"


def _denoise_runs(clean, photons, quick, device, seed, log) -> dict[str, Any]:
    import napari_genprior as ngp

    y = camera_record(clean, photons, seed)
    A = ngp.make_operator("denoise", shape=y.shape)
    out: dict[str, Any] = {"methods": {}, "photons": photons}
    t0 = time.perf_counter()
    own = ngp.train_prior(
        y,
        kind="score",
        noisy=True,
        camera=CAMERA,
        device=device,
        seed=seed,
        patch_size=64,
        **(QUICK_TRAINING if quick else OWN_TRAINING),
    )
    out["own_training_seconds"] = time.perf_counter() - t0
    out["own_held_out_psnr"] = own.card["training"]["final_losses"].get("held-out PSNR")
    log(f"  {photons} photons: own prior trained in {out['own_training_seconds']:.0f} s")
    n2v = (None, 0.0, "quick run") if quick else noise2void(y, N2V_EPOCHS, seed)
    out["n2v"] = {"status": n2v[2], "training_seconds": n2v[1]}

    def add(name, image, seconds):
        rec = out["methods"].setdefault(name, [])
        for sl in TILES[: 1 if quick else 4]:
            rec.append({**scores(clean[sl], image[sl] / photons), "seconds": seconds})

    runs = (
        ("score (own)", own, {}),
        ("score (own, not Wiener-filtered)", own, {"wiener": False}),
        ("score (own, prior alone)", own, {"combine": False, "wiener": False}),
        (f"score ({PRIOR})", learned_prior(), {}),
    )
    for name, prior, options in runs:
        if prior is None:
            continue
        t = time.perf_counter()
        rec = ngp.reconstruct(
            y, A, method="score", prior=prior, camera=CAMERA, device=device, **options
        )
        add(name, rec.image, (time.perf_counter() - t) / 4)
        for key, weight in (("combined", "prior_weight"), ("wiener", "weight")):
            if key in rec.params:
                out.setdefault(weight, {})[name] = rec.params[key][weight]
    t = time.perf_counter()
    add("BM3D (GAT)", bm3d_gat(y), (time.perf_counter() - t) / 4)
    if n2v[0] is not None:
        add("Noise2Void (CAREamics)", n2v[0], n2v[1])
    t = time.perf_counter()
    im = ngp.reconstruct(y, A, method="tv", camera=CAMERA, device=device).image
    add("tv (SURE)", im, (time.perf_counter() - t) / 4)
    t = time.perf_counter()  # the Wiener step without any prior: what the prior adds to it
    add(
        "tv (SURE), then Wiener-filtered (no prior)",
        tv_wiener(y, im),
        (time.perf_counter() - t) / 4,
    )
    return out


def tv_wiener(y: np.ndarray, tv: np.ndarray) -> np.ndarray:
    """The record (electrons: Poisson plus the read noise, gain 1) filtered in full by
    ``score``'s empirical Wiener step itself, ``tv``'s estimate its pilot: the step without the
    prior (an ablation, not a method of the package)."""
    import torch

    from napari_genprior.solvers._score_direct import _wiener

    record = torch.from_numpy(np.asarray(y, np.float32))[None]
    pilot = torch.from_numpy(np.asarray(tv, np.float32))
    return _wiener(record, pilot, 1.0, READ_NOISE**2, 1.0).numpy()


def _deconvolution_runs(clean, quick, device, seed, log) -> tuple[dict[str, Any], dict]:
    from scipy import ndimage

    import napari_genprior as ngp

    photons = 100
    blurred = ndimage.gaussian_filter(clean, 2.0, mode="reflect", truncate=6.0)
    y_all = camera_record(blurred / blurred.max(), photons, seed)  # electrons
    A = ngp.make_operator("blur", shape=(128, 128), sigma=2.0)
    out: dict[str, list] = {}
    scale = photons / blurred.max()
    t0 = time.perf_counter()
    own = ngp.train_prior(
        y_all,
        kind="score",
        noisy=True,
        operator=ngp.make_operator("blur", shape=y_all.shape, sigma=2.0),
        camera=CAMERA,
        device=device,
        seed=seed,
        patch_size=64,
        **(QUICK_TRAINING if quick else OWN_TRAINING),
    )
    info = {
        "own_training_seconds": time.perf_counter() - t0,
        "own_held_out_psnr": own.card["training"]["final_losses"].get("held-out PSNR"),
    }
    log(
        f"  deconvolution: own prior trained through the blur in {info['own_training_seconds']:.0f} s"
    )
    for sl in TILES[: 1 if quick else 4]:
        y = y_all[sl]
        truth = clean[sl]
        for name, prior in (
            ("score (own, through the blur)", own),
            (f"score ({PRIOR})", learned_prior()),
        ):
            if prior is None:
                continue
            t = time.perf_counter()
            rec = ngp.reconstruct(y, A, method="score", prior=prior, camera=CAMERA, device=device)
            out.setdefault(name, []).append(
                {**scores(truth, rec.image / scale), "seconds": time.perf_counter() - t}
            )
        t = time.perf_counter()
        rec = ngp.reconstruct(y, A, method="tv", camera=CAMERA, device=device)
        out.setdefault("tv (early rule)", []).append(
            {**scores(truth, rec.image / scale), "seconds": time.perf_counter() - t}
        )
        best = None
        t = time.perf_counter()
        for k in RL_COUNTS[:2] if quick else RL_COUNTS:
            rec = ngp.reconstruct(y, A, method="richardson-lucy", steps=k, camera=CAMERA)
            s = {**scores(truth, rec.image / scale), "count": k}
            best = s if best is None or s["psnr"] > best["psnr"] else best
        best["seconds"] = time.perf_counter() - t
        out.setdefault("Richardson-Lucy (best count)", []).append(best)
    return out, info


def run(quick: bool, device: str, seed: int, log=print) -> Result:
    clean, sigma = reference()
    denoise = [
        _denoise_runs(clean, p, quick, device, seed + j, log)
        for j, p in enumerate(PHOTONS[:1] if quick else PHOTONS)
    ]
    deconv, deconv_info = _deconvolution_runs(clean, quick, device, seed, log)
    rows = []
    checks: dict[str, bool] = {}
    for d in denoise:
        med = {m: median([r["psnr"] for r in rs]) for m, rs in d["methods"].items()}
        for m, rs in d["methods"].items():
            rows.append(
                [
                    f"{d['photons']} photons",
                    m,
                    med[m],
                    median([r["ssim"] for r in rs]),
                    median([r["seconds"] for r in rs]),
                ]
            )
        if d["photons"] in (5, 20):  # the package's defaults, not the ablations
            ours = max(med.get(k, -math.inf) for k in ("score (own)", f"score ({PRIOR})"))
            for peer in ("BM3D (GAT)", "Noise2Void (CAREamics)"):
                if peer in med:
                    checks[f"{d['photons']} photons: +0.5 dB over {peer}"] = ours >= med[peer] + 0.5
    dmed = {m: median([r["psnr"] for r in rs]) for m, rs in deconv.items()}
    for m, rs in deconv.items():
        rows.append(
            [
                "deconvolution, 100 photons",
                m,
                dmed[m],
                median([r["ssim"] for r in rs]),
                median([r["seconds"] for r in rs]),
            ]
        )
    ours = max(v for k, v in dmed.items() if k.startswith("score"))
    for peer in ("tv (early rule)", "Richardson-Lucy (best count)"):
        checks[f"deconvolution: +1 dB over {peer}"] = ours >= dmed[peer] + 1
    own_seconds = max(
        [d["own_training_seconds"] for d in denoise] + [deconv_info["own_training_seconds"]]
    )
    checks["own training under 10 minutes (256x256)"] = own_seconds < 600
    text = [
        f"Held-out quadrant of stardist's real `img2d.tif` (raw camera noise {sigma:.3f}), "
        f"{'1 tile' if quick else 'four 128x128 tiles'}; reference: non-local means of the raw "
        f"quadrant. Camera: Poisson + read noise {READ_NOISE} e-, offset 0, gain 1 (known). "
        "PSNR and SSIM medians over tiles; seconds per tile (training excluded; the own "
        "prior's training time below). No method sees the reference except Richardson-Lucy's "
        "count, chosen on it.",
        "",
        markdown_table(["task", "method", "PSNR (dB)", "SSIM", "seconds"], rows),
        "",
        "Training on the noisy quadrant itself: "
        + ", ".join(
            f"{d['photons']} photons {d['own_training_seconds']:.0f} s (held-out PSNR "
            f"estimate {d['own_held_out_psnr']:.1f} dB); N2V: {d['n2v']['status']}"
            for d in denoise
        )
        + f"; through the blur (deconvolution, 100 photons) {deconv_info['own_training_seconds']:.0f}"
        f" s (held-out PSNR estimate {deconv_info['own_held_out_psnr']:.1f} dB, of the blurred "
        "images)",
        "",
        markdown_table(
            ["check", "held"], [[k, "PASS" if v else "FAIL"] for k, v in checks.items()]
        ),
    ]
    return Result(
        name="self-supervised",
        title="Priors learned from noisy measurements alone, on held-out real nuclei",
        markdown="\n".join(text),
        data={
            "denoising": denoise,
            "deconvolution": deconv,
            "deconvolution_training": deconv_info,
            "reference_noise": sigma,
        },
        checks=checks,
    )
