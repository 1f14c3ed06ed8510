"""The cases and sizes of :mod:`.peers`: what is compared with what, each peer's weight grid, and
the same image and measurement made the same way in every process."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: Goals of issue 18: 10 CSGM restarts at least this many times faster than DeepInverse's.
CSGM_SPEEDUP = 3.0
#: PSNR slack (dB) of "equal error".
EQUAL_DB = 0.05
THREADS = (1, 2)
#: Richardson-Lucy iteration counts tried for "ours at equal error".
RL_LADDER = (1, 2, 5, 10, 20, 50)


@dataclass(frozen=True)
class Sizes:
    csgm_steps: int
    dip_steps: int
    peer_iters: int
    ladder: tuple[int, ...]
    grid: tuple[float, ...]
    peer_grid: tuple[float, ...]
    mri_side: int
    cell_side: int
    repeats: int


FULL = Sizes(
    csgm_steps=1000,
    dip_steps=500,
    peer_iters=100,
    # where a peer stops early, its PSNR is often reached between 5 and 25 steps of ours: there
    # every step count is a rung (a 64x64 denoise reached scikit-image's PSNR at 9 steps)
    ladder=(5, 6, 7, 8, 9, 10, 12, 15, 20, 25, 50, 100, 200, 400, 800),
    grid=(1 / 16, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0),
    peer_grid=(1 / 16, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0),
    mri_side=128,
    cell_side=512,
    repeats=3,
)
QUICK = Sizes(
    csgm_steps=20,
    dip_steps=10,
    peer_iters=10,
    ladder=(10, 20),
    grid=(1.0,),
    peer_grid=(1.0,),
    mri_side=32,
    cell_side=32,
    repeats=1,
)

#: (what, case, our tool, peer tools)
COMPARISONS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("csgm, 10 restarts", "inpaint-digit", "ours-csgm", ("deepinv-csgm",)),
    ("csgm, 10 restarts", "cs-digit", "ours-csgm", ("deepinv-csgm",)),
    ("dip", "deblur-nuclei", "ours-dip", ("deepinv-dip",)),
    ("tv", "deblur-nuclei", "ours-tv", ("deepinv-tv",)),
    ("tv", "mri-brain", "ours-tv", ("sigpy-tv", "deepinv-tv")),
    ("tv", "denoise-nuclei", "ours-tv", ("skimage-tv", "deepinv-tv")),
    ("tv", "denoise-cell", "ours-tv", ("skimage-tv",)),
    ("l1-wavelet", "mri-brain", "ours-wavelet", ("sigpy-wavelet", "deepinv-wavelet")),
    ("richardson-lucy", "deblur-nuclei", "ours-rl", ("skimage-rl",)),
    ("inpainting", "inpaint-nuclei", "ours-tv", ("skimage-biharmonic",)),
)
#: Each peer's weight grid centre in its own units (times :attr:`Sizes.grid`).
PEER_WEIGHTS = {
    ("deepinv-tv", "deblur-nuclei"): 0.004,
    ("deepinv-tv", "mri-brain"): 0.002,
    ("deepinv-tv", "denoise-nuclei"): 0.04,
    ("sigpy-tv", "mri-brain"): 0.002,
    ("skimage-tv", "denoise-nuclei"): 0.08,
    ("skimage-tv", "denoise-cell"): 0.08,
    ("sigpy-wavelet", "mri-brain"): 0.002,
    ("deepinv-wavelet", "mri-brain"): 0.002,
}


# -- the cases: the same data in every process ------------------------------------------------


def case_data(case: str, sizes: Sizes, seed: int) -> tuple[np.ndarray, np.ndarray, Any]:
    """``(x, y, A)`` of ``case``, made the same way in every process."""
    from napari_genprior import api

    from ._common import real_nuclei

    if case.endswith("-digit"):
        from .cs_digits import load_digits

        x = load_digits(1)[0]
        A = (
            api.make_operator("inpaint", shape=x.shape, seed=seed)
            if case == "inpaint-digit"
            else api.make_operator("cs", shape=x.shape, m=100, seed=seed)
        )
        return x, A.measure(x, noise_std=0.01, seed=seed), A
    if case == "denoise-cell":  # a microscope image at a size users denoise (64x64 above)
        from skimage import data

        cell = data.cell().astype(np.float32)  # ships with scikit-image
        x = (cell - cell.min()) / (cell.max() - cell.min())
        x = np.ascontiguousarray(x[: sizes.cell_side, : sizes.cell_side])
        A = api.make_operator("denoise", shape=x.shape)
        return x, A.measure(x, noise_std=0.1, seed=seed), A
    if case.endswith("-nuclei"):
        x = real_nuclei(1)[0][0]
        kind, params, noise = {
            "deblur-nuclei": ("blur", {"sigma": 2.0, "boundary": "zero"}, 0.01),
            "denoise-nuclei": ("denoise", {}, 0.1),
            "inpaint-nuclei": ("inpaint", {"seed": seed}, 0.01),
        }[case]
        A = api.make_operator(kind, shape=x.shape, **params)
        return x, A.measure(x, noise_std=noise, seed=seed), A
    if case == "mri-brain":
        from skimage.transform import resize

        from .real_mri import FULL as MRI_FULL
        from .real_mri import held_out_slices

        x = resize(
            held_out_slices(MRI_FULL)[0][1], (sizes.mri_side,) * 2, anti_aliasing=True
        ).astype(np.float32)
        A = api.make_operator(
            "mri", shape=x.shape, acceleration=4, mask="variable-density", seed=seed
        )
        return x, A.measure(x, noise_std=0.005, seed=seed), A
    raise ValueError(f"unknown case {case!r}")
