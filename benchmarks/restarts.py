"""What batched restarts cost: csgm with 1 restart, 10 restarts in one batch, 10 runs in a loop.

    python benchmarks/restarts.py [--threads 1] [--device auto] [--repeats 3] [--prior digits-vae]

Writes ``benchmarks/results/restarts.{md,json}``: median seconds of ``--repeats`` runs (500
steps, ``cs`` with m = 100 on a 28x28 image; the prior defaults to the bundled ``digits-vae``,
else a random expansive ReLU prior of the same output size).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--prior", default="digits-vae")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import napari_genprior as ngp

    if args.prior in ngp.list_priors() or Path(args.prior).is_file():
        G, prior_name = ngp.load_prior(args.prior), args.prior
    else:
        G, prior_name = (
            ngp.random_prior(20, (500, 784), image_shape=(28, 28)),
            "random-relu 20-500-784",
        )
    with torch.no_grad():
        x = G(torch.randn(1, G.latent_dim, generator=torch.Generator().manual_seed(0)))[0].numpy()
    A = ngp.make_operator("cs", shape=x.shape, m=100, seed=0)
    y = A.measure(x, noise_std=0.01, seed=0)
    device = str(ngp.api.resolve_device(args.device))

    def run(r, s=0):
        return ngp.reconstruct(
            y,
            A,
            method="csgm",
            prior=G,
            restarts=r,
            steps=args.steps,
            seed=s,
            device=device,
        ).seconds

    def timed(fn) -> float:
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    run(1)  # warm-up
    rows = {
        "1 restart": timed(lambda: run(1)),
        "10 restarts, one batch": timed(lambda: run(10)),
        "10 separate runs": timed(lambda: [run(1, s) for s in range(10)]),
    }
    env = {
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "prior": prior_name,
        "steps": args.steps,
        "repeats": args.repeats,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "restarts.json").write_text(json.dumps({"env": env, "seconds": rows}, indent=1))
    lines = [
        f"# csgm restarts ({prior_name}, cs m=100 on 28x28, {args.steps} steps, {device}, "
        f"{env['torch_threads']} thread(s), median of {args.repeats})",
        "",
        "| run | seconds | vs 1 restart |",
        "|---|---|---|",
    ]
    for k, v in rows.items():
        lines.append(f"| {k} | {v:.2f} | {v / rows['1 restart']:.1f}x |")
    lines += [
        "",
        f"Command: `python benchmarks/restarts.py --threads {args.threads} --device {args.device}`",
    ]
    (args.out / "restarts.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
