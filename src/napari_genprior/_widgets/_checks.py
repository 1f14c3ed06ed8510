"""The checks a point-and-click run passes before its long part, in the worker thread.

:func:`checked_run` wraps an API run generator: first (optionally) the quick prior fit check of
:func:`napari_genprior.advice.check_prior_fit`; then it passes the run's updates on, and after
the first second of steps estimates the whole run's time. A prior that does not suit the image,
or an estimate over the limit, ends the wrapper early with a :class:`Stopped` (the run itself is
kept, unclosed, for the widget to resume on a second click). Otherwise it returns the run's
result. No napari here either: the widget shows what comes back.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Stopped:
    """A run stopped before its long part: ``reason`` "prior" (it does not suit the image) or
    "slow" (estimated over the limit); ``messages`` say why; ``run`` is the paused run ("slow")."""

    reason: str
    messages: list[str] = field(default_factory=list)
    run: Generator | None = None
    estimate: float | None = None  #: the expected time in all (seconds), at the typical stop
    most: float | None = None  #: the time if every step up to the maximum runs
    steps_done: int = 0  #: the steps run before the stop, and the maximum
    steps_total: int = 0
    per_step: float = 0.0  #: the pace measured (seconds a step) and the time it was measured over
    elapsed: float = 0.0


def _format_seconds(s: float) -> str:
    return f"{s:.0f} s" if s < 90 else f"{s / 60:.1f} min"


def checked_run(
    run: Generator,
    fit: dict[str, Any] | None = None,
    confirm_after: float | None = None,
    probe: float = 1.0,
    typical: float = 1.0,
):
    """Pass on ``run``'s updates after the checks; return its result or a :class:`Stopped`.

    Parameters
    ----------
    run : generator
        An API run (:func:`napari_genprior.api.iter_reconstruct_stack`).
    fit : dict, optional
        ``y`` (one plane), ``A``, ``prior``, ``seed``, ``device``, ``image_kind``: check the
        prior first.
    confirm_after : float, optional
        Stop (keeping ``run`` to resume) when the run is estimated to take longer than this
        many seconds in all, after ``probe`` seconds of steps. None: never.
    typical : float
        The share of its maximum of steps the method typically runs
        (:data:`napari_genprior._recommend.TYPICAL_SHARE`: most stop early by a rule); the
        estimate is at that share, the maximum said beside it.
    """
    if fit is not None:
        from ..advice import check_prior_fit

        result = check_prior_fit(
            fit["y"],
            fit["A"],
            fit["prior"],
            seed=fit.get("seed", 0),
            device=fit.get("device", "cpu"),
            image_kind=fit.get("image_kind"),
        )
        if result.warnings:
            run.close()
            return Stopped("prior", result.warnings)
    start: tuple[float, int] | None = None  # the pace is timed from the first update on (the
    reply = None  # set-up before it, a network built, is not a step)
    asked = confirm_after is None
    while True:
        try:
            u = run.send(reply)
        except StopIteration as stop:
            return stop.value
        if not asked:
            now, done = time.perf_counter(), u.plane * u.total + u.step
            if start is None:
                start = (now, done)
            elapsed, steps = now - start[0], done - start[1]
            if elapsed >= probe and steps > 0:
                asked = True
                per_step = elapsed / steps
                total = u.total * u.planes
                most = elapsed + per_step * (total - done)
                estimate = elapsed + per_step * max(typical * total - done, 0)
                if estimate > confirm_after:
                    return Stopped(
                        "slow",
                        [
                            f"this run would take about {_format_seconds(estimate)} (at most "
                            f"{_format_seconds(most)}: {total} steps at "
                            f"{per_step * 1000:.0f} ms each). Click Continue to go on, or "
                            "lower max steps (a new run)."
                        ],
                        run=run,
                        estimate=estimate,
                        most=most,
                        steps_done=done,
                        steps_total=total,
                        per_step=per_step,
                        elapsed=elapsed,
                    )
        reply = yield u
