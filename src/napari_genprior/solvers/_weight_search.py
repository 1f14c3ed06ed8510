"""The weight search shared by the classical solvers (``lasso-dct``, ``lasso-wavelet``, ``tv``).

A solver hands :func:`_drive` a *core*: a generator of :class:`_Iterate` that runs its iteration
for a batch of weights ``lam`` at once. :func:`_drive` holds out part of the measurement, runs the
core on the rest for a geometric grid of weights, keeps the weight whose solution best predicts
the held-out entries, and solves again with it on everything (see
:mod:`napari_genprior.solvers.classical` for the rule in full).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import torch

from ..operators.base import check_float, check_int
from ._classical_ops import abs_squared
from .common import Problem, SolverGen, Update, draw_holdout

#: Images with more pixels than this choose their weight one weight at a time (memory), smaller
#: ones all weights in one batch (speed). 2**23: a 32x512x512 stack.
SEARCH_BATCH_VOXELS = 2**23
#: Searching one weight at a time along a path (``tv``), each weight is warm-started from the
#: one before and runs at most this many iterations (unless ``search_steps`` says otherwise): on
#: a 16-coil 320x320 slice, 50 chose as good a weight as 300 (38.52 and 38.51 dB) in a third of
#: the time. The lassos start every weight from zero: a large weight's solution carries
#: components that the measurement does not see, which FISTA then removes only at the rate of
#: the next, smaller weight (8 coils: 19.4 dB after a path, 29.1 dB from zero).
PATH_SEARCH_STEPS = 50


@dataclass
class _Iterate:
    """What an iteration hands to the driver (all batched over the weights ``lam``)."""

    x: torch.Tensor  # (B, *shape)
    # (B, *measurement_shape) and (B,); None from a core run for SURE (:mod:`._sure`)
    Ax: torch.Tensor | None
    objective: torch.Tensor | None
    iteration: int
    done: bool  # converged (relative change below tol) or out of steps
    warm: dict[str, torch.Tensor]  # state that warm-starts another run (batched)


Core = Callable[
    [torch.Tensor, torch.Tensor, int, "dict[str, torch.Tensor] | None"],
    Generator[_Iterate, None, None],
]


# -- the hold-out rule -------------------------------------------------------------------------


def _holdout_masks(
    problem: Problem, fraction: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Real 0/1 masks over the measurement entries: observed, training (observed minus held
    out) and held out, the held-out entries drawn with a generator seeded by ``problem.seed``."""
    real = problem.y.real.dtype
    if fraction == 0:  # nothing held out (a weight given): no draw
        y = problem.y
        observed = (
            torch.ones(y.shape, dtype=real, device=y.device)
            if problem.observed is None
            else problem.observed.to(device=y.device, dtype=torch.bool).to(real)
        )
        if problem.precision is not None:
            observed = observed * problem.precision
        return observed, observed, torch.zeros_like(observed)
    observed, held = draw_holdout(problem, fraction)
    if fraction > 0 and int(observed.sum()) - int(held.sum()) < 1:
        raise ValueError(
            f"only {int(observed.sum())} measurement entries carry data: too few to "
            "hold some out for choosing lam; pass lam= explicitly."
        )
    masks = observed.to(real), (observed & ~held).to(real), held.to(real)
    if problem.precision is not None:  # each entry weighed by its inverse noise variance
        masks = tuple(m * problem.precision for m in masks)
    return masks


def weight_grid(lam_max: float, lam_ratio: float, n_lams: int, device: Any) -> torch.Tensor:
    """``n_lams`` weights, geometric from ``lam_ratio * lam_max`` to ``lam_max`` (float32 on
    ``device``; computed in float64 and cast on the CPU: MPS has no float64)."""
    grid = torch.logspace(math.log10(lam_ratio), 0.0, n_lams, dtype=torch.float64) * lam_max
    return grid.to(torch.float32).to(device)


