"""The ``napari-genprior`` command."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from ._version import __version__


def _demo_headless(args: argparse.Namespace) -> int:
    import torch  # before anything that could bring in Qt
    from tqdm import tqdm

    from . import api, metrics
    from ._io import read_tiff, write_tiff
    from ._recommend import recommend
    from ._sample_data import NUCLEI, NUCLEI_INPAINT, sample_path

    if args.threads:
        torch.set_num_threads(args.threads)
    clean, _ = read_tiff(sample_path(NUCLEI))
    y, meta = read_tiff(sample_path(NUCLEI_INPAINT))
    A = api.from_spec(meta["operator"])
    print(
        f"sample      : {NUCLEI_INPAINT} ({y.shape[0]}x{y.shape[1]} fluorescence nuclei, "
        f"{A.mask.mean():.0%} of pixels observed, Gaussian noise std {meta['noise_std']})"
    )
    zero_filled = api.reconstruct(y, A, method="adjoint").image
    advice = recommend(A.kind)  # what a user gets without choosing: reconstruct's default
    bar = tqdm(
        total=args.steps,
        desc=f"{advice.method} on {api.resolve_device(args.device)}",
        unit="step",
        mininterval=1.0,
    )

    def callback(step: int, loss: float, image) -> None:
        bar.update(step - bar.n)
        bar.set_postfix(loss=f"{loss:.3g}", refresh=False)

    rec = api.reconstruct(
        y, A, steps=args.steps, seed=args.seed, device=args.device, callback=callback
    )
    bar.close()
    out = write_tiff(args.out, rec.image, {**rec.params, "seconds": rec.seconds})
    stop = rec.params.get("stopped_at", rec.params.get("iterations"))
    print(
        f"method      : {rec.method} (the recommended one: {advice.why}), "
        + (f"{stop} steps, " if stop is not None else "")
        + f"{rec.seconds:.1f} s on {rec.params['device']} ({torch.get_num_threads()} threads)"
    )
    print(f"PSNR input  : {metrics.psnr(clean, zero_filled):6.2f} dB  (zero-filled measurement)")
    print(f"PSNR result : {metrics.psnr(clean, rec.image):6.2f} dB")
    print(f"wrote       : {out}")
    return 0


def _demo_gui(args: argparse.Namespace) -> int:
    import napari
    import torch  # noqa: F401  (import torch before Qt: a known torch/PyQt clash)

    from ._widgets.demo import open_demo

    open_demo(steps=args.steps, seed=args.seed, device=args.device, run=args.run)
    napari.run()
    return 0


def _key_value(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` with VALUE parsed as JSON when it is JSON (numbers, lists, true/false)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key.strip(), value


def _as_dict(
    pairs: list[tuple[str, object]] | None, flag: str, parser: argparse.ArgumentParser
) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs or []:
        if key in out:
            parser.error(f"{flag} {key} is given twice")
        out[key] = value
    return out


def _json_object(text: str) -> dict:
    """A JSON object given on the command line (``--optics``)."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object {{...}}, got {text!r}")
    return value


