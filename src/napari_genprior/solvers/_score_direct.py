"""Denoising and deconvolution under a score prior learned from noisy measurements, without
annealing: its denoiser, trained on parts of split measurements
(:mod:`napari_genprior._noisy_training`), is applied to the measurement (averaged over random
splits of it, or whole), and, under a prior learned through a blur, the denoised measurement is
then deconvolved. Method ``score`` (:mod:`.score`) takes these paths."""

from __future__ import annotations

from dataclasses import replace

import torch

from ..priors.score import noise_floor, training_scale
from ._dct_wiener import WINDOW, dct_wiener
from ._sure import noise_model, variance_map
from .camera import SPLIT, split_counts
from .common import Problem, SolverGen, Update

#: A prior learned from photon counts denoises a record of a known camera in the units it learned
#: (photoelectrons over its training data's 99.9th percentile) when the record's own percentile
#: is within this factor of that (the same acquisition: a crop, another plane), else in the
#: record's own. Each crop on its own scale looked to the denoiser like a brighter or dimmer
#: sample: on the four 128x128 tiles of the real nuclei quadrant a prior learned from at 20
#: photons (``bench self-supervised``'s record), 34.08 dB tile by tile on their own scales,
#: 34.38 in the prior's units, 34.83 for the whole quadrant (the rest: the tiles' borders).
SAME_LEVEL = 4.0
#: Denoising under a prior learned from noisy measurements averages its denoiser's estimates
#: from this many random splits of the measurement, each keeping :data:`TEST_SPLIT` of its
#: photons: inputs like those it was trained on (a part of a split, with
#: :data:`~napari_genprior.solvers.camera.SPLIT` of the photons), which the whole measurement,
#: less noisy, is not. Measured on ``bench
#: self-supervised``'s records (real nuclei held out, the prior trained on the record itself),
#: against the whole measurement in the 8 orientations: 29.29 against 28.87 dB at 5 photons;
#: at 20 photons 35.24 against 35.14 and 34.64 against 34.51 for two trainings; shares of 0.6
#: and 0.8 within 0.12 dB of 0.7, 0.9 lower (29.08, 35.19, 34.58). A record noisier than
#: the measurements the prior learned from is already among its inputs and is denoised whole:
#: split, the bundled ``nuclei-score`` denoised the 5, 20 and 100-photon records 0.25, 0.15
#: and 0.6 dB worse.
SPLITS = 16
#: The share of the photons each of the :data:`SPLITS` parts keeps (the middle of the
#: training's range, :data:`~napari_genprior.solvers.camera.SPLIT`).
TEST_SPLIT = 0.7
#: The share of the photons in the part of the split that chooses ``combine``'s weight (the
#: other part scores it). On ``bench self-supervised``'s records (real nuclei held out, priors
#: trained on the record itself; 20 photons, two trainings, and 5 photons), combined against
#: the prior alone (35.24, 34.64, 29.29 dB): 35.57, 35.25, 30.12 at 0.5; 35.59, 35.23, 29.78
#: at 0.7; 35.53, 35.17, 30.16 at 0.9; 35.41, 34.77, 29.41 at 0.95. ``tv`` alone: 34.95,
#: 34.95, 29.48; the best fixed weight (chosen on the truth): 35.65, 35.36, 30.43.
COMBINE_SPLIT = 0.5


def _turn(a: torch.Tensor, t: int) -> torch.Tensor:
    """The orientation ``t`` (0-7: bit 4 transposes, bits 1 and 2 flip) of ``a``'s last axes."""
    a = a.transpose(-1, -2) if t & 4 else a
    dims = [d for d, bit in ((-1, 1), (-2, 2)) if t & bit]
    return a.flip(dims) if dims else a


def _unturn(a: torch.Tensor, t: int) -> torch.Tensor:
    """The inverse of :func:`_turn`."""
    dims = [d for d, bit in ((-1, 1), (-2, 2)) if t & bit]
    a = a.flip(dims) if dims else a
    return a.transpose(-1, -2) if t & 4 else a


