"""``score``: reconstruction under a score-based (diffusion) prior, by annealed splitting.

The prior is a noise-conditional denoiser ``D(x, sigma)`` (:class:`~napari_genprior.priors.score.
ScoreUNet`): the score model of a diffusion prior, ``grad log p_sigma(x) = (D(x, sigma) - x) /
sigma^2``. As in DPIR (Zhang et al., TPAMI 2021) and DiffPIR (Zhu et al., CVPR 2023), each step at
noise level ``sigma_k`` (geometric, from ``sigma_max`` down to ``sigma_min``) alternates

1. the prior step ``z = D(x, sigma_k)``: the posterior mean of the clean image at that noise
   level (early, large ``sigma`` removes aliasing and noise as if it were Gaussian noise);
2. the data step ``x = argmin ||A x - y||^2_W + rho_k ||x - z||^2`` with
   ``rho_k = lam * noise_var / sigma_k^2`` (conjugate gradients, warm-started at ``z``; for
   Cartesian MRI it converges in a few iterations).

Nothing is tuned on the ground truth. The measurement-noise variance ``noise_var`` is estimated
on a random 5% of the observed entries held out from the fit: the misfit of the best iterate so
far on them, an upper bound that tightens as the estimate improves (``lam`` = 0.1 allows for
that; it was chosen, among 0.05, 0.1, 0.25 and 1, on two held-out MNI152 slices, z = 103 and
108, that the benchmark does not use; 0.5 under a prior learned from noisy measurements,
:data:`NOISY_LAM`). The result is the iterate with the smallest held-out misfit, whose data step
is then repeated on every observed entry. With fewer than 200 observed entries nothing is held
out, ``noise_var`` comes from the fit's own misfit and the last iterate is returned.

A blur with an unknown border reconstructs a margin beyond the field of view that the data
barely constrain: the denoiser's input there is kept within the range of the image inside, so
that a denoiser brightening it cannot feed on itself (:func:`_bounded_margin`).

Complex images (multi-coil MRI) are reconstructed as a magnitude under the prior with a phase
(:class:`~napari_genprior.operators.mri.FixedPhase`). The phase from the fully sampled centre
is not precise enough: an error of 0.02 rad leaves a misfit the magnitude cannot explain
(25.4 dB at 8x on a held-out slice, 33.6 dB with the true phase). Every ``phase_every`` steps the
phase is therefore refined from the data: the complex image nearest the current magnitude
with that phase that fits the training entries, ``argmin_x ||A x - y||^2_W + rho_phase ||x -
m e^{i phi}||^2`` (conjugate gradients), gives the new phase ``angle(x)``.
"""

from __future__ import annotations

from typing import Any

import torch

from ..operators.base import check_float, check_int
from ..priors.score import learned_through, noise_floor
from ._score_direct import (  # noqa: F401 (SAME_LEVEL, SPLITS, TEST_SPLIT: re-exported)
    SAME_LEVEL,
    SPLITS,
    TEST_SPLIT,
    _denoise_direct,
    _denoise_then_deconvolve,
    _ensemble_denoise,
)
from .common import (
    Problem,
    SolverGen,
    Update,
    conjugate_gradients,
    real_normal,
    split_holdout,
)

#: The prior's weight ``lam`` by default: chosen among 0.05, 0.1, 0.25 and 1 on two MNI152
#: slices that no benchmark uses (see the module docstring).
LAM = 0.1
#: ... under a prior learned from noisy measurements, whose annealing stops at their noise
#: (so its last data steps pull less towards the prior): chosen among 0.1, 0.2, 0.3, 0.5, 0.7,
#: 1 and 2 for ``nuclei-score`` on four 128x128 tiles of a quadrant of the real nuclei image
#: it trained on (blur sigma 2, 100 photons; median 38.1 dB at 0.5 and 0.7, 36.4 at 0.1, 36.7
#: at 2, ``tv`` 36.3), not on the quadrant ``bench self-supervised`` holds out.
NOISY_LAM = 0.5


def _data_step(
    A, y: torch.Tensor, weight: torch.Tensor, z: torch.Tensor, rho: float, iterations: int
) -> torch.Tensor:
    """``argmin_x ||A x - y||^2_W + rho ||x - z||^2`` by conjugate gradients from ``x = z``."""
    r = A.adjoint((y - A(z)) * weight)
    r = r.real if r.is_complex() else r
    return conjugate_gradients(real_normal(A, weight, rho), z, r, iterations, tol=1e-12)


