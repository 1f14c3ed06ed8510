"""Classical phase-retrieval baselines: ``twf``, ``sparta`` and ``copram``.

All three recover a real image ``x`` from magnitudes ``y = |L x|`` where ``L`` is the linear part
of a ``phase`` operator (``problem.A.linear_part``): a real Gaussian ``m x n`` matrix with
N(0, 1/m) entries, or coded diffraction patterns (complex measurements, real images). For the
Gaussian matrix only the global sign of ``x`` is lost; for coded diffraction of a real image
likewise (a global factor ``-1``).

References
----------
.. [TWF] Y. Chen and E. J. Candes, "Solving random quadratic systems of equations is nearly as
   easy as solving linear systems", NeurIPS 2015; Comm. Pure Appl. Math. 70(5), 2017.
.. [SPARTA] G. Wang, L. Zhang, G. B. Giannakis, M. Akcakaya and J. Chen, "Sparse phase retrieval
   via truncated amplitude flow", IEEE Trans. Signal Process. 66(2), 2018 (arXiv:1611.07641,
   2016).
.. [TAF] G. Wang, G. B. Giannakis and Y. C. Eldar, "Solving systems of random quadratic
   equations via truncated amplitude flow", IEEE Trans. Inf. Theory 64(2), 2018 (the
   orthogonality-promoting initialisation SPARTA builds on).
.. [CoPRAM] G. Jagatap and C. Hegde, "Fast, sample-efficient algorithms for structured phase
   retrieval", NeurIPS 2017.
.. [CoSaMP] D. Needell and J. A. Tropp, "CoSaMP: iterative signal recovery from incomplete and
   inaccurate samples", Appl. Comput. Harmon. Anal. 26(3), 2009.

Conventions shared by the three solvers
---------------------------------------
* The papers take rows ``a_i ~ N(0, I_n)``; our rows are ``a_i / sqrt(m)``. The gradients of the
  papers, divided by ``m``, are exactly the same expressions written with ``L`` (e.g.
  ``(1/m) sum_i (a_i^T z - psi_i sign(a_i^T z)) a_i = L^T (L z - y sign(L z))``), so the papers'
  step sizes apply unchanged; the only place the row scale enters is the truncation ratio
  ``|a_i^T z| / ||z|| = sqrt(m) |(L z)_i| / ||z||``, written that way below.
* The norm estimate ``sqrt(mean_i psi_i^2)`` of the papers is ``||y||`` in our units
  (``E ||L x||^2 = ||x||^2`` for both matrices).
* Coded diffraction: signs become phases ``u / |u|``; every gradient or back-projection uses
  ``L.adjoint``, which returns the real part (adjoints for the real inner product ``Re<a, b>``),
  i.e. the gradient with respect to a real image. Spectral matrices are never formed: their
  leading eigenvectors come from power iterations ``v <- P_S L^T(w * L(P_S v))``.
* Sparsity (``sparta``, ``copram``) is in the pixel basis. Default ``k`` (``sparsity=None``):
  ``k = min(n // 4, floor(m / (2 ln n)))`` (at least 1): the largest sparsity for which the
  ``m`` measurements exceed twice the ``k ln n`` sample complexity of the sparse estimators,
  capped at a quarter of the pixels. It depends on ``m`` and ``n`` only, never on the data's
  ground truth.
* Support estimate (``sparta``, ``copram``): the ``k`` largest marginals
  ``(1/m) sum_i y_i^2 a_ij^2`` for the Gaussian matrix (as in both papers). For coded diffraction
  ``|a_ij|`` is constant, so these marginals carry no information; there the support is the
  ``k`` largest entries of the (dense) leading eigenvector of the same initialisation matrix
  over all pixels.
* ``twf`` and ``sparta`` take the papers' steps with one safeguard (``backtrack=True``): a step
  that raises the amplitude misfit (``sparta``), or raises it above twice its smallest value so
  far (``twf``), is rejected and the step size halved. In the regimes where the papers'
  iterations converge it did not trigger (the iterates are the papers'); outside them it turns
  divergence (``twf`` with ``m < n``) or limit cycles (``sparta``, ``mu = 1`` with an oversized
  sparsity) into a finite estimate.
* ``loss`` in each :class:`~.common.Update` is the amplitude misfit ``mean_i (|L z|_i - y_i)^2``
  of the current estimate, in normalised units, for all three methods (comparable curves).
* Iterations stop after ``steps``, when the relative change ``||z_{t+1} - z_t|| / ||z_t||``
  falls below ``tol``, or when the consumer sends ``False``. The random start of the power
  iterations is drawn from ``torch.Generator("cpu").manual_seed(problem.seed)``, so a seed gives
  the same result on the same device.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from .common import Problem, SolverGen, Update

__all__ = ["default_sparsity", "solve_copram", "solve_sparta", "solve_twf"]

_TINY = 1e-30


# -- shared helpers ---------------------------------------------------------------------------
def default_sparsity(n: int, m: int) -> int:
    """The default sparsity of ``sparta`` and ``copram``: ``min(n // 4, m // (2 ln n))``, >= 1.

    Parameters
    ----------
    n : int
        Number of pixels.
    m : int
        Number of (real or complex) magnitude measurements.

    Returns
    -------
    int
        The sparsity ``k`` (depends on ``n`` and ``m`` only).
    """
    return max(1, min(n // 4, int(m / (2 * math.log(max(n, 2))))))


def _check_options(steps: int, tol: float, preview_every: int, **positive: float) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}.")
    if isinstance(preview_every, bool) or not isinstance(preview_every, int) or preview_every < 1:
        raise ValueError(f"preview_every must be a positive integer, got {preview_every!r}.")
    if not (isinstance(tol, (int, float)) and math.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol must be a non-negative number, got {tol!r}.")
    for name, value in positive.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a positive number, got {value!r}.")


def _check_count(name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
    return value


def _setup(problem: Problem) -> tuple[Any, torch.Tensor, int, int, bool]:
    """The linear part, the float32 magnitudes, ``n``, ``m`` and whether ``L`` is complex."""
    A = problem.A
    L = getattr(A, "linear_part", None)
    if A.kind != "phase" or L is None:
        raise ValueError(f"phase-retrieval baselines need a 'phase' operator, got {A.kind!r}.")
    y = problem.y.to(device=problem.device, dtype=torch.float32).abs()
    return L, y, int(A.size), int(y.numel()), bool(L.complex_measurements)


def _phase(u: torch.Tensor) -> torch.Tensor:
    """``u / |u|`` (the sign for real ``u``), 1 where ``u == 0``."""
    if u.is_complex():
        mag = u.abs()
        return torch.where(mag > 0, u / mag.clamp_min(_TINY), torch.ones_like(u))
    return torch.where(u >= 0, torch.ones_like(u), -torch.ones_like(u))


def _misfit(Lz: torch.Tensor, y: torch.Tensor) -> float:
    return float((Lz.abs() - y).pow(2).mean())


def _rel_change(new: torch.Tensor, old: torch.Tensor) -> float:
    return float((new - old).norm() / old.norm().clamp_min(_TINY))


def _power(apply: Callable[[torch.Tensor], torch.Tensor], v: torch.Tensor, iters: int,
           mask: torch.Tensor | None = None) -> torch.Tensor:
    """Leading eigenvector of the PSD map ``apply`` by power iterations from ``v``.

    With ``mask`` the iterations stay on its support (``v <- P apply(P v)``). Stops early when the
    iterate changes by less than 1e-7 (in norm, up to sign).
    """
    if mask is not None:
        v = v * mask
    v = v / v.norm().clamp_min(_TINY)
    for _ in range(iters):
        w = apply(v)
        if mask is not None:
            w = w * mask
        norm = w.norm()
        if float(norm) == 0.0:
            break
        w = w / norm
        done = float(torch.minimum((w - v).norm(), (w + v).norm())) < 1e-7
        v = w
        if done:
            break
    return v


def _random_start(problem: Problem, shape: tuple[int, ...]) -> torch.Tensor:
    gen = torch.Generator(device="cpu").manual_seed(problem.seed)
    return torch.randn(shape, generator=gen, dtype=torch.float32).to(problem.device)


def _top_k_mask(score: torch.Tensor, k: int) -> torch.Tensor:
    """A float mask (shape of ``score``) on its ``k`` largest entries."""
    flat = score.reshape(-1)
    mask = torch.zeros_like(flat)
    if k >= flat.numel():
        return torch.ones_like(score)
    mask[torch.topk(flat, k).indices] = 1.0
    return mask.reshape(score.shape)


def _hard_threshold(z: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` entries of largest magnitude (``H_k``)."""
    if k >= z.numel():
        return z
    return z * _top_k_mask(z.abs(), k)


def _dense_matrix(L: Any, like: torch.Tensor) -> torch.Tensor | None:
    """The ``m x n`` matrix of a dense Gaussian linear part, or None (coded diffraction)."""
    buffers = getattr(L, "_buffers", {})
    if "A" in buffers and not L.complex_measurements:
        return L._buffer("A", like)
    return None


def _sparsity(k: Any, n: int, m: int) -> int:
    if k is None:
        return default_sparsity(n, m)
    return min(_check_count("sparsity", k), n)


def _estimate_support(problem: Problem, L: Any, y: torch.Tensor, k: int, init_iters: int,
                      weights: torch.Tensor) -> tuple[torch.Tensor, str]:
    """Support estimate (float mask over the image) of size ``k``, and how it was found.

    Gaussian matrix: the ``k`` largest marginals ``(1/m) sum_i y_i^2 a_ij^2``. Otherwise the
    ``k`` largest entries of the leading eigenvector of ``L^T(weights * L(.))`` on all pixels.
    """
    shape = problem.shape
    n = int(math.prod(shape))
    if k >= n:
        return torch.ones(shape, device=problem.device), "all"
    M = _dense_matrix(L, y)
    if M is not None:
        marginals = (y.pow(2) @ M.pow(2)) / y.numel()
        return _top_k_mask(marginals.reshape(shape), k), "marginals"
    v = _power(lambda u: L.adjoint(weights * L(u)), _random_start(problem, shape), init_iters)
    return _top_k_mask(v.abs(), k), "dense-spectral"


def _finish(step: int, steps: int, preview_every: int, done: bool) -> bool:
    return step % preview_every == 0 or step == steps or done


class _Safeguard:
    """Step-size safeguard of the gradient methods (``twf``, ``sparta``).

    A step is rejected, and the step size halved, when the amplitude misfit of the new estimate
    is not finite or exceeds a reference: with ``slack=None`` (monotone, ``sparta``) the current
    misfit times ``1 + 1e-4``; with a ``slack`` (``twf``, which minimises a truncated intensity
    loss, not the amplitude misfit, and may raise the latter for a while) ``slack`` times the
    smallest misfit so far. Both add a float32 round-off floor ``1e-10 mean(y^2)``. After 30
    rejections in a row the run counts as stalled.

    Measured on 16x16 images (20-40 seeds each): it never triggered for ``twf`` with ``m >= 3n``
    (Gaussian) or ``masks >= 2``, nor for ``sparta`` given the true sparsity with ``m >= n``, so
    there the iterates are exactly the papers'; it stops the divergence of ``twf`` with
    ``m < n`` and the limit cycles of ``sparta`` with ``mu = 1`` and a sparsity well above the
    true one.
    """

    def __init__(self, enabled: bool, mu: float, loss: float, y: torch.Tensor,
                 slack: float | None = None):
        self.enabled, self.step_size, self.slack = enabled, float(mu), slack
        self.loss = self.best = loss
        self.floor = 1e-10 * float(y.pow(2).mean())
        self.halvings = self.in_a_row = 0

    def accept(self, loss: float) -> bool:
        """Whether to take the step that gives ``loss``; halves the step size when not."""
        if self.slack is None:
            ref = self.loss * (1 + 1e-4) + self.floor
        else:
            ref = self.slack * self.best + self.floor
        if not self.enabled or (math.isfinite(loss) and loss <= ref):
            self.loss, self.in_a_row = loss, 0
            self.best = min(self.best, loss)
            return True
        self.step_size *= 0.5
        self.halvings += 1
        self.in_a_row += 1
        return False

    @property
    def stalled(self) -> bool:
        return self.in_a_row >= 30

    def step(self, z: torch.Tensor, Lz: torch.Tensor, z_new: torch.Tensor,
             Lz_new: torch.Tensor, y: torch.Tensor, tol: float):
        """Take the candidate if :meth:`accept` allows it: ``(z, Lz, converged)``."""
        if self.accept(_misfit(Lz_new, y)):
            return z_new, Lz_new, _rel_change(z_new, z) < tol
        return z, Lz, self.stalled

    def record(self) -> dict[str, Any]:
        return {"final_step_size": self.step_size, "step_halvings": self.halvings}


# -- TWF ---------------------------------------------------------------------------------------
def solve_twf(problem: Problem, *, steps: int = 500, mu: float = 0.2, alpha_y: float = 3.0,
              alpha_lb: float = 0.3, alpha_ub: float = 5.0, alpha_h: float = 5.0,
              backtrack: bool = True, init_iters: int = 50, tol: float = 1e-6,
              preview_every: int = 10) -> SolverGen:
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
        (see :class:`_Safeguard`; it did not trigger where the paper's iteration converges).
        False runs the paper's iteration unguarded (it diverges with ``m`` well below ``n``).
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
    _check_options(steps, tol, preview_every, mu=mu, alpha_y=alpha_y, alpha_lb=alpha_lb,
                   alpha_ub=alpha_ub, alpha_h=alpha_h)
    init_iters = _check_count("init_iters", init_iters, 0)
    L, y, n, m, _ = _setup(problem)
    root_m = math.sqrt(m)
    y2 = y.pow(2)
    lam0 = float(y.norm())
    extra: dict[str, Any] = {"init_norm": lam0}

    with torch.no_grad():
        if lam0 == 0.0:
            z = torch.zeros(problem.shape, device=problem.device)
            yield Update(1, steps, 0.0, problem.to_numpy(z))
            extra.update(iterations=1, converged=True)
            return z, extra
        w0 = y2 * (m * y2 <= alpha_y**2 * lam0**2)
        v = _power(lambda u: L.adjoint(w0 * L(u)), _random_start(problem, problem.shape),
                   init_iters)
        z = lam0 * v
        Lz = L(z)
        guard = _Safeguard(backtrack, mu, _misfit(Lz, y), y, slack=2.0)
        step, converged = 0, False
        for step in range(1, steps + 1):
            zn = z.norm().clamp_min(_TINY)
            mag = Lz.abs()
            ratio = root_m * mag / zn
            resid = mag.pow(2) - y2
            K = resid.abs().mean()
            keep = (ratio >= alpha_lb) & (ratio <= alpha_ub) & (resid.abs() <= alpha_h * K * ratio)
            safe = torch.where(keep, Lz, torch.ones_like(Lz))
            g = torch.where(keep, resid / (safe.conj() if safe.is_complex() else safe),
                            torch.zeros_like(Lz))
            z_new = z - guard.step_size * 2 * L.adjoint(g)
            Lz_new = L(z_new)
            z, Lz, converged = guard.step(z, Lz, z_new, Lz_new, y, tol)
            preview = (problem.to_numpy(z)
                       if _finish(step, steps, preview_every, converged) else None)
            keep_going = yield Update(step, steps, guard.loss, preview)
            if keep_going is False:
                extra["cancelled_at"] = step
                break
            if converged:
                break
    extra.update(iterations=step, converged=converged, **guard.record())
    return z, extra


# -- SPARTA ------------------------------------------------------------------------------------
def solve_sparta(problem: Problem, *, steps: int = 500, sparsity: int | None = None,
                 mu: float = 1.0, gamma: float = 1.0, init_fraction: float = 1 / 6,
                 backtrack: bool = True, init_iters: int = 100, tol: float = 1e-6,
                 preview_every: int = 10) -> SolverGen:
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
        :class:`_Safeguard`). With ``mu = 1`` and a sparsity well above the true one the
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
    k = _sparsity(sparsity, n, m)
    extra: dict[str, Any] = {"sparsity": k,
                             "sparsity_rule": "given" if sparsity is not None else
                             "min(n // 4, m // (2 ln n))"}
    lam0 = float(y.norm())

    with torch.no_grad():
        if lam0 == 0.0:
            z = torch.zeros(problem.shape, device=problem.device)
            yield Update(1, steps, 0.0, problem.to_numpy(z))
            extra.update(iterations=1, converged=True, support_estimate="none")
            return z, extra
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
        v = _power(lambda u: L.adjoint(w0 * L(u)), _random_start(problem, problem.shape),
                   init_iters, mask=support)
        z = lam0 * v
        extra["support_estimate"] = how
        Lz = L(z)
        guard = _Safeguard(backtrack, mu, _misfit(Lz, y), y)
        step, converged = 0, False
        for step in range(1, steps + 1):
            mag = Lz.abs()
            keep = mag >= y / (1 + gamma)
            g = torch.where(keep, Lz - y * _phase(Lz), torch.zeros_like(Lz))
            z_new = _hard_threshold(z - guard.step_size * L.adjoint(g), k)
            Lz_new = L(z_new)
            z, Lz, converged = guard.step(z, Lz, z_new, Lz_new, y, tol)
            preview = (problem.to_numpy(z)
                       if _finish(step, steps, preview_every, converged) else None)
            keep_going = yield Update(step, steps, guard.loss, preview)
            if keep_going is False:
                extra["cancelled_at"] = step
                break
            if converged:
                break
    extra.update(iterations=step, converged=converged, **guard.record())
    return z, extra


# -- CoPRAM ------------------------------------------------------------------------------------
def _restricted_lstsq(L: Any, M: torch.Tensor | None, b: torch.Tensor, T: torch.Tensor,
                      z0: torch.Tensor, cg_iters: int) -> torch.Tensor:
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


def solve_copram(problem: Problem, *, steps: int = 500, sparsity: int | None = None,
                 cosamp_iters: int = 3, init_iters: int = 100, cg_iters: int = 30,
                 tol: float = 1e-6, preview_every: int = 10) -> SolverGen:
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
    k = _sparsity(sparsity, n, m)
    extra: dict[str, Any] = {"sparsity": k,
                             "sparsity_rule": "given" if sparsity is not None else
                             "min(n // 4, m // (2 ln n))"}
    lam0 = float(y.norm())

    with torch.no_grad():
        if lam0 == 0.0:
            z = torch.zeros(problem.shape, device=problem.device)
            yield Update(1, steps, 0.0, problem.to_numpy(z))
            extra.update(iterations=1, converged=True, support_estimate="none")
            return z, extra
        M = _dense_matrix(L, y)
        y2 = y.pow(2)
        support, how = _estimate_support(problem, L, y, k, init_iters, y2)
        v = _power(lambda u: L.adjoint(y2 * L(u)), _random_start(problem, problem.shape),
                   init_iters, mask=support)
        z = lam0 * v
        extra["support_estimate"] = how
        step, converged = 0, False
        for step in range(1, steps + 1):
            b = y * _phase(L(z))
            z_new = z
            for _ in range(cosamp_iters):
                proxy = L.adjoint(b - L(z_new))
                T = torch.maximum(_top_k_mask(proxy.abs(), min(2 * k, n)),
                                  (z_new != 0).to(proxy.dtype))
                z_new = _hard_threshold(_restricted_lstsq(L, M, b, T, z_new, cg_iters), k)
            converged = _rel_change(z_new, z) < tol
            z = z_new
            preview = (problem.to_numpy(z)
                       if _finish(step, steps, preview_every, converged) else None)
            keep_going = yield Update(step, steps, _misfit(L(z), y), preview)
            if keep_going is False:
                extra["cancelled_at"] = step
                break
            if converged:
                break
    extra.update(iterations=step, converged=converged)
    return z, extra