def _denoise_turned(prior, v: torch.Tensor, sigma, t: int) -> torch.Tensor:
    """``D(v, sigma)`` computed in the orientation ``t`` of the image and turned back.
    ``sigma``: a number, or a map of ``v``'s shape (turned with it)."""
    is_map = torch.is_tensor(sigma) and sigma.shape == v.shape
    return _unturn(prior(_turn(v, t), _turn(sigma, t) if is_map else sigma), t)


def _ensemble_denoise(prior, v: torch.Tensor, sigma, transforms: int) -> torch.Tensor:
    """``D(v, sigma)`` averaged over ``transforms`` of the 8 flips and transposes of the image
    (self-ensembling: the denoiser's errors differ between orientations, its image does not)."""
    return sum(_denoise_turned(prior, v, sigma, t) for t in range(transforms)) / transforms


def _denoiser_input(problem: Problem, read_variance: float | None) -> tuple:
    """``(v, alpha, beta, units)``: the measurement ``(1, H, W)`` in the units the denoiser
    takes it in, its noise variance model there (``alpha * x + beta``) and those units over
    the solver's. The noise is the camera's when it is known (photoelectrons: Poisson plus
    ``read_variance``), else the model fitted to the measurement; with the camera known, a
    prior that recorded the photoelectrons it learned from takes the measurement in those
    units when it is at about their level (:data:`SAME_LEVEL`)."""
    y = problem.y.real.to(torch.float32)
    scale = problem.scale  # what the denoiser's input takes as 1
    if read_variance is None:
        alpha, beta = noise_model(y, 2)
    else:  # photoelectrons over scale: their variance is y / scale + read / scale^2
        learned = training_scale(problem.prior)
        if learned is not None and 1 / SAME_LEVEL <= scale / learned <= SAME_LEVEL:
            scale = learned  # the counts the prior learned on
        alpha, beta = 1 / scale, read_variance / scale**2
    units = problem.scale / scale  # the denoiser's units over the solver's
    return y[None] * units, alpha, beta, units


def _split(v: torch.Tensor, alpha: float, beta: float, share: float, gen) -> tuple:
    """``(part, other, part's std map)``: ``v`` (noise variance ``alpha * x + beta``) split by
    :func:`~napari_genprior.solvers.camera.split_counts`, ``part`` keeping ``share`` of its
    photons (both parts unbiased for the clean image, their noises independent)."""
    model = torch.tensor([[float(alpha), float(beta)]], device=v.device)
    part, other = split_counts(v, model, torch.tensor([share]), gen)
    return part, other, variance_map(part, alpha / share, beta / share).sqrt()


def _prior_passes(prior, v: torch.Tensor, alpha: float, beta: float, transforms: int, gen):
    """The prior's estimate of the clean image behind ``v`` (``(1, H, W)``, the denoiser's
    units, noise variance ``alpha * x + beta``), pass by pass: yields ``(pass, passes, the
    average so far)``. A ``v`` less noisy than any part of a split the prior learned from is
    split :data:`SPLITS` times (``gen``), keeping :data:`TEST_SPLIT` of its photons, and the
    denoiser's estimates from the parts are averaged; a noisier one is denoised whole. Each
    estimate is told its input's own noise (a std per pixel) and computed in one of the
    ``transforms`` orientations in turn."""
    own = variance_map(v, alpha, beta)
    split = float(own.mean()) < noise_floor(prior) ** 2 / max(SPLIT)
    passes = SPLITS if split else transforms
    total = torch.zeros_like(v)
    for k in range(passes):
        with torch.no_grad():  # (not across the yield: the caller's code runs between them)
            part, sigma = v, own.sqrt()
            if split:
                part, _, sigma = _split(v, alpha, beta, TEST_SPLIT, gen)
            total += _denoise_turned(prior, part, sigma, k % transforms)
        yield k + 1, passes, total / (k + 1)


