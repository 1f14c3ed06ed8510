"""OME-Zarr stacks in a batch: each deconvolved in chunks (:func:`reconstruct_chunked`) into
an OME-Zarr of the same name in the output folder.

The ``batch`` command hands its OME-Zarr inputs here (named, or found as ``*.zarr`` folders in a
folder it was given) and its TIFFs to :func:`run_batch`. A stack larger than memory has one
operator, a 3D blur (``--volume --operator blur``), and one method, ``richardson-lucy``. An
output that exists is skipped, never overwritten (an interrupted batch resumes): delete it to
redo it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .._omezarr import is_ome_zarr
from ._chunked import CHUNKED_METHODS, chunk_psf, reconstruct_chunked
from ._plan import TIFF_SUFFIXES


def split_ome_zarr(inputs: str | Path | Iterable[str | Path]) -> tuple[list[Path], list[Any]]:
    """``(OME-Zarr stacks, the other inputs)``: named OME-Zarr folders, and those inside a
    folder given (sorted); a folder stays among the others only if it holds TIFFs too."""
    items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    stacks: list[Path] = []
    rest: list[Any] = []
    for item in items:
        path = Path(item)
        if is_ome_zarr(path):
            stacks.append(path)
        elif path.is_dir():
            found = sorted(p for p in path.glob("*.zarr") if is_ome_zarr(p))
            stacks += found
            has_tiff = any(p.suffix.lower() in TIFF_SUFFIXES for p in path.iterdir())
            if has_tiff or not found:
                rest.append(item)
        else:
            rest.append(item)
    return list(dict.fromkeys(stacks)), rest


def stack_psf(operator: dict[str, Any] | None, method: str) -> Any:
    """The PSF for :func:`reconstruct_chunked` from the batch's ``--operator`` and ``--param``
    (``sigma`` of three values, ``optics`` or ``psf``, a TIFF), or ValueError saying what an
    OME-Zarr stack needs."""
    if method not in CHUNKED_METHODS:
        raise ValueError(
            f"OME-Zarr stacks are deconvolved in chunks with {', '.join(CHUNKED_METHODS)}; "
            f"--method {method} is not one."
        )
    op = dict(operator or {})
    if op.get("kind") != "blur" or not op.get("volume"):
        raise ValueError(
            "an OME-Zarr stack needs a 3D blur: --volume --operator blur with --param "
            "sigma=[z,y,x], --param optics={...} or --param psf=bead_psf.tif."
        )
    sigma = op.get("sigma")
    if not ("optics" in op or "psf" in op) and (
        not isinstance(sigma, (list, tuple)) or len(sigma) != 3
    ):
        raise ValueError(f"--param sigma needs three values (z, y, x) for a stack, got {sigma!r}.")
    return chunk_psf(op)


def run_ome_zarr(
    stacks: list[Path],
    out_dir: str | Path,
    operator: dict[str, Any] | None,
    method: str,
    *,
    steps: int | None = None,
    scheduler: Any = "threads",
    report: Any = print,
) -> list[tuple[Path, Path, str]]:
    """Deconvolve each stack into ``out_dir / its name``; ``(input, output, what happened)``
    each: ``"done"``, ``"skipped (exists)"`` or ``"failed: ..."`` (a bad stack does not stop
    the others)."""
    import contextlib
    import shutil

    from ._dask import chunk_scheduler

    psf = stack_psf(operator, method)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    with contextlib.ExitStack() as exits:
        scheduler = chunk_scheduler(exits, scheduler)
        for stack in stacks:
            out = out_dir / stack.name
            # written under another name and renamed when complete: an interrupted or failed
            # stack leaves no output that a later run would take for done
            part = out_dir / f"{stack.name}.partial"
            if out.exists():
                what = "skipped (exists; delete it to redo it)"
            else:
                shutil.rmtree(part, ignore_errors=True)  # our own unfinished output
                try:
                    reconstruct_chunked(
                        stack, psf, method, steps=steps, out=part, scheduler=scheduler
                    )
                    part.rename(out)
                    what = "done"
                except (ValueError, OSError) as exc:
                    shutil.rmtree(part, ignore_errors=True)
                    what = f"failed: {exc}"
            report(f"{stack.name:<12}: {what} -> {out}")
            results.append((stack, out, what))
    return results
