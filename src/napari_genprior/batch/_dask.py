"""The planes of a batch on dask: its local schedulers in waves of whole files, or a
distributed cluster (a LocalCluster started here or an existing one) with futures submitted as
workers free up, and planes lost with a dying worker tried again.

:func:`_solve_plane` is the task every worker runs: dask sends it by this module's path.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Iterator
from itertools import chain
from typing import Any

import numpy as np

from .. import api
from ._files import FileResult, _File, _finish, _Plane, _sentence, _Settings

_RESUBMITS = 3  # a cluster's worker died: times a plane or a scatter is tried again


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
def _logging_off() -> Iterator[None]:
    """No log record of any logger (any thread) inside the block; as before after it."""
    before = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(before)


def chunk_scheduler(exits: contextlib.ExitStack, scheduler: Any) -> Any:
    """How a chunked deconvolution runs: ``"sync"``, ``"threads"`` or a Client as they are;
    an address its cluster's client, ``"local"`` (or None) a LocalCluster of 2 processes,
    entered on ``exits`` (closed with it)."""
    if scheduler in ("sync", "threads") or hasattr(scheduler, "compute"):
        return scheduler
    client, _ = exits.enter_context(_client(None if scheduler == "local" else scheduler, 2))
    return client


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
    teardown = contextlib.ExitStack()  # exits last: after the client and the cluster closed
    # no dashboard; the scheduler's small HTTP server on a free port, not 8787 (often taken)
    with (
        teardown,
        LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            scheduler_kwargs={"dashboard_address": ":0"},
            # the workers' own logs: a worker whose scheduler stopped first (the user's Ctrl+C
            # or SIGTERM) logs its failed heartbeat with a traceback at ERROR; a plane's error
            # comes back as its reason (_solve_plane), not as a worker's log
            silence_logs=logging.CRITICAL,
        ) as cluster,
        Client(cluster) as client,
    ):
        try:
            yield client, f"LocalCluster ({n} worker{'s' * (n > 1)})"
        except KeyboardInterrupt:
            # the user stopped the run and is told so: closing the cluster mid-task must not
            # print the tracebacks of the tasks it cut short (tornado's "Exception in
            # callback", distributed's errors, at the ERROR level that silence_logs keeps)
            teardown.enter_context(_logging_off())
            raise


def _solve_plane(
    y: np.ndarray, A: Any, settings: _Settings, threads: int | None, bar: Any = None
) -> _Plane:
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
        rec = api.reconstruct(
            y, A, settings.method, settings.prior, callback=callback, **settings.kwargs
        )
    except Exception as exc:  # noqa: BLE001 - reported with the file
        return _Plane(error=_sentence(exc))
    return _Plane(np.asarray(rec.image, dtype=np.float32), rec.params, rec.seconds)


def _run_local(
    files: Iterable[_File | FileResult], scheduler: str, n: int, settings: _Settings, bar: Any
) -> list[FileResult]:
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
            tasks = [
                dask.delayed(_solve_plane, pure=False)(y, f.A, settings, None, steps_bar)
                for f in wave
                for y in f.planes
            ]
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


def _run_distributed(
    client: Any, files: Iterable[_File | FileResult], settings: _Settings, bar: Any
) -> list[FileResult]:
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
        fut = client.submit(
            _solve_plane, f.handles[1 + j], f.handles[0], shared[0], settings.threads, pure=False
        )
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
                results.append(
                    FileResult(
                        item.job.input,
                        item.job.output,
                        "failed",
                        f"cannot be sent to the cluster: {_sentence(exc)}",
                    )
                )
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
