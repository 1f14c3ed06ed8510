"""``microscopy``: deconvolution, denoising and inpainting of held-out fluorescence nuclei.

Test images (64x64, in [0, 1]): procedural nuclei from seed 999 (``nuclei-vae`` was trained on
seed 0) and the four quadrants of the real ``sample_data/nuclei.tif`` crop, denoised by
non-local means (the raw crop's camera noise would cap every PSNR; see
:func:`._common.real_nuclei`). Tasks (:data:`._common.TASKS`):

- deconvolution: Gaussian blur sigma 2 px, Poisson noise at 100 photons (the brightest pixel of
  the blurred image);
- denoising: Poisson noise at 20 photons;
- inpainting: 50% of the pixels kept at random, Gaussian noise std 0.05.

Our methods: ``csgm`` (``nuclei-vae``, restart 0 warm-started at the encoder's code of
``A^T y``), ``sparse-gen`` (``nuclei-vae``, pixel basis), ``dip`` and ``tv``. scikit-image
baselines, none tuned on the ground truth:

- ``richardson_lucy`` with the iteration count chosen by Poisson data thinning
  (:func:`richardson_lucy_thinned`);
- ``denoise_tv_chambolle`` with its weight chosen by Poisson data thinning
  (:func:`tv_chambolle_thinned`);
- ``denoise_wavelet`` (BayesShrink, soft thresholds) on the Anscombe transform of the counts,
  where the noise is about N(0, 1), with the closed-form unbiased inverse
  (:func:`wavelet_anscombe`);
- ``inpaint_biharmonic`` given the mask.

One more classical baseline, not scikit-image's: Richardson-Lucy made exact at the zero
boundary of the ``blur`` operator (:func:`richardson_lucy_normalised`; scikit-image's update
lacks the division by ``A^T 1``, and its errors pile up along the border), with the same
thinning rule. The task's second target compares the generator methods with it.
These baselines and the thinning rule below live in :mod:`._microscopy_baselines`.

Poisson data thinning (Leiner, Duan, Wasserman, Ramdas 2023): the photon counts ``c`` are split
binomially into two independent Poisson halves ``c1 + c2``; a method runs on ``c1`` with each
candidate setting and the setting whose estimate best predicts ``c2`` (lowest Poisson deviance)
is chosen. It uses the measurement and the photon scale (counts per image unit, the camera gain
a microscopist calibrates) only.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from . import Result, markdown_table
from ._common import TASKS, held_out_nuclei, image_grid, median, real_nuclei, scores, solve

# the baselines live in ._microscopy_baselines; imported here for the experiment and re-exported
# (real_nuclei, tests and benchmarks import them from this module)
from ._microscopy_baselines import (  # noqa: F401
    RL_ITERATIONS,
    RL_NORMALISED,
    baseline,
    poisson_deviance,
    richardson_lucy_normalised,
    richardson_lucy_thinned,
    thinned_choice,
    tv_chambolle_thinned,
    wavelet_anscombe,
)

TASK_NAMES = ("deconvolution", "denoising", "inpainting")
#: Our methods, in table order; the first two use the trained prior.
OURS = ("csgm", "sparse-gen", "dip", "tv")
GENERATIVE = ("csgm", "sparse-gen")
#: The scikit-image baselines of each task.
BASELINES: dict[str, tuple[str, ...]] = {
    "deconvolution": ("richardson_lucy",),
    "denoising": ("denoise_tv_chambolle", "denoise_wavelet"),
    "inpainting": ("inpaint_biharmonic",),
}
#: Not scikit-image: :data:`RL_NORMALISED`, the fair classical baseline of deconvolution.
EXTRA: dict[str, tuple[str, ...]] = {"deconvolution": (RL_NORMALISED,)}
GROUPS = ("procedural", "real")
PRIOR = "nuclei-vae"
#: The margin of the deconvolution check (dB).
MARGIN_DB = 1.0


@dataclass(frozen=True)
class Sizes:
    """How much work a run does.

    Attributes
    ----------
    procedural, real : int
        Held-out procedural images and real quadrants (at most 4).
    restarts : int
        Random starts of ``csgm`` (one batch); ``sparse-gen`` runs one start (more did not
        change its result in trials).
    steps : int
        Adam steps of ``csgm`` and ``sparse-gen``.
    dip_steps : int
        ``dip``'s step limit (its held-out early stopping usually ends it sooner).
    """

    procedural: int
    real: int
    restarts: int
    steps: int
    dip_steps: int


# full: about 20 s per image and task on one thread, most of it dip
FULL = Sizes(procedural=4, real=4, restarts=4, steps=500, dip_steps=1200)
QUICK = Sizes(procedural=1, real=1, restarts=2, steps=100, dip_steps=100)


# -- the experiment ------------------------------------------------------------------------


def method_options(method: str, sizes: Sizes, prior: Any) -> dict[str, Any]:
    """The keyword arguments of :func:`napari_genprior.reconstruct` for ``method``."""
    if method == "csgm":
        return {"prior": prior, "restarts": sizes.restarts, "steps": sizes.steps, "init": "encoder"}
    if method == "sparse-gen":
        return {"prior": prior, "steps": sizes.steps}
    if method == "dip":
        return {"steps": sizes.dip_steps}
    return {}


def _one(
    task: str, x: np.ndarray, seed: int, sizes: Sizes, prior: Any, device: str
) -> dict[str, dict[str, Any]]:
    """Every method of ``task`` on one image: ``{method: {"psnr", "ssim", "seconds", "image",
    "chose"}}`` (plus ``measurement`` for deconvolution and denoising)."""
    import time

    import torch

    A, y = TASKS[task].measure(x, seed)
    out: dict[str, dict[str, Any]] = {}
    if task != "inpainting":
        out["measurement"] = {**scores(x, y), "seconds": 0.0, "image": y, "chose": {}}
    for method in OURS:
        r = solve(x, y, A, method, seed=seed, device=device, **method_options(method, sizes, prior))
        chose = {k: r["params"][k] for k in ("stopped_at", "lam", "iterations") if k in r["params"]}
        out[method] = {**{k: r[k] for k in ("psnr", "ssim", "seconds", "image")}, "chose": chose}
    with torch.no_grad():
        peak = float(A(torch.from_numpy(x)).max())
    for name in BASELINES[task] + EXTRA.get(task, ()):
        t0 = time.perf_counter()
        im, chose = baseline(name, y, A, TASKS[task].noise.get("photons"), peak)
        out[name] = {
            **scores(x, im),
            "seconds": time.perf_counter() - t0,
            "image": im,
            "chose": chose,
        }
    return out


def _table(per: dict[str, dict[str, list[dict]]]) -> str:
    """Methods x (PSNR, SSIM per group, seconds): medians over images."""
    methods = list(per)
    header = ["method"] + [f"{k} {g}" for g in GROUPS for k in ("PSNR", "SSIM")] + ["seconds"]
    rows = []
    for m in methods:
        row: list[Any] = [m]
        for g in GROUPS:
            runs = per[m][g]
            row += [median([r["psnr"] for r in runs]), median([r["ssim"] for r in runs])]
        row.append(
            median([r["seconds"] for g in GROUPS for r in per[m][g]])
            if m != "measurement"
            else None
        )
        rows.append(row)
    return markdown_table(header, rows, fmt="{:.3g}")


def run(quick: bool, device: str, seed: int) -> Result:
    """Deconvolution, denoising and inpainting of held-out nuclei: ours vs scikit-image.

    Parameters
    ----------
    quick : bool
        Small sizes (:data:`QUICK`: one procedural and one real image, few steps) for a smoke
        test; else :data:`FULL`.
    device : str
        Torch device of the reconstructions.
    seed : int
        Offset of every seed: procedural image ``i`` uses ``seed + i`` (noise, masks and the
        methods' random choices), real quadrant ``i`` uses ``seed + 100 + i``.

    Returns
    -------
    Result
        One table per task (median PSNR/SSIM over images of each group), every image's scores
        and settings, and the figure ``examples`` (one real image per task).
    """
    from napari_genprior import api

    sizes = QUICK if quick else FULL
    prior = api.load_prior(PRIOR)
    real, sigma = real_nuclei(sizes.real)
    images = {"procedural": held_out_nuclei(sizes.procedural), "real": real}
    offsets = {"procedural": 0, "real": 100}
    # the figure's image: the real quadrant with the most signal (chosen from the clean
    # images, before any reconstruction), else the first procedural image
    shown = ("real", int(np.argmax([q.mean() for q in real]))) if real else ("procedural", 0)
    per: dict[str, dict[str, dict[str, list[dict]]]] = {}
    examples: dict[str, tuple[np.ndarray, dict[str, tuple[np.ndarray, float]]]] = {}
    for task in TASK_NAMES:
        per[task] = {}
        for g in GROUPS:
            for i, x in enumerate(images[g]):
                res = _one(task, x, seed + offsets[g] + i, sizes, prior, device)
                for m, r in res.items():
                    per[task].setdefault(m, {gg: [] for gg in GROUPS})[g].append(
                        {k: v for k, v in r.items() if k != "image"}
                    )
                if (g, i) == shown:
                    examples[task] = (x, {m: (r["image"], r["psnr"]) for m, r in res.items()})

    def med(task: str, m: str, g: str) -> float | None:
        return median([r["psnr"] for r in per[task][m][g]])

    checks: dict[str, bool] = {}
    margins: dict[str, dict[str, float]] = {}
    for g in GROUPS:
        if not images[g]:
            continue
        gen = max(med("deconvolution", m, g) for m in GENERATIVE)
        margins[g] = {
            "scikit-image": gen
            - max(med("deconvolution", m, g) for m in BASELINES["deconvolution"]),
            RL_NORMALISED: gen - med("deconvolution", RL_NORMALISED, g),
        }
        checks[
            f"deconvolution, {g}: best of csgm/sparse-gen >= best scikit-image baseline "
            f"+ {MARGIN_DB:g} dB (median PSNR)"
        ] = bool(margins[g]["scikit-image"] >= MARGIN_DB)
        checks[
            f"deconvolution, {g}: best of csgm/sparse-gen >= {RL_NORMALISED} "
            f"+ {MARGIN_DB:g} dB (median PSNR)"
        ] = bool(margins[g][RL_NORMALISED] >= MARGIN_DB)

    intro = (
        f"{len(images['procedural'])} procedural 64x64 nuclei images (seed 999; "
        f"`{PRIOR}` saw seed 0) and {len(images['real'])} quadrant(s) of the real "
        "`nuclei.tif` crop, denoised by non-local means (the raw crop's camera noise, "
        f"std {sigma:.3f}, would cap every PSNR near {20 * math.log10(1 / sigma):.1f} dB). "
        f"`csgm`: `{PRIOR}`, {sizes.restarts} restarts x {sizes.steps} Adam steps, encoder "
        f"warm start; `sparse-gen`: `{PRIOR}`, 1 start x {sizes.steps} steps; `dip`: at "
        f"most {sizes.dip_steps} steps with held-out early stopping; `tv`: weight chosen on "
        "held-out pixels (denoising: weight and stopping step by SURE). scikit-image baselines choose their settings by Poisson data "
        "thinning (no ground truth; see the module docstring). Medians over images; "
        "seconds: median wall clock per reconstruction (all images)."
    )
    text = [intro]
    for task in TASK_NAMES:
        text += ["", f"### {task}: {TASKS[task].describe()}", "", _table(per[task])]
    text += ["", _discussion(per, margins)]
    data = {
        "sizes": asdict(sizes),
        "prior": PRIOR,
        "real_noise_sigma": sigma,
        "tasks": {
            t: {"operator": TASKS[t].kind, **TASKS[t].params, **TASKS[t].noise} for t in TASK_NAMES
        },
        "baselines": {t: list(BASELINES[t] + EXTRA.get(t, ())) for t in TASK_NAMES},
        "per_image": per,
        "median_psnr": {
            t: {m: {g: med(t, m, g) for g in GROUPS} for m in per[t]} for t in TASK_NAMES
        },
        "deconvolution_margin_db": margins,
    }
    rows = []
    for task in TASK_NAMES:
        truth, recs = examples[task]
        rows.append(
            (task, [("truth", truth)] + [(f"{m} {p:.1f} dB", im) for m, (im, p) in recs.items()])
        )
    which = f"{'real quadrant' if shown[0] == 'real' else 'procedural image'} {shown[1]}"
    figures = {"examples": image_grid(rows, f"One example per task ({which}; PSNR)")}
    return Result(
        name="microscopy",
        title="Fluorescence nuclei: deconvolution, denoising and inpainting vs scikit-image",
        markdown="\n".join(text),
        data=data,
        figures=figures,
        checks=checks,
    )


def _discussion(
    per: dict[str, dict[str, dict[str, list[dict]]]], margins: dict[str, dict[str, float]]
) -> str:
    """A few sentences on who wins each task (from the medians)."""
    lines = []
    for task in TASK_NAMES:
        parts = []
        for g in GROUPS:
            meds = {
                m: median([r["psnr"] for r in per[task][m][g]])
                for m in per[task]
                if m != "measurement" and per[task][m][g]
            }
            if not meds:
                continue
            best = max(meds, key=meds.get)
            parts.append(f"{g}: {best} ({meds[best]:.2f} dB)")
        lines.append(f"- {task}, best median PSNR: " + "; ".join(parts) + ".")
    for base in (RL_NORMALISED, "scikit-image"):
        dec = ", ".join(f"{g} {v[base]:+.2f} dB" for g, v in margins.items())
        lines.append(
            f"- Deconvolution: margin of the best generator method (csgm/sparse-gen) "
            f"over {'the best ' + base + ' baseline' if base == 'scikit-image' else base}"
            f": {dec} (target >= +{MARGIN_DB:g} dB)."
        )
    sg = {
        t: median([r["psnr"] for g in GROUPS for r in per[t]["sparse-gen"][g]])
        for t in ("denoising", "inpainting")
    }
    lines.append(
        f"- sparse-gen (denoising {sg['denoising']:.1f} dB, inpainting {sg['inpainting']:.1f} "
        "dB, median over all images) runs with its default l1 weight, 0.1 x the median of "
        "|A^T y|: its sparse pixel deviation then absorbs the noise (denoising returns about "
        "the measurement) and, in inpainting, the misfit on the observed pixels, so G(z) is "
        "hardly fitted and the missing pixels stay wrong. csgm, which has no such deviation, "
        "does not have this failure."
    )
    lines.append(
        "- scikit-image's `richardson_lucy` is a weak baseline here: the `blur` operator "
        "treats the outside of the image as zero, so light near the border falls outside it, "
        "and skimage's update lacks the division by A^T 1 that makes Richardson-Lucy exact "
        "there; its errors pile up along the border (often below the blurred measurement's "
        f"own PSNR). `{RL_NORMALISED}` (:func:`richardson_lucy_normalised`, same thinning "
        "rule) is the same algorithm with that division: the fair classical baseline, and the "
        "second deconvolution target."
    )
    return "\n".join(lines)
