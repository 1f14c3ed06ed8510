"""Classical sparsity baselines for linear operators: ``lasso-dct``, ``lasso-wavelet``, ``tv``.

Each solves a convex problem in the normalised units of :class:`~.common.Problem`:

- ``lasso-dct``: ``min_x 1/2 ||W (A x - y)||^2 + lam ||C x||_1`` with ``C`` the separable
  orthonormal DCT-II over all image axes, by FISTA (step ``1/L``, ``L`` the largest eigenvalue
  of ``A^T W A`` from 30 power iterations, times 1.05) with adaptive (gradient) restarts. As
  ``C`` is orthonormal, the proximal step is soft-thresholding of the DCT coefficients.
- ``lasso-wavelet``: the same with an orthonormal wavelet transform ``T`` (Daubechies "db4" by
  default, 3 levels or fewer for small images; periodised, with PyWavelets' filters, equal to
  ``pywt.wavedecn(mode="periodization")``; axes of length 1 are not transformed, so that a
  ``(1, n)`` signal gets the 1D transform); the coarsest approximation coefficients are not
  penalised. FISTA runs on the coefficients ``c`` with ``x = T^T c`` (synthesis form). When
  every image side is a multiple of ``2**levels``, ``T`` is orthonormal and this is exactly
  the analysis problem ``lam ||T_detail x||_1``. Other sizes are zero-padded at the far end
  to such a multiple: ``x = crop(T^T c)`` then has orthonormal rows (a Parseval frame) and the
  synthesis lasso is still solved exactly, with the padded margin left free for the solver
  to fill (``params["orthogonal"]`` is then False). ptwt's boundary-orthogonalised matrix
  transforms were tried first: orthogonal, but their coarsest boundary atoms put 90% of their
  energy on about ten pixels, which ruined inpainting near the image border (64x64 nuclei
  crop, 30% of the pixels kept: 15.5 dB with ptwt's db4, 23.8 dB with the periodised one).
- ``tv``: ``min_x 1/2 ||W (A x - y)||^2 + lam TV(x)``, isotropic TV with forward differences
  and Neumann boundaries (2D or 3D), by the Chambolle-Pock primal-dual algorithm with dual
  variables for both the data term and the gradient. ``L = ||[W A; grad]||`` comes from 30
  power iterations (its square times 1.05) and ``tau sigma = 1 / L^2`` throughout, so that
  ``tau sigma ||K||^2 < 1``. The steps start at ``tau = sigma = 1 / L`` and their ratio is
  then balanced per weight by residual balancing (Goldstein, Li, Yuan, Esser and Baraniuk,
  "Adaptive primal-dual splitting methods", 2015), whose adaptation decays geometrically so
  that convergence is kept; the primal step must grow where the measurement leaves much of
  the image undetermined (inpainting, undersampled MRI).

``W`` is the 0/1 mask of observed measurement entries (all ones when every entry carries
data). Complex measurements (``mri``) are handled with the real inner product ``Re <a, b>``
that the operators' adjoints are defined for: misfits are ``|r|^2`` and gradients
``A^T (W r)``.

Choice of ``lam`` (the same honest rule for the three methods; the ground truth is never
used): a random 10% (``holdout``) of the observed measurement entries is held out, drawn with a
``torch.Generator`` seeded by the run's seed. The problem is solved on the other 90% for a
geometric grid of ``n_lams`` (8) weights from ``lam_ratio * lam_max`` (1e-4) to ``lam_max``,
all at once as one batch. ``lam_max = max |T A^T W y|`` over the penalised coefficients for the
lassos (for the DCT lasso, the smallest weight whose solution is 0) and ``max |A^T W y|`` for
TV (the same scale measured on the pixels). The weight whose solution has the smallest
mean misfit ``|A x - y|^2`` on the held-out entries is chosen, and the problem is solved again
with it on all observed entries, starting from the held-out solution. ``params`` records
``lam``, ``lam_grid``, ``heldout_misfit`` (one per grid weight), ``lam_max``,
``heldout_entries``, ``search_iterations`` and ``iterations``. Passing ``lam=`` skips the search.

Both phases yield :class:`~.common.Update` objects; steps count on from the search into the
final solve (``total = search_steps + steps``), and sending ``False`` stops either phase. Each
phase stops early when the relative change of ``x`` falls below ``tol`` (for the search: for
every weight of the grid).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Generator

import torch

from ..operators.base import check_float, check_int
from ._classical_ops import (DCT, Wavelet, divergence, gradient, largest_eigenvalue, pixel_norm,
                             soft_threshold, total_variation)
from .common import Problem, SolverGen, Update, draw_holdout

SAFETY = 1.05  # multiplies power-iteration estimates of largest eigenvalues
POWER_ITERATIONS = 30
#: Images with more pixels than this choose their weight one weight at a time (memory), smaller
#: ones all weights in one batch (speed). 2**23: a 32x512x512 stack.
SEARCH_BATCH_VOXELS = 2**23
#: Measurements with more entries than the image (multi-coil k-space) batch the weights only
#: up to this many entries.
SEARCH_BATCH_MEASUREMENTS = 2**18
# residual balancing of the primal-dual steps (Goldstein, Li, Yuan, Esser, Baraniuk 2015):
# their eta = 0.95 and Delta = 1.5; alpha_0 = 0.2 (theirs: 0.5, which made large transients on
# our test problems); s = 0.1, as the duals (|q| <= lam) are a fraction of the unit-scale image
ADAPT_START, ADAPT_DECAY, ADAPT_RATIO, ADAPT_SCALE = 0.2, 0.95, 1.5, 0.1


@dataclass
class _Iterate:
    """What an iteration hands to the driver (all batched over the weights ``lam``)."""

    x: torch.Tensor  # (B, *shape)
    Ax: torch.Tensor  # (B, *measurement_shape)
    objective: torch.Tensor  # (B,)
    iteration: int
    done: bool  # converged (relative change below tol) or out of steps
    warm: dict[str, torch.Tensor]  # state that warm-starts another run (batched)


Core = Callable[[torch.Tensor, torch.Tensor, int, "dict[str, torch.Tensor] | None"],
                Generator[_Iterate, None, None]]


# -- the hold-out rule -------------------------------------------------------------------------


def _holdout_masks(problem: Problem, fraction: float) -> tuple[torch.Tensor, torch.Tensor,
                                                                torch.Tensor]:
    """Real 0/1 masks over the measurement entries: observed, training (observed minus held
    out) and held out, the held-out entries drawn with a generator seeded by ``problem.seed``."""
    real = problem.y.real.dtype
    observed, held = draw_holdout(problem, fraction)
    if fraction > 0 and int(observed.sum()) - int(held.sum()) < 1:
        raise ValueError(f"only {int(observed.sum())} measurement entries carry data: too few to "
                         "hold some out for choosing lam; pass lam= explicitly.")
    return observed.to(real), (observed & ~held).to(real), held.to(real)


def _weighted_misfit(Ax: torch.Tensor, y: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``sum weight |Ax - y|^2`` per batch member."""
    return ((Ax - y).abs().pow(2) * weight).flatten(1).sum(1)


