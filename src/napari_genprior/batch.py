"""Folders of images: reconstruct every plane of every file, locally or on a dask cluster.

:func:`plan_batch` turns folders, glob patterns and file names into :class:`Job` objects (input,
output, whether it is already done); :func:`run_batch` reconstructs them with
:func:`napari_genprior.api.reconstruct` and writes one float32 TIFF per input, with everything
that reproduces it in its metadata. A file's planes are its leading axes: a 2D image is one
plane, ``(Z, H, W)`` or ``(T, Z, H, W)`` are stacks.

How the work is split
---------------------
Every **plane** is one dask task. Planes, not files, because a folder of microscope images is
as often a few large stacks as many single images: with one task per file, one 40-plane stack
would keep one core busy and the others idle. This process reads the files (one at a time,
a few files ahead of the workers, so memory stays bounded), sends their planes to the workers
and writes each output as soon as all of its planes are back, so the workers need no access to
the output folder, and an interrupted batch keeps every file it finished. On a distributed
cluster the planes are futures, submitted as workers free up; dask's local schedulers
(``"sync"``, ``"threads"``) take them in waves of whole files. Each plane runs
:func:`~napari_genprior.api.reconstruct` with the same arguments and seed as
:func:`~napari_genprior.api.reconstruct_stack` would, on torch with a fixed number of threads
(1 by default), so a batch gives the same numbers on any scheduler.

Nothing here imports napari or Qt: it runs on a headless dask worker.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any, Literal

import numpy as np

from . import api
from ._io import disk_full, read_tiff, remove_stale_temporaries, write_tiff
from ._layerdata import measurement_of
from .operators import OPERATORS, Operator

__all__ = ["TIFF_SUFFIXES", "BatchReport", "DiskFull", "FileResult", "Job", "default_workers",
           "plan_batch", "run_batch"]

#: File name endings :func:`plan_batch` takes from folders and glob patterns (any case).
TIFF_SUFFIXES = (".tif", ".tiff")
_LOCAL = ("sync", "threads")
_RESUBMITS = 3  # a cluster's worker died: times a plane or a scatter is tried again


class DiskFull(OSError):
    """An output could not be written because its disk is full: the batch stopped."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.ENOSPC, message)

    def __str__(self) -> str:
        return str(self.args[1])


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


@dataclass(frozen=True)
class FileResult:
    """What happened to one input file.

    Attributes
    ----------
    input, output : Path
        As in :class:`Job`.
    status : {"done", "skipped", "failed"}
        Reconstructed and written; already done; or not done (the output is not written).
    reason : str
        Why a file failed or was skipped, in one sentence ("" when done).
    planes : int
        Planes reconstructed.
    seconds : float
        Solver time summed over the file's planes.
    """

    input: Path
    output: Path
    status: Literal["done", "skipped", "failed"]
    reason: str = ""
    planes: int = 0
    seconds: float = 0.0


@dataclass
class BatchReport:
    """The outcome of :func:`run_batch`: one :class:`FileResult` per job, in the jobs' order.

    Attributes
    ----------
    files : list of FileResult
        Every job's result.
    scheduler : str
        Where the planes ran (``"sync"``, ``"threads (2)"``, ``"LocalCluster (2 workers)"`` or
        the cluster's address; ``""`` when there was nothing to do).
    seconds : float
        Wall-clock time of the whole batch.
    """

    files: list[FileResult] = field(default_factory=list)
    scheduler: str = ""
    seconds: float = 0.0

    @property
    def done(self) -> list[FileResult]:
        """Files reconstructed and written by this run."""
        return [f for f in self.files if f.status == "done"]

    @property
    def skipped(self) -> list[FileResult]:
        """Files whose output was already there (see :class:`Job`)."""
        return [f for f in self.files if f.status == "skipped"]

    @property
    def failed(self) -> list[FileResult]:
        """Files not done, each with its reason; their outputs were not written."""
        return [f for f in self.files if f.status == "failed"]

    @property
    def ok(self) -> bool:
        """True when no file failed."""
        return not self.failed

    def summary(self) -> str:
        """One line of counts, then one line per failed file with its reason."""
        planes = sum(f.planes for f in self.done)
        head = (f"done {len(self.done)} ({planes} planes), skipped {len(self.skipped)}, "
                f"failed {len(self.failed)} in {self.seconds:.1f} s"
                + (f" on {self.scheduler}" if self.scheduler else ""))
        return "\n".join([head, *(f"failed: {f.input}: {f.reason}" for f in self.failed)])


