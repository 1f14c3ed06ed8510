"""Latent-space methods: ``csgm``, ``twist`` and ``sparse-gen``.

All restarts are optimised together as ONE batch: the latent codes are a ``(restarts, k)``
tensor, the generator and the operator run on the whole batch, and the restart with the lowest
measurement misfit wins. For the magnitude-only operator ``phase``, ``A.forward`` is already
``|A_lin x|``, so the same misfit ``|| A(G(z)) - y ||^2`` is the amplitude loss of Deep Phase
Retrieval (Hand, Leong, Voroninski 2018).

Data units: a prior's card says how its outputs relate to data (``normalisation``: output p
stands for ``low + p (high - low)``), and the image is that, divided by the problem's scale.
With ``fit_gain`` (the default for priors trained on per-image normalised data, whose intensity
scale in a new image is unknown) the image is instead ``gain * G(z) + offset`` in the problem's
normalised units (where the data's robust peak is about 1), with gain and offset fitted with z
from 1 and 0.
"""

from __future__ import annotations

from typing import Any

import torch

from ..operators.base import check_float, check_int
from .common import Problem, SolverGen, Update

#: csgm's plateau rule: it stops once its best misfit has fallen by less than this share over
#: its last ``patience`` steps (default :data:`PLATEAU_STEPS`).
PLATEAU_TOL = 1e-3
PLATEAU_STEPS = 100


