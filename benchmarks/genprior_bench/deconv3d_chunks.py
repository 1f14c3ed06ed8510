"""``deconv-3d-chunks``: Richardson-Lucy in chunks against the whole volume and RedLionfish.

A widefield-like nuclei stack is blurred on a field larger than the one kept (its light from
beyond the crop included: no inverse crime), recorded with Poisson noise and written as
OME-Zarr. At the same iteration count, each run in a process of its own on one CPU thread (peak
memory from ``ru_maxrss``): ``ngp.reconstruct_chunked`` from the OME-Zarr to an OME-Zarr
(dask's synchronous scheduler, so the peak is one chunk's work), ``reconstruct`` on the whole
volume, and RedLionfish's CPU Richardson-Lucy (pip ``redlionfish``) on the whole volume.
Throughput: voxels per second of the run (reading and writing included for the chunks).
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import Result, markdown_table
from ._common import json_from_process


@dataclass(frozen=True)
class Sizes:
    shape: tuple[int, int, int]
    chunks: tuple[int, int, int]
    iterations: int
    #: a larger stack, chunked only, for peak memory (a few iterations: the peak does not grow
    #: with the count)
    big: tuple[int, int, int] | None
    big_iterations: int = 3


FULL = Sizes((64, 512, 512), (64, 256, 256), 20, (96, 1024, 1024))
QUICK = Sizes((16, 96, 96), (8, 48, 48), 5, None)
SIGMA = (2.0, 1.5, 1.5)  # voxels: a widefield PSF's axial elongation, roughly
PHOTONS = 200.0
TIMEOUT = 3600.0

_MAKE = """
import json, sys
import numpy as np
from scipy import ndimage
from napari_genprior.volumes import nuclei_volume
from napari_genprior._omezarr import write_ome_zarr
shape, sigma, photons, path, seed = json.loads(sys.argv[1])
pad = [int(4 * s) + 1 for s in sigma]
big = tuple(n + 2 * p for n, p in zip(shape, pad))
x = nuclei_volume(big, voxel=(0.25, 0.1, 0.1), seed=seed).astype(np.float32)
blurred = ndimage.gaussian_filter(x, sigma, mode="constant", truncate=4.0)
core = tuple(slice(p, p + n) for p, n in zip(pad, shape))
x, blurred = x[core], blurred[core]
rng = np.random.default_rng(seed)
y = rng.poisson(photons * np.clip(blurred, 0, None)).astype(np.float32)
write_ome_zarr(path + "/y.zarr", y, voxel=(0.25, 0.1, 0.1), chunks=(16, 256, 256))
np.save(path + "/x.npy", photons * x)
print(json.dumps({"ok": True}))
"""

_RUN = """
import json, resource, sys, time
import numpy as np
import torch
torch.set_num_threads(1)
import napari_genprior as ngp
from napari_genprior._omezarr import read_ome_zarr
how, path, sigma, chunks, iters = json.loads(sys.argv[1])
y_path = path + "/y.zarr"
from napari_genprior.operators.blur import gaussian_psf
psf = gaussian_psf(sigma, read_ome_zarr(y_path)[0].shape)
t0 = time.perf_counter()
if how == "chunks":
    out = path + f"/chunks-{iters}.zarr"
    ngp.reconstruct_chunked(y_path, psf, chunks=chunks, steps=iters, camera=None,
                            out=out, scheduler="sync")
    seconds = time.perf_counter() - t0
    result = np.asarray(read_ome_zarr(out)[0])
else:
    y = np.asarray(read_ome_zarr(y_path)[0])
    if how == "whole":
        A = ngp.make_operator("blur", shape=y.shape, psf=psf)
        result = ngp.reconstruct(y, A, method="richardson-lucy", steps=iters, holdout=0.0,
                                 camera=None).image
    else:
        from RedLionfishDeconv import doRLDeconvolutionFromNpArrays
        result = doRLDeconvolutionFromNpArrays(y, psf.astype(np.float32), niter=iters,
                                               method="cpu")
    seconds = time.perf_counter() - t0