# -- planning ---------------------------------------------------------------------------------


def plan_batch(inputs: str | Path | Iterable[str | Path], out_dir: str | Path, *,
               overwrite: bool = False) -> list[Job]:
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
            raise ValueError(f"the output of {str(path)!r} would be {str(output)!r}, which is an "
                             "input file; choose another output folder (inputs are never "
                             "overwritten).")
        if key in seen:
            raise ValueError(f"{str(seen[key])!r} and {str(path)!r} would both be written to "
                             f"{str(output)!r}; give them different names or batch them "
                             "separately.")
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
            found = sorted(Path(p) for p in glob.glob(str(item), recursive=True)
                           if _is_tiff(Path(p)))
        if not found:
            what = "folder" if path.is_dir() else "pattern" if glob.has_magic(str(item)) else "file"
            hint = " holds no TIFF file" if what == "folder" else " matches no TIFF file" \
                if what == "pattern" else " does not exist"
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


# -- running ----------------------------------------------------------------------------------


def default_workers(device: Any = "auto") -> int:
    """How many workers the default scheduler uses: ``min(2, CPUs)`` on the CPU, 1 on a GPU.

    Two single-threaded worker processes keep a 2-core laptop busy without oversubscribing
    it (the batch's own process mostly waits); more workers only pay off with more cores, and
    are asked for with ``workers=``. With a GPU one process is best: the GPU is the parallelism.

    Parameters
    ----------
    device : str
        The device the planes run on (``"auto"`` resolves as in :func:`api.resolve_device`).

    Returns
    -------
    int
        1 or 2.
    """
    from dask.system import CPU_COUNT

    if api.resolve_device(device).type != "cpu":
        return 1
    return max(1, min(2, CPU_COUNT))