def _refined_rotation(
    A, y: torch.Tensor, weight: torch.Tensor, m: torch.Tensor, rho: float, iterations: int
) -> torch.Tensor:
    """``e^{i angle(x)}`` for ``x = argmin ||A_c x - y||^2_W + rho ||x - m e^{i phi}||^2``, the
    complex operator ``A_c = A.inner`` and the phase ``phi`` of the fixed-phase operator ``A``
    (conjugate gradients on the real and imaginary parts); the old phase where ``x = 0``."""
    inner = A.inner
    start = m.to(torch.complex64) * A.rotation(m)

    def normal(d: torch.Tensor) -> torch.Tensor:  # on real pairs (..., 2)
        c = torch.view_as_complex(d.contiguous())
        return torch.view_as_real(inner.adjoint(inner(c) * weight) + rho * c)

    r = torch.view_as_real(inner.adjoint((y - inner(start)) * weight))
    x = torch.view_as_complex(
        conjugate_gradients(
            normal, torch.view_as_real(start), r, iterations, tol=1e-12
        ).contiguous()
    )
    size = x.abs()
    rotation = torch.where(size > 0, x / size.clamp_min(1e-30), A.rotation(m).expand_as(x))
    return rotation.reshape(m.shape[-2:])


def _bounded_margin(v: torch.Tensor, crop: tuple[slice, ...] | None) -> torch.Tensor:
    """``v`` with its margin outside the field of view ``crop`` (a blur's unknown border)
    clipped to the range ``v`` takes inside it. The data barely constrain the margin, and a
    denoiser that brightens a bright spot there (a learned prior, outside the range it was
    trained on) would otherwise feed on itself from step to step: on a real nuclei tile, from
    1.6 to 4000 in 40 steps, leaking into the field of view (28.5 dB against 36.3 for ``tv``)."""
    if crop is None:
        return v
    field = (Ellipsis, *crop[-2:])
    inside = v[field]
    out = v.clamp(inside.min(), inside.max())  # (tensor bounds: no device sync)
    out[field] = inside
    return out


