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
  the image undetermined (inpainting, undersampled MRI). Pixel-wise operators (``denoise``,
  ``inpaint``: ``A^T W A`` diagonal) take the data term into the primal step exactly instead:
  ``K = grad`` alone, ``L^2 = 4 ndim`` with no power iteration, primal step
  ``0.1 max|A^T W y| / lam``, and Chambolle and Pock's accelerated steps where every pixel is
  observed (``solvers/tv.py``'s ``_chambolle_pock_exact``; the same minimum, and the same
  PSNR in a fifth to a quarter of the steps on real nuclei tiles). Single-coil Cartesian MRI
  (``A^T W A`` a Fourier multiplier, :meth:`Operator.normal_multiplier`) takes the same path,
  its data step a division between two FFTs, primal step ``0.01 max|A^T W y| / lam``.

``W`` is the 0/1 mask of observed measurement entries (all ones when every entry carries
data). Complex measurements (``mri``) are handled with the real inner product ``Re <a, b>``
that the operators' adjoints are defined for: misfits are ``|r|^2`` and gradients
``A^T (W r)``.

Choice of ``lam`` (the same honest rule for the three methods; the ground truth is never
used): a random 10% (``holdout``) of the observed measurement entries is held out, drawn with a
``torch.Generator`` seeded by the run's seed. The problem is solved on the other 90% for a
geometric grid of ``n_lams`` (8) weights from ``lam_ratio * lam_max`` (1e-4) to ``lam_max``,
all at once as one batch (or, where a batch would be too large: multi-coil k-space, large
stacks, one weight at a time: for ``tv`` from the largest down, each warm-started from the
solution of the one before and run for at most 50 iterations, the final solve then running
up to ``2 steps - search_steps``: the chosen weight's total with a batched search; ``tv``
on pixel-wise operators also searches with at most 50 iterations a weight, which chose the
same weights as 300 on real nuclei tiles).
``lam_max = max |T A^T W y|`` over the penalised coefficients for the lassos (for the DCT
lasso, the smallest weight whose solution is 0) and ``max |A^T W y|`` for TV (the same scale
measured on the pixels). The weight whose solution has the smallest
mean misfit ``|A x - y|^2`` on the held-out entries is chosen, and the problem is solved again
with it on all observed entries, starting from the held-out solution. ``params`` records
``lam``, ``lam_grid``, ``heldout_misfit`` (one per grid weight), ``lam_max``,
``heldout_entries``, ``search_iterations`` (the most any weight took),
``search_iterations_total`` and ``iterations``. Passing ``lam=`` skips the search.

``tv`` on ``denoise`` (every pixel observed) chooses otherwise by default (``rule="auto"``;
``rule="holdout"`` for the rule above): the weight *and* the iterate of least Stein's unbiased
risk estimate, 8 weights from ``0.01 lam_max`` up and each on a probe-perturbed copy of the
measurement in one batch (the 3 best going on after 10 steps), with a Poisson-Gaussian noise
model fitted to the image (see :mod:`._sure`). A held-out pixel of a denoising problem is predicted from its neighbours, an
inpainting, which favours smoother images than the best denoiser. ``params`` then records
``rule`` ("sure"), ``lam``, ``lam_grid``, ``sure`` (the least estimated mean squared error of
each weight, in the data's units squared; it carries the error of the noise model's variance,
so it can be negative), ``sure_iterations``, ``iterations``, ``noise_std`` and ``noise_model``.

