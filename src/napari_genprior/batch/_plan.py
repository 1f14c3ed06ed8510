"""Planning a batch: the input files, the output each gets, and which are already done."""

from __future__ import annotations

import glob
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .._io import read_tiff

#: File name endings :func:`plan_batch` takes from folders and glob patterns (any case).
TIFF_SUFFIXES = (".tif", ".tiff")


@dataclass(frozen=True)
class Job:
    """One input file of a batch.

    Attributes
    ----------
    input : Path
        The measurement TIFF (never written to).
    output : Path
        Where its reconstruction goes: ``out_dir / (input.stem + ".tif")``.
    done : bool
        The output exists, is a readable TIFF and records this input's name: :func:`run_batch`
        skips the job (so that an interrupted batch resumes where it stopped).
    """

    input: Path
    output: Path
    done: bool = False


def plan_batch(
    inputs: str | Path | Iterable[str | Path], out_dir: str | Path, *, overwrite: bool = False
) -> list[Job]:
    """The jobs for a batch: each input file and the output it gets.

    Parameters
    ----------
    inputs : str, Path or iterable of them
        Files (taken as they are), folders (their ``*.tif`` / ``*.tiff`` files, not recursive)
        and glob patterns (``"in/*.tif"``, ``"runs/**/*.tif"``; only TIFF names are kept).
        A file named twice is done once.
    out_dir : str or Path
        Output folder; the output of ``name.tif`` is ``out_dir/name.tif``.
    overwrite : bool
        Redo files whose output already exists (by default they are marked done and skipped).

    Returns
    -------
    list of Job
        In the order given, each folder and pattern sorted by name.

    Raises
    ------
    ValueError
        When an input matches no file, two inputs would get the same output, or an output
        would be an input file (``out_dir`` is the inputs' folder): inputs are never written.
    """
    files = _expand(inputs)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"out_dir {str(out_dir)!r} is a file; give a folder for the outputs.")
    sources = {p.resolve() for p in files}
    jobs: list[Job] = []
    seen: dict[Path, Path] = {}
    for path in files:
        output = out_dir / f"{path.stem}.tif"
        key = output.resolve()
        if key in sources:
            raise ValueError(
                f"the output of {str(path)!r} would be {str(output)!r}, which is an "
                "input file; choose another output folder (inputs are never "
                "overwritten)."
            )
        if key in seen:
            raise ValueError(
                f"{str(seen[key])!r} and {str(path)!r} would both be written to "
                f"{str(output)!r}; give them different names or batch them "
                "separately."
            )
        seen[key] = path
        jobs.append(Job(path, output, done=not overwrite and _finished(output, path)))
    return jobs


def _expand(inputs: str | Path | Iterable[str | Path]) -> list[Path]:
    """Input files in the order given (folders and patterns sorted), each once."""
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    out: dict[Path, Path] = {}
    for item in inputs:
        path = Path(item)
        if path.is_file():
            found = [path]
        elif path.is_dir():
            found = sorted(p for p in path.iterdir() if _is_tiff(p) and not p.name.startswith("."))
        else:
            found = sorted(
                Path(p) for p in glob.glob(str(item), recursive=True) if _is_tiff(Path(p))
            )
        if not found:
            what = "folder" if path.is_dir() else "pattern" if glob.has_magic(str(item)) else "file"
            hint = (
                " holds no TIFF file"
                if what == "folder"
                else " matches no TIFF file"
                if what == "pattern"
                else " does not exist"
            )
            raise ValueError(f"input {what} {str(item)!r}{hint}.")
        for p in found:
            out.setdefault(p.resolve(), p)
    return list(out.values())


def _is_tiff(path: Path) -> bool:
    return path.suffix.lower() in TIFF_SUFFIXES and path.is_file()


def _finished(output: Path, source: Path) -> bool:
    """Whether ``output`` is a complete reconstruction of ``source`` (by its recorded name)."""
    if not output.is_file():
        return False
    try:
        _, meta = read_tiff(output)
    except Exception:  # noqa: BLE001 - any unreadable output is simply not done
        return False
    return meta.get("input") == source.name