def _relay(run: SolverGen, offset: int) -> SolverGen:
    """``run``'s updates passed on with their steps and totals counted on from ``offset``;
    returns ``(its result, whether the caller stopped it, the last step)``."""
    reply, step = None, offset
    try:
        while True:
            u = run.send(reply)
            step = offset + u.step
            reply = yield Update(step, offset + u.total, u.loss, u.image)
    except StopIteration as stop:
        return stop.value, reply is False, step


def _denoise_direct(
    problem: Problem,
    ensemble: int,
    read_variance: float | None,
    combine: bool = False,
    wiener: bool = False,
) -> SolverGen:
    """Denoising under a prior learned from noisy measurements, which was trained to denoise
    a part of a measurement split in two (:mod:`napari_genprior._noisy_training`): the
    denoiser's estimate (:func:`_prior_passes`), told the noise :func:`_denoiser_input` gives,
    in the 8 orientations in turn (or the 2 or 4 ``ensemble`` asks for).

    ``combine``: that estimate and ``tv``'s (SURE) are averaged with the weight that best
    predicts an independent measurement: the measurement is split once more
    (:data:`COMBINE_SPLIT`), both methods denoise one part, and the weight is the least-squares
    fit of their mix to the other part, clipped to [0, 1]. For photon counts the parts' noises
    are independent and the fit unbiased for the weight at the part's noise (a denoiser that
    gives its input back gets 0, one that knows the clean image 1:
    ``tests/test_score_combine.py``); read noise, approximated as Poisson counts to split it,
    leaves them only uncorrelated, and on the real nuclei at 5 and 20 photons the fit leaned
    towards the prior by 0.14-0.34 against the part's best weight (chosen on the truth). The
    two make different errors (correlated at 0.55-0.73 there), so their mix beats both.

    ``wiener``: the measurement is then filtered by the empirical Wiener filter in a sliding
    DCT (:func:`~._dct_wiener.dct_wiener`), that estimate (the mix, or the prior's alone) its
    pilot: the pilot says which local frequencies hold signal, and the measurement's own are
    kept by that much. The filtered and unfiltered estimates are mixed by the least-squares
    weight fitted as ``combine``'s is, on a split made by recorrupting the measurement with
    Gaussian noise of its own variance (:func:`_recorrupt`): on the thinned split, with read
    noise, the fit shunned the filter (0.26 / 0.61 against truth-best weights of 0.78 / 0.86 at
    5 / 20 photons on the real nuclei), on the recorrupted one it did not (0.75 / 0.69), and
    for pure Poisson counts the thinned fit was right (0.96 against 0.96). The weight keeps the
    filter off a pilot it would spoil (the clean image: weight 0; ``tests/test_score_combine``).
    On the real nuclei of ``bench self-supervised`` the mix went from 35.25 / 35.57 dB (two
    trainings) to 35.82 / 35.97 at 20 photons and from 30.12 to 31.08 at 5."""
    y = problem.y.real.to(torch.float32)
    v, alpha, beta, units = _denoiser_input(problem, read_variance)
    transforms = 8 if ensemble == 1 else ensemble
    gen = torch.Generator().manual_seed(0)  # the same splits every run: a repeatable result
    info = {
        "direct": True,
        "noise_var": float(variance_map(v, alpha, beta).mean()),
        "noise_model": {
            "alpha": alpha,
            "beta": beta,
            "from": "fitted" if read_variance is None else "camera",
        },
        "ensemble": transforms,
        "denoised_at_scale": problem.scale / units,
    }
    step = 0
    for k, passes, average in _prior_passes(problem.prior, v, alpha, beta, transforms, gen):
        x = average[0] / units
        step = k
        info.update(splits=SPLITS if passes == SPLITS else 0)
        show = k == passes and not (combine or wiener)
        loss = float((x - y).pow(2).mean())
        if (yield Update(k, passes, loss, problem.to_numpy(x) if show else None)) is False:
            return x, info  # stopped: the average of the passes so far
    info["split_share"] = TEST_SPLIT if info["splits"] else None
    if not (combine or wiener):
        return x, info
    refined = yield from _refine(
        problem, x, v, (alpha, beta, units), transforms, gen, step, combine, wiener
    )
    if refined is None:  # stopped: the prior's estimate alone
        return x, info
    x, record = refined
    return x, {**info, **record}