psnr = None
try:
    x = np.load(path + "/x.npy")
    from skimage.metrics import peak_signal_noise_ratio
    psnr = float(peak_signal_noise_ratio(x, result.astype(x.dtype), data_range=float(x.max() - x.min())))
except FileNotFoundError:
    pass
print(json.dumps({"seconds": seconds, "voxels": int(result.size), "psnr": psnr,
                  "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
"""


def _make(shape, path: str, seed: int) -> dict[str, Any]:
    return json_from_process(
        ["-c", _MAKE, json.dumps([list(shape), list(SIGMA), PHOTONS, path, seed])], TIMEOUT
    )


def _run(how: str, path: str, chunks, iterations: int) -> dict[str, Any]:
    args = json.dumps([how, path, list(SIGMA), list(chunks), iterations])
    out = json_from_process(["-c", _RUN, args], TIMEOUT)
    if "seconds" in out:
        out["voxels_per_s"] = out["voxels"] * iterations / out["seconds"]
    return {"how": how, "iterations": iterations, **out}


def _has_redlionfish() -> bool:
    import importlib.util

    return importlib.util.find_spec("RedLionfishDeconv") is not None


def run(quick: bool, device: str, seed: int) -> Result:
    sizes = QUICK if quick else FULL
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        made = _make(sizes.shape, tmp, seed)
        if "error" in made:
            raise RuntimeError(f"making the stack failed: {made['error']}")
        for how in ("chunks", "whole") + (("redlionfish",) if _has_redlionfish() else ()):
            rows.append(
                {"shape": list(sizes.shape), **_run(how, tmp, sizes.chunks, sizes.iterations)}
            )
        if sizes.big is not None:
            big = str(Path(tmp) / "big")
            Path(big).mkdir()
            if "error" not in _make(sizes.big, big, seed):
                rows.append(
                    {
                        "shape": list(sizes.big),
                        **_run("chunks", big, sizes.chunks, sizes.big_iterations),
                    }
                )
    by = {(tuple(r["shape"]), r["how"]): r for r in rows}
    shape = tuple(sizes.shape)
    chunks, whole = by.get((shape, "chunks"), {}), by.get((shape, "whole"), {})
    rlf = by.get((shape, "redlionfish"))
    checks: dict[str, bool] = {}
    if chunks.get("psnr") is not None and whole.get("psnr") is not None:
        checks["chunks within 0.1 dB of the whole volume"] = (
            abs(chunks["psnr"] - whole["psnr"]) <= 0.1
        )
    if rlf and rlf.get("voxels_per_s") and chunks.get("voxels_per_s"):
        checks["throughput within 1.5x of RedLionfish's CPU RL"] = (
            chunks["voxels_per_s"] * 1.5 >= rlf["voxels_per_s"]
        )
        checks["PSNR at least RedLionfish's"] = chunks["psnr"] >= rlf["psnr"] - 0.01
    if sizes.big is not None and (tuple(sizes.big), "chunks") in by:
        peak = by[(tuple(sizes.big), "chunks")].get("peak_gib")
        checks[f"{'x'.join(map(str, sizes.big))} in chunks under 3 GB"] = (
            peak is not None and peak * 2**30 < 3e9
        )
    table = markdown_table(
        ["stack", "run", "iterations", "seconds", "Mvoxel-iterations/s", "peak GiB", "PSNR (dB)"],
        [
            [
                "x".join(map(str, r["shape"])),
                r["how"],
                r["iterations"],
                r.get("seconds"),
                None if r.get("voxels_per_s") is None else r["voxels_per_s"] / 1e6,
                r.get("peak_gib"),
                r.get("psnr"),
            ]
            for r in rows
        ],
    )
    text = (
        f"Chunks {sizes.chunks}, Gaussian PSF sigma {SIGMA} voxels, {PHOTONS:.0f} photons at "
        f"the brightest, blurred on a larger field and cropped; one CPU thread, each run in its "
        f"own process (python {sys.version.split()[0]}).\n\n{table}\n"
    )
    return Result(
        name="deconv-3d-chunks",
        title="3D deconvolution in chunks: throughput and peak memory",
        markdown=text,
        data={"sizes": asdict(sizes), "rows": rows},
        checks=checks,
    )
