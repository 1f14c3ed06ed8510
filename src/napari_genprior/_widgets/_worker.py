"""Running an API generator (a reconstruction, a training) in a napari worker thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator
from dataclasses import is_dataclass, replace
from typing import Any

from napari.qt.threading import thread_worker

_WARM: list[threading.Thread] = []


def warm_up() -> threading.Thread:
    """Start (once per process) a background thread that constructs a torch optimizer.

    The first optimizer of a process imports ``torch._dynamo`` (about a second of imports);
    done inside a run's worker it was measured to hold the GIL, and so the viewer's event
    loop, for 130-230 ms at a time. Widgets call this when they open, so that runs do not.
    """
    if not _WARM:

        def work() -> None:
            import torch

            torch.optim.Adam([torch.zeros(1, requires_grad=True)])

        thread = threading.Thread(target=work, name="genprior-warm-up", daemon=True)
        thread.start()
        _WARM.append(thread)
    return _WARM[0]


class WorkerError(Exception):
    """A RuntimeError raised in a worker (torch raises many), passed on as another type:
    superqt takes a RuntimeError from a worker for a deleted Qt object and then emits neither
    ``errored`` nor ``finished``, which would leave a widget waiting forever."""


#: At most this many updates a second reach the GUI, and at most PREVIEWS_PER_SECOND of them
#: carry a preview image: every Python call on the main thread takes the GIL from the solver's
#: thread, and a preview costs a layer refresh (software OpenGL under Xvfb: tens of ms). With
#: every tenth step drawn, tv ran at 3x the library's time (issue 15); with 4 updates and 4
#: previews a second and napari's progress bar, 1.4-1.8x; as now, 0.98-1.10x
#: (benchmarks/results/gui-overhead.md). The other updates are dropped in the worker, unseen.
UPDATES_PER_SECOND = 2.0
PREVIEWS_PER_SECOND = 1.0
#: After the first preview the worker waits (at most this long) until the GUI has shown it:
#: napari builds the preview layer then (about 0.2 s under Xvfb), and a solver thread taking
#: the GIL meanwhile made that the longest stall of a run (benchmarks/results/gui-steady.md).
FIRST_PREVIEW_WAIT = 1.0


@thread_worker(start_thread=False, ignore_errors=True)  # errors go to owner._on_error
def _drive(
    run: Generator,
    stop: threading.Event,
    interval: float,
    first_shown: threading.Event | None = None,
):
    """Run the generator in a worker thread, passing on its updates (at most one per
    ``interval`` seconds; the first always); once ``stop`` is set, send it False (the API's
    "stop and return the best so far") after each update. After the first update with a
    preview, wait until ``first_shown`` is set (by the GUI, once it has shown it) or for
    :data:`FIRST_PREVIEW_WAIT` seconds.

    Cancel is a flag rather than ``worker.send(False)``: a value sent before the worker thread
    has taken its first step would hit a just-started generator (a TypeError)."""
    reply = None
    last = last_image = -float("inf")
    image = None  # the newest preview not shown yet: it goes out with a later update
    image_interval = max(interval, 1 / PREVIEWS_PER_SECOND)
    while True:
        try:
            update = run.send(reply)
        except StopIteration as done:
            return done.value
        except RuntimeError as exc:  # superqt would drop it silently: no errored, no finished
            raise WorkerError(str(exc) or type(exc).__name__) from exc
        if not _is_update(update) or not is_dataclass(update):
            yield update
        else:
            if update.image is not None:
                image = update.image
            now = time.perf_counter()
            if now - last >= interval:
                last = now
                if image is not None and now - last_image >= image_interval:
                    last_image, shown, image = now, image, None
                else:
                    shown = None
                yield update if update.image is shown else replace(update, image=shown)
                if shown is not None and first_shown is not None:
                    first_shown.wait(FIRST_PREVIEW_WAIT)
                    first_shown = None
        reply = False if stop.is_set() else None


def _is_update(value: Any) -> bool:
    """Progress (which may be dropped) rather than a message the owner must see."""
    return hasattr(value, "step") and hasattr(value, "total")


def qt_alive(widget: Any) -> bool:
    """Whether ``widget``'s Qt object still exists (False once its window was closed)."""
    try:
        widget.native.objectName()
    except (RuntimeError, AttributeError):  # "wrapped C/C++ object ... has been deleted"
        return False
    return True


def make_worker(owner: Any, run: Generator, pbar: Any = None, interval: float | None = None) -> Any:
    """A not-yet-started worker for ``run``, wired to ``owner``'s ``_on_update`` (each yielded
    update), ``_on_done`` (the returned result), ``_on_error`` and ``_on_finished``;
    ``worker.cancel()`` asks the run to stop after its current step. ``pbar`` (a napari
    ``progress``) is closed when the worker finishes. Updates reach ``owner`` at most once per
    ``interval`` seconds (default ``1 / UPDATES_PER_SECOND``).

    When ``owner``'s Qt side is destroyed (its viewer was closed) while the worker runs, the
    worker is asked to quit (the generator is dropped at its next step), ``pbar`` is closed,
    and the signals still queued for ``owner`` are ignored: nothing touches deleted widgets or
    a closed viewer.
    """
    stop, first_shown = threading.Event(), threading.Event()
    worker = _drive(
        run, stop, 1 / UPDATES_PER_SECOND if interval is None else interval, first_shown
    )

    def cancel() -> None:
        stop.set()
        first_shown.set()  # (no need to wait for a preview any more)

    worker.cancel = cancel
    bars = [pbar] if pbar is not None else []

    def close_bar() -> None:
        while bars:
            try:
                bars.pop().close()
            except RuntimeError:  # its Qt side went with the viewer
                pass

    def guard(slot: Callable) -> Callable:
        def call(*args: Any) -> None:
            if qt_alive(owner):
                slot(*args)

        return call

    def closed(*_: Any) -> None:
        cancel()
        worker.quit()
        close_bar()

    owner.native.destroyed.connect(closed)

    def forget() -> None:
        close_bar()
        if qt_alive(owner):
            owner.native.destroyed.disconnect(closed)

    show = guard(owner._on_update)

    def on_update(update: Any) -> None:
        try:
            show(update)
        finally:
            if getattr(update, "image", None) is not None:
                first_shown.set()

    worker.yielded.connect(on_update)
    worker.returned.connect(guard(owner._on_done))
    worker.errored.connect(guard(owner._on_error))
    worker.finished.connect(guard(owner._on_finished))
    worker.finished.connect(forget)
    return worker