def solve_score(
    problem: Problem,
    *,
    steps: int = 100,
    sigma_max: float = 0.3,
    sigma_min: float = 0.001,
    lam: float | None = None,
    holdout: float = 0.05,
    cg_iterations: int = 8,
    ensemble: int = 1,
    phase_every: int = 10,
    rho_phase: float = 0.1,
    preview_every: int = 5,
    read_variance: float | None = None,
    combine: bool = True,
    wiener: bool = True,
) -> SolverGen:
    """Annealed splitting under a score prior; see the module docstring.

    Parameters
    ----------
    steps : int
        Noise levels (one denoiser call and one data step each).
    sigma_max, sigma_min : float
        First and last noise level, in the prior's units (images in [0, 1]).
    lam : float or None
        Weight of the prior in the data step (``rho_k = lam * noise_var / sigma_k^2``); None:
        :data:`LAM`, or :data:`NOISY_LAM` under a prior learned from noisy measurements.
    holdout : float
        Fraction of the observed measurement entries held out to estimate the noise and to
        choose the iterate (0: none).
    cg_iterations : int
        Conjugate-gradient iterations of each data step.
    ensemble : {1, 2, 4, 8}
        Denoise in this many orientations (flips, transposes) and average: a little better,
        this many times slower. (Denoising under a prior learned from noisy measurements
        turns its denoiser's inputs through all 8 in turn unless 2 or 4 are asked for.)
    phase_every : int
        For complex images (a magnitude with a phase): refine the phase every this many steps
        (0: keep the phase of the fully sampled centre).
    rho_phase : float
        Pull of the phase refinement's complex image towards the current one (small: the data
        decide the phase).
    read_variance : float or None
        The measurement is photoelectrons of a known camera with this read-noise variance
        (``reconstruct`` passes it when it models one): denoising under a prior learned from
        noisy measurements is then told the exact Poisson-Gaussian noise map; None: the noise
        model fitted to the measurement.
    combine : bool
        Denoising under a prior learned from noisy measurements: mix the prior's estimate with
        ``tv``'s (SURE), weighted by how well the mix of their estimates from one part of a
        split of the measurement predicts the other part (True), or the prior's alone (False).
    wiener : bool
        Denoising under a prior learned from noisy measurements: then filter the measurement
        by the empirical Wiener filter in a sliding DCT, that estimate its pilot (True), or
        return the estimate as it is (False).
    """
    prior = problem.prior  # a score prior: api._check_prior refuses any other kind
    if len(problem.shape) != 2:
        raise ValueError(
            f"method 'score' reconstructs 2D images (stacks plane by plane); got shape "
            f"{problem.shape}."
        )
    steps = check_int("steps", steps, 1)
    sigma_max = check_float("sigma_max", sigma_max, low=0, low_open=True)
    sigma_min = check_float("sigma_min", sigma_min, low=0, high=sigma_max, low_open=True)
    floor = noise_floor(prior)
    lam = (LAM if floor is None else NOISY_LAM) if lam is None else lam
    lam = check_float("lam", lam, low=0, low_open=True)
    holdout = check_float("holdout", holdout, low=0, high=0.5)
    cg_iterations = check_int("cg_iterations", cg_iterations, 1)
    if ensemble not in (1, 2, 4, 8) or isinstance(ensemble, bool):
        raise ValueError(f"ensemble must be 1, 2, 4 or 8 orientations, got {ensemble!r}.")
    phase_every = check_int("phase_every", phase_every, 0)
    rho_phase = check_float("rho_phase", rho_phase, low=0, low_open=True)
    if read_variance is not None:  # (only denoising under a noisy-trained prior reads it)
        read_variance = check_float("read_variance", read_variance, low=0)
    A, y = problem.A, problem.y
    if floor is not None and A.kind == "denoise":
        for name, flag in (("combine", combine), ("wiener", wiener)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be True or False, got {flag!r}.")
        return (yield from _denoise_direct(problem, ensemble, read_variance, combine, wiener))
    if floor is not None and learned_through(prior) is not None:  # (api: the same blur)
        return (yield from _denoise_then_deconvolve(problem, ensemble, read_variance))
    if floor is not None:  # below the measurements it learned from, the prior knows nothing
        sigma_min = min(sigma_max, max(sigma_min, floor))
    refine = phase_every > 0 and hasattr(A, "rotated")  # a fixed-phase operator
    train, held = split_holdout(problem, holdout)
    n_train, n_held = float(train.sum()), float(held.sum())
    sigmas = prior.sigmas(steps, sigma_max, sigma_min)

    # (no_grad around the computing, not across the yields: the caller's code runs between
    # them, and grad mode is per thread)
    with torch.no_grad():
        back = A.adjoint(y * train)
        x = (back.real if back.is_complex() else back).to(torch.float32)[None]
        v = _data_step(A, y, train, x, 1e-3, cg_iterations)
        noise_var = 0.0  # unknown before the first iterate: the first data step fits the data
        best, best_val, best_step = x[0].clone(), float("inf"), 0
        best_z, best_rho, best_A = x, 0.0, A
        phase_updates = 0
        extra: dict[str, Any] = {}
    for k, s in enumerate(sigmas, start=1):
        with torch.no_grad():
            z = _ensemble_denoise(prior, _bounded_margin(v, problem.crop), s, ensemble)
            rho = lam * noise_var / (s * s)
            x = _data_step(A, y, train, z, rho, cg_iterations)
            Ax = A(x[0])
            fit = float(((Ax - y).abs().pow(2) * train).sum()) / n_train
            if n_held:
                val = float(((Ax - y).abs().pow(2) * held).sum()) / n_held
                noise_var = min(noise_var, val) if noise_var else val
                if val < best_val:
                    best, best_val, best_step = x[0].clone(), val, k
                    best_z, best_rho, best_A = z, rho, A
            else:
                noise_var = min(noise_var, fit) if noise_var else fit
                best, best_step = x[0], k
            if refine and k % phase_every == 0 and k < len(sigmas):
                A = A.rotated(_refined_rotation(A, y, train, x, rho_phase, 2 * cg_iterations))
                phase_updates += 1
            v = x
        preview = problem.to_numpy(x[0]) if k % preview_every == 0 or k == steps else None
        if (yield Update(k, steps, fit, preview)) is False:
            extra["cancelled_at"] = k
            break
    with torch.no_grad():
        if n_held and best_step:  # the chosen step's data step again, on every observed entry
            best = _data_step(best_A, y, train + held, best_z, best_rho, cg_iterations)[0]
        if refine:  # the image is complex: its magnitude with the phase refined so far
            best = best.to(torch.complex64) * best_A.rotation(best)
    extra.update(
        lam=lam,
        chosen_step=best_step,
        chosen_sigma=sigmas[best_step - 1] if best_step else None,
        noise_var=noise_var,
        heldout_entries=int(n_held),
    )
    if refine:
        extra["phase_updates"] = phase_updates
    return best, extra
