"""Benchmark the reconstruction methods on the bundled nuclei sample; writes a results table.

    python benchmarks/run.py [--seeds 3] [--threads 1] [--device auto] [--out benchmarks/results]

Tasks (noise levels in the image's units; the 128x128 crop spans 0-115):
- inpaint: 50% of the pixels kept at random, Gaussian noise std 8.
- denoise: every pixel, Gaussian noise std 15.
Each task and seed draws a new mask and noise. Baselines use only the measurement and the known
noise level, never the ground truth: scikit-image's ``inpaint_biharmonic`` (given the mask) and
``denoise_wavelet`` (BayesShrink, given ``sigma``). Times are medians over seeds, with torch on
``--threads`` threads (recorded in the table).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch


def _baseline(kind: str, y: np.ndarray, A, noise_std: float) -> np.ndarray:
    from skimage.restoration import denoise_wavelet, inpaint_biharmonic

    if kind == "inpaint":
        return inpaint_biharmonic(y.astype(np.float64), ~A.mask)
    return denoise_wavelet(
        y.astype(np.float64), sigma=noise_std, method="BayesShrink", mode="soft", rescale_sigma=True
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import napari_genprior as ngp
    from napari_genprior._io import read_tiff
    from napari_genprior._sample_data import NUCLEI, sample_path

    x = read_tiff(sample_path(NUCLEI))[0].astype(np.float32)
    device = str(ngp.api.resolve_device(args.device))
    tasks = {"inpaint": ({"fraction": 0.5}, 8.0), "denoise": ({}, 15.0)}
    baseline_name = {"inpaint": "skimage inpaint_biharmonic", "denoise": "skimage denoise_wavelet"}
    rows = []
    for kind, (params, noise_std) in tasks.items():
        results: dict[str, dict[str, list[float]]] = {}
        for seed in range(args.seeds):
            extra = {"seed": seed} if kind == "inpaint" else {}
            A = ngp.make_operator(kind, shape=x.shape, **params, **extra)
            y = A.measure(x, noise_std=noise_std, seed=100 + seed)
            runs = {}
            t0 = time.perf_counter()
            runs[baseline_name[kind]] = (_baseline(kind, y, A, noise_std), time.perf_counter() - t0)
            for method in ("adjoint", "dip"):
                rec = ngp.reconstruct(
                    y, A, method=method, steps=args.steps, seed=seed, device=device
                )
                runs[method] = (rec.image, rec.seconds)
            for name, (image, seconds) in runs.items():
                r = results.setdefault(name, {"psnr": [], "ssim": [], "seconds": []})
                r["psnr"].append(ngp.metrics.psnr(x, image))
                r["ssim"].append(ngp.metrics.ssim(x, image))
                r["seconds"].append(seconds)
        for name, r in results.items():
            rows.append(
                {
                    "task": kind,
                    "method": name,
                    "psnr_median": statistics.median(r["psnr"]),
                    "ssim_median": statistics.median(r["ssim"]),
                    "seconds_median": statistics.median(r["seconds"]),
                    **r,
                }
            )
    env = {
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "seeds": args.seeds,
        "max_steps": args.steps,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "nuclei.json").write_text(json.dumps({"env": env, "rows": rows}, indent=1))
    lines = [
        f"# nuclei sample (128x128): {args.seeds} seeds, device {device}, "
        f"torch {torch.__version__} on {env['torch_threads']} thread(s)",
        "",
        "| task | method | PSNR (dB) | SSIM | seconds |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['method']} | {r['psnr_median']:.2f} | "
            f"{r['ssim_median']:.3f} | {r['seconds_median']:.2f} |"
        )
    lines += [
        "",
        "Medians over seeds. Command: `python benchmarks/run.py "
        f"--seeds {args.seeds} --threads {args.threads} --device {args.device}`",
    ]
    (args.out / "nuclei.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