def _fit(a: torch.Tensor, b: torch.Tensor, target: torch.Tensor) -> float:
    """The weight ``w`` in [0, 1] whose ``w * a + (1 - w) * b`` is nearest ``target``."""
    gap = a - b
    return float(((gap * (target - b)).sum() / gap.pow(2).sum().clamp_min(1e-30)).clamp(0, 1))


def _wiener(v: torch.Tensor, pilot: torch.Tensor, alpha: float, beta: float, units: float):
    """:func:`~._dct_wiener.dct_wiener` of ``v`` (``(1, H, W)``, the denoiser's units, noise
    variance ``alpha * x + beta``) under ``pilot`` (``(H, W)``, the solver's units), in the
    solver's units, with the window :func:`_window` gives."""
    pilot = pilot * units
    variance = alpha * pilot.clamp_min(0) + beta
    return dct_wiener(v[0], pilot, variance, _window(pilot.shape)) / units


def _window(shape) -> int:
    """The Wiener step's window on an image of ``shape``: :data:`~._dct_wiener.WINDOW`, or its
    shorter side."""
    return min(WINDOW, *shape)


def _recorrupt(v: torch.Tensor, alpha: float, beta: float, share: float, gen) -> tuple:
    """``(part, other)``: ``v`` (noise variance ``alpha * x + beta``) split by recorrupting it
    with Gaussian noise of its own variance (Recorrupted-to-Recorrupted, Pang et al. 2021):
    ``part`` is as noisy as a part with ``share`` of the photons; the parts' noises are
    uncorrelated, and independent where the noise is Gaussian."""
    std = variance_map(v, alpha, beta).sqrt()
    z = torch.randn(v.shape, generator=gen).to(v)
    return v + ((1 - share) / share) ** 0.5 * std * z, v - (share / (1 - share)) ** 0.5 * std * z


def _estimates(problem: Problem, part, noise, transforms, gen, step, with_tv: bool):
    """The prior's estimate (and ``tv``'s, ``with_tv``) from ``part`` (``(1, H, W)``, the
    denoiser's units, noise ``(alpha, beta, units)``), in the solver's units: ``((prior, tv or
    None), step)``, or None if stopped."""
    alpha, beta, units = noise
    y = problem.y.real.to(torch.float32)
    for _, _, average in _prior_passes(problem.prior, part, alpha, beta, transforms, gen):
        prior, step = average[0] / units, step + 1
        if (yield Update(step, step + 1, float((prior - y).pow(2).mean()), None)) is False:
            return None
    if not with_tv:
        return (prior, None), step
    from .tv import solve_tv

    part_problem = replace(problem, y=(part[0] / units).to(problem.y.dtype))
    (tv, _), stopped, step = yield from _relay(solve_tv(part_problem), step)
    return None if stopped else ((prior, tv), step)


def _refine(problem: Problem, x, v, noise, transforms, gen, step, combine, wiener):
    """``combine`` and ``wiener`` of :func:`_denoise_direct`, each weighed on a split of the
    measurement (the filter only on images of at least 4 pixels a side): ``(the estimate, its
    record)``; stopped, the mix if it was made, else None."""
    alpha, beta, units = noise
    a, b = alpha / COMBINE_SPLIT, beta / COMBINE_SPLIT
    est, record, w = x, {}, 1.0
    if combine:
        from .tv import solve_tv

        part, other, _ = _split(v, alpha, beta, COMBINE_SPLIT, gen)
        got = yield from _estimates(problem, part, (a, b, units), transforms, gen, step, True)
        if got is None:
            return None
        (prior_part, tv_part), step = got
        (tv_x, tv_info), stopped, step = yield from _relay(solve_tv(problem), step)
        if stopped:
            return None
        w = _fit(prior_part, tv_part, other[0] / units)
        est = w * x + (1 - w) * tv_x
        record["combined"] = {
            "with": "tv (SURE)",
            "prior_weight": w,
            "chosen_on": "a split's other part (thinned)",
            "tv": tv_info,
        }
    if wiener and _window(est.shape) >= 4:
        part, other = _recorrupt(v, alpha, beta, COMBINE_SPLIT, gen)
        got = yield from _estimates(problem, part, (a, b, units), transforms, gen, step, combine)
        if got is None:  # stopped: the estimate so far (the mix, or the prior's alone)
            return (est, record) if combine else None
        (prior_part, tv_part), step = got
        pilot = prior_part if tv_part is None else w * prior_part + (1 - w) * tv_part
        u = _fit(_wiener(part, pilot, a, b, units), pilot, other[0] / units)
        est = u * _wiener(v, est, alpha, beta, units) + (1 - u) * est
        record["wiener"] = {
            "window": _window(est.shape),
            "weight": u,
            "pilot": "the mix" if combine else "the prior's estimate",
            "chosen_on": "a split's other part (recorrupted)",
        }
    return est, record


