"""What the ``mri``, ``microscopy`` and ``speed`` experiments share.

- held-out test images (seeds the bundled priors never saw, and the real nuclei crop);
- :data:`TASKS`: each task's operator and noise, so that every experiment measures a task the
  same way (:meth:`Task.measure`);
- :func:`solve`: one call of :func:`napari_genprior.reconstruct` with its scores and seconds;
- :func:`scores`, :func:`median`, :func:`median_table`, and the figures :func:`image_grid` and :func:`line_plot`.

Images are float32 in [0, 1], so PSNR and SSIM use a data range of 1.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

#: Seeds of the held-out procedural images (the bundled priors were trained on seed 0).
NUCLEI_SEED = 999
BRAIN_SEED = 998
#: Display names of methods whose library name says little in a table.
LABELS = {"adjoint": "zero-filled", "bm3d": "BM3D (Anscombe)"}


# -- held-out images -----------------------------------------------------------------------


def held_out_nuclei(n: int, shape: tuple[int, int] = (64, 64)) -> list[np.ndarray]:
    """``n`` procedural nuclei images from :data:`NUCLEI_SEED` (never seen by ``nuclei-vae``)."""
    from napari_genprior.synthetic import nuclei_images

    return [np.asarray(x, np.float32) for x in nuclei_images(n, shape=shape, seed=NUCLEI_SEED)]


def held_out_brain(n: int, shape: tuple[int, int] = (256, 256)) -> list[np.ndarray]:
    """``n`` procedural brain slices from :data:`BRAIN_SEED` (never seen by ``mri-vae``)."""
    from napari_genprior.synthetic import brain_phantoms

    return [np.asarray(x, np.float32) for x in brain_phantoms(n, shape, seed=BRAIN_SEED)]


#: The four 64x64 quadrants of the 128x128 real nuclei crop: top-left, top-right, bottom-left,
#: bottom-right.
QUADRANTS = [(slice(a, a + 64), slice(b, b + 64)) for a in (0, 64) for b in (0, 64)]


@lru_cache(maxsize=1)
def _real_nuclei_reference() -> tuple[np.ndarray, float]:
    from skimage.restoration import denoise_nl_means, estimate_sigma

    from napari_genprior._io import NUCLEI, read_tiff, sample_path

    raw = read_tiff(sample_path(NUCLEI))[0].astype(np.float64)
    lo, hi = np.percentile(raw, [1, 99.8])
    raw = np.clip((raw - lo) / (hi - lo), 0, 1)
    sigma = float(estimate_sigma(raw))
    clean = denoise_nl_means(
        raw, h=0.8 * sigma, sigma=sigma, patch_size=5, patch_distance=6, fast_mode=True
    )
    return np.clip(clean, 0, 1).astype(np.float32), sigma


def real_nuclei(n: int = 4) -> tuple[list[np.ndarray], float]:
    """The first ``n`` 64x64 quadrants of the real nuclei crop, denoised, and its noise level.

    ``sample_data/nuclei.tif`` is a raw microscope image: scaled to [0, 1] between its 1st and
    99.8th percentiles it carries camera noise of std ``sigma`` (scikit-image's
    ``estimate_sigma``), which caps any PSNR against it near ``20 log10(1 / sigma)`` dB. The
    reference is therefore the crop denoised by non-local means (``h = 0.8 sigma``; not a
    method under test), as in ``benchmarks/quality.py``.

    Returns
    -------
    quadrants : list of ndarray
        Top-left, top-right, bottom-left, bottom-right (the first ``n`` of them).
    sigma : float
        The raw crop's estimated noise std (in [0, 1] units).
    """
    clean, sigma = _real_nuclei_reference()
    return [clean[q].copy() for q in QUADRANTS[:n]], sigma


# -- tasks ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """How one task is measured: an operator and its noise.

    Attributes
    ----------
    kind : str
        The operator kind (:func:`napari_genprior.make_operator`).
    params : dict
        The operator's keywords besides ``shape`` and ``seed``.
    noise : dict
        Keywords of :meth:`Operator.measure` (``noise_std`` and/or ``photons``).
    seeded : bool
        Whether the operator itself is random (a mask or matrix drawn from the seed).
    """

    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    noise: dict[str, float] = field(default_factory=dict)
    seeded: bool = False

    def measure(self, x: np.ndarray, seed: int, **params: Any) -> tuple[Any, np.ndarray]:
        """``(A, y)``: the operator for ``x``'s shape and a noisy measurement of ``x``.

        ``seed`` seeds the noise (and the operator when :attr:`seeded`); ``params`` override
        :attr:`params` (e.g. ``acceleration``).
        """
        from napari_genprior import api

        kw = {**self.params, **params, **({"seed": seed} if self.seeded else {})}
        A = api.make_operator(self.kind, shape=x.shape, **kw)
        return A, A.measure(x, seed=seed, **self.noise)

    def describe(self, **params: Any) -> str:
        """One line: ``kind(params) + noise``; ``params`` override what is shown."""
        params = ", ".join(f"{k}={v}" for k, v in {**self.params, **params}.items())
        noise = ", ".join(f"{k} {v:g}" for k, v in self.noise.items())
        return f"`{self.kind}`({params}){' + ' + noise if noise else ''}"


#: Every task of the experiments, on images in [0, 1]. ``photons``: the brightest pixel of
#: A(x) is that many expected photon counts (Poisson noise).
TASKS: dict[str, Task] = {
    # (the zero boundary these tables were made with: measured by our own operator, the inverse
    # crime; `bench real-acquisition` measures without it)
    "deconvolution": Task("blur", {"sigma": 2.0, "boundary": "zero"}, {"photons": 100}),
    "denoising": Task("denoise", {}, {"photons": 20}),
    "inpainting": Task("inpaint", {"fraction": 0.5}, {"noise_std": 0.05}, seeded=True),
    "mri": Task(
        "mri",
        {"acceleration": 4, "center_fraction": 0.08, "mask": "variable-density"},
        {"noise_std": 0.005},
        seeded=True,
    ),
    "cs": Task("cs", {"m": 100}, {"noise_std": 0.01}, seeded=True),
    "phase": Task(
        "phase", {"m": 4 * 28 * 28, "matrix": "gaussian"}, {"noise_std": 0.01}, seeded=True
    ),
}


# -- reconstructions and scores ------------------------------------------------------------


def scores(x: np.ndarray, image: np.ndarray) -> dict[str, float]:
    """``{"psnr": dB, "ssim": ...}`` of ``image`` against ``x`` (data range 1)."""
    from napari_genprior.metrics import psnr, ssim

    return {"psnr": psnr(x, image, 1.0), "ssim": ssim(x, image, 1.0)}


def solve(
    x: np.ndarray, y: np.ndarray, A: Any, method: str, *, seed: int, device: str, **options: Any
) -> dict[str, Any]:
    """Reconstruct with ``method`` and score it against ``x``.

    Parameters
    ----------
    x : ndarray
        The ground truth (used only to score).
    y, A
        The measurement and its operator.
    method : str
        A method of :func:`napari_genprior.list_methods`.
    seed : int
        The method's seed.
    device : str
        Torch device.
    **options
        ``prior``, ``restarts``, ``steps`` and method options.

    Returns
    -------
    dict
        ``psnr``, ``ssim``, ``seconds`` (wall clock of the call), ``image`` and ``params``
        (the reconstruction's record).
    """
    from napari_genprior import api

    t0 = time.perf_counter()
    rec = api.reconstruct(y, A, method=method, seed=seed, device=device, **options)
    seconds = time.perf_counter() - t0
    return {**scores(x, rec.image), "seconds": seconds, "image": rec.image, "params": rec.params}


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, list[float]]:
    """The median wall-clock seconds of ``repeats`` calls of ``fn``, and every time."""
    ((med, times),) = timed_together([fn], repeats)
    return med, times


def timed_together(
    fns: Sequence[Callable[[], Any]], repeats: int, warmup: bool = False
) -> list[tuple[float, list[float]]]:
    """``timed`` for several functions whose times are compared, calls interleaved.

    Round ``r`` calls every function once, in turn, so that a change of the machine's load
    (other processes on shared cores) affects all of them alike. ``warmup``: one untimed
    round first (first calls allocate memory and load kernels).

    Returns
    -------
    list of (float, list of float)
        Per function: the median seconds and every time.
    """
    if warmup:
        for fn in fns:
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return [(statistics.median(ts), ts) for ts in times]


def op_times(fn: Any) -> dict[str, tuple[int, float]]:
    """``{torch op: (calls, self CPU seconds)}`` of one call of ``fn`` (``torch.profiler``)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return {e.key: (int(e.count), e.self_cpu_time_total / 1e6) for e in prof.key_averages()}


def json_from_process(args: Sequence[str], timeout: float) -> dict[str, Any]:
    """Run ``python args...`` in a fresh process and parse the JSON object of its last line of
    output; ``{"error": why}`` when it fails or outlasts ``timeout`` seconds."""
    import json
    import subprocess
    import sys

    try:
        out = subprocess.run(
            [sys.executable, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=with_benchmarks_on_path(),
        )
    except subprocess.TimeoutExpired:
        return {"error": f"not done in {timeout:.0f} s"}
    if out.returncode != 0:
        return {"error": out.stderr.strip()[-400:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def with_benchmarks_on_path() -> dict[str, str]:
    """The environment for a child Python that imports this package (it lives in the
    repository's ``benchmarks/``, not in the installed napari_genprior)."""
    import os

    here = str(Path(__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": here + (os.pathsep + path if path else "")}


def median(values: Sequence[float]) -> float | None:
    """The median of ``values`` as a float (None when empty)."""
    return float(statistics.median(values)) if len(values) else None


def median_table(
    runs: dict[str, dict[str, list[dict[str, Any]]]],
) -> dict[str, dict[str, dict[str, float | None]]]:
    """``{setting: {method: {"psnr", "ssim", "seconds": median}}}`` of per-image records
    ``{setting: {method: [{"psnr", "ssim", "seconds", ...}, ...]}}``."""
    return {
        k: {
            m: {s: median([r[s] for r in rs]) for s in ("psnr", "ssim", "seconds")}
            for m, rs in by_m.items()
        }
        for k, by_m in runs.items()
    }


def label(method: str) -> str:
    """A method's name as tables show it (``adjoint`` is ``zero-filled``)."""
    return LABELS.get(method, method)


# -- figures -------------------------------------------------------------------------------


def image_grid(
    rows: Sequence[tuple[str, Sequence[tuple[str, np.ndarray]]]], title: str, size: float = 1.6
):
    """A grid of grey images in [0, 1]: one row per ``(row label, [(caption, image), ...])``.

    Rows may differ in length; empty cells are left blank.
    """
    import matplotlib.pyplot as plt

    cols = max(len(cells) for _, cells in rows)
    fig, axes = plt.subplots(
        len(rows), cols, figsize=(size * cols + 0.6, size * len(rows) + 0.5), squeeze=False
    )
    for r, (row_label, cells) in enumerate(rows):
        for c in range(cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(cells):
                ax.axis("off")
                continue
            caption, im = cells[c]
            ax.imshow(np.clip(im, 0, 1), cmap="gray", vmin=0, vmax=1)
            ax.set_title(caption, fontsize=7)
            if c == 0:
                ax.set_ylabel(row_label, fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def line_plot(
    xs: Sequence[float],
    series: dict[str, Sequence[float | None]],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    xticks: Sequence[float] | None = None,
):
    """Lines with markers, one per ``{label: values}`` (None values are skipped)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for name, values in series.items():
        pts = [(x, v) for x, v in zip(xs, values) if v is not None]
        if pts:
            ax.plot(*zip(*pts), marker="o", ms=4, label=name)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if xticks is not None:
        ax.set_xticks(list(xticks), [f"{t:g}" for t in xticks])
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
