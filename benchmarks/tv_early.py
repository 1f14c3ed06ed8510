"""What ``tv`` gives a user who deconvolves without choosing a weight: FISTA's early iterate with
its weight and step chosen on held-out measurements (``rule="early"``, the default on ``blur``)
against the TV minimum at the held-out rule's weight (``rule="holdout"``, the default before),
our Richardson-Lucy and scikit-image's; writes ``benchmarks/results/tv-early.md``.

    python benchmarks/tv_early.py [--threads 1] [--repeats 3]

Images: the four 64x64 quadrants of the real nuclei crop (denoised reference, as in
``bench real-nuclei``), each blurred (Gaussian sigma 2) with 100 photons (peak) of Poisson noise
and with Gaussian noise 0.01, and blurred with sigma 1.5 and Gaussian noise 0.03. scikit-image's
``richardson_lucy`` is run at its default 50 iterations (what a user gets without a truth).
Times: medians of ``--repeats`` calls, torch on ``--threads`` threads.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def cases():
    import napari_genprior as ngp
    from genprior_bench._common import real_nuclei

    tiles, _ = real_nuclei(4)
    for j, tile in enumerate(tiles):
        for sigma, noise, label in (
            (2.0, {"photons": 100}, "sigma 2, Poisson 100"),
            (2.0, {"noise_std": 0.01}, "sigma 2, Gaussian 0.01"),
            (1.5, {"noise_std": 0.03}, "sigma 1.5, Gaussian 0.03"),
        ):
            A = ngp.make_operator("blur", shape=tile.shape, sigma=sigma)
            yield f"nuclei tile {j}, {label}", tile, A, A.measure(tile, seed=j, **noise)


def main() -> None:
    from genprior_bench._common import timed

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from skimage.restoration import richardson_lucy

    import napari_genprior as ngp

    def psnr(x, r):
        return round(float(ngp.metrics.psnr(x, r, 1.0)), 2)

    def run(fn):
        out = []
        seconds, _ = timed(lambda: out.append(fn()), args.repeats)
        return seconds, out[-1]

    rows = []
    t_start = time.perf_counter()
    for name, x, A, y in cases():
        row = {"case": name, "blurred": psnr(x, y)}
        for key, kw in (("early", {}), ("holdout", {"rule": "holdout"})):
            sec, rec = run(lambda kw=kw, y=y, A=A: ngp.reconstruct(y, A, "tv", device="cpu", **kw))
            row[key] = {"psnr": psnr(x, rec.image), "seconds": sec, "lam": rec.params["lam"]}
            if key == "early":
                row[key]["iterations"] = rec.params["iterations"]
        sec, rec = run(lambda y=y, A=A: ngp.reconstruct(y, A, "richardson-lucy", device="cpu"))
        row["rl"] = {"psnr": psnr(x, rec.image), "seconds": sec}
        psf = A.psf.cpu().numpy() if hasattr(A.psf, "cpu") else np.asarray(A.psf)
        sec, im = run(lambda y=y, psf=psf: richardson_lucy(np.clip(y, 0, None), psf))
        row["skimage_rl"] = {"psnr": psnr(x, im), "seconds": sec}
        rows.append(row)
        print(row, flush=True)
    seconds = time.perf_counter() - t_start

    def med(key):
        return round(statistics.median(r[key]["psnr"] for r in rows), 2)

    gains = [r["early"]["psnr"] - r["holdout"]["psnr"] for r in rows]
    lines = [
        "# `tv` deconvolution at its defaults: FISTA's early iterate against the TV minimum",
        "",
        'PSNR (dB) / seconds; `tv` with no weight given (`rule="early"`, the default on `blur`:'
        " FISTA from the back-projection, the weight and the stopping step chosen on 10% of the"
        ' pixels held out, then run on all; and `rule="holdout"`, the TV minimum at the weight'
        " chosen the same way), our `richardson-lucy` (its iteration count by Poisson thinning)"
        " and scikit-image's `richardson_lucy` at its default 50 iterations. Torch on "
        f"{args.threads} thread(s); medians of {args.repeats} calls.",
        "",
        "| case | blurred | `tv` early | `tv` held-out minimum | `richardson-lucy` |"
        " scikit-image RL |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        e, h = r["early"], r["holdout"]
        lines.append(
            f"| {r['case']} | {r['blurred']} | **{e['psnr']}** / {e['seconds']:.3g}"
            f" ({e['iterations']} steps) | {h['psnr']} / {h['seconds']:.3g} |"
            f" {r['rl']['psnr']} / {r['rl']['seconds']:.3g} |"
            f" {r['skimage_rl']['psnr']} / {r['skimage_rl']['seconds']:.3g} |"
        )
    lines += [
        "",
        f"Early over the held-out minimum: median {statistics.median(gains):+.2f} dB (from "
        f"{min(gains):+.2f} to {max(gains):+.2f}). Median PSNR: early {med('early')}, held-out"
        f" minimum {med('holdout')}, richardson-lucy {med('rl')}, scikit-image RL"
        f" {med('skimage_rl')} dB.",
        "",
        f"Command: `python benchmarks/tv_early.py --threads {args.threads} --repeats"
        f" {args.repeats}` ({seconds:.0f} s; torch {torch.__version__}).",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tv-early.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
