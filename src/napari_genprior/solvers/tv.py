"""Isotropic total variation (``tv``) by the Chambolle-Pock primal-dual algorithm, batched over
the weights that :mod:`._weight_search` tries; the problem and the rule choosing the weight are
in :mod:`napari_genprior.solvers.classical`'s docstring."""

from __future__ import annotations

import math
from collections.abc import Generator

import torch

from ._classical_ops import (
    batch_norm,
    divergence,
    gradient,
    normal_bound,
    pixel_norm,
    relative_change,
    total_variation,
)
from ._sure import sure_search
from ._tv_fista import early_search, fista_core
from ._weight_search import (
    SEARCH_BATCH_VOXELS,
    Core,
    _check_options,
    _drive,
    _Iterate,
    _weighted_misfit,
    weight_grid,
)
from .common import Problem, SolverGen

# residual balancing of the primal-dual steps (Goldstein, Li, Yuan, Esser, Baraniuk 2015):
# their eta = 0.95 and Delta = 1.5; alpha_0 = 0.2 (theirs: 0.5, which made large transients on
# our test problems); s = 0.1, as the duals (|q| <= lam) are a fraction of the unit-scale image
ADAPT_START, ADAPT_DECAY, ADAPT_RATIO, ADAPT_SCALE = 0.2, 0.95, 1.5, 0.1
#: Pixel-wise operators: the primal step is ``PRIMAL_STEP * max|A^T W y| / lam`` (scale-free: the
#: primal lives on the image's scale, the dual on ``lam``'s). On a real 64x64 nuclei tile,
#: 0.1 reached 39.0 dB in 20 inpainting steps where 0.01 reached 23.5 (and the linearised
#: Chambolle-Pock 21.1); for denoising 0.03 to 0.1 were alike.
PRIMAL_STEP = 0.1
#: The same for operators whose ``A^T W A`` is a Fourier multiplier (single-coil MRI). On two
#: held-out 256x256 brain slices at 4x and 8x, 0.01 gave `tv`'s PSNR (within 0.1 dB) in 0.4-0.6x
#: the linearised core's time, and the objective within 1% in 100 steps; 0.03 and 0.1 converged
#: more slowly (the unsampled frequencies are left to the dual's steps).
FOURIER_PRIMAL_STEP = 0.01
#: Pixel-wise operators test the relative change every this many steps (a sync on a GPU).
CHECK_EVERY = 10
#: Pixel-wise operators search the weight with at most this many steps each (``search_steps``
#: unset): on a 512x512 denoise and 4 real nuclei tiles x (denoise, inpaint) it chose the same
#: weight as the full 300 steps, 2-12x sooner (25 steps chose others on 2 of the 9). Not for
#: MRI: there 50 steps chose the smallest weight at 4x (0.4-1.1 dB worse).
PIXELWISE_SEARCH_STEPS = 50
#: The weights searched run from ``lam_ratio * max|A^T W y|`` up: this ratio for the held-out
#: rule, and for SURE (denoising), whose chosen iterate may stop before a larger weight's
#: minimum, a narrower range, twice as fine with 8 weights (on 4 real nuclei tiles x Gaussian
#: and Poisson noise and a 512x512 cell image, 1e-2 gave a median 0.1 dB more than 1e-4, and
#: 2 dB more on one tile).
HOLDOUT_LAM_RATIO, SURE_LAM_RATIO = 1e-4, 1e-2
#: Smaller images are too small to estimate their noise from: the held-out rule chooses.
SURE_MIN_PIXELS = 64