``tv`` on ``blur`` (deconvolution) with no weight given runs FISTA instead (``rule="early"``, see
:mod:`._tv_fista`): from the back-projection, on the 90% kept, 8 weights from ``0.001 lam_max``
to ``0.1 lam_max`` in one batch; every iterate of every weight is scored on the held-out
entries, a weight stops once the best score has not improved for 20 steps, and the chosen
weight runs for the chosen number of steps on every entry. Its early iterates deconvolve
better than any weight's minimum (on real nuclei tiles, +1.1 to +2.9 dB over the rule above).
``params`` then records ``rule`` ("early"), ``lam``, ``lam_grid``, ``heldout_misfit`` (each
weight's least), ``heldout_iterations`` (its step), ``search_iterations`` and ``iterations``.
A given weight still gets the TV minimum (Chambolle-Pock), unless ``rule="early"``.

Both phases yield :class:`~.common.Update` objects; steps count on from the search into the
final solve (``total = search_steps + steps``), and sending ``False`` stops either phase. Each
phase stops early when the relative change of ``x`` falls below ``tol`` (for the search: for
every weight of the grid).
"""

from __future__ import annotations

from collections.abc import Generator

import torch

from ..operators.base import check_int
from ._classical_ops import (
    DCT,
    Wavelet,
    normal_bound,
    relative_change,
    soft_threshold,
)
from ._weight_search import (
    Core,
    _check_options,
    _drive,
    _Iterate,
    _weighted_misfit,
)
from .common import Problem, SolverGen
from .tv import solve_tv

__all__ = ["solve_lasso_dct", "solve_lasso_wavelet", "solve_tv"]


# -- FISTA for the lassos ----------------------------------------------------------------------


def _fista(problem: Problem, transform: DCT | Wavelet, lipschitz: float, tol: float) -> Core:
    """FISTA (Beck-Teboulle) with gradient-based adaptive restart (O'Donoghue-Candes) for
    ``min_c 1/2 ||W (A T^T c - y)||^2 + lam ||c_shrink||_1``, one ``lam`` per batch member."""
    A, y = problem.A, problem.y
    shrink = None if transform.shrink is None else transform.shrink.to(torch.float32)

    def core(
        weight: torch.Tensor, lams: torch.Tensor, steps: int, warm: dict[str, torch.Tensor] | None
    ) -> Generator[_Iterate, None, None]:
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
            beta = (t - 1) / t_next
            z = c + beta.view_as(lam) * (c - c_prev)
            Az = Ax + beta.view(batch, *([1] * (Ax.ndim - 1))) * (Ax - Ax_prev)  # = A T^T z
            grad = transform.forward(A.adjoint(weight * (Az - y)))
            c_new = soft_threshold(z - grad / lipschitz, threshold)
            x_new = transform.inverse(c_new)
            Ax_new = A(x_new)
            # restart the momentum of a member whose step went against the momentum
            restart = ((z - c_new).conj() * (c_new - c)).real.flatten(1).sum(1) > 0
            t = torch.where(restart, torch.ones_like(t_next), t_next)
            change = relative_change(x_new, x)
            c_prev, c, Ax_prev, Ax, x = c, c_new, Ax, Ax_new, x_new
            objective = 0.5 * _weighted_misfit(Ax, y, weight) + lams * penalised(c).flatten(1).sum(
                1
            )
            done = k == steps or bool(change.max() < tol)
            yield _Iterate(x, Ax, objective, k, done, {"c": c})
            if done:
                return

    return core


def _lipschitz(problem: Problem) -> float:
    """``1.05 x`` the largest eigenvalue of ``A^T W A`` (W: the observed entries)."""
    L = normal_bound(problem)
    return L if L > 0 else 1.0


def _lasso(
    problem: Problem,
    transform: DCT | Wavelet,
    *,
    steps: int,
    search_steps: int | None,
    preview_every: int,
    tol: float,
    lam: float | None,
    n_lams: int,
    lam_ratio: float,
    holdout: float,
) -> SolverGen:
    steps, search_steps, lam = _check_options(
        steps, search_steps, preview_every, tol, lam, n_lams, lam_ratio, holdout
    )
    A, y = problem.A, problem.y
    core = _fista(problem, transform, _lipschitz(problem), tol)

    def lam_scale(weight: torch.Tensor) -> float:
        coeffs = transform.forward(A.adjoint(weight * y).unsqueeze(0))[0]
        if transform.shrink is not None:
            coeffs = coeffs[transform.shrink]
        return float(coeffs.abs().max())

    return (
        yield from _drive(
            problem,
            core,
            lam_scale,
            lam=lam,
            n_lams=n_lams,
            lam_ratio=lam_ratio,
            holdout=holdout,
            steps=steps,
            search_steps=search_steps,
            preview_every=preview_every,
        )
    )


def solve_lasso_dct(
    problem: Problem,
    *,
    steps: int = 300,
    search_steps: int | None = None,
    preview_every: int = 10,
    tol: float = 1e-5,
    lam: float | None = None,
    n_lams: int = 8,
    lam_ratio: float = 1e-4,
    holdout: float = 0.1,
) -> SolverGen:
    """L1 in the orthonormal 2D/3D DCT, by FISTA; ``lam`` chosen by held-out measurements.

    Parameters
    ----------
    problem : Problem
        The measurement; its operator must be linear.
    steps : int
        Most FISTA iterations of the final solve.
    search_steps : int, optional
        Most iterations of the search over ``lam``, per weight (when None: ``steps``; for
        ``tv`` trying weights one at a time along a warm-started path, or on a pixel-wise
        operator (``denoise``, ``inpaint``), at most 50).
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
    result = yield from _lasso(
        problem,
        DCT(problem.shape),
        steps=steps,
        search_steps=search_steps,
        preview_every=preview_every,
        tol=tol,
        lam=lam,
        n_lams=n_lams,
        lam_ratio=lam_ratio,
        holdout=holdout,
    )
    return result


def solve_lasso_wavelet(
    problem: Problem,
    *,
    steps: int = 300,
    search_steps: int | None = None,
    preview_every: int = 10,
    tol: float = 1e-5,
    lam: float | None = None,
    n_lams: int = 8,
    lam_ratio: float = 1e-4,
    holdout: float = 0.1,
    wavelet: str = "db4",
    levels: int = 3,
) -> SolverGen:
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
    x, extra = yield from _lasso(
        problem,
        transform,
        steps=steps,
        search_steps=search_steps,
        preview_every=preview_every,
        tol=tol,
        lam=lam,
        n_lams=n_lams,
        lam_ratio=lam_ratio,
        holdout=holdout,
    )
    extra.update(wavelet=transform.name, levels=transform.levels, orthogonal=transform.orthogonal)
    return x, extra
