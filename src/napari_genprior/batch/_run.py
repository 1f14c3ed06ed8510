"""Running a batch: :func:`run_batch`, its arguments checked, and its :class:`BatchReport`."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from .. import api
from .._io import remove_stale_temporaries
from ..operators import OPERATORS, Operator
from ._dask import _client, _run_distributed, _run_local, _torch_threads
from ._files import FileResult, _File, _prepare, _Settings
from ._plan import Job

_LOCAL = ("sync", "threads")


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
        head = (
            f"done {len(self.done)} ({planes} planes), skipped {len(self.skipped)}, "
            f"failed {len(self.failed)} in {self.seconds:.1f} s"
            + (f" on {self.scheduler}" if self.scheduler else "")
        )
        return "\n".join([head, *(f"failed: {f.input}: {f.reason}" for f in self.failed)])


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


def run_batch(
    jobs: Iterable[Job],
    operator: Any,
    method: str,
    prior: Any = None,
    *,
    scheduler: Any = None,
    workers: int | None = None,
    threads: int = 1,
    progress: bool = True,
    **reconstruct_kwargs: Any,
) -> BatchReport:
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
        operator=_check_operator(operator),
        method=method,
        prior=api.load_prior(prior) if isinstance(prior, (str, Path)) else prior,
        prior_source=str(prior) if isinstance(prior, (str, Path)) else None,
        kwargs=reconstruct_kwargs,
        threads=_positive("threads", threads),
    )
    if workers is not None:
        workers = _positive("workers", workers)
    kind = _scheduler_kind(scheduler, workers)

    results: dict[Path, FileResult] = {}
    todo = []
    for job in jobs:
        if job.done:
            results[job.input] = FileResult(
                job.input, job.output, "skipped", "its output is already there"
            )
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

        bar = tqdm(
            total=0,
            desc="reconstructing",
            unit="plane",
            disable=not progress,
            mininterval=0.5,
            dynamic_ncols=True,
        )
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
        raise TypeError(
            "operator must be None (from each file's metadata), an operator kind, a "
            "dict {'kind': ..., **params} or an operator from make_operator(), got "
            f"{operator!r:.100}."
        )
    if operator["kind"] not in OPERATORS:
        raise ValueError(
            f"unknown operator kind {operator['kind']!r}; choose one of {sorted(OPERATORS)}."
        )
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
                raise ValueError(
                    "workers applies to 'local' and 'threads'; an existing cluster "
                    f"({scheduler}) has its own workers."
                )
            return "cluster"
    else:
        from distributed import Client

        if isinstance(scheduler, Client):
            return "cluster"
    raise ValueError(
        f"scheduler must be 'sync', 'threads', 'local', a cluster address such as "
        f"'tcp://host:8786' or a distributed.Client, got {scheduler!r}."
    )
