"""Volumes larger than memory, at the issue's size: a 256x2048x2048 uint16 stack (2 GiB as
uint16, 4 GiB as float32) deconvolved in chunks from OME-Zarr to OME-Zarr, from the command line
and from the library, each in a process of its own; writes ``benchmarks/results/chunks-huge.md``
and ``.json``.

    python benchmarks/chunks_huge.py [--shape 256 2048 2048] [--steps 10]

The stack is made without the inverse crime and without holding it whole: a 64x512x512 nuclei
stack is blurred on a larger field and cropped (as ``bench deconv-3d-chunks`` makes it), recorded
with Poisson noise as uint16 counts, and tiled to the shape, written lazily (dask) as OME-Zarr.
Each run reports its peak resident memory (``ru_maxrss``; dask's threaded scheduler, so every
chunk's work is in that process) and its time. The bar (issue 35): under 6 GB for 256x2048x2048
(and under 3 GB for 96x1024x1024: ``bench deconv-3d-chunks``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIGMA = (2.0, 1.5, 1.5)
TILE = (64, 512, 512)

_MAKE = """
import json, sys
import dask.array as da
import numpy as np
from scipy import ndimage
from napari_genprior.volumes import nuclei_volume
from napari_genprior._omezarr import write_ome_zarr
shape, tile, sigma, path = json.loads(sys.argv[1])
pad = [int(4 * s) + 1 for s in sigma]
big = tuple(n + 2 * p for n, p in zip(tile, pad))
x = nuclei_volume(big, voxel=(0.25, 0.1, 0.1), seed=0).astype(np.float32)
blurred = ndimage.gaussian_filter(x, sigma, mode="constant", truncate=4.0)
blurred = blurred[tuple(slice(p, p + n) for p, n in zip(pad, tile))]
y = np.random.default_rng(0).poisson(200 * np.clip(blurred, 0, None)).astype(np.uint16)
reps = [s // t for s, t in zip(shape, tile)]
vol = da.tile(da.from_array(y, chunks=(16, 256, 256)), reps)
write_ome_zarr(path, vol, voxel=(0.25, 0.1, 0.1), chunks=(16, 256, 256), dtype=np.uint16)
print(json.dumps({"ok": True}))
"""

_LIBRARY = """
import json, resource, sys, time
import torch
import napari_genprior as ngp
from napari_genprior.operators.blur import gaussian_psf
src, out, sigma, steps = json.loads(sys.argv[1])
t0 = time.perf_counter()
ngp.reconstruct_chunked(src, gaussian_psf(sigma), steps=steps, out=out, scheduler="threads")
print(json.dumps({"seconds": time.perf_counter() - t0,
                  "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
"""

_CLI = """
import json, resource, sys, time
from napari_genprior.cli import main
argv = json.loads(sys.argv[1])
t0 = time.perf_counter()
rc = main(argv)
print(json.dumps({"rc": rc, "seconds": time.perf_counter() - t0,
                  "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
"""


def _json_run(code: str, arg: object) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(arg)], capture_output=True, text=True
    )
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {"error": (done.stderr or done.stdout)[-2000:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[256, 2048, 2048])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    shape = tuple(args.shape)
    if any(s % t for s, t in zip(shape, TILE)):
        parser.error(f"--shape must be multiples of {TILE}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = str(Path(tmp) / "stack.zarr")
        t0 = time.perf_counter()
        made = _json_run(_MAKE, [list(shape), list(TILE), list(SIGMA), src])
        if "error" in made:
            raise SystemExit(f"making the stack failed: {made['error']}")
        print(f"made {src} in {time.perf_counter() - t0:.0f} s", flush=True)
        cli = [
            "deconvolve", src, "--out", str(Path(tmp) / "cli.zarr"), "--sigma", *map(str, SIGMA),
            "--steps", str(args.steps), "--scheduler", "threads", "--quiet",
        ]  # fmt: skip
        runs = {
            "command line (napari-genprior deconvolve)": (_CLI, cli),
            "library (ngp.reconstruct_chunked)": (
                _LIBRARY,
                [src, str(Path(tmp) / "lib.zarr"), list(SIGMA), args.steps],
            ),
        }
        for name, (code, arg) in runs.items():
            out = _json_run(code, arg)
            rows.append({"run": name, **out})
            print(name, out, flush=True)
    voxels = shape[0] * shape[1] * shape[2]
    checks = {
        f"{name}: peak under 6 GB": r.get("peak_gib") is not None
        and r["peak_gib"] * 2**30 < 6e9
        and r.get("rc", 0) == 0
        for r in rows
        for name in [r["run"]]
    }
    lines = [
        f"# {'x'.join(map(str, shape))} uint16 in chunks, OME-Zarr to OME-Zarr",
        "",
        f"`python benchmarks/chunks_huge.py --steps {args.steps}`: Richardson-Lucy, "
        f"{args.steps} iterations, Gaussian PSF sigma {SIGMA} voxels, default chunks "
        f"(64x256x256), dask's threaded scheduler, {os.cpu_count()} CPU cores.",
        "",
        "| run | seconds | Mvoxel-iterations/s | peak memory (GiB) |",
        "|---|---|---|---|",
    ]
    for r in rows:
        if "seconds" in r:
            rate = voxels * args.steps / r["seconds"] / 1e6
            lines.append(f"| {r['run']} | {r['seconds']:.0f} | {rate:.1f} | {r['peak_gib']:.2f} |")
        else:
            lines.append(f"| {r['run']} | failed: {r.get('error', '')[-200:]} | | |")
    lines += [""] + [f"- {'PASS' if ok else 'MISS'}: {n}" for n, ok in checks.items()]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "chunks-huge.md").write_text("\n".join(lines) + "\n")
    (args.out / "chunks-huge.json").write_text(
        json.dumps({"shape": shape, "steps": args.steps, "rows": rows, "checks": checks}, indent=1)
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