def _denoise_then_deconvolve(
    problem: Problem, ensemble: int, read_variance: float | None
) -> SolverGen:
    """Deconvolution under a prior learned from measurements through this blur
    (:func:`~napari_genprior.priors.score.learned_through`), which knows the images as recorded,
    blurred, not the sharp scene: the measurement is denoised under it (:func:`_denoise_direct`),
    then the denoised measurement is deconvolved by ``tv``'s FISTA (the blur's border as the
    operator has it). Its weight and stopping step are chosen on a split of the measurement:
    the part with :data:`TEST_SPLIT` of the photons, denoised in the 8 orientations, is
    deconvolved, and each iterate is scored against the other part, whose noise is independent
    (``tv``'s own rule holds out pixels of the data it fits, but a denoised measurement's
    errors are shared by neighbouring pixels, so the rule mistook them for detail and took the
    smallest weight: 32.5 dB against 35.4 for ``tv`` alone on procedural nuclei). The data,
    not the prior, tell the sharp detail: a network trained through the blur (its output
    blurred, scored against the other part of a split) kept the noise where the blur all but
    removes the detail (27.7 dB on the real nuclei of ``bench self-supervised``, 33.1 without
    its skip connection). Progress counts the denoising's passes, then the deconvolution's
    steps; a stop while denoising returns the denoised measurement as it stands (not
    deconvolved), a stop in the deconvolution its best so far."""
    from ._tv_fista import early_search, fista_core

    pixels = replace(problem, crop=None)  # the measurement's own pixels: its field of view
    run = _denoise_direct(pixels, ensemble, read_variance)
    (denoised, first), stopped, passes = yield from _relay(run, 0)
    first.update(direct=False, denoised_then="tv")
    extend = getattr(problem.A, "extend", None)  # (a blur's unknown border: to its domain)
    as_is = denoised if extend is None else extend(denoised)
    if stopped:  # stopped while denoising: the denoised measurement, as it stands
        return as_is, first
    passes += 1
    # the split whose other part scores the deconvolution's weight and step
    v, alpha, beta, units = _denoiser_input(pixels, read_variance)
    gen = torch.Generator().manual_seed(problem.seed + 1)
    part, other, sigma = _split(v, alpha, beta, TEST_SPLIT, gen)
    with torch.no_grad():
        part = _ensemble_denoise(problem.prior, part, sigma, 8)[0] / units
    if (yield Update(passes, passes, float((part - problem.y).pow(2).mean()), None)) is False:
        return as_is, first

    search = replace(problem, y=part.to(problem.y.dtype))
    final = replace(problem, y=denoised.to(problem.y.dtype))
    run = early_search(
        search,
        fista_core(search, 1e-5),
        lambda w: float(problem.A.adjoint(w * search.y).abs().max()),
        n_lams=8,
        holdout=0.0,
        steps=300,
        preview_every=5,
        against=(other[0] / units, final, fista_core(final, 1e-5)),
    )
    (x, tv), _, _ = yield from _relay(run, passes)
    return x, {**first, "tv": tv}