class _Latent:
    """Maps a batch of latent codes (and gains) to images in the problem's normalised units."""

    def __init__(self, problem: Problem, fit_gain: bool | None):
        G = problem.prior
        norm = G.card.get("normalisation", {}) or {}
        self.low = float(norm.get("low", 0.0))
        self.span = float(norm.get("high", 1.0)) - self.low
        self.fit_gain = bool(norm.get("per_image", False)) if fit_gain is None else bool(fit_gain)
        self.G, self.scale = G, problem.scale

    def gain_params(self, restarts: int, device: torch.device):
        """Trainable per-restart gain and offset (starting at 1 and 0), or (None, None)."""
        if not self.fit_gain:
            return None, None
        return (
            torch.ones(restarts, device=device, requires_grad=True),
            torch.zeros(restarts, device=device, requires_grad=True),
        )

    def image(
        self, z: torch.Tensor, gain: torch.Tensor | None = None, offset: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.from_output(self.G(z), gain, offset)

    def from_output(
        self, x: torch.Tensor, gain: torch.Tensor | None = None, offset: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Generator outputs ``x`` (a batch) -> images in the problem's normalised units."""
        if gain is not None:
            # fitted intensity scale, directly in the problem's normalised units (where the
            # data's robust peak is about 1): starts at the prior's own [0, 1] range
            shape = (-1,) + (1,) * (x.ndim - 1)
            return x * gain.reshape(shape) + offset.reshape(shape)
        return (self.low + x * self.span) / self.scale


def _misfit(problem: Problem, x: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Per-restart measurement misfit ``||A x - y||^2`` (a ``(R,)`` tensor), over the entries
    that ``weight`` (0/1 over the measurement) keeps when given, each entry weighed by its
    inverse noise variance where the problem has one (a camera's Poisson-Gaussian noise)."""
    r = problem.A(x) - problem.y
    if weight is not None:
        r = r * weight
    if problem.precision is not None:
        r = r * problem.precision.sqrt()
    if r.is_complex():
        r = torch.view_as_real(r)
    return r.square().flatten(1).sum(1)


def _keep_best(
    best: torch.Tensor | None, best_x: torch.Tensor | None, value: torch.Tensor, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each restart's lowest ``value`` so far and its image (``(R,)`` and ``(R, ...)``),
    updated with this step's; under ``no_grad``. ``torch.where``: no host sync, one op."""
    if best is None:
        return value.clone(), x.clone()
    better = value < best
    return (
        torch.where(better, value, best),
        torch.where(better.view(-1, *(1,) * (x.ndim - 1)), x, best_x),
    )


def _init_latent(problem: Problem, k: int, init: Any, gen: torch.Generator) -> torch.Tensor:
    R = problem.restarts
    if init is None:
        return torch.randn((R, k), generator=gen).to(problem.device)
    if isinstance(init, str):
        if init != "encoder":
            raise ValueError(f"init must be 'encoder' or latent code(s), got {init!r}.")
        return _encoder_start(problem, k, gen)
    z0 = torch.as_tensor(init, dtype=torch.float32).reshape(-1, k).to(problem.device)
    if z0.shape[0] not in (1, R):
        raise ValueError(f"init holds {z0.shape[0]} latent codes; give 1 or restarts={R}.")
    return z0.expand(R, k).clone()


def _encoder_start(problem: Problem, k: int, gen: torch.Generator) -> torch.Tensor:
    """Restart 0 starts at the VAE encoder's code of the back-projection A^T y (a warm start
    for inpainting, denoising, deblurring); the other restarts draw from N(0, I)."""
    G = problem.prior
    encoder = getattr(G, "encoder", None)
    if encoder is None:
        raise ValueError("init='encoder' needs a VAE prior saved with its encoder.")
    if not problem.A.linear:
        raise ValueError("init='encoder' needs a linear operator (it encodes A^T y).")
    norm = G.card.get("normalisation", {}) or {}
    low = float(norm.get("low", 0.0))
    span = float(norm.get("high", 1.0)) - low
    with torch.no_grad():
        back = problem.A.adjoint(problem.y).real * problem.scale
        if norm.get("per_image"):
            lo, hi = torch.quantile(
                back.flatten().float(), torch.tensor([0.01, 0.998], device=back.device)
            )
            back = (back - lo) / (hi - lo).clamp_min(1e-12)
        else:
            back = (back - low) / span
        mu, _ = encoder(back.clamp(0, 1).to(torch.float32)[None])
    z = torch.randn((problem.restarts, k), generator=gen).to(problem.device)
    z[0] = mu[0]
    return z


def _finish(problem: Problem, x: torch.Tensor, misfit: torch.Tensor, extra: dict[str, Any]):
    """Best restart, and the spread over restarts within 2x of the best misfit."""
    best = int(torch.argmin(misfit))
    extra = {
        **extra,
        "best_restart": best,
        "restart_misfits": [float(v) for v in misfit.detach().cpu()],
    }
    if problem.restarts > 1:
        good = misfit <= 2 * misfit[best] + 1e-12
        extra["spread_restarts"] = int(good.sum())
        extra["spread"] = (
            x[good].std(dim=0, unbiased=False) if int(good.sum()) > 1 else torch.zeros_like(x[best])
        )
    return x[best].detach(), extra


def solve_csgm(
    problem: Problem,
    *,
    steps: int = 1000,
    lr: float = 0.05,
    lam: float = 1e-3,
    optimizer: str = "adam",
    fit_gain: bool | None = None,
    init: Any = None,
    patience: int | None = PLATEAU_STEPS,
    preview_every: int = 10,
) -> SolverGen:
    """CSGM (Bora, Jalal, Price, Dimakis 2017): min_z ||A(G(z)) - y||^2 + lam ||z||^2.

    Parameters
    ----------
    steps : int
        Optimiser steps.
    lr : float
        Adam learning rate (L-BFGS uses its own line search with this initial step).
    lam : float
        Weight of ||z||^2 (the latent prior N(0, I)), in the normalised units of the misfit.
    optimizer : {"adam", "lbfgs"}
    fit_gain : bool, optional
        Fit an intensity gain and offset per restart (default: from the prior's card).
    init : array or "encoder", optional
        Starting latent code(s), shape (k,) or (restarts, k); ``"encoder"`` starts restart 0
        at the VAE encoder's code of the back-projection ``A^T y`` (a warm start).
    patience : int or None
        Stop once the best misfit has fallen by less than :data:`PLATEAU_TOL` (relative) over
        this many steps: a plateau (``params["stopped_at"]``). None: run every step.
    """
    if optimizer not in ("adam", "lbfgs"):
        raise ValueError(f"optimizer must be 'adam' or 'lbfgs', got {optimizer!r}.")
    lr = check_float("lr", lr, low=0, low_open=True)
    lam = check_float("lam", lam, low=0)
    if patience is not None:
        patience = check_int("patience", patience, 1)
    G = problem.prior
    gen = torch.Generator(device="cpu").manual_seed(problem.seed)
    lat = _Latent(problem, fit_gain)
    z = _init_latent(problem, G.latent_dim, init, gen).requires_grad_(True)
    gain, offset = lat.gain_params(problem.restarts, problem.device)
    params = [z] + ([gain, offset] if gain is not None else [])
    best_x = best_misfit = None

    def objective() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per restart: the objective, the misfit and the image (the restarts are independent,
        so the gradient of their sum is ``backward`` with ones: no sum and no sum's backward)."""
        x = lat.image(z, gain, offset)
        misfit = _misfit(problem, x)
        return misfit + lam * z.square().sum(1), misfit, x

    if optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr)
    else:
        opt = torch.optim.LBFGS(params, lr=lr, max_iter=1, line_search_fn="strong_wolfe")

    ones = torch.ones(problem.restarts, device=problem.device)
    low = float("inf")  # one restart: its least misfit so far, on the host
    losses: list[float] = []  # the best misfit after each step (the plateau rule looks back)
    stopped_at = None
    for step in range(1, steps + 1):
        if optimizer == "adam":
            opt.zero_grad(set_to_none=True)
            total, misfit, x = objective()
            total.backward(ones)
            opt.step()
        else:

            def closure():
                opt.zero_grad(set_to_none=True)
                total = objective()[0].sum()
                total.backward()
                return total

            opt.step(closure)
            with torch.no_grad():
                _, misfit, x = objective()
        if problem.restarts == 1:  # the choice on the host: the step's loss is a sync anyway,
            # and x, made afresh each step, is kept by reference (4 fewer ops a step than where)
            misfit = misfit.detach()
            value = float(misfit)
            if best_x is None or value < low:
                low, best_misfit, best_x = value, misfit, x.detach()
            loss = low
        else:
            with torch.no_grad():  # (under no_grad, clone and where give tensors without graphs)
                best_misfit, best_x = _keep_best(best_misfit, best_x, misfit, x)
            loss = float(best_misfit.min())
        losses.append(loss)
        flat = patience is not None and step > patience
        flat = flat and loss > (1 - PLATEAU_TOL) * losses[step - 1 - patience]
        preview = None
        if step % preview_every == 0 or step == steps or flat:
            preview = problem.to_numpy(best_x[int(torch.argmin(best_misfit))])
        if (yield Update(step, steps, loss, preview)) is False:
            break
        if flat:
            stopped_at = step
            break
    extra: dict[str, Any] = {"iterations": step, "fit_gain": lat.fit_gain}
    if stopped_at is not None:
        extra["stopped_at"] = stopped_at
    if gain is not None:
        b = int(torch.argmin(best_misfit))
        extra.update(gain=gain[b].item(), offset=offset[b].item())
    return _finish(problem, best_x, best_misfit, extra)


def solve_twist(
    problem: Problem,
    *,
    steps: int = 1000,
    twist: bool = True,
    init: Any = None,
    step_size: float = 1.0,
    tol: float = 1e-10,
    preview_every: int = 10,
) -> SolverGen:
    """Gradient descent on f(z) = 1/2 ||A G(z) - y||^2 with the twist (Huang, Heckel, Hand,
    Voroninski 2018): after every step, if f(-z) < f(z), jump to -z.

    Step-size rule: Armijo backtracking per restart. Each step starts from twice the restart's
    last accepted step (capped at ``step_size * 1e3``) and halves it, up to 30 times, until
    ``f(z - t g) <= f(z) - t/2 ||g||^2``; a restart whose step falls below 1e-12 has converged
    and stops moving. ``twist=False`` gives plain (sub)gradient descent, which can stay caught
    near the spurious critical point -rho z0 of expansive ReLU networks.

    Parameters
    ----------
    steps : int
        Gradient steps.
    twist : bool
        Compare f(z) with f(-z) after each step and keep the better (the "twist").
    init : array, optional
        Starting latent code(s), shape (k,) or (restarts, k); default N(0, I) draws.
    step_size : float
        First trial step of the backtracking.
    tol : float
        Stop when every restart's relative change of z is below ``tol``.
    """
    step_size = check_float("step_size", step_size, low=0, low_open=True)
    tol = check_float("tol", tol, low=0)
    G = problem.prior
    gen = torch.Generator(device="cpu").manual_seed(problem.seed)
    lat = _Latent(problem, fit_gain=False)
    z = _init_latent(problem, G.latent_dim, init, gen)
    R = problem.restarts
    t = torch.full((R,), float(step_size), device=problem.device)

    def f(zz: torch.Tensor) -> torch.Tensor:
        return 0.5 * _misfit(problem, lat.image(zz))

    flips = 0
    step = 0
    with torch.no_grad():
        fz = f(z)
    for step in range(1, steps + 1):
        zg = z.detach().requires_grad_(True)
        fz = f(zg)
        (g,) = torch.autograd.grad(fz.sum(), zg)
        fz = fz.detach()
        with torch.no_grad():
            g2 = g.pow(2).sum(1)
            t = torch.clamp(t * 2, max=step_size * 1e3)
            accepted = torch.zeros(R, dtype=torch.bool, device=problem.device)
            new_z, new_f = z.clone(), fz.clone()
            for _ in range(30):
                cand = z - t[:, None] * g
                fc = f(cand)
                ok = (fc <= fz - 0.5 * t * g2) & ~accepted
                new_z[ok], new_f[ok] = cand[ok], fc[ok]
                accepted |= ok
                if bool(accepted.all()):
                    break
                t = torch.where(accepted, t, t / 2)
            moved = (new_z - z).norm(dim=1) / z.norm(dim=1).clamp_min(1e-30)
            z, fz = new_z, new_f
            if twist:
                f_neg = f(-z)
                flip = f_neg < fz
                flips += int(flip.sum())
                z = torch.where(flip[:, None], -z, z)
                fz = torch.where(flip, f_neg, fz)
        preview = None
        if step % preview_every == 0 or step == steps:  # (argmin syncs: only for previews)
            best = int(torch.argmin(fz))
            preview = problem.to_numpy(lat.image(z[best : best + 1])[0])
        if (yield Update(step, steps, float(2 * fz.min()), preview)) is False:
            break
        if bool((moved < tol).all()):  # every restart has stopped moving
            break
    with torch.no_grad():
        x = lat.image(z)
        misfit = _misfit(problem, x)
    extra = {
        "iterations": step,
        "twist": twist,
        "flips": flips,
        "latent": z[int(torch.argmin(misfit))].tolist(),
    }
    return _finish(problem, x, misfit, extra)


def solve_sparse_gen(
    problem: Problem,
    *,
    steps: int = 1000,
    lr: float = 0.05,
    lam: float = 1e-3,
    l1: float | None = None,
    basis: str = "pixel",
    fit_gain: bool | None = None,
    preview_every: int = 10,
) -> SolverGen:
    """Sparse-Gen (Dhar, Grover, Ermon 2018): x = G(z) + nu, min ||A x - y||^2 + lam ||z||^2 +
    l1 ||B nu||_1, for images just outside the generator's range.

    z (and the gain) take Adam steps; nu takes proximal-gradient steps (soft-thresholding in the
    basis B: ``"pixel"`` or ``"dct"``, orthonormal) with step 1/L, L from a power iteration on
    A^T A. Default ``l1``: 0.1 x the median of |B A^T y| over pixels, a scale-free rule that
    never looks at the ground truth.
    """
    from ._classical_ops import DCT, SAFETY, Wavelet, largest_eigenvalue, soft_threshold

    if basis not in ("pixel", "dct", "wavelet"):
        raise ValueError(f"basis must be 'pixel', 'dct' or 'wavelet', got {basis!r}.")
    lr = check_float("lr", lr, low=0, low_open=True)
    lam = check_float("lam", lam, low=0)
    if l1 is not None:
        l1 = check_float("l1", l1, low=0)
    transform = (
        DCT(problem.shape)
        if basis == "dct"
        else Wavelet(problem.shape, device=problem.device)
        if basis == "wavelet"
        else None
    )
    fwd_basis = transform.forward if transform else (lambda v: v)
    inv_basis = transform.inverse if transform else (lambda c: c)
    shrink = getattr(transform, "shrink", None)  # wavelets: the coarsest level is not penalised

    A, y, R = problem.A, problem.y, problem.restarts
    gen = torch.Generator(device="cpu").manual_seed(problem.seed)
    with torch.no_grad():
        L = (
            largest_eigenvalue(
                lambda v: A.adjoint(A(v)), A.shape, seed=problem.seed, device=problem.device
            )
            * SAFETY
            + 1e-12
        )
        if l1 is None:
            l1 = 0.1 * float(fwd_basis(A.adjoint(y)).abs().median())
    lat = _Latent(problem, fit_gain)
    z = (
        torch.randn((R, problem.prior.latent_dim), generator=gen)
        .to(problem.device)
        .requires_grad_(True)
    )
    gain, offset = lat.gain_params(R, problem.device)
    params = [z] + ([gain, offset] if gain is not None else [])
    opt = torch.optim.Adam(params, lr=lr)
    nu = torch.zeros((R, *A.shape), device=problem.device)
    best_x = best_obj = None
    for step in range(1, steps + 1):
        opt.zero_grad(set_to_none=True)
        gx = lat.image(z, gain, offset)
        misfit = _misfit(problem, gx + nu)
        (misfit + lam * z.pow(2).sum(1)).sum().backward()
        opt.step()
        with torch.no_grad():
            gx = lat.image(z, gain, offset)
            r = A(gx + nu) - y
            grad_nu = 2 * A.adjoint(r)
            t = l1 / (2 * L) if shrink is None else shrink * (l1 / (2 * L))
            nu = inv_basis(soft_threshold(fwd_basis(nu - grad_nu / (2 * L)), t))
            x = gx + nu
            misfit = _misfit(problem, x)
            obj = misfit + l1 * fwd_basis(nu).abs().flatten(1).sum(1)
            best_obj, best_x = _keep_best(best_obj, best_x, obj, x)
        preview = (
            problem.to_numpy(best_x[int(torch.argmin(best_obj))])
            if step % preview_every == 0 or step == steps
            else None
        )
        if (yield Update(step, steps, float(best_obj.min()), preview)) is False:
            break
    extra = {"iterations": step, "l1": float(l1), "basis": basis, "fit_gain": lat.fit_gain}
    return _finish(problem, best_x, best_obj, extra)
