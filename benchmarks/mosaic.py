"""Time and peak memory of a mosaic reconstruction against image size (issue 7).

    python benchmarks/mosaic.py [--sizes 256 512 1024 2048] [--steps 20] [--threads 1]
                                [--device auto] [--max-batch 256]

``csgm`` (encoder warm start) with the bundled 64x64 ``nuclei-vae`` as a mosaic (overlap 16) deblurring procedural
nuclei (``blur`` sigma 2, Poisson noise at 100 photons), one restart, a fixed number of steps.
Each size runs in a fresh process so that its peak resident memory (``ru_maxrss``; on CUDA also
``torch.cuda.max_memory_allocated``) is its own. Writes ``benchmarks/results/mosaic.{md,json}``
(``mosaic-<device>`` when not on the CPU) with seconds per step, patch-steps per second and the
log-log slope of time against pixels (1 = linear).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def one(size: int, steps: int, threads: int, device: str, max_batch: int) -> dict:
    import resource
    import time

    import torch

    torch.set_num_threads(threads)
    import napari_genprior as ngp
    from napari_genprior.synthetic import nuclei_images

    x = nuclei_images(1, shape=(size, size), seed=7)[0]
    A = ngp.make_operator("blur", shape=x.shape, sigma=2.0)
    y = A.measure(x, photons=100, seed=0)
    dev = ngp.api.resolve_device(device)

    def solve(n: int):
        return ngp.reconstruct(
            y,
            A,
            method="csgm",
            prior="nuclei-vae",
            steps=n,
            seed=0,
            device=device,
            max_batch=max_batch,
            init="encoder",
        )

    # a 1-step solve first, not timed: each size runs in a fresh process, and CUDA's context
    # and kernels load on first use (on an H200 that made every size ~0.48 s a step, 10 steps)
    solve(1)
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    rec = solve(steps)
    seconds = time.perf_counter() - t0
    grid = rec.params["prior"]["mosaic"]["grid"]
    out = {
        "size": size,
        "pixels": size * size,
        "tiles": grid[0] * grid[1],
        "steps": steps,
        "seconds": seconds,
        "seconds_per_step": seconds / steps,
        "patch_steps_per_second": grid[0] * grid[1] * steps / seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "device": str(dev),
        "threads": threads,
        "max_batch": max_batch,
        "psnr_measurement": ngp.metrics.psnr(x, y, 1.0),
        "psnr_csgm": ngp.metrics.psnr(x, rec.image, 1.0),
    }
    if dev.type == "cuda":
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--max-batch", type=int, default=256)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child run
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.steps, args.threads, args.device, args.max_batch)))
        return
    rows = []
    for size in args.sizes:
        cmd = [
            sys.executable,
            __file__,
            "--one",
            str(size),
            "--steps",
            str(args.steps),
            "--threads",
            str(args.threads),
            "--device",
            args.device,
            "--max-batch",
            str(args.max_batch),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(
            f"{size}x{size}: {r['tiles']} tiles, {r['seconds_per_step']:.3f} s/step, "
            f"peak {r['peak_rss_mb']:.0f} MB",
            flush=True,
        )
    slope = None
    if len(rows) > 1:
        xs = [math.log(r["pixels"]) for r in rows]
        ys = [math.log(r["seconds_per_step"]) for r in rows]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        slope = sum((a - mx) * (b - my) for a, b in zip(xs, ys)) / sum((a - mx) ** 2 for a in xs)
    dev = rows[0]["device"]
    name = "mosaic" if dev == "cpu" else f"mosaic-{dev.split(':')[0]}"
    cuda = "peak_cuda_mb" in rows[0]
    lines = [
        f"# Mosaic csgm (nuclei-vae 64x64, overlap 16) vs image size: {dev}, "
        f"{args.threads} thread(s), {args.steps} steps, max_batch {args.max_batch}",
        "",
        "| image | tiles | s/step | patch-steps/s | peak RSS (MB) |"
        + (" peak CUDA (MB) |" if cuda else "")
        + " PSNR meas. -> csgm |",
        "|---|---|---|---|---|" + ("---|" if cuda else "") + "---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']}x{r['size']} | {r['tiles']} | {r['seconds_per_step']:.3f} | "
            f"{r['patch_steps_per_second']:.0f} | {r['peak_rss_mb']:.0f} |"
            + (f" {r['peak_cuda_mb']:.0f} |" if cuda else "")
            + f" {r['psnr_measurement']:.1f} -> {r['psnr_csgm']:.1f} |"
        )
    if slope is not None:
        lines += ["", f"log-log slope of time per step against pixels: {slope:.2f} (1 = linear)"]
    lines += [
        "",
        f"Command: `python benchmarks/mosaic.py --sizes {' '.join(map(str, args.sizes))} "
        f"--steps {args.steps} --threads {args.threads} --max-batch {args.max_batch}`",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    (RESULTS / f"{name}.json").write_text(json.dumps({"rows": rows, "slope": slope}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
