"""Time forward + adjoint of every operator; show that the structured ``cs`` scales as n log n.

    python benchmarks/operators.py [--threads 1] [--device auto] [--repeats 5] [--sizes 256 1024]

Writes ``benchmarks/results/operators.{md,json}``. Times are medians of ``--repeats`` runs of
``adjoint(forward(x))`` on one float32 image (after one warm-up run), torch on ``--threads``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

CASES = [  # (label, kind, parameters)
    ("denoise", "denoise", {}),
    ("inpaint (50%)", "inpaint", {"fraction": 0.5, "seed": 0}),
    ("blur (sigma 2, zero boundary)", "blur", {"sigma": 2.0}),
    ("blur (sigma 2, periodic)", "blur", {"sigma": 2.0, "boundary": "periodic"}),
    ("downsample (x4)", "downsample", {"factor": 4}),
    ("cs (structured, m = n/4)", "cs", {"fraction": 0.25, "seed": 0, "matrix": "structured"}),
    ("mri (4x, random)", "mri", {"acceleration": 4, "seed": 0}),
    ("phase (coded diffraction, 2 masks)", "phase", {"masks": 2, "seed": 0}),
]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_op(A, device: torch.device, repeats: int) -> float:
    A = A.copy().to(device)
    x = torch.rand(A.shape, device=device)
    L = A if A.linear else A.linear_part
    times = []
    for i in range(repeats + 1):
        _sync(device)
        t0 = time.perf_counter()
        L.adjoint(L.forward(x))
        _sync(device)
        if i:  # the first run warms up (FFT plans, allocations)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--scaling-sizes", type=int, nargs="+", default=[128, 256, 512, 1024, 2048])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import napari_genprior as ngp

    device = ngp.api.resolve_device(args.device)
    rows = []
    for label, kind, params in CASES:
        for side in args.sizes:
            p = dict(params)
            if "fraction" in p and kind == "cs":
                p["m"] = int(p.pop("fraction") * side * side)
            A = ngp.make_operator(kind, shape=(side, side), **p)
            rows.append(
                {"operator": label, "side": side, "ms": 1e3 * time_op(A, device, args.repeats)}
            )
            print(rows[-1])
    scaling = []
    for side in args.scaling_sizes:
        n = side * side
        A = ngp.make_operator("cs", shape=(side, side), m=n // 4, seed=0, matrix="structured")
        scaling.append({"side": side, "n": n, "ms": 1e3 * time_op(A, device, args.repeats)})
        print(scaling[-1])
    # fit ms = c * n log n: report c per size (flat means n log n) and the log-log slope vs n
    for s in scaling:
        s["ms_per_nlogn_x1e6"] = s["ms"] / (s["n"] * math.log2(s["n"])) * 1e6
    slope = float(
        np.polyfit(np.log([s["n"] for s in scaling]), np.log([s["ms"] for s in scaling]), 1)[0]
    )
    env = {
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "repeats": args.repeats,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "operators.json").write_text(
        json.dumps(
            {"env": env, "rows": rows, "cs_scaling": scaling, "cs_loglog_slope": slope}, indent=1
        )
    )
    sides = args.sizes
    lines = [
        f"# Operators: adjoint(forward(x)) on one float32 image, device {device}, torch "
        f"{torch.__version__} on {env['torch_threads']} thread(s), median of {args.repeats}",
        "",
        "| operator | " + " | ".join(f"{s}x{s} (ms)" for s in sides) + " |",
        "|---|" + "---|" * len(sides),
    ]
    for label in dict.fromkeys(r["operator"] for r in rows):
        ms = {r["side"]: r["ms"] for r in rows if r["operator"] == label}
        lines.append(f"| {label} | " + " | ".join(f"{ms[s]:.2f}" for s in sides) + " |")
    lines += [
        "",
        "Structured `cs` (m = n/4): time vs n",
        "",
        "| side | n | ms | ms / (n log2 n) x 1e6 |",
        "|---|---|---|---|",
    ]
    for s in scaling:
        lines.append(f"| {s['side']} | {s['n']} | {s['ms']:.2f} | {s['ms_per_nlogn_x1e6']:.2f} |")
    lines += [
        "",
        f"log-log slope of time vs n: {slope:.2f} (n log n over this range: about 1.05-1.1)",
        "",
        f"Command: `python benchmarks/operators.py --threads {args.threads} --device {args.device}`",
    ]
    (args.out / "operators.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