def _onto_ball(q: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """Each pixel's gradient-field vector of ``q`` projected onto the ball ``|q| <= lam``
    (``lam = 0``, plain least squares, gives 0 rather than 0 / 0)."""
    norm = pixel_norm(q)
    return q * (lam / torch.maximum(norm, lam).clamp_min(1e-30))


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

    def core(
        weight: torch.Tensor, lams: torch.Tensor, steps: int, warm: dict[str, torch.Tensor] | None
    ) -> Generator[_Iterate, None, None]:
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
            q = _onto_ball(q, lam)
            if bool((warm["lam"] == lams).all()):  # the same weight: its steps carry on
                tau, alpha = warm["tau"].expand(batch).clone(), warm["alpha"].expand(batch).clone()
            else:  # another weight (a path): the primal step adapted to one weight can be far
                # too long for the next (a blur stack diverged) and, its adaptation decayed,
                # could not shrink back in time: the steps start afresh
                tau = torch.full((batch,), 1.0 / norm, device=y.device)
                alpha = torch.full((batch,), ADAPT_START, device=y.device)
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
            # the prox of sigma F* for F = 1/2 sum w (v - y)^2 (w: 0/1 masks, or times the
            # entries' inverse noise variances)
            sig = sigma.view(meas)
            p_new = weight * (p + sig * (Ax_bar - y)) / (weight + sig)
            q_new = q + sigma.view(grd) * g_bar
            q_new = _onto_ball(q_new, lam)
            KTy_new = A.adjoint(p_new) - divergence(q_new, ndim)
            # primal and dual residuals; a larger primal one asks for a longer primal step
            res_p = batch_norm((x - x_new) / tau.view(img) - (KTy - KTy_new))
            res_d = (
                batch_norm((p - p_new) / sigma.view(meas) - (Ax - Ax_new)).square()
                + batch_norm((q - q_new) / sigma.view(grd) - (g - g_new)).square()
            ).sqrt()
            up = res_p > ADAPT_SCALE * ADAPT_RATIO * res_d
            down = res_p * ADAPT_RATIO < ADAPT_SCALE * res_d
            factor = torch.where(
                up, 1 / (1 - alpha), torch.where(down, 1 - alpha, torch.ones_like(alpha))
            )
            tau = tau * factor
            alpha = torch.where(up | down, alpha * ADAPT_DECAY, alpha)
            change = relative_change(x_new, x)
            x, Ax, g, p, q, KTy = x_new, Ax_new, g_new, p_new, q_new, KTy_new
            objective = 0.5 * _weighted_misfit(Ax, y, weight) + lams * total_variation(g)
            done = k == steps or bool(change.max() < tol)
            yield _Iterate(
                x, Ax, objective, k, done, {"x": x, "q": q, "tau": tau, "alpha": alpha, "lam": lams}
            )
            if done:
                return

    return core


def _axes(t: torch.Tensor, ndim: int) -> list[tuple[int, int, int]]:
    """``(component, axis, length - 1)`` of each image axis of ``t`` longer than one pixel."""
    return [
        (i, axis, t.shape[axis] - 1)
        for i, axis in enumerate(range(t.ndim - ndim, t.ndim))
        if t.shape[axis] > 1
    ]


def _gradient_views(
    x: torch.Tensor, g: list[torch.Tensor], ndim: int
) -> list[tuple[torch.Tensor, ...]]:
    """Per axis, the views ``(x ahead, x, g's component)`` with which ``torch.sub`` writes
    :func:`gradient` of ``x`` into the field whose components are ``g`` (its far edges stay
    zero: never written). Taken once: each view is a torch call, as costly as a 64x64 image op."""
    return [
        (x.narrow(axis, 1, n), x.narrow(axis, 0, n), g[i].narrow(axis, 0, n))
        for i, axis, n in _axes(x, ndim)
    ]


def _divergence_views(
    q: list[torch.Tensor], out: torch.Tensor, ndim: int
) -> list[tuple[torch.Tensor, ...]]:
    """Per axis, ``(q's component, out, out one ahead)``, with which :func:`divergence` of the
    field whose components are ``q`` is added into ``out`` (as in :func:`divergence`)."""
    return [
        (q[i].narrow(axis, 0, n), out.narrow(axis, 0, n), out.narrow(axis, 1, n))
        for i, axis, n in _axes(out, ndim)
    ]


def _norm_into(parts: list[torch.Tensor], out: torch.Tensor) -> torch.Tensor:
    """:func:`pixel_norm` of a real gradient field given as its component views ``parts``,
    written into ``out`` (a view of shape ``(B, *shape)``): a product, a fused multiply-add per
    further component and a square root, in place (``torch.hypot`` took 1.7x as long on a
    512x512 field, ``linalg.vector_norm`` over the component axis 70-100x)."""
    torch.mul(parts[0], parts[0], out=out)
    for part in parts[1:]:
        out.addcmul_(part, part)
    return out.sqrt_()


def _axpy(y: torch.Tensor, x: torch.Tensor, a: float | torch.Tensor, out: torch.Tensor) -> None:
    """``out = y + a x`` for a float ``a`` or a broadcast tensor of them (``out`` may be ``y``)."""
    if isinstance(a, float):
        torch.add(y, x, alpha=a, out=out)
    else:
        torch.addcmul(y, x, a, out=out)


def _chambolle_pock_exact(problem: Problem, tol: float) -> Core:
    """Chambolle-Pock with the data term solved exactly in the primal step, where it can be.

    When each measurement entry reads one pixel (:attr:`Operator.pixelwise`), the data term
    ``1/2 ||W (A x - y)||^2`` is ``1/2 sum d (x - b / d)^2`` up to a constant, with the diagonal
    ``d = A^T W A 1`` and ``b = A^T W y``: its proximal map is ``(v + tau b) / (1 + tau d)``. So
    ``K = grad`` alone (``||K||^2 <= 4 ndim``, no power iteration), no data dual, and, where every
    pixel is observed (``d > 0``: denoising), the accelerated steps of Chambolle and Pock (2011,
    Algorithm 2) for a ``min(d)``-strongly convex term. The start is ``b`` (the measurement, with
    its holes at zero). On real nuclei tiles it reaches the linearised :func:`_chambolle_pock`'s
    PSNR in a fifth to a quarter of the steps (denoising: 10 against 50; inpainting: 25 against
    100). Where ``A^T W A`` is a Fourier multiplier ``m`` instead
    (:meth:`Operator.normal_multiplier`: single-coil Cartesian MRI), the proximal map is the
    same division in the Fourier domain, ``irfft2(rfft2(v + tau b) / (1 + tau m))``: two FFTs.

    A step is written for few passes over memory and few torch calls: every image and field lives
    in a buffer allocated once (a 512x512 image is allocated and page-faulted afresh otherwise),
    the dual update and its projection run in place, ``grad(x_bar)`` is one ``lerp`` of two
    gradients, and the step sizes, scalars per weight, are computed on the host for all steps at
    once (floats for one weight: a tensor op for each costs more than an image op on a 64x64
    tile; one device table for several: no host-device copy, on a GPU a sync, in a step). So an iterate
    handed out is overwritten two steps later: the driver reads each at once and keeps only a
    finished run's last. With ``ys`` (a measurement per batch member: SURE's probe) the
    iterates carry no objective and no ``A x``, which SURE does not read.
    """
    A, y = problem.A, problem.y
    ndim = len(problem.shape)
    lip = 4.0 * ndim

    def core(
        weight: torch.Tensor,
        lams: torch.Tensor,
        steps: int,
        warm: dict[str, torch.Tensor] | None,
        ys: torch.Tensor | None = None,
    ) -> Generator[_Iterate, None, None]:
        batch = lams.numel()
        shape = problem.shape
        img = (batch, *([1] * ndim))  # broadcast a per-member value over images...
        grd = (batch, 1, *([1] * ndim))  # ...and over gradient fields
        lam = lams.view(grd)
        m = None if A.pixelwise else A.normal_multiplier(weight)
        if m is None:
            ones = torch.ones((1, *shape), device=y.device, dtype=problem.dtype)
            d = A.adjoint(weight * A(ones)).reshape(1, *shape)
        else:
            d = m
        b = A.adjoint(weight * y).reshape(1, *shape)
        d_min, d_max = (float(v) for v in torch.aminmax(d))
        step = PRIMAL_STEP if m is None else FOURIER_PRIMAL_STEP
        b_max = max(float(b.abs().max()), 1e-6)
        fresh = [step * b_max / max(v, 1e-8) for v in lams.tolist()]  # on the host
        # every entry weighs 1 (denoising, a compacted inpainting): the misfit needs no weights
        unit = ys is None and float(weight.min()) == 1.0  # (0/1 weights)
        if ys is not None:  # a measurement per member (the step sizes still from y's)
            b = A.adjoint(weight * ys).reshape(batch, *shape)
        if warm is None:
            x = b.expand(batch, *shape).clone()
            q = torch.zeros((batch, ndim, *shape), device=y.device, dtype=problem.dtype)
            tau = fresh
        else:
            x = warm["x"].expand(batch, *shape).clone()
            q = warm["q"].expand(batch, ndim, *shape).clone()
            q = _onto_ball(q, lam)
            same = bool((warm["lam"] == lams).all())  # the same weight: its steps carry on
            tau = warm["tau"].expand(batch).tolist() if same else fresh
        # the step sizes follow a fixed recursion (accelerated where d > 0: tau shrinks, sigma
        # grows, tau sigma stays 1 / lip), so they are computed on the host for every step at
        # once: (sigma, tau, theta) per step and weight. A step then copies nothing between host
        # and device (on a GPU, a sync): floats for one weight, rows of one device table for more
        taus = [list(tau)]
        rows = []
        for _ in range(steps):
            thetas = [1 / math.sqrt(1 + 2 * d_min * t) if d_min > 0 else 1.0 for t in taus[-1]]
            rows.append([[1 / (lip * t) for t in taus[-1]], taus[-1], thetas])
            taus.append([t * th for t, th in zip(taus[-1], thetas)])
        table = None if batch == 1 else torch.tensor(rows, device=y.device, dtype=problem.dtype)
        tau_rows = torch.tensor(taus)  # each step's, for a warm start (on the host)
        # lam = 0 (plain least squares) projects onto {0}: |q| / 1e-30 is huge where q is not 0
        lam_div = max(lams.tolist()[0], 1e-30) if batch == 1 else lam.clamp_min(1e-30)
        dims = tuple(range(1, ndim + 1))  # an image's axes, and a measurement's
        entries = tuple(range(1, 1 + len(A.measurement_shape)))

        def step_sizes(k: int) -> tuple[float | torch.Tensor, ...]:
            """``(sigma, tau, theta)`` of step ``k`` (from 1), broadcast for several weights."""
            if table is None:
                return tuple(r[0] for r in rows[k - 1])
            row = table[k - 1]
            return row[0].view(grd), row[1].view(img), row[2].view(grd)

        # buffers, allocated once, and their views, taken once: two images and their gradients
        # in turn (the gradients' far edges stay zero), the dual q, the divergence v, a norm
        xs = (x, torch.empty_like(x))
        gs = (torch.zeros_like(q), torch.zeros_like(q))
        parts = {id(f): f.unbind(1) for f in (q, *gs)}  # each field's components
        grads = [_gradient_views(xi, parts[id(gi)], ndim) for xi, gi in zip(xs, gs)]
        v, norm = torch.empty_like(x), torch.empty_like(q[:, :1])
        norm_view = norm[:, 0]
        divs = _divergence_views(parts[id(q)], v, ndim)
        b_full = b.expand_as(v)
        for ahead, at, out in grads[0]:
            torch.sub(ahead, at, out=out)
        g_bar = gs[0].clone()
        cur = 0  # x = xs[cur], g = gs[cur]
        for k in range(1, steps + 1):
            sigma, t, theta = step_sizes(k)
            _axpy(q, g_bar, sigma, out=q)
            _norm_into(parts[id(q)], norm_view)  # q onto |q| <= lam: q / max(1, |q| / lam)
            norm.div_(lam_div).clamp_min_(1.0)
            q.div_(norm)
            v.copy_(b_full)  # v = div q + b
            for qi, lo, hi in divs:
                lo.add_(qi)
                hi.sub_(qi)
            x, x_new = xs[cur], xs[1 - cur]
            _axpy(x, v, t, out=x_new)
            if m is not None:  # the division in the Fourier domain
                spectrum = torch.fft.rfft2(x_new)
                torch.fft.irfft2(spectrum.div_(m * t + 1), s=shape, out=x_new)
            else:
                x_new.div_(1 + t * d_min if d_min == d_max else d * t + 1)
            for ahead, at, out in grads[1 - cur]:
                torch.sub(ahead, at, out=out)
            g, g_new = gs[cur], gs[1 - cur]
            torch.lerp(g_new, g, -theta, out=g_bar)  # grad(x_bar)
            check = tol > 0 and k >= CHECK_EVERY and k % CHECK_EVERY == 0
            converged = check and bool(relative_change(x_new, x).max() < tol)
            cur = 1 - cur
            Ax = objective = None  # SURE (``ys``) reads neither: 8 ops of a 30-op step saved
            if ys is None:
                Ax = A(x_new)
                tv = _norm_into(parts[id(g_new)], norm_view).sum(dim=dims)
                if unit and batch == 1:  # (2 ops where the weighted misfit takes 5)
                    misfit = torch.dist(Ax, y).square_()
                elif unit:
                    misfit = torch.linalg.vector_norm(Ax - y, dim=entries).square_()
                else:
                    misfit = _weighted_misfit(Ax, y, weight)
                objective = tv.mul_(lams).add_(misfit, alpha=0.5)
            done = k == steps or converged
            state = {"x": x_new, "q": q, "tau": tau_rows[k], "lam": lams}
            yield _Iterate(x_new, Ax, objective, k, done, state)
            if done:
                return

    return core


def solve_tv(
    problem: Problem,
    *,
    steps: int = 300,
    search_steps: int | None = None,
    preview_every: int = 10,
    tol: float = 1e-5,
    lam: float | None = None,
    n_lams: int = 8,
    lam_ratio: float | None = None,
    holdout: float = 0.1,
    rule: str = "auto",
) -> SolverGen:
    """Isotropic total variation (2D or 3D), by Chambolle-Pock; ``lam`` by held-out measurements,
    or, for denoising, ``lam`` and the iterate by Stein's unbiased risk estimate, or, for
    deconvolution, ``lam`` and the iterate of FISTA by held-out measurements.

    Parameters
    ----------
    problem : Problem
        The measurement; its operator must be linear.
    steps, search_steps, preview_every, tol, lam, n_lams, lam_ratio, holdout
        As for :func:`solve_lasso_dct` (``steps`` count primal-dual iterations). ``lam_ratio``
        defaults to 1e-4 for the held-out rule and 1e-2 for SURE and the early rule (whose
        weights end at 0.1 ``lam_max``, and whose search ends by itself: no ``search_steps``).
    rule : {"auto", "holdout", "sure", "early"}
        How ``lam`` is chosen when not given: ``"sure"`` (denoising only; :mod:`._sure`) picks
        the weight and the iterate of least estimated risk (the search is the solve: the 3 best
        weights go on after 10 steps, and it stops once the least risk has not fallen for 10
        steps); ``"early"`` (deconvolution, ``blur``, only; :mod:`._tv_fista`) runs FISTA from
        the back-projection and picks the weight and the step whose iterate best predicts
        held-out entries (stopping once that has not improved for 20 steps), then runs them on
        every entry; with ``lam`` given, ``"early"`` runs FISTA at ``lam`` for ``steps``;
        ``"holdout"`` the weight whose minimum best predicts held-out entries.
        ``"auto"``: SURE for ``denoise``, early for ``blur``, held out otherwise.

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
    ratio = HOLDOUT_LAM_RATIO if lam_ratio is None else lam_ratio
    steps, search_steps, lam = _check_options(
        steps, search_steps, preview_every, tol, lam, n_lams, ratio, holdout
    )
    if rule not in ("auto", "holdout", "sure", "early"):
        raise ValueError(f"rule must be 'auto', 'holdout', 'sure' or 'early', got {rule!r}.")
    A, y = problem.A, problem.y
    ndim = len(problem.shape)

    def lam_scale(w: torch.Tensor) -> float:
        return float(A.adjoint(w * y).abs().max())

    deconvolving = A.kind == "blur" and not problem.dtype.is_complex
    if rule == "early" and not deconvolving:
        raise ValueError(
            "rule='early' (the weight and the stopping step on held-out measurements, for "
            f"FISTA's early iterates) is for deconvolution ('blur'), not {A.kind!r}; use "
            "rule='holdout'."
        )
    exact = A.pixelwise or (
        A.normal_multiplier(torch.ones(A.measurement_shape, device=y.device)) is not None
    )
    # deconvolution with no weight given, or rule="early": FISTA's early iterates
    # (:mod:`._tv_fista`); a given weight otherwise gets the TV minimum (Chambolle-Pock)
    if deconvolving and (rule == "early" or (lam is None and rule == "auto")):
        core = fista_core(problem, tol)
        if lam is None:
            result = yield from early_search(
                problem,
                core,
                lam_scale,
                n_lams=n_lams,
                holdout=holdout,
                steps=steps,
                preview_every=preview_every,
                **({} if lam_ratio is None else {"lam_ratio": lam_ratio}),
            )
            return result
    elif exact and not problem.dtype.is_complex:
        core = _chambolle_pock_exact(problem, tol)
        if A.pixelwise and search_steps is None:
            search_steps = min(steps, PIXELWISE_SEARCH_STEPS)
    else:  # K^T K = A^T W A + grad^T grad
        norm_sq = normal_bound(problem, lambda v: -divergence(gradient(v, ndim), ndim))
        core = _chambolle_pock(problem, math.sqrt(norm_sq), tol)

    denoising = A.kind == "denoise" and problem.observed is None and not problem.dtype.is_complex
    denoising = denoising and A.size >= SURE_MIN_PIXELS
    if rule == "sure" and not denoising:
        raise ValueError(
            "rule='sure' (Stein's unbiased risk estimate) needs a denoising problem: the "
            f"'denoise' operator with every pixel observed and at least {SURE_MIN_PIXELS} "
            f"pixels, not {A.kind!r} of shape {A.shape}; use rule='holdout'."
        )
    if lam is None and denoising and rule != "holdout":
        lam_max = float(y.abs().max()) or 1.0
        ratio = SURE_LAM_RATIO if lam_ratio is None else lam_ratio
        chunk = max(1, min(n_lams, SEARCH_BATCH_VOXELS // (2 * A.size)))
        x, extra = yield from sure_search(
            problem,
            core,
            weight_grid(lam_max, ratio, n_lams, y.device),
            steps=steps,
            preview_every=preview_every,
            chunk=chunk,
            patience=CHECK_EVERY,
        )
        return x, {**extra, "lam_max": lam_max}

    result = yield from _drive(
        problem,
        core,
        lam_scale,
        lam=lam,
        n_lams=n_lams,
        lam_ratio=ratio,
        holdout=holdout,
        steps=steps,
        search_steps=search_steps,
        preview_every=preview_every,
        path=True,
    )
    return result