def run_batch(jobs: Iterable[Job], operator: Any, method: str, prior: Any = None, *,
              scheduler: Any = None, workers: int | None = None, threads: int = 1,
              progress: bool = True, **reconstruct_kwargs: Any) -> BatchReport:
    """Reconstruct every plane of every job and write one output TIFF per input.

    Parameters
    ----------
    jobs : iterable of Job
        From :func:`plan_batch`; jobs marked done are skipped.
    operator : dict, str, Operator or None
        The forward model. A dict ``{"kind": ..., **params}`` (or just the kind) is built for
        each file's plane shape, ``make_operator(kind, shape=plane_shape, **params)``: the last
        two axes, or the image shape whose measurement has that shape (``downsample``: the
        factor times larger); ``params["shape"]`` (or an :class:`Operator` object) fixes the
        image shape for every file (needed for ``cs`` / ``phase`` vectors). None takes each
        file's own operator from its metadata (``read_tiff(path)[1]["operator"]``, as the
        plugin's measurement TIFFs carry); a file without one fails. ``params["volume"] =
        True`` builds the operator for the last three axes instead, so that each ``(Z, Y, X)``
        stack is one problem (3D deconvolution); ``params["psf"]`` may be a TIFF path.
    method : str
        A reconstruction method (:func:`napari_genprior.api.list_methods`).
    prior : optional
        A prior (name, path or generator) for the methods that need one; loaded once here.
    scheduler : str or distributed.Client, optional
        Where the planes run:

        - ``"sync"``: one after another in this process;
        - ``"threads"``: dask's threaded scheduler with ``workers`` threads in this process;
        - ``"local"``: a ``distributed.LocalCluster`` of ``workers`` single-threaded processes,
          started for this batch and closed after it;
        - an address (``"tcp://host:8786"``) or a ``distributed.Client``: an existing cluster,
          whose workers need napari-genprior installed (inputs are read and outputs written
          here, so the workers need no access to them);
        - None (default): ``"local"`` with ``workers`` processes when ``workers`` is given;
          otherwise ``"sync"`` when there is a single plane to do or :func:`default_workers`
          is 1 (one CPU, or a GPU), else ``"local"`` with :func:`default_workers` (2)
          processes. A LocalCluster takes a few seconds to start (each worker imports torch),
          which a batch of more than one plane earns back.
    workers : int, optional
        Processes (``"local"``) or threads (``"threads"``); default :func:`default_workers`.
    threads : int
        torch threads per task (set on every worker before it works, and in this process for
        ``"sync"`` / ``"threads"``, restored afterwards). The default 1 makes every scheduler
        give identical numbers and suits one task per core.
    progress : bool
        Show a progress bar over planes on the terminal (tqdm, on stderr).
    **reconstruct_kwargs
        Passed to :func:`napari_genprior.api.reconstruct` for every plane: ``steps``,
        ``restarts``, ``seed`` (the same for every plane, as ``reconstruct_stack`` does),
        ``device``, and method options.

    Returns
    -------
    BatchReport
        Done, skipped and failed files, each failure with its reason.

    Notes
    -----
    A file that cannot be read, has no operator, does not fit the operator or whose
    reconstruction fails is reported and skipped; the others are still done. An output is
    written (atomically) only once all of its planes are reconstructed, so a crash or Ctrl-C
    never leaves a half-written file, and running the same batch again redoes only the files
    not finished. On a distributed cluster a worker that dies costs only time: its planes
    run again on the others. With ``"threads"``, ``method="dip"`` is not reproducible bit for bit (it
    seeds torch's global random generator, which the threads share); use ``"local"``.

    Raises
    ------
    ValueError, TypeError
        Bad arguments: unknown method or operator kind, unknown scheduler, bad worker or
        thread counts, a prior that cannot be loaded.
    OSError
        A cluster address that cannot be reached. :class:`DiskFull` when an output cannot be
        written for want of space: the batch stops at once (the files written before are
        kept, and a rerun does the rest) rather than reconstruct files it cannot write.
    """
    t0 = time.perf_counter()
    jobs = list(jobs)
    if not all(isinstance(j, Job) for j in jobs):
        raise TypeError("jobs must be Job objects from plan_batch().")
    # the temporary files of writes killed in an earlier run (kill -9, a power cut) are debris
    remove_stale_temporaries([j.output for j in jobs], before=time.time())
    if method not in api.list_methods():
        raise ValueError(f"unknown method {method!r}; choose one of {api.list_methods()}.")
    if "callback" in reconstruct_kwargs:
        raise TypeError("run_batch takes no callback: it shows progress itself (progress=True).")
    settings = _Settings(
        operator=_check_operator(operator), method=method,
        prior=api.load_prior(prior) if isinstance(prior, (str, Path)) else prior,
        prior_source=str(prior) if isinstance(prior, (str, Path)) else None,
        kwargs=reconstruct_kwargs,
        threads=_positive("threads", threads))
    if workers is not None:
        workers = _positive("workers", workers)
    kind = _scheduler_kind(scheduler, workers)

    results: dict[Path, FileResult] = {}
    todo = []
    for job in jobs:
        if job.done:
            results[job.input] = FileResult(job.input, job.output, "skipped",
                                            "its output is already there")
        else:
            todo.append(job)
    label = ""
    if todo:
        files: Iterator[_File | FileResult] = (_prepare(job, settings) for job in todo)
        if kind is None:  # the default: read the first file to see whether one plane is all
            first = next(files)
            files = chain([first], files)
            single = len(todo) == 1 and (not isinstance(first, _File) or len(first.planes) == 1)
            workers = 1 if single else default_workers(settings.kwargs.get("device", "auto"))
            kind = "sync" if workers == 1 else "local"
        elif kind in ("threads", "local") and workers is None:
            workers = default_workers(settings.kwargs.get("device", "auto"))
        from tqdm import tqdm

        bar = tqdm(total=0, desc="reconstructing", unit="plane", disable=not progress,
                   mininterval=0.5, dynamic_ncols=True)
        try:
            if kind in _LOCAL:
                n = workers if kind == "threads" else 1
                label = kind if kind == "sync" else f"threads ({n})"
                with _torch_threads(settings.threads):
                    done = _run_local(files, kind, n, settings, bar)
            else:
                with _client(scheduler if kind == "cluster" else None, workers) as (client, label):
                    done = _run_distributed(client, files, settings, bar)
        finally:
            bar.close()
        results.update((r.input, r) for r in done)
    return BatchReport([results[j.input] for j in jobs], label, time.perf_counter() - t0)


@dataclass(frozen=True)
class _Settings:
    """What every plane of a batch shares."""

    operator: dict[str, Any] | None
    method: str
    prior: Any
    prior_source: str | None
    kwargs: dict[str, Any]
    threads: int


@dataclass
class _File:
    """An input read and checked, with its planes' results as they come back."""

    job: Job
    A: Any
    lead: tuple[int, ...]
    planes: list[np.ndarray]
    results: list[_Plane | None] = field(init=False)
    handles: list[Any] = field(default_factory=list)  # cluster futures kept until the file is done

    def __post_init__(self) -> None:
        self.results = [None] * len(self.planes)

    @property
    def complete(self) -> bool:
        return all(r is not None for r in self.results)


