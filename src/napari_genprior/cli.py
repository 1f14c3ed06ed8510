"""The ``napari-genprior`` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._version import __version__


def _demo_headless(args: argparse.Namespace) -> int:
    import torch  # before anything that could bring in Qt

    from tqdm import tqdm

    from . import api, metrics
    from ._io import read_tiff, write_tiff
    from ._sample_data import NUCLEI, NUCLEI_INPAINT, sample_path

    if args.threads:
        torch.set_num_threads(args.threads)
    clean, _ = read_tiff(sample_path(NUCLEI))
    y, meta = read_tiff(sample_path(NUCLEI_INPAINT))
    A = api.from_spec(meta["operator"])
    print(f"sample      : {NUCLEI_INPAINT} ({y.shape[0]}x{y.shape[1]} fluorescence nuclei, "
          f"{A.mask.mean():.0%} of pixels observed, Gaussian noise std {meta['noise_std']})")
    zero_filled = api.reconstruct(y, A, method="adjoint").image
    bar = tqdm(total=args.steps, desc=f"dip on {api.resolve_device(args.device)}", unit="step",
               mininterval=1.0)

    def callback(step: int, loss: float, image) -> None:
        bar.update(step - bar.n)
        bar.set_postfix(loss=f"{loss:.3g}", refresh=False)

    rec = api.reconstruct(y, A, method="dip", steps=args.steps, seed=args.seed,
                          device=args.device, callback=callback)
    bar.close()
    out = write_tiff(args.out, rec.image, {**rec.params, "seconds": rec.seconds})
    print(f"method      : dip (Deep Image Prior), stopped at step {rec.params['stopped_at']} "
          f"of {args.steps} by held-out measurements, {rec.seconds:.1f} s on "
          f"{rec.params['device']} ({torch.get_num_threads()} threads)")
    print(f"PSNR input  : {metrics.psnr(clean, zero_filled):6.2f} dB  (zero-filled measurement)")
    print(f"PSNR result : {metrics.psnr(clean, rec.image):6.2f} dB")
    print(f"wrote       : {out}")
    return 0


def _demo_gui(args: argparse.Namespace) -> int:
    import torch  # noqa: F401  (import torch before Qt: a known torch/PyQt clash)

    import napari

    from ._widgets.demo import open_demo

    open_demo(steps=args.steps, seed=args.seed, device=args.device, run=args.run)
    napari.run()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-genprior",
        description="Reconstruct images from indirect, incomplete or noisy measurements under "
                    "a generative prior.")
    parser.add_argument("--version", action="version", version=f"napari-genprior {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser(
        "demo", help="reconstruct the bundled nuclei sample (50%% of pixels missing, noisy)",
        description="Open napari with the bundled degraded nuclei sample and the Reconstruct "
                    "widget docked; with --headless, run the same reconstruction without a "
                    "window, write it as a TIFF and print the PSNR against the clean sample.")
    demo.add_argument("--headless", action="store_true", help="no window: reconstruct, write, report")
    demo.add_argument("--out", type=Path, default=Path("genprior-demo.tif"),
                      help="output TIFF (headless; default: %(default)s)")
    demo.add_argument("--steps", type=int, default=2000, help="maximum steps (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    demo.add_argument("--device", default="auto", help="auto, cpu, cuda[:N] or mps (default: auto)")
    demo.add_argument("--threads", type=int, default=0,
                      help="torch CPU threads (default: torch's choice)")
    demo.add_argument("--run", action="store_true", help="GUI: start the reconstruction at once")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "demo":
        if args.steps < 1:
            parser.error("--steps must be at least 1")
        try:
            return _demo_headless(args) if args.headless else _demo_gui(args)
        except (ValueError, TypeError, FileNotFoundError) as exc:
            print(f"napari-genprior: error: {exc}", file=sys.stderr)
            return 2
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
