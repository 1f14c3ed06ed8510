"""``cg``: least squares by conjugate gradients, stopped on held-out measurements.

For multi-coil MRI this is the SENSE reconstruction of Pruessmann et al. (2001) as every MRI
toolbox runs it: conjugate gradients on the normal equations ``A^H W A x = A^H W y`` from
``x = 0`` (CGLS), where the iteration count is the only regulariser (early stopping; more
iterations fit more noise). It works for any linear operator and for real or complex images:
inner products are the real ``Re <a, b>`` the operators' adjoints are defined with, for which
``A^H W A`` is self-adjoint and positive semi-definite.

The iteration count is chosen as the classical solvers choose their weight, without the ground
truth: CG runs on 90% of the observed measurement entries while the misfit on the other 10%
(``holdout``) is tracked; it stops once that misfit has not improved for ``patience`` iterations,
and the solve is repeated on all observed entries for the best count.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import torch

from ..operators.base import check_float, check_int, real_inner
from .common import Problem, SolverGen, Update, draw_holdout


def _cgls(
    problem: Problem, weight: torch.Tensor, steps: int, tol: float
) -> Generator[tuple[torch.Tensor, torch.Tensor, float], None, None]:
    """Yield ``(x, Ax, misfit)`` after each CG iteration on ``A^H W A x = A^H W y``."""
    A, y = problem.A, problem.y
    start = problem.start()
    if start is None:
        x = torch.zeros((1, *problem.shape), dtype=problem.dtype, device=y.device)
        Ax = torch.zeros_like(y).unsqueeze(0)
    else:  # the margins beyond a blur's field of view start at the mirrored measurement
        x = start.to(problem.dtype).unsqueeze(0)
        Ax = A(x)
    r = A.adjoint(weight * (y - Ax[0])).unsqueeze(0).to(problem.dtype)
    p = r.clone()
    rs = float(real_inner(r, r))
    rs0 = rs
    for _ in range(steps):
        if rs <= tol * tol * rs0 or rs == 0.0:
            return
        Ap_meas = A(p)
        Ap = A.adjoint(weight * Ap_meas).to(problem.dtype)
        curvature = float(real_inner(p, Ap))
        if curvature <= 0:  # p lies in the null space of W A: nothing more to fit
            return
        alpha = rs / curvature
        x = x + alpha * p
        Ax = Ax + alpha * Ap_meas
        r = r - alpha * Ap
        rs_new = float(real_inner(r, r))
        p = r + (rs_new / rs) * p
        rs = rs_new
        misfit = float(((Ax[0] - y).abs().pow(2) * weight).sum())
        yield x, Ax, misfit


def solve_cg(
    problem: Problem,
    *,
    steps: int = 200,
    preview_every: int = 10,
    iterations: int | None = None,
    holdout: float = 0.1,
    patience: int = 20,
    tol: float = 1e-6,
) -> SolverGen:
    """Least squares (SENSE for multi-coil MRI) by conjugate gradients, stopped early.

    Parameters
    ----------
    problem : Problem
        The measurement; its operator must be linear.
    steps : int
        Most CG iterations of the search for the count (and of the final solve).
    preview_every : int
        A preview image every this many iterations.
    iterations : int, optional
        A fixed iteration count; skips the search.
    holdout : float
        Fraction of the observed measurement entries held out to choose the count.
    patience : int
        Stop the search when the held-out misfit has not improved for this many iterations.
    tol : float
        Stop when the normal-equation residual falls below ``tol`` times its start.

    Yields
    ------
    Update
        One per iteration, search included.

    Returns
    -------
    x : Tensor
        The estimate, of the operator's image shape.
    extra : dict
        ``iterations`` (the count used), ``heldout_misfit`` (per search iteration),
        ``heldout_entries`` (and ``cancelled_at`` when stopped).
    """
    steps = check_int("steps", steps, 1)
    check_int("preview_every", preview_every, 1)
    patience = check_int("patience", patience, 1)
    check_float("tol", tol, low=0)
    check_float("holdout", holdout, low=0, high=1, low_open=True)
    if holdout >= 1:
        raise ValueError(f"holdout must be below 1, got {holdout}.")
    y = problem.y
    real = y.real.dtype
    observed, held = draw_holdout(problem, holdout if iterations is None else 0.0)
    extra: dict[str, Any] = {"heldout_entries": int(held.sum())}
    step = 0
    if iterations is None:
        n_held = max(1, int(held.sum()))
        train, held_w = (observed & ~held).to(real), held.to(real)
        curve: list[float] = []
        best, since = (float("inf"), 0), 0
        for k, (x, Ax, misfit) in enumerate(_cgls(problem, train, steps, tol), 1):
            curve.append(float(((Ax[0] - y).abs().pow(2) * held_w).sum()) / n_held)
            if curve[-1] < best[0]:
                best, since = (curve[-1], k), 0
            else:
                since += 1
            step += 1
            reply = yield Update(
                step,
                2 * steps,
                misfit,
                problem.to_numpy(x[0]) if step % preview_every == 0 else None,
            )
            if reply is False:
                extra.update(cancelled_at=step, iterations=k, heldout_misfit=curve)
                return x[0], extra
            if since >= patience:
                break
        iterations = max(1, best[1])
        extra["heldout_misfit"] = curve
    else:
        iterations = check_int("iterations", iterations, 1)
    total = step + iterations
    x = torch.zeros((1, *problem.shape), dtype=problem.dtype, device=y.device)
    done = 0
    for done, (x, _, misfit) in enumerate(_cgls(problem, observed.to(real), iterations, tol), 1):
        step += 1
        show = step % preview_every == 0 or done == iterations
        reply = yield Update(step, total, misfit, problem.to_numpy(x[0]) if show else None)
        if reply is False:
            extra["cancelled_at"] = step
            break
    extra["iterations"] = done
    return x[0], extra