@dataclass(frozen=True)
class _Plane:
    """One plane's reconstruction, or why it failed."""

    image: np.ndarray | None = None
    params: dict[str, Any] | None = None
    seconds: float = 0.0
    error: str | None = None


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def _check_operator(operator: Any) -> dict[str, Any] | None:
    """The operator argument as None or a dict with a known ``kind``."""
    if operator is None:
        return None
    if isinstance(operator, Operator):
        return operator.spec()
    if isinstance(operator, str):
        operator = {"kind": operator}
    if not isinstance(operator, dict) or "kind" not in operator:
        raise TypeError("operator must be None (from each file's metadata), an operator kind, a "
                        "dict {'kind': ..., **params} or an operator from make_operator(), got "
                        f"{operator!r:.100}.")
    if operator["kind"] not in OPERATORS:
        raise ValueError(f"unknown operator kind {operator['kind']!r}; choose one of "
                         f"{sorted(OPERATORS)}.")
    return dict(operator)


def _scheduler_kind(scheduler: Any, workers: int | None) -> str | None:
    """``"sync"``, ``"threads"``, ``"local"``, ``"cluster"`` or None (decide from the work)."""
    if scheduler is None:
        return "local" if workers is not None else None
    if isinstance(scheduler, str):
        if scheduler in ("sync", "threads", "local"):
            if scheduler == "sync" and workers not in (None, 1):
                raise ValueError("scheduler='sync' runs one plane at a time; leave workers unset.")
            return scheduler
        if "://" in scheduler:
            if workers is not None:
                raise ValueError("workers applies to 'local' and 'threads'; an existing cluster "
                                 f"({scheduler}) has its own workers.")
            return "cluster"
    else:
        from distributed import Client

        if isinstance(scheduler, Client):
            return "cluster"
    raise ValueError(f"scheduler must be 'sync', 'threads', 'local', a cluster address such as "
                     f"'tcp://host:8786' or a distributed.Client, got {scheduler!r}.")


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _client(scheduler: Any, workers: int) -> Iterator[tuple[Any, str]]:
    """A distributed client: to ``scheduler`` (an address or a Client, left open), or to a
    LocalCluster of ``workers`` single-threaded processes started and closed here."""
    from distributed import Client, LocalCluster

    if scheduler is not None and not isinstance(scheduler, str):
        yield scheduler, f"cluster {scheduler.scheduler.address}"
        return
    if scheduler is not None:
        with Client(scheduler) as client:
            yield client, scheduler
        return
    n = workers
    # no dashboard; the scheduler's small HTTP server on a free port, not 8787 (often taken)
    with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                      scheduler_kwargs={"dashboard_address": ":0"}, silence_logs=logging.ERROR
                      ) as cluster, Client(cluster) as client:
        yield client, f"LocalCluster ({n} worker{'s' * (n > 1)})"


def _prepare(job: Job, settings: _Settings) -> _File | FileResult:
    """Read ``job.input``, build its operator and check everything a plane needs."""

    def failed(reason: str) -> FileResult:
        return FileResult(job.input, job.output, "failed", reason)

    try:
        data, meta = read_tiff(job.input)
    except Exception as exc:  # noqa: BLE001 - whatever the reader says, the file is not usable
        return failed(f"cannot be read as a TIFF image ({_message(exc)}).")
    try:
        Y, A = _measurement_and_operator(data, meta, settings.operator)
        k = len(A.measurement_shape)
        if Y.ndim < k or Y.shape[Y.ndim - k:] != A.measurement_shape:
            raise ValueError(f"its data have shape {Y.shape}, but the {A.kind!r} operator expects "
                             f"planes of shape {A.measurement_shape} (images {A.shape}).")
        lead = Y.shape[:Y.ndim - k]
        planes = [np.ascontiguousarray(Y[ix]) for ix in np.ndindex(*lead)]
        # every check reconstruct() makes (method, prior, options, the data) runs here, now
        api.iter_reconstruct_stack(Y, A, settings.method, settings.prior,
                                   **settings.kwargs).close()
    except Exception as exc:  # noqa: BLE001 - a file that does not fit is reported, not fatal
        return failed(_sentence(exc))
    return _File(job, A, lead, planes)


