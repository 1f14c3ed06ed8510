"""Running an API generator (a reconstruction, a training) in a napari worker thread."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from napari.qt.threading import thread_worker


@thread_worker(start_thread=False)
def _drive(run: Generator):
    """Run the generator in a worker thread; values sent in (Cancel's False) pass through."""
    return (yield from run)


def make_worker(owner: Any, run: Generator) -> Any:
    """A not-yet-started worker for ``run`` wired to ``owner``'s ``_on_update`` (each yielded
    update), ``_on_done`` (the returned result), ``_on_error`` and ``_on_finished``."""
    worker = _drive(run)
    worker.yielded.connect(owner._on_update)
    worker.returned.connect(owner._on_done)
    worker.errored.connect(owner._on_error)
    worker.finished.connect(owner._on_finished)
    return worker
