"""What ``tv`` gives a user who denoises without choosing a weight: its SURE rule (the default on
``denoise``) against its held-out rule and scikit-image's ``denoise_tv_chambolle``; writes
``benchmarks/results/tv-sure.md`` and ``.json``.

    python benchmarks/tv_sure.py [--threads 1] [--repeats 3]

Images: the four 64x64 quadrants of the real nuclei crop (denoised reference, as in
``bench real-nuclei``), each with Gaussian noise 0.1 and with Poisson noise at 20 photons
(peak), and a 512x512 crop of scikit-image's ``cell`` with Gaussian noise 0.1. scikit-image's
TV is run at its default weight (what a user gets without a ground truth) and, for reference
only, at its truth-best weight of a grid (an oracle no user has). Times: medians of
``--repeats`` calls, torch on ``--threads`` threads.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
ORACLE_GRID = np.geomspace(0.01, 1.0, 25)


def _timed(fn, repeats):
    """:func:`genprior_bench._common.timed`, and the last call's output."""
    from genprior_bench._common import timed

    out = []
    seconds, _ = timed(lambda: out.append(fn()), repeats)
    return seconds, out[-1]


def cases():
    from skimage import data

    import napari_genprior as ngp
    from genprior_bench._common import real_nuclei

    tiles, _ = real_nuclei(4)
    for j, tile in enumerate(tiles):
        A = ngp.make_operator("denoise", shape=tile.shape)
        yield f"nuclei tile {j}, Gaussian 0.1", tile, A, A.measure(tile, noise_std=0.1, seed=j)
        yield f"nuclei tile {j}, Poisson 20", tile, A, A.measure(tile, photons=20, seed=j)
    cell = data.cell().astype(np.float32)
    cell = np.ascontiguousarray(((cell - cell.min()) / (cell.max() - cell.min()))[:512, :512])
    A = ngp.make_operator("denoise", shape=cell.shape)
    yield "cell 512x512, Gaussian 0.1", cell, A, A.measure(cell, noise_std=0.1, seed=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from skimage.restoration import denoise_tv_chambolle

    import napari_genprior as ngp

    def psnr(x, r):
        return round(float(ngp.metrics.psnr(x, r, 1.0)), 2)

    rows = []
    t_start = time.perf_counter()
    for name, x, A, y in cases():
        row = {"case": name, "noisy": psnr(x, y)}
        for rule in ("sure", "holdout"):
            sec, rec = _timed(
                lambda rule=rule, y=y, A=A: ngp.reconstruct(
                    y, A, "tv", device="cpu", seed=0, rule=rule
                ),
                args.repeats,
            )
            row[rule] = {"psnr": psnr(x, rec.image), "seconds": sec, "lam": rec.params["lam"]}
            if rule == "sure":
                row[rule]["iterations"] = rec.params["iterations"]
                row[rule]["noise_std"] = rec.params["noise_std"]
        sec, im = _timed(lambda y=y: denoise_tv_chambolle(y), args.repeats)
        row["skimage"] = {"psnr": psnr(x, im), "seconds": sec}
        best = max(ORACLE_GRID, key=lambda w, x=x, y=y: psnr(x, denoise_tv_chambolle(y, weight=w)))
        row["skimage_oracle"] = {
            "psnr": psnr(x, denoise_tv_chambolle(y, weight=best)),
            "weight": float(best),
        }
        rows.append(row)
        print(row, flush=True)
    seconds = time.perf_counter() - t_start

    def med(key, field):
        return statistics.median(r[key][field] for r in rows)

    lines = [
        "# `tv` denoising at its defaults: SURE against the held-out rule and scikit-image",
        "",
        'PSNR (dB) / seconds; `tv` with no weight given (`rule="sure"`, the default on '
        '`denoise`, and `rule="holdout"`), scikit-image\'s `denoise_tv_chambolle` at its default '
        "weight, and, for reference only, scikit-image at its truth-best weight of 25 (an "
        f"oracle). Torch on {args.threads} thread(s); medians of {args.repeats} calls.",
        "",
        "| case | noisy | `tv` SURE | `tv` held out | scikit-image default | scikit-image oracle |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['noisy']:.2f} | **{r['sure']['psnr']:.2f}** / "
            f"{r['sure']['seconds']:.3g} ({r['sure']['iterations']} steps) | "
            f"{r['holdout']['psnr']:.2f} / {r['holdout']['seconds']:.3g} | "
            f"{r['skimage']['psnr']:.2f} / {r['skimage']['seconds']:.2g} | "
            f"{r['skimage_oracle']['psnr']:.2f} |"
        )
    gains = [r["sure"]["psnr"] - r["holdout"]["psnr"] for r in rows]
    over = [r["sure"]["psnr"] - r["skimage"]["psnr"] for r in rows]
    lines += [
        "",
        f"SURE over the held-out rule: median {statistics.median(gains):+.2f} dB (from "
        f"{min(gains):+.2f} to {max(gains):+.2f}); over scikit-image's default: median "
        f"{statistics.median(over):+.2f} dB (from {min(over):+.2f} to {max(over):+.2f}). "
        f"Median PSNR: SURE {med('sure', 'psnr'):.2f}, held out {med('holdout', 'psnr'):.2f}, "
        f"scikit-image default {med('skimage', 'psnr'):.2f}, oracle "
        f"{med('skimage_oracle', 'psnr'):.2f} dB.",
        "",
        f"Command: `python benchmarks/tv_sure.py --threads {args.threads} --repeats "
        f"{args.repeats}` ({seconds:.0f} s; torch {torch.__version__}).",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tv-sure.md").write_text("\n".join(lines) + "\n")
    env = {"threads": args.threads, "torch": torch.__version__, "seconds": seconds}
    (args.out / "tv-sure.json").write_text(json.dumps({"env": env, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