class _Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a job scheduler's time limit), raised where Ctrl-C would be."""


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM stops the work as Ctrl-C does: files being written are removed, a cluster
    started for the batch is closed, and the user is told what is kept. (Python's default
    for SIGTERM is to die at once, leaving temporary files and worker processes behind.)"""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def stop(signum: int, frame: object) -> None:
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _batch(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    params = _as_dict(args.param, "--param", parser)
    options = _as_dict(args.option, "--option", parser)
    if params and args.operator is None:
        parser.error("--param needs --operator (without it, each file's own operator is used)")
    if args.volume:
        if args.operator is None:
            parser.error("--volume needs --operator (a file's own operator says its shape)")
        params["volume"] = True
    for name in ("steps", "restarts", "workers", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be at least 1")
    import torch  # noqa: F401  (before anything that could bring in Qt)

    from .batch import plan_batch, run_batch
    from .batch._zarr import run_ome_zarr, split_ome_zarr

    operator = None if args.operator is None else {"kind": args.operator, **params}
    kwargs = {
        k: getattr(args, k)
        for k in ("steps", "restarts", "seed", "device")
        if getattr(args, k) is not None
    }
    try:
        with _sigterm_interrupts():
            stacks, inputs = split_ome_zarr(args.inputs)  # OME-Zarr: in chunks, to OME-Zarr
            if stacks:
                done = run_ome_zarr(stacks, args.out, operator, args.method, steps=args.steps,
                                    scheduler=args.scheduler or "threads")  # fmt: skip
                if not inputs:
                    return 0 if all(not w.startswith("failed") for *_, w in done) else 1
            jobs = plan_batch(inputs, args.out, overwrite=args.overwrite)
            todo = sum(not j.done for j in jobs)
            print(
                f"batch       : {len(jobs)} file(s), {len(jobs) - todo} already done, "
                f"output in {args.out}"
            )
            report = run_batch(
                jobs,
                operator,
                args.method,
                args.prior,
                scheduler=args.scheduler,
                workers=args.workers,
                threads=args.threads or 1,
                progress=not args.quiet,
                **kwargs,
                **options,
            )
    except (ValueError, TypeError, OSError) as exc:
        print(f"napari-genprior: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        how = "terminated" if isinstance(exc, _Terminated) else "interrupted"
        print(
            f"napari-genprior: {how}; finished files are kept, run the same command "
            "again to do the rest",
            file=sys.stderr,
        )
        return 143 if how == "terminated" else 130
    print(report.summary())
    return 0 if report.ok else 1


def _deconvolve(args: argparse.Namespace) -> int:
    import torch  # noqa: F401  (before anything that could bring in Qt)

    from . import batch
    from ._io import read_tiff
    from .batch._dask import chunk_scheduler
    from .operators.blur import gaussian_psf

    try:
        if args.psf is not None:
            psf = read_tiff(args.psf)[0]
        elif args.optics is not None:
            psf = args.optics
        else:
            psf = gaussian_psf(tuple(args.sigma))
        source = args.input if args.input.is_dir() else read_tiff(args.input)[0]
        with contextlib.ExitStack() as stack:
            scheduler = chunk_scheduler(stack, args.scheduler)
            if scheduler in ("sync", "threads") and not args.quiet:  # dask's bar (a level each)
                from dask.diagnostics import ProgressBar

                stack.enter_context(ProgressBar(minimum=2.0, dt=1.0))
            out = batch.reconstruct_chunked(
                source, psf, chunks=args.chunks, steps=args.steps, out=args.out, scheduler=scheduler
            )
    except (ValueError, TypeError, OSError) as exc:
        print(f"napari-genprior: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote       : {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-genprior",
        description="Reconstruct images from indirect, incomplete or noisy measurements under "
        "a generative prior.",
    )
    parser.add_argument("--version", action="version", version=f"napari-genprior {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="reconstruct the bundled nuclei sample (50%% of pixels missing, noisy)",
        description="Open napari with the bundled degraded nuclei sample and the Reconstruct "
        "widget docked; with --headless, run the same reconstruction without a "
        "window, write it as a TIFF and print the PSNR against the clean sample.",
    )
    demo.add_argument(
        "--headless", action="store_true", help="no window: reconstruct, write, report"
    )
    demo.add_argument(
        "--out",
        type=Path,
        default=Path("genprior-demo.tif"),
        help="output TIFF (headless; default: %(default)s)",
    )
    demo.add_argument(
        "--steps", type=int, default=None, help="maximum steps (default: the method's own)"
    )
    demo.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    demo.add_argument("--device", default="auto", help="auto, cpu, cuda[:N] or mps (default: auto)")
    demo.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)"
    )
    demo.add_argument("--run", action="store_true", help="GUI: start the reconstruction at once")
    batch = sub.add_parser(
        "batch",
        help="reconstruct every TIFF of a folder or glob pattern (dask)",
        description="Reconstruct every plane of every input TIFF and write one float32 TIFF per "
        "input to --out, with all that reproduces it in its metadata. Files already "
        "done are skipped (an interrupted batch resumes); a file that cannot be read "
        "or does not fit the operator is reported and skipped. Exit status: 0 when "
        "every file was done or skipped, 1 when some failed, 2 for bad arguments, "
        "130 when interrupted (Ctrl-C), 143 when terminated (SIGTERM). OME-Zarr stacks go in "
        "chunks (--volume --operator blur, richardson-lucy) to OME-Zarr of the same name.",
        epilog='example: napari-genprior batch "in/*.tif" --out out/ --operator blur '
        "--param sigma=2 --method tv",
    )
    batch.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help='TIFF files, OME-Zarr folders, folders or quoted glob patterns ("in/*.tif")',
    )
    batch.add_argument("--out", type=Path, required=True, help="output folder")
    batch.add_argument(
        "--operator",
        metavar="KIND",
        help="operator kind (blur, denoise, inpaint, downsample, cs, mri, phase), "
        "built for each file's plane shape; default: each file's own "
        "operator from its metadata (as Simulate's TIFFs carry)",
    )
    batch.add_argument(
        "--param",
        type=_key_value,
        action="append",
        metavar="KEY=VALUE",
        help="operator parameter, repeatable; VALUE is read as JSON when it can "
        "be (sigma=2, factor=[1,2], antialias=true), else as text "
        "(boundary=zero); shape=[H,W] fixes the image shape",
    )
    batch.add_argument(
        "--volume",
        action="store_true",
        help="with --operator: build it for each file's last three axes "
        "(z, y, x), so that a stack is deconvolved as one volume (3D PSF: "
        '--param \'optics={"na": 1.2, "wavelength": 0.52, "dxy": 0.1, '
        '"dz": 0.25}\', --param sigma=[2,1,1] or --param psf=bead_psf.tif)',
    )
    batch.add_argument(
        "--method",
        required=True,
        help="reconstruction method (tv, lasso-dct, lasso-wavelet, adjoint, dip, "
        "csgm, twist, sparse-gen, ...)",
    )
    batch.add_argument(
        "--prior",
        metavar="NAME_OR_PATH",
        help="prior for csgm / twist / sparse-gen: a bundled name or a file",
    )
    batch.add_argument(
        "--option",
        type=_key_value,
        action="append",
        metavar="KEY=VALUE",
        help="method option, repeatable (e.g. lam=0.01, patience=200)",
    )
    batch.add_argument("--steps", type=int, help="maximum steps per plane (method's default)")
    batch.add_argument("--restarts", type=int, help="random starts (prior methods)")
    batch.add_argument("--seed", type=int, help="seed, the same for every plane (default 0)")
    batch.add_argument("--device", help="auto, cpu, cuda[:N] or mps (default: auto)")
    batch.add_argument(
        "--scheduler",
        metavar="ADDRESS|local|threads|sync",
        help="where planes run: a dask cluster address (tcp://host:8786), "
        "local (a LocalCluster of --workers processes), threads or sync; "
        "default: sync for a single plane or on a GPU, else local",
    )
    batch.add_argument(
        "--workers", type=int, help="processes (local) or threads (threads); default min(2, CPUs)"
    )
    batch.add_argument(
        "--threads",
        type=int,
        help="torch threads per worker (default 1: the same numbers on every scheduler)",
    )
    batch.add_argument("--overwrite", action="store_true", help="redo files already done")
    batch.add_argument("--quiet", action="store_true", help="no progress bar")
    dec = sub.add_parser(
        "deconvolve",
        help="deconvolve a 3D stack larger than memory, in chunks (dask), to OME-Zarr",
        description="Richardson-Lucy on a (Z, Y, X) stack in overlapping chunks "
        "(ngp.reconstruct_chunked): one count for the whole volume, chosen on held-out voxels "
        "around its brightest chunk; the result written chunk by chunk as OME-Zarr.",
        epilog="example: napari-genprior deconvolve stack.zarr --out deconvolved.zarr "
        '--optics \'{"na": 1.2, "wavelength": 0.52, "dxy": 0.1, "dz": 0.25}\'',
    )
    dec.add_argument("input", type=Path, help="an OME-Zarr folder or a TIFF stack")
    dec.add_argument("--out", type=Path, required=True, help="the OME-Zarr to write (new)")
    psf = dec.add_mutually_exclusive_group(required=True)
    psf.add_argument("--psf", type=Path, help="a 3D PSF as a TIFF (a bead stack)")
    psf.add_argument(
        "--optics",
        type=_json_object,
        help='the microscope\'s optics as JSON, e.g. \'{"na": 1.2, "wavelength": 0.52, '
        '"dxy": 0.1, "dz": 0.25}\' (as make_operator("blur", optics=...) takes)',
    )
    psf.add_argument(
        "--sigma", type=float, nargs=3, metavar=("Z", "Y", "X"), help="a Gaussian PSF (voxels)"
    )
    dec.add_argument(
        "--chunks",
        type=int,
        nargs=3,
        default=[64, 256, 256],
        metavar=("Z", "Y", "X"),
        help="the core of each chunk in voxels (default 64 256 256); memory follows it",
    )
    dec.add_argument("--steps", type=int, help="iterations (default: the held-out rule)")
    dec.add_argument("--quiet", action="store_true", help="no progress bar")
    dec.add_argument(
        "--scheduler",
        default="threads",
        metavar="ADDRESS|local|threads|sync",
        help="a dask cluster address, local (a LocalCluster of 2 processes), threads or sync",
    )
    bench = sub.add_parser(
        "bench",
        help="reproduce the seed's results: tables, JSON and plots",
        description="Run the experiments of benchmarks/genprior_bench (all by default; from a "
        "checkout) and write "
        "<name>.md, <name>.json and <name>-*.png under --out.",
    )
    bench.add_argument(
        "experiments",
        nargs="*",
        metavar="EXPERIMENT",
        help="cs-digits, phase, random-prior, mri, microscopy, speed, "
        "real-mri, real-nuclei, real-digits, mri-multicoil, deconv-3d, "
        "deconv-3d-scale, deconv-3d-chunks, peers, real-acquisition, mri-acquired "
        "(default: all)",
    )
    bench.add_argument(
        "--quick",
        action="store_true",
        help="small sizes (minutes on 2 CPU cores); outputs named *-quick",
    )
    bench.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    bench.add_argument("--device", default="auto")
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: shared machines are faster so)",
    )
    return parser


#: Where the benchmarks live: ``benchmarks/genprior_bench`` of a checkout, not in the wheel
#: (users run the plugin; developers reproduce the tables, as scikit-image keeps asv apart).
BENCH_HOME = "benchmarks/genprior_bench"


def _bench_package():
    """The benchmarks' package: importable already, or found in the checkout this package was
    installed from (an editable install); else a clear exit."""
    try:
        import genprior_bench
    except ImportError:
        checkout = Path(__file__).resolve().parents[2]
        if not (checkout / BENCH_HOME / "__init__.py").is_file():
            raise SystemExit(
                "napari-genprior bench reproduces the benchmark tables from a checkout of the "
                "repository, where they live (benchmarks/); this installation has none: "
                "git clone https://github.com/napari-genprior/napari-genprior && cd "
                'napari-genprior && pip install -e ".[all,bench]" && napari-genprior bench'
            ) from None
        sys.path.insert(0, str(checkout / "benchmarks"))
        import genprior_bench
    return genprior_bench


def _bench(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    import torch  # noqa: F401  (before anything that could bring in Qt)

    bench = _bench_package()
    EXPERIMENTS, run_experiments = bench.EXPERIMENTS, bench.run_experiments

    unknown = sorted(set(args.experiments) - set(EXPERIMENTS))
    if unknown:
        parser.error(f"unknown experiment(s) {unknown}; choose from {list(EXPERIMENTS)}")
    try:
        results = run_experiments(
            args.experiments,
            quick=args.quick,
            out=args.out,
            device=args.device,
            seed=args.seed,
            threads=args.threads,
        )
    except (ValueError, TypeError) as exc:
        print(f"napari-genprior: error: {exc}", file=sys.stderr)
        return 2
    missed = [f"{r.name}: {claim}" for r in results for claim, ok in r.checks.items() if not ok]
    print(
        f"wrote {len(results)} experiment(s) to {args.out}"
        + (f"; targets missed: {'; '.join(missed)}" if missed else "; every target met")
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "demo":
        if args.steps is not None and args.steps < 1:
            parser.error("--steps must be at least 1")
        try:
            return _demo_headless(args) if args.headless else _demo_gui(args)
        except (ValueError, TypeError, OSError) as exc:  # OSError: e.g. a full disk
            print(f"napari-genprior: error: {exc}", file=sys.stderr)
            return 2
    if args.command == "batch":
        return _batch(args, parser)
    if args.command == "bench":
        return _bench(args, parser)
    if args.command == "deconvolve":
        return _deconvolve(args)
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
