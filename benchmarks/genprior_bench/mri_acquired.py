"""``mri-acquired``: accelerated MRI of held-out real brain slices WITHOUT the inverse crime.

``real-mri`` and ``mri-multicoil`` measure a slice with the operator they reconstruct with: the
k-space of a real, non-negative image on the reconstruction's own grid (``real-mri``), or with
the phase and coil maps on that grid (``mri-multicoil``). A scanner's k-space is neither: it
samples a continuous object with a smooth phase (B0, receive coils), only up to the grid's
Nyquist frequency, through coil sensitivities that are smooth functions of space, with complex
thermal noise (Shimron et al., PNAS 2022, "Implicit data crimes").

The acquisition here goes by a path independent of :class:`~napari_genprior.operators.mri.MRI`
(numpy's FFT, nothing of the package's operators): each held-out slice (the images of
``real-mri``) is interpolated onto a grid :data:`FINER` times finer (cubic spline), given a
smooth random phase and, for multi-coil, birdcage coil sensitivities computed on that grid; its
k-space there is truncated to the reconstruction's grid (the central ``H x W`` frequencies),
complex noise of std :data:`NOISE_STD` is added and the mask applied. The reference is what a
scanner gives: the magnitude (single-coil) or the root-sum-of-squares (multi-coil) of the fully
sampled, noise-free truncated k-space, Gibbs ringing and all.

Reconstruction: single-coil with complex images (``complex_images=True``, as the HDF5 reader
reads a file), multi-coil with ESPIRiT maps estimated from the data. Methods and settings as in
``real-mri`` (``score``, ``csgm``, ``tv``, ``lasso-wavelet``, zero-filled) and
``mri-multicoil`` (and ``cg``); ``ia`` is left out (minutes a slice). The inverse-crime figures
of those two tables are printed beside (from their committed JSON). Nothing is tuned on the
ground truth.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import Result, markdown_table, real_mri
from ._common import image_grid, label, median_table, scores
from .mri_multicoil import smooth_phase

NOISE_STD = 0.005
FINER = 2
SINGLE = ("score", "csgm", "tv", "lasso-wavelet", "adjoint")
MULTI = ("score", "csgm", "tv", "lasso-wavelet", "cg", "adjoint")
GENERATIVE = ("score", "csgm")
#: the committed inverse-crime tables these settings restate
CRIME_TABLES = {"single": "real-mri.json", "multi": "mri-multicoil.json"}
RESULTS = Path(__file__).resolve().parents[3] / "benchmarks" / "results"


@dataclass(frozen=True)
class Sizes:
    """How much work a run does: images as in ``real-mri``'s :class:`~.real_mri.Sizes`; the
    settings ``(coils, acceleration, mask)`` (coils 0: single-coil) and the methods' steps."""

    images: int
    dipy: bool
    crop: int | None
    settings: tuple[tuple[int, int, str], ...]
    csgm_steps: int
    score_steps: int
    center_fraction: float = 0.08


FULL = Sizes(
    images=3,
    dipy=True,
    crop=None,
    settings=(
        (0, 4, "variable-density"),
        (0, 8, "equispaced"),
        (8, 4, "equispaced"),
        (8, 8, "equispaced"),
    ),
    csgm_steps=300,
    score_steps=100,
)
QUICK = Sizes(
    images=1,
    dipy=False,
    crop=128,  # ESPIRiT finds no maps on a 64x64 crop
    settings=((0, 4, "variable-density"), (4, 4, "equispaced")),
    csgm_steps=20,
    score_steps=10,
    center_fraction=0.16,
)


def _centred_fft(a: np.ndarray, inverse: bool = False) -> np.ndarray:
    axes = (-2, -1)
    fn = np.fft.ifft2 if inverse else np.fft.fft2
    return np.fft.fftshift(fn(np.fft.ifftshift(a, axes=axes), norm="ortho"), axes=axes)