def _measurement_and_operator(data: np.ndarray, meta: dict[str, Any],
                              operator: dict[str, Any] | None) -> tuple[np.ndarray, Any]:
    if operator is None:
        if not isinstance(meta.get("operator"), dict):
            raise ValueError("the file carries no operator in its metadata; give the operator "
                             "explicitly (--operator on the command line).")
        if "measurement" in meta:  # the exact values kept beside a picture (k-space, cs vector)
            return measurement_of(data, {"genprior": meta})
        return data, api.from_spec(meta["operator"])
    params = dict(operator)
    kind = params.pop("kind")
    volume = bool(params.pop("volume", False))
    if isinstance(params.get("psf"), str):  # a PSF file (e.g. a bead average saved as TIFF)
        params["psf"] = read_tiff(params["psf"])[0].astype(np.float64)
    if "shape" in params:
        return data, api.make_operator(kind, **params)
    if data.ndim < (3 if volume else 2):
        raise ValueError(f"its data have shape {data.shape}; "
                         + ("a volume needs three axes (z, y, x)." if volume else
                            "an image needs two axes (give the image shape as an operator "
                            "parameter for vector measurements)."))
    if volume:  # each (z, y, x) stack is one problem (a 3D PSF mixes its planes)
        return data, api.make_operator(kind, shape=data.shape[-3:], **params)
    plane = data.shape[-2:]
    A = api.make_operator(kind, shape=plane, **params)
    pairs = list(zip(plane, A.measurement_shape, strict=False))
    if A.measurement_shape != plane and len(pairs) == 2 and all(m and p % m == 0
                                                                for p, m in pairs):
        # a measurement smaller than its image (downsample): the image is as many times larger
        A = api.make_operator(kind, shape=tuple(p * (p // m) for p, m in pairs), **params)
    return data, A


def _message(exc: BaseException) -> str:
    """An exception's message on one line, without a final full stop (its type if empty)."""
    return " ".join(str(exc).split()).rstrip(".") or type(exc).__name__


def _sentence(exc: BaseException) -> str:
    """An exception as one sentence."""
    return f"{_message(exc)}."


def _solve_plane(y: np.ndarray, A: Any, settings: _Settings, threads: int | None,
                 bar: Any = None) -> _Plane:
    """Reconstruct one plane (a dask task); errors come back as a reason, not an exception.

    With ``bar`` (the ``"sync"`` scheduler: the task runs in this process), the step reached
    is shown beside the progress bar twice a second, so that a long volume shows progress."""
    if threads is not None:
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    callback = None
    if bar is not None:
        last = [0.0]

        def callback(step: int, loss: float, image: Any) -> None:
            now = time.monotonic()
            if now - last[0] >= 0.5:
                last[0] = now
                bar.set_postfix_str(f"step {step}", refresh=True)
    try:
        rec = api.reconstruct(y, A, settings.method, settings.prior, callback=callback,
                              **settings.kwargs)
    except Exception as exc:  # noqa: BLE001 - reported with the file
        return _Plane(error=_sentence(exc))
    return _Plane(np.asarray(rec.image, dtype=np.float32), rec.params, rec.seconds)


def _finish(f: _File, settings: _Settings) -> FileResult:
    """Write a file whose planes are all back (or report why not)."""
    job = f.job
    errors = [(j, r.error) for j, r in enumerate(f.results) if r.error is not None]
    if errors:
        j, error = errors[0]
        where = f"plane {j} of {len(f.planes)}" if len(f.planes) > 1 else "the reconstruction"
        return FileResult(job.input, job.output, "failed", f"{where} failed: {error}")
    image = np.stack([r.image for r in f.results]).reshape(*f.lead, *f.A.shape)
    plane_params = [{k: v for k, v in r.params.items() if k != "operator"} for r in f.results]
    seconds = float(sum(r.seconds for r in f.results))
    meta = {**f.results[0].params, "planes": plane_params, "planes_done": len(f.results),
            "stack_shape": list(f.lead), "seconds": seconds, "input": job.input.name,
            "input_path": str(job.input.resolve()), "prior_source": settings.prior_source}
    try:
        write_tiff(job.output, image, meta)
    except Exception as exc:  # noqa: BLE001 - write_tiff left nothing behind
        if disk_full(exc):  # every later file would fail too: stop now
            raise DiskFull(f"{_sentence(exc)} The batch stopped there; the files finished "
                           "before are kept: free some space and run the same command again "
                           "to do the rest.") from exc
        return FileResult(job.input, job.output, "failed",
                          f"the output could not be written: {_sentence(exc)}")
    return FileResult(job.input, job.output, "done", planes=len(f.planes), seconds=seconds)


def _run_local(files: Iterable[_File | FileResult], scheduler: str, n: int,
               settings: _Settings, bar: Any) -> list[FileResult]:
    """dask's local scheduler, in waves of whole files (about ``2 * n`` planes each); every
    file is written as soon as its wave ends."""
    import dask
    from dask.callbacks import Callback

    names: set[str] = set()

    def tick(key: Any, *_: Any) -> None:
        if key in names:
            bar.update(1)

    results: list[FileResult] = []
    wave: list[_File] = []
    size = 2 * n if scheduler == "threads" else 1
    for item in chain(files, [None]):
        if isinstance(item, FileResult):
            results.append(item)
            continue
        if item is not None:
            wave.append(item)
            bar.total += len(item.planes)
            bar.refresh()
        if wave and (item is None or sum(len(f.planes) for f in wave) >= size):
            steps_bar = bar if scheduler == "sync" else None
            tasks = [dask.delayed(_solve_plane, pure=False)(y, f.A, settings, None, steps_bar)
                     for f in wave for y in f.planes]
            names.clear()
            names.update(t.key for t in tasks)
            extra = {"num_workers": n} if scheduler == "threads" else {}
            with Callback(posttask=tick):
                planes = iter(dask.compute(*tasks, scheduler=scheduler, **extra))
            for f in wave:
                f.results = [next(planes) for _ in f.planes]
                results.append(_finish(f, settings))
            wave = []
    return results


def _run_distributed(client: Any, files: Iterable[_File | FileResult], settings: _Settings,
                     bar: Any) -> list[FileResult]:
    """A distributed cluster: planes are submitted as futures, a few files ahead of the workers,
    and every file is written here as soon as its last plane is back. A worker that dies takes
    its running planes, which dask runs again elsewhere, and the data scattered to it: a plane
    cancelled for want of them is scattered and submitted again, and a scatter that met the
    dying worker is tried again (``_RESUBMITS`` times at most, each)."""
    from concurrent.futures import CancelledError

    from distributed import as_completed

    def scatter(data: Any, broadcast: bool = False) -> Any:
        for attempt in range(_RESUBMITS + 1):
            try:
                return client.scatter(data, broadcast=broadcast, hash=False)
            except OSError:  # CommClosedError: a worker died while receiving it
                if attempt == _RESUBMITS:
                    raise
                time.sleep(0.1 * 2**attempt)

    shared = [scatter(settings, broadcast=True)]
    pending: dict[Any, tuple[_File, int, int]] = {}
    queue = iter(files)
    results: list[FileResult] = []
    running = as_completed()

    def submit(f: _File, j: int, tries: int) -> None:
        fut = client.submit(_solve_plane, f.handles[1 + j], f.handles[0], shared[0],
                            settings.threads, pure=False)
        pending[fut] = (f, j, tries)
        running.add(fut)

    def resubmit(f: _File, j: int, tries: int) -> None:
        # scatter again what the client knows is gone (if it learns later, the next try does)
        if shared[0].status != "finished":
            shared[0] = scatter(settings, broadcast=True)
        for i, data in ((0, f.A), (1 + j, f.planes[j])):
            if f.handles[i].status != "finished":
                f.handles[i] = scatter(data)
        submit(f, j, tries + 1)

    def feed() -> None:
        # two planes per worker thread in flight (asked each time: a cluster may grow)
        limit = 2 * max(1, sum(client.nthreads().values()))
        while len(pending) < limit:
            item = next(queue, None)
            if item is None:
                return
            if isinstance(item, FileResult):
                results.append(item)
                continue
            try:
                item.handles = [scatter(item.A), *scatter(item.planes)]
            except OSError as exc:
                results.append(FileResult(item.job.input, item.job.output, "failed",
                                          f"cannot be sent to the cluster: {_sentence(exc)}"))
                continue
            for j in range(len(item.planes)):
                submit(item, j, 0)
            bar.total += len(item.planes)
            bar.refresh()

    feed()
    for fut in running:
        f, j, tries = pending.pop(fut)
        try:
            f.results[j] = fut.result()
        except CancelledError as exc:  # its inputs were lost with a worker
            try:
                if tries >= _RESUBMITS:
                    raise
                resubmit(f, j, tries)
                continue
            except Exception:  # noqa: BLE001 - no cluster left to run it on
                f.results[j] = _Plane(error=_sentence(exc))
        except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker: the plane kills workers
            f.results[j] = _Plane(error=_sentence(exc))
        bar.update(1)
        if f.complete:
            f.handles = []
            results.append(_finish(f, settings))
        feed()
    return results