def _weighted_misfit(Ax: torch.Tensor, y: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``sum weight |Ax - y|^2`` per batch member."""
    return (abs_squared(Ax - y) * weight).flatten(1).sum(1)


def _check_options(
    steps: int,
    search_steps: int | None,
    preview_every: int,
    tol: float,
    lam: float | None,
    n_lams: int,
    lam_ratio: float,
    holdout: float,
) -> tuple[int, int | None, float | None]:
    steps = check_int("steps", steps, 1)
    if search_steps is not None:
        search_steps = check_int("search_steps", search_steps, 1)
    check_int("preview_every", preview_every, 1)
    check_float("tol", tol, low=0)
    if lam is not None:
        lam = check_float("lam", lam, low=0)
    check_int("n_lams", n_lams, 1)
    check_float("lam_ratio", lam_ratio, low=0, high=1, low_open=True)
    check_float("holdout", holdout, low=0, high=1, low_open=True)
    if holdout >= 1:
        raise ValueError(f"holdout must be below 1, got {holdout}.")
    return steps, search_steps, lam


def _drive(
    problem: Problem,
    core: Core,
    lam_scale: Callable[[torch.Tensor], float],
    *,
    lam: float | None,
    n_lams: int,
    lam_ratio: float,
    holdout: float,
    steps: int,
    search_steps: int | None,
    preview_every: int,
    path: bool = False,
) -> SolverGen:
    """Choose ``lam`` by hold-out (unless given), then solve with it on all observed entries.

    ``core(weight, lams, steps, warm)`` is a generator of :class:`_Iterate` for the batch of
    weights ``lams`` (a 1D tensor) and the measurement mask ``weight``. With ``path``, weights
    tried one at a time are tried from the largest down, each warm-started from the one before.
    """
    y = problem.y
    observed, train, held = _holdout_masks(problem, holdout if lam is None else 0.0)
    extra: dict[str, Any] = {
        "lam": lam,
        "lam_grid": None,
        "heldout_misfit": None,
        "heldout_entries": 0,
    }
    step, warm = 0, None
    # the weights are solved together in one batch, or one at a time when a batch of them would
    # not fit (a 64x512x512 stack: 17 GB for 4 weights at once, 4 GB one at a time) or would be
    # slower (multi-coil k-space: 8 coils of 256x256 took 92 ms per weight in a batch of 8 and
    # 21 ms alone, as the batch leaves the CPU's caches); one at a time, they follow a path
    entries = math.prod(problem.A.measurement_shape)
    batched = problem.A.size <= SEARCH_BATCH_VOXELS and entries <= problem.A.size
    chunk = n_lams if batched else 1
    path = path and not batched
    if search_steps is None:
        search_steps = min(steps, PATH_SEARCH_STEPS) if path else steps
    n_chunks = -(-n_lams // chunk)
    if path and lam is None:  # the chosen weight ends with as many steps in all as a batched
        steps += max(0, steps - search_steps)  # search would give it (the solve continues)
    total = steps if lam is not None else n_chunks * search_steps + steps
    if lam is None:
        n_held = float(held.sum())
        lam_max = lam_scale(train)
        if not (math.isfinite(lam_max) and lam_max > 0):
            lam_max = 1.0  # no signal on the training entries: any scale will do
        lams = weight_grid(lam_max, lam_ratio, n_lams, y.device)
        cancelled, iterations, total_iterations = False, 0, 0
        misfits: list[float | None] = [None] * n_lams  # None: not tried (cancelled)
        kept = None  # (held-out misfit, index, x, warm) of the best weight so far
        starts = list(range(0, n_lams, chunk))
        if path:
            starts.reverse()
        start: dict[str, torch.Tensor] | None = None  # along a path: the weight before's state
        for first in starts:
            part, last = lams[first : first + chunk], None
            for last in core(train, part, search_steps, start):
                # the member shown: the one whose held-out misfit is lowest (alone: no choice)
                best = (
                    0 if len(part) == 1 else int(torch.argmin(_weighted_misfit(last.Ax, y, held)))
                )
                step += 1
                show = step % preview_every == 0 or last.done
                keep_going = yield Update(
                    step,
                    total,
                    float(last.objective[best]),
                    problem.to_numpy(last.x[best]) if show else None,
                )
                if keep_going is False:
                    cancelled = True
                    break
            assert last is not None
            heldout = _weighted_misfit(last.Ax, y, held) / n_held
            misfits[first : first + len(part)] = [float(v) for v in heldout.cpu()]
            iterations = max(iterations, last.iteration)
            total_iterations += last.iteration
            best = int(torch.argmin(heldout))
            state = {k: v[best : best + 1] for k, v in last.warm.items()}
            if path:
                start = state
            if kept is None or heldout[best] < kept[0]:
                kept = (float(heldout[best]), first + best, last.x[best], state)
            del last
            if cancelled:
                break
        assert kept is not None
        lam = float(lams[kept[1]])
        extra.update(
            lam=lam,
            lam_max=lam_max,
            lam_grid=[float(v) for v in lams.cpu()],
            heldout_misfit=misfits,
            heldout_entries=int(n_held),
            search_iterations=iterations,
            search_iterations_total=total_iterations,
        )
        if cancelled:
            extra.update(cancelled_at=step, iterations=0)
            return kept[2], extra
        warm = kept[3]
    result = yield from final_solve(
        problem, core, observed, lam, steps, warm, step, total, preview_every, extra
    )
    return result


def final_solve(
    problem: Problem,
    core: Core,
    observed: torch.Tensor,
    lam: float,
    steps: int,
    warm: dict[str, torch.Tensor] | None,
    step: int,
    total: int,
    preview_every: int,
    extra: dict[str, Any],
) -> SolverGen:
    """The chosen weight on every observed entry, the updates counting on from ``step``;
    ``extra`` gets ``iterations`` (and ``cancelled_at`` when stopped)."""
    lam_t = torch.tensor([lam], dtype=torch.float32, device=problem.y.device)
    last = None
    for last in core(observed, lam_t, steps, warm):
        step += 1
        show = step % preview_every == 0 or last.done
        keep_going = yield Update(
            step, total, last.objective.item(), problem.to_numpy(last.x[0]) if show else None
        )
        if keep_going is False:
            extra["cancelled_at"] = step
            break
    assert last is not None
    extra["iterations"] = last.iteration
    return last.x[0], extra