def _check_options(steps: int, search_steps: int | None, preview_every: int, tol: float,
                   lam: float | None, n_lams: int, lam_ratio: float,
                   holdout: float) -> tuple[int, int, float | None]:
    steps = check_int("steps", steps, 1)
    search_steps = steps if search_steps is None else check_int("search_steps", search_steps, 1)
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


def _drive(problem: Problem, core: Core, lam_scale: Callable[[torch.Tensor], float], *,
           lam: float | None, n_lams: int, lam_ratio: float, holdout: float, steps: int,
           search_steps: int, preview_every: int) -> SolverGen:
    """Choose ``lam`` by hold-out (unless given), then solve with it on all observed entries.

    ``core(weight, lams, steps, warm)`` is a generator of :class:`_Iterate` for the batch of
    weights ``lams`` (a 1D tensor) and the measurement mask ``weight``.
    """
    y = problem.y
    observed, train, held = _holdout_masks(problem, holdout if lam is None else 0.0)
    extra: dict[str, Any] = {"lam": lam, "lam_grid": None, "heldout_misfit": None,
                             "heldout_entries": 0}
    step, warm = 0, None
    # the weights are solved together in one batch, or one at a time when a batch of them would
    # not fit (a 64x512x512 stack: 17 GB for 4 weights at once, 4 GB one at a time) or would be
    # slower (multi-coil k-space: 8 coils of 256x256 took 92 ms per weight in a batch of 8 and
    # 21 ms alone, as the batch leaves the CPU's caches)
    entries = math.prod(problem.A.measurement_shape)
    batched = problem.A.size <= SEARCH_BATCH_VOXELS and entries <= max(problem.A.size,
                                                                       SEARCH_BATCH_MEASUREMENTS)
    chunk = n_lams if batched else 1
    n_chunks = -(-n_lams // chunk)
    total = steps if lam is not None else n_chunks * search_steps + steps
    if lam is None:
        n_held = float(held.sum())
        lam_max = lam_scale(train)
        if not (math.isfinite(lam_max) and lam_max > 0):
            lam_max = 1.0  # no signal on the training entries: any scale will do
        grid = torch.logspace(math.log10(lam_ratio), 0.0, n_lams, dtype=torch.float64) * lam_max
        lams = grid.to(torch.float32).to(y.device)  # cast on the CPU (MPS has no float64)
        cancelled, misfits, iterations = False, [], 0
        kept = None  # (held-out misfit, index, x, warm) of the best weight so far
        for first in range(0, n_lams, chunk):
            part, last = lams[first:first + chunk], None
            for last in core(train, part, search_steps, None):
                heldout = _weighted_misfit(last.Ax, y, held) / n_held
                best = int(torch.argmin(heldout))
                step += 1
                show = step % preview_every == 0 or last.done
                keep_going = yield Update(step, total, float(last.objective[best]),
                                          problem.to_numpy(last.x[best]) if show else None)
                if keep_going is False:
                    cancelled = True
                    break
            assert last is not None
            heldout = _weighted_misfit(last.Ax, y, held) / n_held
            misfits += [float(v) for v in heldout.cpu()]
            iterations = max(iterations, last.iteration)
            best = int(torch.argmin(heldout))
            if kept is None or misfits[first + best] < kept[0]:
                kept = (misfits[first + best], first + best, last.x[best],
                        {k: v[best:best + 1] for k, v in last.warm.items()})
            del last
            if cancelled:
                break
        assert kept is not None
        lam = float(lams[kept[1]])
        extra.update(lam=lam, lam_max=lam_max, lam_grid=[float(v) for v in lams.cpu()],
                     heldout_misfit=misfits, heldout_entries=int(n_held),
                     search_iterations=iterations)
        if cancelled:
            extra.update(cancelled_at=step, iterations=0)
            return kept[2], extra
        warm = kept[3]
    lam_t = torch.tensor([lam], dtype=torch.float32, device=y.device)
    last = None
    for last in core(observed, lam_t, steps, warm):
        step += 1
        show = step % preview_every == 0 or last.done
        keep_going = yield Update(step, total, float(last.objective[0]),
                                  problem.to_numpy(last.x[0]) if show else None)
        if keep_going is False:
            extra["cancelled_at"] = step
            break
    assert last is not None
    extra["iterations"] = last.iteration
    return last.x[0], extra


def _relative_change(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """``||new - old|| / ||new||`` per batch member."""
    return (new - old).flatten(1).norm(dim=1) / new.flatten(1).norm(dim=1).clamp_min(1e-12)


# -- FISTA for the lassos ----------------------------------------------------------------------


def _fista(problem: Problem, transform: DCT | Wavelet, lipschitz: float, tol: float) -> Core:
    """FISTA (Beck-Teboulle) with gradient-based adaptive restart (O'Donoghue-Candes) for
    ``min_c 1/2 ||W (A T^T c - y)||^2 + lam ||c_shrink||_1``, one ``lam`` per batch member."""
    A, y = problem.A, problem.y
    shrink = None if transform.shrink is None else transform.shrink.to(torch.float32)

    def core(weight: torch.Tensor, lams: torch.Tensor, steps: int,
             warm: dict[str, torch.Tensor] | None) -> Generator[_Iterate, None, None]:
        batch = lams.numel()
        lam = lams.view(batch, *([1] * len(transform.coeff_shape)))
        threshold = lam / lipschitz if shrink is None else lam / lipschitz * shrink
        penalised = (lambda c: c.abs()) if shrink is None else (lambda c: c.abs() * shrink)
        if warm is None:
            c = torch.zeros((batch, *transform.coeff_shape), device=y.device, dtype=problem.dtype)
        else:
            c = warm["c"].expand(batch, *transform.coeff_shape).clone()
        x = transform.inverse(c)
        Ax = A(x)
        c_prev, Ax_prev = c, Ax
        t = torch.ones(batch, dtype=torch.float32, device=y.device)
        for k in range(1, steps + 1):
            t_next = (1 + torch.sqrt(1 + 4 * t * t)) / 2
            beta = ((t - 1) / t_next)
            z = c + beta.view_as(lam) * (c - c_prev)
            Az = Ax + beta.view(batch, *([1] * (Ax.ndim - 1))) * (Ax - Ax_prev)  # = A T^T z
            grad = transform.forward(A.adjoint(weight * (Az - y)))
            c_new = soft_threshold(z - grad / lipschitz, threshold)
            x_new = transform.inverse(c_new)
            Ax_new = A(x_new)
            # restart the momentum of a member whose step went against the momentum
            restart = ((z - c_new).conj() * (c_new - c)).real.flatten(1).sum(1) > 0
            t = torch.where(restart, torch.ones_like(t_next), t_next)
            change = _relative_change(x_new, x)
            c_prev, c, Ax_prev, Ax, x = c, c_new, Ax, Ax_new, x_new
            objective = (0.5 * _weighted_misfit(Ax, y, weight)
                         + lams * penalised(c).flatten(1).sum(1))
            done = k == steps or bool(change.max() < tol)
            yield _Iterate(x, Ax, objective, k, done, {"c": c})
            if done:
                return

    return core


def _lipschitz(problem: Problem) -> float:
    """``1.05 x`` the largest eigenvalue of ``A^T W A`` (W: the observed entries)."""
    A = problem.A
    weight = (None if problem.observed is None
              else problem.observed.to(device=problem.y.device, dtype=problem.y.real.dtype))

    def normal(v: torch.Tensor) -> torch.Tensor:
        Av = A(v)
        return A.adjoint(Av if weight is None else Av * weight)

    L = SAFETY * largest_eigenvalue(normal, problem.shape, seed=problem.seed,
                                    device=problem.device, iterations=POWER_ITERATIONS,
                                    dtype=problem.dtype)
    return L if L > 0 else 1.0


def _lasso(problem: Problem, transform: DCT | Wavelet, *, steps: int, search_steps: int | None,
           preview_every: int, tol: float, lam: float | None, n_lams: int, lam_ratio: float,
           holdout: float) -> SolverGen:
    steps, search_steps, lam = _check_options(steps, search_steps, preview_every, tol, lam,
                                              n_lams, lam_ratio, holdout)
    A, y = problem.A, problem.y
    core = _fista(problem, transform, _lipschitz(problem), tol)

    def lam_scale(weight: torch.Tensor) -> float:
        coeffs = transform.forward(A.adjoint(weight * y).unsqueeze(0))[0]
        if transform.shrink is not None:
            coeffs = coeffs[transform.shrink]
        return float(coeffs.abs().max())

    return (yield from _drive(problem, core, lam_scale, lam=lam, n_lams=n_lams,
                              lam_ratio=lam_ratio, holdout=holdout, steps=steps,
                              search_steps=search_steps, preview_every=preview_every))


def solve_lasso_dct(problem: Problem, *, steps: int = 300, search_steps: int | None = None,
                    preview_every: int = 10, tol: float = 1e-5, lam: float | None = None,
                    n_lams: int = 8, lam_ratio: float = 1e-4, holdout: float = 0.1) -> SolverGen:
    """L1 in the orthonormal 2D/3D DCT, by FISTA; ``lam`` chosen by held-out measurements.

    Parameters
    ----------
    problem : Problem
        The measurement; its operator must be linear.
    steps : int
        Most FISTA iterations of the final solve.
    search_steps : int, optional
        Most iterations of the batched search over ``lam`` (``steps`` when None).
    preview_every : int
        A preview image every this many steps.
    tol : float
        Stop when the relative change of ``x`` in one iteration is below it.
    lam : float, optional
        A fixed weight, in the normalised units of the problem (``y / params["scale"]``);
        skips the search.
    n_lams : int
        Size of the geometric grid of weights tried.
    lam_ratio : float
        Smallest weight of the grid, relative to ``lam_max``.
    holdout : float
        Fraction of the observed measurement entries held out to score the weights.

    Yields
    ------
    Update
        One per iteration, search included.

    Returns
    -------
    x : Tensor
        The estimate, of the operator's image shape.
    extra : dict
        ``lam``, ``lam_grid``, ``heldout_misfit``, ``lam_max``, ``heldout_entries``,
        ``search_iterations``, ``iterations`` (and ``cancelled_at`` when stopped).

    See the module docstring for the problem solved and the rule choosing ``lam``.
    """
    result = yield from _lasso(problem, DCT(problem.shape), steps=steps,
                               search_steps=search_steps, preview_every=preview_every, tol=tol,
                               lam=lam, n_lams=n_lams, lam_ratio=lam_ratio, holdout=holdout)
    return result


def solve_lasso_wavelet(problem: Problem, *, steps: int = 300, search_steps: int | None = None,
                        preview_every: int = 10, tol: float = 1e-5, lam: float | None = None,
                        n_lams: int = 8, lam_ratio: float = 1e-4, holdout: float = 0.1,
                        wavelet: str = "db4", levels: int = 3) -> SolverGen:
    """L1 on Daubechies wavelet details, by FISTA; ``lam`` chosen by held-out measurements.

    Parameters
    ----------
    problem : Problem
        The measurement; its operator must be linear.
    steps, search_steps, preview_every, tol, lam, n_lams, lam_ratio, holdout
        As for :func:`solve_lasso_dct`.
    wavelet : str
        An orthogonal PyWavelets wavelet name ("db4", "haar", "sym4"...).
    levels : int
        Decomposition levels; fewer are used when a level's input would be shorter than the
        filter (e.g. 2 for db4 on 16x16 images).

    Yields
    ------
    Update
        One per iteration, search included.

    Returns
    -------
    x : Tensor
        The estimate, of the operator's image shape.
    extra : dict
        As for :func:`solve_lasso_dct`, plus ``wavelet``, ``levels`` (used) and ``orthogonal``
        (False when the image was zero-padded to a multiple of ``2**levels``; see the module
        docstring).
    """
    check_int("levels", levels, 1)
    transform = Wavelet(problem.shape, wavelet, levels, device=problem.device)
    x, extra = yield from _lasso(problem, transform, steps=steps, search_steps=search_steps,
                                 preview_every=preview_every, tol=tol, lam=lam, n_lams=n_lams,
                                 lam_ratio=lam_ratio, holdout=holdout)
    extra.update(wavelet=transform.name, levels=transform.levels,
                 orthogonal=transform.orthogonal)
    return x, extra


# -- Chambolle-Pock for TV ---------------------------------------------------------------------


def _chambolle_pock(problem: Problem, norm: float, tol: float) -> Core:
    """Chambolle-Pock for ``min_x 1/2 ||W (A x - y)||^2 + lam TV(x)``, batched over ``lam``.

    ``K = [A; grad]``, ``F(v, g) = 1/2 ||W (v - y)||^2 + lam ||g||_{2,1}``, ``G = 0``: a dual
    ``p`` over the measurement entries (zero where ``W`` is) and a dual ``q`` over the gradient.
    ``norm`` bounds ``||K||``. The steps start at ``tau = sigma = 1 / norm`` and are balanced per
    batch member by residual balancing (Goldstein et al. 2015, adaptive PDHG), which keeps
    ``tau sigma = 1 / norm^2`` and decays its adaptation so that convergence is preserved.
    """
    A, y = problem.A, problem.y
    ndim = len(problem.shape)

    def core(weight: torch.Tensor, lams: torch.Tensor, steps: int,
             warm: dict[str, torch.Tensor] | None) -> Generator[_Iterate, None, None]:
        batch = lams.numel()
        lam = lams.view(batch, 1, *([1] * ndim))
        if warm is None:
            x = torch.zeros((batch, *problem.shape), device=y.device, dtype=problem.dtype)
            q = torch.zeros((batch, ndim, *problem.shape), device=y.device, dtype=problem.dtype)
            tau = torch.full((batch,), 1.0 / norm, device=y.device)
            alpha = torch.full((batch,), ADAPT_START, device=y.device)
        else:
            x = warm["x"].expand(batch, *problem.shape).clone()
            q = warm["q"].expand(batch, ndim, *problem.shape).clone()
            q = q / torch.clamp(pixel_norm(q) / lam, min=1)
            tau, alpha = warm["tau"].expand(batch).clone(), warm["alpha"].expand(batch).clone()
        Ax, g = A(x), gradient(x, ndim)
        p = weight * (Ax - y)  # the optimal data dual at x (any start converges)
        KTy = A.adjoint(p) - divergence(q, ndim)
        img = (batch, *([1] * ndim))  # broadcast a per-member value over images...
        meas = (batch, *([1] * (Ax.ndim - 1)))  # ...over measurements
        grd = (batch, 1, *([1] * ndim))  # ...and over gradient fields
        for k in range(1, steps + 1):
            sigma = 1.0 / (norm * norm * tau)
            x_new = x - tau.view(img) * KTy
            Ax_new, g_new = A(x_new), gradient(x_new, ndim)
            Ax_bar, g_bar = 2 * Ax_new - Ax, 2 * g_new - g  # K applied to 2 x_new - x
            p_new = weight * (p + sigma.view(meas) * (Ax_bar - y)) / (1 + sigma.view(meas))
            q_new = q + sigma.view(grd) * g_bar
            q_new = q_new / torch.clamp(pixel_norm(q_new) / lam, min=1)  # onto |q| <= lam
            KTy_new = A.adjoint(p_new) - divergence(q_new, ndim)
            # primal and dual residuals; a larger primal one asks for a longer primal step
            res_p = ((x - x_new) / tau.view(img) - (KTy - KTy_new)).flatten(1).norm(dim=1)
            res_d = (((p - p_new) / sigma.view(meas) - (Ax - Ax_new)).abs().pow(2).flatten(1).sum(1)
                     + ((q - q_new) / sigma.view(grd) - (g - g_new)).abs().pow(2).flatten(1).sum(1)
                     ).sqrt()
            up = res_p > ADAPT_SCALE * ADAPT_RATIO * res_d
            down = res_p * ADAPT_RATIO < ADAPT_SCALE * res_d
            factor = torch.where(up, 1 / (1 - alpha), torch.where(down, 1 - alpha,
                                                                  torch.ones_like(alpha)))
            tau = tau * factor
            alpha = torch.where(up | down, alpha * ADAPT_DECAY, alpha)
            change = _relative_change(x_new, x)
            x, Ax, g, p, q, KTy = x_new, Ax_new, g_new, p_new, q_new, KTy_new
            objective = 0.5 * _weighted_misfit(Ax, y, weight) + lams * total_variation(g)
            done = k == steps or bool(change.max() < tol)
            yield _Iterate(x, Ax, objective, k, done, {"x": x, "q": q, "tau": tau,
                                                        "alpha": alpha})
            if done:
                return

    return core


def solve_tv(problem: Problem, *, steps: int = 300, search_steps: int | None = None,
             preview_every: int = 10, tol: float = 1e-5, lam: float | None = None,
             n_lams: int = 8, lam_ratio: float = 1e-4, holdout: float = 0.1) -> SolverGen:
    """Isotropic total variation (2D or 3D), by Chambolle-Pock; ``lam`` by held-out measurements.

    Parameters
    ----------
    problem : Problem
        The measurement; its operator must be linear.
    steps, search_steps, preview_every, tol, lam, n_lams, lam_ratio, holdout
        As for :func:`solve_lasso_dct` (``steps`` count primal-dual iterations).

    Yields
    ------
    Update
        One per iteration, search included.

    Returns
    -------
    x : Tensor
        The estimate, of the operator's image shape.
    extra : dict
        As for :func:`solve_lasso_dct`.

    See the module docstring for the problem solved and the rule choosing ``lam``.
    """
    steps, search_steps, lam = _check_options(steps, search_steps, preview_every, tol, lam,
                                              n_lams, lam_ratio, holdout)
    A, y = problem.A, problem.y
    ndim = len(problem.shape)
    weight = (None if problem.observed is None
              else problem.observed.to(device=y.device, dtype=y.real.dtype))

    def normal(v: torch.Tensor) -> torch.Tensor:  # K^T K = A^T W A + grad^T grad
        Av = A(v)
        return (A.adjoint(Av if weight is None else Av * weight)
                - divergence(gradient(v, ndim), ndim))

    norm_sq = SAFETY * largest_eigenvalue(normal, problem.shape, seed=problem.seed,
                                          device=problem.device, iterations=POWER_ITERATIONS,
                                          dtype=problem.dtype)
    core = _chambolle_pock(problem, math.sqrt(norm_sq), tol)

    def lam_scale(w: torch.Tensor) -> float:
        return float(A.adjoint(w * y).abs().max())

    result = yield from _drive(problem, core, lam_scale, lam=lam, n_lams=n_lams,
                               lam_ratio=lam_ratio, holdout=holdout, steps=steps,
                               search_steps=search_steps, preview_every=preview_every)
    return result
