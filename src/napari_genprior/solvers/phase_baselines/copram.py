"""``copram``: compressive phase retrieval with alternating minimisation [CoPRAM]_
(conventions: the package docstring).

References
----------
.. [CoPRAM] G. Jagatap and C. Hegde, "Fast, sample-efficient algorithms for structured phase
   retrieval", NeurIPS 2017.
.. [CoSaMP] D. Needell and J. A. Tropp, "CoSaMP: iterative signal recovery from incomplete and
   inaccurate samples", Appl. Comput. Harmon. Anal. 26(3), 2009.
"""

from __future__ import annotations

from typing import Any

import torch

from ..common import Problem, SolverGen
from ._common import (
    _TINY,
    _check_count,
    _check_options,
    _dense_matrix,
    _estimate_support,
    _hard_threshold,
    _misfit,
    _phase,
    _power,
    _random_start,
    _rel_change,
    _report,
    _setup,
    _sparsity,
    _top_k_mask,
    _zero_start,
)

__all__ = ["solve_copram"]


def _restricted_lstsq(
    L: Any,
    M: torch.Tensor | None,
    b: torch.Tensor,
    T: torch.Tensor,
    z0: torch.Tensor,
    cg_iters: int,
) -> torch.Tensor:
    """``argmin_{supp z in T} ||L z - b||`` (real ``z``): dense normal equations, else CG."""
    if M is not None:
        idx = torch.nonzero(T.reshape(-1)).flatten()
        AT = M[:, idx]
        G = AT.T @ AT
        ridge = 1e-6 * float(G.diagonal().mean().clamp_min(_TINY))
        G = G + ridge * torch.eye(G.shape[0], device=G.device, dtype=G.dtype)
        sol = torch.linalg.solve(G, AT.T @ b.reshape(-1))
        z = torch.zeros(z0.numel(), device=z0.device, dtype=z0.dtype)
        z[idx] = sol
        return z.reshape(z0.shape)

    # conjugate gradients on P L^T L P z = P L^T b, warm-started at P z0
    def normal(u: torch.Tensor) -> torch.Tensor:
        return L.adjoint(L(u * T)) * T

    z = z0 * T
    r = L.adjoint(b) * T - normal(z)
    p = r.clone()
    rr = float((r * r).sum())
    stop = 1e-12 * max(float((L.adjoint(b) * T).pow(2).sum()), _TINY)
    for _ in range(cg_iters):
        if rr <= stop:
            break
        Ap = normal(p)
        alpha = rr / max(float((p * Ap).sum()), _TINY)
        z = z + alpha * p
        r = r - alpha * Ap
        rr_new = float((r * r).sum())
        p = r + (rr_new / rr) * p
        rr = rr_new
    return z


def solve_copram(
    problem: Problem,
    *,
    steps: int = 500,
    sparsity: int | None = None,
    cosamp_iters: int = 3,
    init_iters: int = 100,
    cg_iters: int = 30,
    tol: float = 1e-6,
    preview_every: int = 10,
) -> SolverGen:
    """CoPRAM, compressive phase retrieval with alternating minimisation [CoPRAM]_.

    1. Support: the ``k`` largest marginals ``M_jj = (1/m) sum_i y_i^2 a_ij^2`` (see the module
       docstring for coded diffraction); ``k = sparsity`` or :func:`default_sparsity`.
    2. Sparse spectral initialisation: the leading eigenvector (power iterations) of
       ``(1/m) sum_i y_i^2 a_{i,S} a_{i,S}^T`` on the support (no truncation, as in the paper),
       scaled to the norm estimate ``||y||``.
    3. Alternating minimisation, one step per outer iteration: phases ``p = Lz / |Lz|`` (signs
       for the Gaussian matrix), then ``cosamp_iters`` iterations of CoSaMP [CoSaMP]_ on
       ``min ||L z - p y||`` with ``||z||_0 <= k``, warm-started at ``z``: proxy ``L^T r``,
       merge the ``2k`` largest proxy entries with the current support, least squares on the
       merged support (normal equations for the Gaussian matrix, ``cg_iters`` conjugate
       gradients otherwise), prune to the ``k`` largest.

    Parameters
    ----------
    problem : Problem
        A ``phase`` measurement.
    steps : int
        Maximum number of outer (alternating) iterations.
    sparsity : int, optional
        Number of non-zero pixels (default: :func:`default_sparsity`).
    cosamp_iters : int
        CoSaMP iterations per outer iteration.
    init_iters : int
        Power iterations of the initialisation.
    cg_iters : int
        Conjugate-gradient iterations per least-squares solve (coded diffraction only).
    tol : float
        Stop when the relative change of the estimate falls below it.
    preview_every : int
        Preview image every this many steps.

    Yields
    ------
    Update
        Every outer iteration; the sent-back value ``False`` stops the run.

    Returns
    -------
    tuple
        The estimate and ``{"iterations", "converged", "sparsity", "sparsity_rule",
        "support_estimate"}``.
    """
    _check_options(steps, tol, preview_every)
    cosamp_iters = _check_count("cosamp_iters", cosamp_iters)
    init_iters = _check_count("init_iters", init_iters, 0)
    cg_iters = _check_count("cg_iters", cg_iters)
    L, y, n, m, _ = _setup(problem)
    k, extra = _sparsity(sparsity, n, m)
    lam0 = float(y.norm())

    with torch.no_grad():
        if lam0 == 0.0:
            return (yield from _zero_start(problem, steps, extra, support_estimate="none"))
        M = _dense_matrix(L, y)
        y2 = y.pow(2)
        support, how = _estimate_support(problem, L, y, k, init_iters, y2)
        v = _power(
            lambda u: L.adjoint(y2 * L(u)),
            _random_start(problem, problem.shape),
            init_iters,
            mask=support,
        )
        z = lam0 * v
        extra["support_estimate"] = how
        step, converged = 0, False
        for step in range(1, steps + 1):
            b = y * _phase(L(z))
            z_new = z
            for _ in range(cosamp_iters):
                proxy = L.adjoint(b - L(z_new))
                T = torch.maximum(
                    _top_k_mask(proxy.abs(), min(2 * k, n)), (z_new != 0).to(proxy.dtype)
                )
                z_new = _hard_threshold(_restricted_lstsq(L, M, b, T, z_new, cg_iters), k)
            converged = _rel_change(z_new, z) < tol
            z = z_new
            if (
                yield from _report(
                    problem, z, step, steps, preview_every, converged, _misfit(L(z), y), extra
                )
            ):
                break
            if converged:
                break
    extra.update(iterations=step, converged=converged)
    return z, extra
