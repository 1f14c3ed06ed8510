"""``twf``: truncated Wirtinger flow [TWF]_ (conventions: the package docstring).

References
----------
.. [TWF] Y. Chen and E. J. Candes, "Solving random quadratic systems of equations is nearly as
   easy as solving linear systems", NeurIPS 2015; Comm. Pure Appl. Math. 70(5), 2017.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..common import Problem, SolverGen
from ._common import (
    _TINY,
    _check_count,
    _check_options,
    _guarded_descent,
    _power,
    _random_start,
    _setup,
    _zero_start,
)

__all__ = ["solve_twf"]


def solve_twf(
    problem: Problem,
    *,
    steps: int = 500,
    mu: float = 0.2,
    alpha_y: float = 3.0,
    alpha_lb: float = 0.3,
    alpha_ub: float = 5.0,
    alpha_h: float = 5.0,
    backtrack: bool = True,
    init_iters: int = 50,
    tol: float = 1e-6,
    preview_every: int = 10,
) -> SolverGen:
    """Truncated Wirtinger flow [TWF]_ (real images; Gaussian or coded-diffraction ``L``).

    Initialisation: ``lambda0 = ||y||`` (the paper's ``sqrt(mean psi_i^2)`` norm estimate) and the
    leading eigenvector of ``(1/m) sum_i y_i^2 a_i a_i^T 1{m y_i^2 <= alpha_y^2 lambda0^2}``
    (i.e. ``y_i^2 <= alpha_y^2 mean(y^2)``), from ``init_iters`` power iterations (50 in the
    paper's code), scaled to norm ``lambda0``.

    Iterations on the Poisson loss of the intensities ``y^2`` (the loss the paper's theory and
    code use): ``z <- z - mu * 2 L^T(1_E * (|Lz|^2 - y^2) / conj(Lz))``, the paper's
    ``(mu/m) grad`` in our row scaling, where ``E`` keeps the measurements with
    ``alpha_lb <= sqrt(m)|Lz|_i / ||z|| <= alpha_ub`` and
    ``|y_i^2 - |Lz|_i^2| <= alpha_h K sqrt(m)|Lz|_i / ||z||``,
    ``K = mean_l |y_l^2 - |Lz|_l^2|``. Defaults are the paper's: ``mu = 0.2``, ``alpha_y = 3``,
    ``alpha_lb = 0.3``, ``alpha_ub = 5``, ``alpha_h = 5``.

    Parameters
    ----------
    problem : Problem
        A ``phase`` measurement.
    steps : int
        Maximum number of gradient steps.
    mu : float
        Step size.
    alpha_y, alpha_lb, alpha_ub, alpha_h : float
        Truncation thresholds (initialisation; gradient lower, upper and residual bounds).
    backtrack : bool
        Reject a step whose amplitude misfit exceeds twice the smallest so far and halve ``mu``
        (see :class:`~._common._Safeguard`; it did not trigger where the paper's iteration
        converges). False runs the paper's iteration unguarded (it diverges with ``m`` well
        below ``n``).
    init_iters : int
        Power iterations of the spectral initialisation.
    tol : float
        Stop when the relative change of the estimate falls below it.
    preview_every : int
        Preview image every this many steps.

    Yields
    ------
    Update
        Every step; the sent-back value ``False`` stops the run.

    Returns
    -------
    tuple
        The estimate (shape ``problem.shape``, normalised units) and ``{"iterations",
        "converged", "init_norm", "final_step_size", "step_halvings"}``.
    """
    _check_options(
        steps,
        tol,
        preview_every,
        mu=mu,
        alpha_y=alpha_y,
        alpha_lb=alpha_lb,
        alpha_ub=alpha_ub,
        alpha_h=alpha_h,
    )
    init_iters = _check_count("init_iters", init_iters, 0)
    L, y, _n, m, _ = _setup(problem)
    root_m = math.sqrt(m)
    y2 = y.pow(2)
    lam0 = float(y.norm())
    extra: dict[str, Any] = {"init_norm": lam0}

    with torch.no_grad():
        if lam0 == 0.0:
            return (yield from _zero_start(problem, steps, extra))
        w0 = y2 * (m * y2 <= alpha_y**2 * lam0**2)
        v = _power(
            lambda u: L.adjoint(w0 * L(u)), _random_start(problem, problem.shape), init_iters
        )

        def candidate(z: torch.Tensor, Lz: torch.Tensor, step_size: float) -> torch.Tensor:
            zn = z.norm().clamp_min(_TINY)
            mag = Lz.abs()
            ratio = root_m * mag / zn
            resid = mag.pow(2) - y2
            K = resid.abs().mean()
            keep = (ratio >= alpha_lb) & (ratio <= alpha_ub) & (resid.abs() <= alpha_h * K * ratio)
            safe = torch.where(keep, Lz, torch.ones_like(Lz))
            g = torch.where(
                keep, resid / (safe.conj() if safe.is_complex() else safe), torch.zeros_like(Lz)
            )
            return z - step_size * 2 * L.adjoint(g)

        return (
            yield from _guarded_descent(
                problem,
                L,
                y,
                lam0 * v,
                candidate,
                backtrack=backtrack,
                mu=mu,
                slack=2.0,
                steps=steps,
                tol=tol,
                preview_every=preview_every,
                extra=extra,
            )
        )
