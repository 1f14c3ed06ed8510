"""``richardson-lucy``: the deconvolution microscopists know, stopped without the ground truth.

Richardson-Lucy is the maximum-likelihood iteration for Poisson counts under a non-negative
operator: ``x <- x * A^T(y / A x) / A^T 1``. Dividing by ``A^T 1`` (not 1) keeps it exact at the
image border of a zero-boundary blur and lets missing entries simply be left out. The
iteration count is its only regulariser; it is chosen as ``dip`` chooses its stopping step: a
random 5% of the measurement is held out, the others are fitted, and the iterate with the least
misfit on the held-out entries is returned (it stops ``patience`` steps after that minimum).
Gaussian read noise of variance ``read_variance`` (counts squared; the camera's, which
``reconstruct`` passes) is handled by the shift of Snyder et al. (1993): ``y + s`` is nearly
Poisson with mean ``A x + s``.
"""

from __future__ import annotations

from typing import Any

import torch

from ..operators.base import check_float, check_int
from .common import Problem, SolverGen, Update, split_holdout

# Operators whose forward map keeps non-negative images non-negative (a PSF, block means,
# missing pixels): Richardson-Lucy's multiplicative update needs this.
NONNEGATIVE_KINDS = ("blur", "downsample", "inpaint", "denoise")


def solve_richardson_lucy(
    problem: Problem,
    *,
    steps: int = 1000,
    holdout: float = 0.05,
    patience: int = 50,
    read_variance: float = 0.0,
    preview_every: int = 10,
) -> SolverGen:
    """Richardson-Lucy iterations with held-out stopping; see the module docstring."""
    A = problem.A
    if A.kind not in NONNEGATIVE_KINDS or A.complex_measurements:
        raise ValueError(
            f"method 'richardson-lucy' needs a non-negative operator "
            f"({', '.join(NONNEGATIVE_KINDS)}); {A.kind!r} is not one."
        )
    steps = check_int("steps", steps, 1)
    holdout = check_float("holdout", holdout, low=0, high=0.5)
    patience = check_int("patience", patience, 1)
    # Gaussian read noise of variance s (in counts): y + s is nearly Poisson with mean A x + s
    shift = check_float("read_variance", read_variance, low=0) / problem.scale
    y = (problem.y + shift).clamp_min(0)
    train, held = split_holdout(problem, holdout)
    n_train, n_held = float(train.sum()), float(held.sum())
    with torch.no_grad():
        norm = A.adjoint(train[None])[0]
        floor = 1e-6 * float(norm.max())
        # pixels no training entry sees (outside an inpainting mask's reach) keep the start
        seen = norm > floor
        norm = norm.clamp_min(floor)
        eps = 1e-6 * max(float(y.max()), 1e-12)
        # (the start: the mean of the counts, less the shift the model adds back)
        x = torch.full(
            (1, *A.shape),
            float((y * train).sum() / max(n_train, 1.0)) - shift,
            device=y.device,
            dtype=y.dtype,
        ).clamp_min(eps)
        # every entry fitted and every pixel seen (a stack's chunk, a plain deblur): the same
        # update in fewer passes over memory (masks left out, temporaries reused)
        plain = not n_held and bool(train.all())
        if plain:  # unseen pixels (none, or a windowed blur's far corners) keep their value
            inv_norm = torch.where(seen, norm.reciprocal(), 0.0)
            keep = None if bool(seen.all()) else (~seen).to(norm.dtype)
    best_x, best_val, best_step, stopped_at = x[0].clone(), float("inf"), 0, steps
    extra: dict[str, Any] = {}
    for step in range(1, steps + 1):
        with torch.no_grad():
            Ax = A(x)[0]
            if Ax.untyped_storage().data_ptr() == x.untyped_storage().data_ptr():
                Ax = Ax.clone()  # (an identity's forward: the updates below are in place)
            if shift:
                Ax.add_(shift)
            if plain:
                loss = float(torch.sub(Ax, y).square_().sum() / max(n_train, 1.0))
                ratio = torch.div(y, Ax.add_(eps), out=Ax)
                factor = A.adjoint(ratio[None]).mul_(inv_norm)
                x = x * (factor if keep is None else factor.add_(keep))
            else:
                resid = Ax - y
                loss = float((resid * train).square().sum() / max(n_train, 1.0))
                if n_held:
                    val = float((resid * held).square().sum() / n_held)
                    if val < best_val:
                        best_val, best_x, best_step = val, x[0].clone(), step - 1
                ratio = train * y / (Ax + eps)
                x = torch.where(seen, x * A.adjoint(ratio[None]) / norm, x)
        if not n_held:
            best_x, best_step = x[0], step
        preview = problem.to_numpy(best_x) if step % preview_every == 0 or step == steps else None
        keep_going = yield Update(step, steps, loss, preview)
        if keep_going is False:
            extra["cancelled_at"] = step
            stopped_at = step
            break
        if n_held and step - 1 - best_step >= patience:
            stopped_at = step
            break
    extra.update(
        iterations=best_step,
        stopped_at=stopped_at,
        heldout_entries=int(n_held),
        best_validation_misfit=best_val if n_held else None,
    )
    return best_x, extra
