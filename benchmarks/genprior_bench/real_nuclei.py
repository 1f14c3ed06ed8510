"""``real-nuclei``: deconvolution, inpainting and denoising of REAL fluorescence nuclei tiles
(issue 14's bars).

Images: the four 64x64 quadrants of ``sample_data/nuclei.tif`` (a crop of stardist's real
``img2d.tif`` from the quadrant that ``nuclei-vae`` never saw), denoised by non-local means to
serve as the clean reference (the raw crop's own camera noise would cap every PSNR; see
:func:`._common.real_nuclei`). Tasks (:data:`._common.TASKS`): deconvolution (blur sigma 2,
Poisson at 100 photons; measured by our own operator with a zero border, and again without
that inverse crime: tiles cut from the whole reference blurred by scipy, :data:`FIELD`),
inpainting (50% of pixels, noise std 0.05), denoising (Poisson at 20
photons). Methods: ``ia`` and ``csgm`` (``nuclei-vae``, encoder warm start), ``dip``, ``tv``,
and for deconvolution scikit-image's Richardson-Lucy with its iteration count chosen by
Poisson thinning (never the truth). Medians over tiles; seconds are wall clock.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from . import Result, markdown_table
from ._common import TASKS, image_grid, label, median_table, real_nuclei, scores, solve

PRIOR = "nuclei-vae"
#: Deconvolution without the inverse crime: the whole 128x128 reference blurred by scipy (sigma
#: 2), each tile cut from it (light from its neighbours reaches its border), Poisson at 100
#: photons; every method with its defaults (the unknown border, the camera fitted).
FIELD = "deconvolution, tiles cut from the blurred field"
#: task -> methods (``richardson_lucy`` is the thinned scikit-image baseline, ``bm3d`` BM3D
#: through the Anscombe transform: :data:`BASELINES`)
METHODS = {
    FIELD: ("ia", "csgm", "dip", "tv", "richardson-lucy"),
    "deconvolution": ("ia", "csgm", "dip", "tv", "richardson_lucy"),
    "inpainting": ("ia", "csgm", "dip", "tv"),
    "denoising": ("ia", "csgm", "dip", "tv", "bm3d"),
}
#: the classical tools run outside the package (pip ``bm3d`` for BM3D)
BASELINES = ("richardson_lucy", "bm3d")


@dataclass(frozen=True)
class Sizes:
    """Tiles, steps and restarts of a run."""

    tiles: int
    csgm_steps: int
    ia_steps: int
    dip_steps: int
    restarts: int
    tasks: tuple[str, ...]


FULL = Sizes(
    tiles=4,
    csgm_steps=300,
    ia_steps=800,
    dip_steps=2000,
    restarts=4,
    tasks=(FIELD, "deconvolution", "inpainting", "denoising"),
)
QUICK = Sizes(tiles=1, csgm_steps=20, ia_steps=40, dip_steps=40, restarts=1, tasks=(FIELD,))


def method_options(method: str, sizes: Sizes) -> dict[str, Any]:
    if method == "csgm":
        return {
            "prior": PRIOR,
            "steps": sizes.csgm_steps,
            "restarts": sizes.restarts,
            "init": "encoder",
        }
    if method == "ia":
        return {
            "prior": PRIOR,
            "steps": sizes.ia_steps,
            "restarts": sizes.restarts,
            "init": "encoder",
        }
    if method == "dip":
        return {"steps": sizes.dip_steps}
    return {}


def field_measurement(i: int, seed: int):
    """``(A, y)`` for tile ``i``: cut from the whole reference blurred by scipy (:data:`FIELD`)."""
    from scipy import ndimage

    from napari_genprior import api

    from ._common import QUADRANTS, _real_nuclei_reference

    clean = _real_nuclei_reference()[0].astype(np.float64)
    blurred = ndimage.gaussian_filter(clean, 2.0, mode="reflect", truncate=6.0)
    sl = QUADRANTS[i]
    peak = float(blurred[sl].max())
    rng = np.random.default_rng(seed)
    y = (rng.poisson(blurred[sl] * 100 / peak) * peak / 100).astype(np.float32)
    return api.make_operator("blur", shape=(64, 64), sigma=2.0), y


def run(quick: bool, device: str, seed: int) -> Result:
    import time

    import torch

    from .microscopy import baseline

    sizes = QUICK if quick else FULL
    tiles, sigma = real_nuclei(sizes.tiles)
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    rows_fig = []
    for task in sizes.tasks:
        t = TASKS.get(task)
        cells: list[tuple[str, np.ndarray]] = []
        for i, x in enumerate(tiles):
            A, y = field_measurement(i, seed + i) if t is None else t.measure(x, seed=seed + i)
            for m in METHODS[task]:
                if m in BASELINES:
                    t0 = time.perf_counter()
                    peak = float(A(torch.from_numpy(x)).max())
                    im, chose = baseline(m, y, A, t.noise["photons"], peak)
                    r = {
                        **scores(x, im),
                        "seconds": time.perf_counter() - t0,
                        "image": im,
                        "params": chose,
                    }
                else:
                    r = solve(x, y, A, m, seed=seed + i, device=device, **method_options(m, sizes))
                runs.setdefault(task, {}).setdefault(m, []).append(
                    {"psnr": r["psnr"], "ssim": r["ssim"], "seconds": r["seconds"]}
                )
                if i == 0:
                    cells.append((label(m), np.asarray(r["image"], np.float32)))
        rows_fig.append((task, [("truth", tiles[0])] + cells))

    med = median_table(runs)
    checks: dict[str, bool] = {}
    text = [
        f"{len(tiles)} real 64x64 tiles (quadrants of `nuclei.tif`, held out from `{PRIOR}`'s "
        f"training), non-local-means-denoised as the reference (raw camera noise "
        f"{sigma:.3f}). `ia` at most {sizes.ia_steps} steps and `csgm` {sizes.csgm_steps} "
        f"steps, {sizes.restarts} restart(s), encoder warm start; `dip` at most "
        f"{sizes.dip_steps} steps; `tv` and `dip` stop or choose weights on held-out "
        "measurements (`tv` denoising: weight and stop by SURE); Richardson-Lucy's iteration "
        "count by Poisson thinning; BM3D (pip `bm3d`) through the Anscombe transform at its "
        "setting for it (sigma 1, exact unbiased inverse). Medians over tiles.",
        "",
    ]
    for task, by_m in med.items():
        text += [
            f"### {task}: "
            + (
                "blur sigma 2 px over the whole 128x128 field, Poisson at 100 photons; the "
                "methods' defaults (unknown border, camera fitted): no inverse crime"
                if task == FIELD
                else TASKS[task].describe() + " (our own operator, zero border)"
                if task == "deconvolution"
                else TASKS[task].describe()
            ),
            "",
            markdown_table(
                ["method", "PSNR", "SSIM", "seconds"],
                [[label(m), v["psnr"], v["ssim"], v["seconds"]] for m, v in by_m.items()],
                fmt="{:.3g}",
            ),
            "",
        ]
        best = max(("ia", "csgm"), key=lambda m: by_m[m]["psnr"])  # the best generative method
        gen = by_m[best]["psnr"]
        if task in ("deconvolution", FIELD):
            rl = "richardson_lucy" if task == "deconvolution" else "richardson-lucy"
            others = max(by_m[m]["psnr"] for m in (rl, "tv", "dip"))
            checks[f"{task}: best generative ({best}) >= max(Richardson-Lucy, tv, dip) + 1 dB"] = (
                gen >= others + 1.0
            )
        else:
            checks[f"{task}: best generative ({best}) >= dip + 0.5 dB"] = (
                gen >= by_m["dip"]["psnr"] + 0.5
            )
            checks[f"{task}: best generative ({best}) in at most half of dip's time"] = (
                by_m[best]["seconds"] <= 0.5 * by_m["dip"]["seconds"]
            )
    fig = image_grid(rows_fig, "real nuclei tile 1")
    return Result(
        name="real-nuclei",
        title="Real fluorescence nuclei: ia and csgm against Richardson-Lucy, tv, dip",
        markdown="\n".join(text),
        data={
            "sizes": asdict(sizes),
            "prior": PRIOR,
            "runs": runs,
            "medians": med,
            "camera_noise": sigma,
        },
        figures={"examples": fig},
        checks=checks,
    )
