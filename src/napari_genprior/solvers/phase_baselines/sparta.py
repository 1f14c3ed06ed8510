"""``sparta``: sparse truncated amplitude flow [SPARTA]_ (conventions: the package docstring).

References
----------
.. [SPARTA] G. Wang, L. Zhang, G. B. Giannakis, M. Akcakaya and J. Chen, "Sparse phase retrieval
   via truncated amplitude flow", IEEE Trans. Signal Process. 66(2), 2018 (arXiv:1611.07641,
   2016).
.. [TAF] G. Wang, G. B. Giannakis and Y. C. Eldar, "Solving systems of random quadratic
   equations via truncated amplitude flow", IEEE Trans. Inf. Theory 64(2), 2018 (the
   orthogonality-promoting initialisation SPARTA builds on).
"""

from __future__ import annotations

import math

import torch

from ..common import Problem, SolverGen
from ._common import (
    _TINY,
    _check_count,
    _check_options,
    _dense_matrix,
    _estimate_support,
    _guarded_descent,
    _hard_threshold,
    _phase,
    _power,
    _random_start,
    _setup,
    _sparsity,
    _top_k_mask,
    _zero_start,
)

__all__ = ["solve_sparta"]


def solve_sparta(
    problem: Problem,
    *,
    steps: int = 500,
    sparsity: int | None = None,
    mu: float = 1.0,
    gamma: float = 1.0,
    init_fraction: float = 1 / 6,
    backtrack: bool = True,
    init_iters: int = 100,
    tol: float = 1e-6,
    preview_every: int = 10,
) -> SolverGen:
    """SPARTA, sparse truncated amplitude flow [SPARTA]_ (real images, sparse in pixels).

    1. Support: the ``k`` largest marginals ``(1/m) sum_i y_i^2 a_ij^2`` (see the module docstring
       for coded diffraction); ``k = sparsity`` or :func:`default_sparsity`.
    2. Sparse orthogonality-promoting initialisation [TAF]_: keep the ``ceil(init_fraction m)``
       measurements with the largest ``y_i / ||a_{i,S}||`` (the paper's ``|I| = ceil(m/6)``),
       take the leading eigenvector (power iterations) of
       ``sum_{i in I} a_{i,S} a_{i,S}^T / ||a_{i,S}||^2`` on the support and scale it to the norm
       estimate ``||y||``.
    3. Truncated amplitude flow with hard thresholding:
       ``z <- H_k(z - mu L^T(1_I * (Lz - y Lz/|Lz|)))``, ``I = {i : |Lz|_i >= y_i / (1 + gamma)}``
       (the paper's ``(mu/m) grad`` in our row scaling). Defaults are the paper's ``mu = 1``,
       ``gamma = 1``.

    Parameters
    ----------
    problem : Problem
        A ``phase`` measurement.
    steps : int
        Maximum number of iterations.
    sparsity : int, optional
        Number of non-zero pixels kept (default: :func:`default_sparsity`).
    mu : float
        Step size.
    gamma : float
        Truncation threshold of the gradient.
    init_fraction : float
        Fraction of the measurements (largest normalised magnitudes) in the initialisation.
    backtrack : bool
        Reject a step that increases the amplitude misfit and halve ``mu`` (see
        :class:`~._common._Safeguard`). With ``mu = 1`` and a sparsity well above the true one the
        unguarded iteration can cycle without converging.
    init_iters : int
        Power iterations of the initialisation.
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
        The estimate and ``{"iterations", "converged", "sparsity", "sparsity_rule",
        "support_estimate", "final_step_size", "step_halvings"}``.
    """
    _check_options(steps, tol, preview_every, mu=mu, gamma=gamma, init_fraction=init_fraction)
    if init_fraction > 1:
        raise ValueError(f"init_fraction must be in (0, 1], got {init_fraction!r}.")
    init_iters = _check_count("init_iters", init_iters, 0)
    L, y, n, m, _ = _setup(problem)
    k, extra = _sparsity(sparsity, n, m)
    lam0 = float(y.norm())

    with torch.no_grad():
        if lam0 == 0.0:
            return (yield from _zero_start(problem, steps, extra, support_estimate="none"))
        n_init = min(m, max(1, math.ceil(init_fraction * m)))

        def init_weights(mask: torch.Tensor) -> torch.Tensor:
            # 1{i in I} / ||a_{i,S}||^2 with I the largest y_i / ||a_{i,S}||
            M = _dense_matrix(L, y)
            if M is not None:
                row2 = M.pow(2) @ mask.reshape(-1)
            else:  # coded diffraction: |a_ij|^2 = 1 / m for every entry
                row2 = torch.full_like(y, float(mask.sum()) / m)
            row2 = row2.reshape(y.shape).clamp_min(_TINY)
            score = y / row2.sqrt()
            return _top_k_mask(score, n_init) / row2

        ones = torch.ones(problem.shape, device=problem.device)
        support, how = _estimate_support(problem, L, y, k, init_iters, init_weights(ones))
        w0 = init_weights(support)
        v = _power(
            lambda u: L.adjoint(w0 * L(u)),
            _random_start(problem, problem.shape),
            init_iters,
            mask=support,
        )
        extra["support_estimate"] = how

        def candidate(z: torch.Tensor, Lz: torch.Tensor, step_size: float) -> torch.Tensor:
            mag = Lz.abs()
            keep = mag >= y / (1 + gamma)
            g = torch.where(keep, Lz - y * _phase(Lz), torch.zeros_like(Lz))
            return _hard_threshold(z - step_size * L.adjoint(g), k)

        return (
            yield from _guarded_descent(
                problem,
                L,
                y,
                lam0 * v,
                candidate,
                backtrack=backtrack,
                mu=mu,
                steps=steps,
                tol=tol,
                preview_every=preview_every,
                extra=extra,
            )
        )