def acquire(x: np.ndarray, coils: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(kspace, reference)``: the fully sampled noise-free k-space of ``x`` as a scanner
    would record it on ``x``'s grid (single-coil ``(H, W)``, else ``(coils, H, W)``), and the
    reference image a fully sampled scan gives (magnitude or root-sum-of-squares).

    ``x`` is interpolated onto a :data:`FINER` times finer grid, given a smooth phase (and
    coil sensitivities) there, transformed, and its central ``H x W`` frequencies kept (scaled
    so that intensities match ``x``'s): none of it goes through the package's operators.
    """
    from skimage.transform import resize

    from napari_genprior.operators.coils import birdcage_maps

    h, w = x.shape
    fine_shape = (FINER * h, FINER * w)
    fine = np.clip(resize(x.astype(np.float64), fine_shape, order=3), 0, None)
    obj = fine * np.exp(1j * smooth_phase(fine_shape, seed))  # the phase of a slice, not a grid's
    if coils:
        obj = birdcage_maps(fine_shape, coils) * obj
    k = _centred_fft(obj)
    top, left = (fine_shape[0] - h) // 2, (fine_shape[1] - w) // 2
    k = k[..., top : top + h, left : left + w] / FINER
    images = _centred_fft(k, inverse=True)
    reference = np.sqrt((np.abs(images) ** 2).sum(0)) if coils else np.abs(images)
    return k, reference.astype(np.float32)


def _options(method: str, sizes: Sizes, acceleration: int) -> dict[str, Any]:
    if method == "csgm":
        return {"prior": real_mri.PRIOR, "steps": sizes.csgm_steps, "init": "encoder"}
    if method == "score":
        rm = real_mri.FULL if sizes is FULL else real_mri.QUICK
        opts = real_mri.method_options("score", rm, acceleration)
        return opts if "sigma_max" in opts else {**opts, "steps": sizes.score_steps}
    return {}


def _one_setting(job: tuple) -> tuple[str, dict[str, list[dict[str, Any]]], list]:
    """Every method on every image at one setting (one process per setting, one thread)."""
    sizes, images, (coils, acc, mask), seed, device = job
    import torch

    from napari_genprior import api
    from napari_genprior.operators.coils import espirit_maps

    torch.set_num_threads(1)
    key = f"{'single-coil' if not coils else f'{coils} coils'} {acc}x {mask}"
    runs: dict[str, list[dict[str, Any]]] = {}
    example: list[tuple[str, np.ndarray]] = []
    rng = np.random.default_rng(seed + acc)
    for i, (name, x) in enumerate(images):
        k, ref = acquire(x, coils, seed + i)
        noise = rng.normal(size=(2, *k.shape)) * (NOISE_STD / np.sqrt(2))
        layout = api.make_operator(
            "mri",
            shape=x.shape,
            acceleration=acc,
            center_fraction=sizes.center_fraction,
            mask=mask,
            seed=seed + i,
            complex_images=True,
        )
        y = ((k + noise[0] + 1j * noise[1]) * layout.mask).astype(np.complex64)
        if coils:
            A = api.make_operator(
                "mri",
                shape=x.shape,
                mask=layout.mask[0],
                coils=espirit_maps(y),
                acceleration=acc,
                center_fraction=sizes.center_fraction,
            )
        else:
            A = layout
        for m in MULTI if coils else SINGLE:
            t0 = time.perf_counter()
            rec = api.reconstruct(y, A, m, seed=seed + i, device=device, **_options(m, sizes, acc))
            seconds = time.perf_counter() - t0
            image = np.abs(rec.image)
            runs.setdefault(m, []).append({"image": name, **scores(ref, image), "seconds": seconds})
            print(f"  {name} {key} {m}: {runs[m][-1]['psnr']:.2f} dB {seconds:.1f} s", flush=True)
            if i == 0:
                example.append((label(m), image.astype(np.float32)))
        if i == 0:
            example.insert(0, ("reference", ref))
    return key, runs, example


def _crime_figures(coils: int, acc: int, mask: str) -> dict[str, float]:
    """The committed inverse-crime medians of the same setting (empty when there are none)."""
    path = RESULTS / CRIME_TABLES["multi" if coils else "single"]
    if not path.exists():
        return {}
    medians = json.loads(path.read_text())["data"]["medians"]
    return {m: v["psnr"] for m, v in medians.get(f"{acc}x {mask}", {}).items()}


def run(quick: bool, device: str, seed: int) -> Result:
    """Median PSNR/SSIM and seconds per method and setting, beside the inverse-crime tables."""
    from concurrent.futures import ProcessPoolExecutor

    sizes = QUICK if quick else FULL
    images = real_mri.held_out_slices(
        real_mri.Sizes(sizes.images, sizes.dipy, sizes.crop, (), 0, 0, 0)
    )
    jobs = [(sizes, images, s, seed, device) for s in sizes.settings]
    with ProcessPoolExecutor(max_workers=2) as pool:  # one core each
        results = list(pool.map(_one_setting, jobs))
    runs = {key: by_m for key, by_m, _ in results}
    med = median_table(runs)
    rows, checks, crime = [], {}, {}
    for (coils, acc, mask), (key, by_m) in zip(sizes.settings, med.items()):
        crime[key] = _crime_figures(coils, acc, mask) if not quick else {}
        for m, v in by_m.items():
            before = crime[key].get(m)
            rows.append(
                [key, label(m), f"{v['psnr']:.2f} / {v['ssim']:.3f}", f"{v['seconds']:.3g}"]
                + [f"{before:.2f}" if before is not None else "-"]
            )
        best_gen = max(by_m[m]["psnr"] for m in GENERATIVE)
        best_cls = max(v["psnr"] for m, v in by_m.items() if m not in GENERATIVE)
        checks[f"{key}: tv beats zero-filled"] = by_m["tv"]["psnr"] > by_m["adjoint"]["psnr"]
        checks[f"{key}: best generative >= best classical (median PSNR)"] = best_gen >= best_cls
    header = ["setting", "method", "PSNR / SSIM", "seconds", "with the inverse crime (PSNR)"]
    names = ", ".join(n for n, _ in images)
    text = [
        f"{len(images)} held-out real slices ({names}; {images[0][1].shape[0]}x"
        f"{images[0][1].shape[1]}), acquired without the inverse crime: interpolated onto a "
        f"{FINER}x finer grid, a smooth random phase (and birdcage coils) there, k-space "
        f"truncated to the slice's grid, complex noise std {NOISE_STD}; references are the "
        "fully sampled noise-free magnitude / root-sum-of-squares. Single-coil "
        "reconstructions model complex images; multi-coil ones use ESPIRiT maps from the "
        "data. Methods as in `real-mri` / `mri-multicoil` (`score` at 8x with their "
        "validation-chosen options). Medians over images, one CPU thread per setting. The "
        "last column is the same method's median in `real-mri` / `mri-multicoil` (measured "
        "by our own operator on the slice's own grid; no phase for single-coil).",
        "",
        markdown_table(header, rows),
        "",
    ]
    example = results[0][2]
    fig = image_grid([(results[0][0], example)], "held-out slice") if example else None
    return Result(
        name="mri-acquired",
        title="Accelerated MRI without the inverse crime: finer-grid k-space with a phase, "
        "truncated, complex noise",
        markdown="\n".join(text),
        data={
            "sizes": asdict(sizes),
            "images": [n for n, _ in images],
            "runs": runs,
            "medians": med,
            "with_inverse_crime": crime,
        },
        figures={"example": fig} if fig is not None else {},
        checks=checks,
    )
