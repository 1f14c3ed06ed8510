"""``ia``: image-adaptive reconstruction (Hussein, Tirer, Giryes, "Image-Adaptive GAN based
Reconstruction", AAAI 2020).

A trained prior has a floor: the images it can make are a little (or a lot) unlike the one at
hand. Image adaptation removes the floor while keeping the prior's structure:

1. **search** (``search_steps``, by default half the steps and at most 300): the usual CSGM
   search for the latent code(s) z (Adam on ``||A G(z) - y||^2 + lam ||z||^2``, all restarts
   in one batch, optional encoder warm start);
2. **adaptation**: joint Adam steps on z and on a private copy of the generator's weights, with a
   small learning rate for the weights (``lr_weights``), so that G itself bends towards the
   measurement; each restart adapts its own copy (stacked weights, one batched call through
   ``torch.func.vmap``), and for a mosaic all tiles of a restart share that restart's copy and
   are fitted against the operator on the whole image;
3. **back-projection** (``back_project=True``; for linear operators, best at low noise):
   ``x + A^+ (y - A x)``, which makes the result agree with the measurements. ``A^+ r`` is
   the minimum-norm least-squares correction, by conjugate gradients on the normal equations
   (a few iterations for the operators where ``A A^T`` is (nearly) a multiple of the identity:
   inpaint, mri, downsample, cs).

Stopping never looks at the ground truth: as for ``dip``, a random 5% of the observed
measurement entries are held out from both stages. Every ``check_every`` adaptation steps, each
restart's misfit on them is measured; each restart keeps its image at its best held-out misfit
(the end of the search counts, so adaptation can only be kept where it helps) and the run stops
when no restart has improved for ``patience`` steps. The restart with the lowest held-out misfit
wins. With fewer than 200 observed entries nothing is held out: the adaptation then runs its
steps and the training misfit decides.

The bundled prior's weights never change: the solver adapts copies (``Problem.prior`` is already
a private copy, and the stacked weights are new tensors).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.func import functional_call, stack_module_state, vmap

from ..operators.base import check_float, check_int
from .common import (
    Problem,
    SolverGen,
    Update,
    conjugate_gradients,
    real_normal,
    split_holdout,
)
from .latent import _finish, _init_latent, _keep_best, _Latent, _misfit


class _AdaptedPrior:
    """``R`` private copies of a prior's weights: ``image(z)`` makes restart r's image with copy r.

    For a :class:`~napari_genprior.tiling.Mosaic`, the copies are of its patch generator and
    every tile of restart r uses copy r."""

    def __init__(self, prior: torch.nn.Module, restarts: int):
        self.mosaic = prior if hasattr(prior, "from_patches") else None
        self.G = prior.G if self.mosaic is not None else prior
        self.G.eval()
        params, buffers = stack_module_state([self.G] * restarts)
        # the decoder's weights only: a VAE prior carries its encoder, which makes no images
        self.params = {
            k: v.detach().clone().requires_grad_(True)
            for k, v in params.items()
            if not k.startswith("encoder.")
        }
        self.buffers = {
            k: v.detach().clone() for k, v in buffers.items() if not k.startswith("encoder.")
        }

        def one(p: dict, b: dict, z: torch.Tensor) -> torch.Tensor:
            return functional_call(self.G, (p, b), (z,))

        self._batched = vmap(one)

    def parameters(self) -> list[torch.Tensor]:
        return list(self.params.values())

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        R = z.shape[0]
        if self.mosaic is None:
            return self._batched(self.params, self.buffers, z[:, None])[:, 0]
        m = self.mosaic
        patches = self._batched(self.params, self.buffers, z.reshape(R, m.tiles, m.tile_latent))
        return m.from_patches(patches)


def _pseudo_inverse(
    problem: Problem, r: torch.Tensor, weight: torch.Tensor, iterations: int = 30
) -> torch.Tensor:
    """The least-squares correction ``d = A^+ r`` on the entries in ``weight``: conjugate
    gradients on the normal equations ``A^T W A d = A^T W r`` in image space, from d = 0 (so the
    minimum-norm solution). In image space the system is consistent even when the measurement
    space has directions no real image reaches (the conjugate-symmetric part of k-space)."""
    b = problem.A.adjoint(r * weight)
    b = b.real if b.is_complex() else b
    normal = real_normal(problem.A, weight)
    return conjugate_gradients(normal, torch.zeros_like(b), b, iterations, tol=1e-10)


def solve_ia(
    problem: Problem,
    *,
    steps: int = 1000,
    search_steps: int | None = None,
    lr: float = 0.05,
    lr_weights: float = 1e-3,
    lam: float = 1e-3,
    fit_gain: bool | None = None,
    init: Any = None,
    holdout: float = 0.05,
    patience: int = 200,
    check_every: int = 10,
    warmup: int = 100,
    back_project: bool = False,
    preview_every: int = 10,
) -> SolverGen:
    """Image-adaptive reconstruction; see the module docstring.

    Parameters
    ----------
    steps : int
        Most steps in all (search plus adaptation).
    search_steps : int, optional
        Steps of the latent search (stage 1); default half of ``steps``, at most 300 (the
        search levels off by then; the adaptation is what gains).
    lr : float
        Adam learning rate of the latent codes (and of the gain and offset).
    lr_weights : float
        Adam learning rate of the generator's weights during adaptation (small: the prior's
        structure is kept, its floor removed).
    lam : float
        Weight of ||z||^2, as for ``csgm``.
    fit_gain : bool, optional
        Fit an intensity gain and offset per restart (default: from the prior's card).
    init : array or "encoder", optional
        Starting latent code(s), as for ``csgm``.
    holdout : float
        Fraction of the observed measurement entries held out to choose when to stop (0 turns
        the rule off: all steps run).
    patience : int
        Adaptation steps without a better held-out misfit before stopping.
    check_every : int
        Adaptation steps between held-out checks.
    warmup : int
        Adaptation steps over which the weights' learning rate rises linearly to
        ``lr_weights``.
    back_project : bool
        Finish with ``x + A^+(y - A x)`` (linear operators; helps at low noise).
    """
    lr = check_float("lr", lr, low=0, low_open=True)
    lr_weights = check_float("lr_weights", lr_weights, low=0)
    lam = check_float("lam", lam, low=0)
    holdout = check_float("holdout", holdout, low=0, high=0.5)
    patience = check_int("patience", patience, 1)
    check_every = check_int("check_every", check_every, 1)
    warmup = check_int("warmup", warmup, 1)
    if search_steps is None:
        search_steps = max(1, min(300, steps // 2))
    search_steps = check_int("search_steps", search_steps, 0)
    search_steps = min(search_steps, steps)
    if not isinstance(back_project, bool):
        raise TypeError(f"back_project must be True or False, got {back_project!r}.")
    if back_project and not problem.A.linear:
        raise ValueError(
            f"back_project=True needs a linear operator; {problem.A.kind!r} is not linear."
        )

    G, R, dev = problem.prior, problem.restarts, problem.device
    gen = torch.Generator(device="cpu").manual_seed(problem.seed)
    train, held_f = split_holdout(problem, holdout)
    n_held = int(held_f.sum())

    lat = _Latent(problem, fit_gain)
    z = _init_latent(problem, G.latent_dim, init, gen).requires_grad_(True)
    gain, offset = lat.gain_params(R, dev)
    extras = [gain, offset] if gain is not None else []

    def to_image(raw: torch.Tensor) -> torch.Tensor:
        return lat.from_output(raw, gain, offset)

    def score(x: torch.Tensor) -> torch.Tensor:
        """What chooses among iterates and restarts: held-out misfit (training misfit when
        nothing is held out)."""
        return _misfit(problem, x, held_f) if n_held else _misfit(problem, x, train)

    notes: list[str] = []
    step = 0
    # -- stage 1: latent search --------------------------------------------------------------
    opt = torch.optim.Adam([z] + extras, lr=lr)
    best_fit = best_x = None
    best_state = [p.detach().clone() for p in [z] + extras]  # each restart's best z (gain, offset)
    for step in range(1, search_steps + 1):
        opt.zero_grad(set_to_none=True)
        x = to_image(G(z))
        fit = _misfit(problem, x, train)
        (fit.sum() + lam * z.square().sum()).backward()
        with torch.no_grad():  # (x and fit belong to the parameters before this step)
            better = torch.ones_like(fit, dtype=torch.bool) if best_fit is None else fit < best_fit
            best_state = [
                torch.where(better.view(-1, *(1,) * (p.ndim - 1)), p, b)
                for p, b in zip([z] + extras, best_state)
            ]
            best_fit, best_x = _keep_best(best_fit, best_x, fit, x.detach())
        opt.step()
        preview = (
            problem.to_numpy(best_x[int(torch.argmin(best_fit))])
            if step % preview_every == 0
            else None
        )
        if (yield Update(step, steps, float(best_fit.min()), preview)) is False:
            return _done(
                problem,
                best_x,
                score,
                notes,
                {
                    "iterations": step,
                    "search_steps": step,
                    "adapt_steps": 0,
                    "stopped_at": step,
                    "cancelled_at": step,
                },
            )
    # -- stage 2: joint adaptation of z and a private copy of the weights ----------------------
    with torch.no_grad():
        for p, b in zip([z] + extras, best_state):
            p.copy_(b)
    adapted = _AdaptedPrior(G, R)
    opt = torch.optim.Adam(
        [{"params": [z] + extras, "lr": lr}, {"params": adapted.parameters(), "lr": lr_weights}]
    )
    # the weights' step grows linearly over the first ``warmup`` adaptation steps: Adam's first
    # steps move every weight by about its learning rate at once, which would knock the image
    # off the search's result before the gradients have said in which direction to go
    ramp = torch.optim.lr_scheduler.LambdaLR(
        opt, [lambda i: 1.0, lambda i: min(1.0, (i + 1) / warmup)]
    )
    with torch.no_grad():
        x = to_image(adapted(z))
        best_val = score(x)
        best_x = x.clone()
    search_val = best_val.clone()
    since_best, adapt_steps, cancelled = 0, 0, False
    for step in range(search_steps + 1, steps + 1):
        opt.zero_grad(set_to_none=True)
        x = to_image(adapted(z))
        fit = _misfit(problem, x, train)
        total = fit.sum() + lam * z.square().sum()
        if not bool(torch.isfinite(total)):
            notes.append(
                f"ia: the adaptation diverged at step {step} (the loss became NaN or "
                "infinite); the best iterate before it is returned. Use a smaller "
                "lr_weights."
            )
            break
        total.backward()
        opt.step()
        ramp.step()
        adapt_steps += 1
        if n_held == 0 or (step - search_steps) % check_every == 0 or step == steps:
            with torch.no_grad():
                if n_held:  # the held-out misfit of the weights after this step
                    x = to_image(adapted(z))
                    val = score(x)
                else:  # nothing held out: this step's training misfit (no second forward)
                    x, val = x.detach(), fit.detach()
                improved = bool((val < best_val).any())  # (NaN and inf never compare lower)
                best_val, best_x = _keep_best(best_val, best_x, val, x)
                since_best = 0 if improved else since_best + (1 if n_held == 0 else check_every)
        preview = (
            problem.to_numpy(best_x[int(torch.argmin(best_val))])
            if step % preview_every == 0 or step == steps
            else None
        )
        if (yield Update(step, steps, float(fit.detach().min()), preview)) is False:
            cancelled = True
            break
        if n_held and since_best >= patience:
            break
    extra: dict[str, Any] = {
        "iterations": step,
        "search_steps": search_steps,
        "adapt_steps": adapt_steps,
        "stopped_at": step,
        "heldout_entries": n_held,
        "fit_gain": lat.fit_gain,
        "adaptation_gain": (float(search_val.min()) - float(best_val.min())),
    }
    if cancelled:
        extra["cancelled_at"] = step
    if back_project:
        with torch.no_grad():
            r = problem.y - problem.A(best_x)
            best_x = best_x + _pseudo_inverse(problem, r, train)
        extra["back_projected"] = True
    return _done(problem, best_x, score, notes, extra)


def _done(problem, x, score, notes, extra):
    with torch.no_grad():
        value = score(x)
    if notes:
        extra["notes"] = notes
    return _finish(problem, x, value, extra)
