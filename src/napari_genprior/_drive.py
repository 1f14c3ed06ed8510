"""Run a stoppable generator (solvers, training) to its end, with a per-update callback."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any


def drive(run: Generator[Any, bool | None, Any], on_update: Callable[[Any], bool | None]) -> Any:
    """Send ``run`` to completion and return its value; ``on_update(update) is False`` sends
    False into it, which makes it stop early and return its best result so far."""
    reply = None
    try:
        while True:
            reply = False if on_update(run.send(reply)) is False else None
    except StopIteration as stop:
        return stop.value
