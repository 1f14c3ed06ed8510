"""``phase``: phase retrieval under a generative prior (Hand, Leong, Voroninski 2018).

Held-out MNIST test digits (``sample_data/digits_test.npz``, never seen by ``digits-vae``) are
measured by magnitudes ``y = |A x| + noise`` (``phase`` operator: a real Gaussian ``m x n``
matrix with N(0, 1/m) entries, its own for every digit and m; white noise of std
:data:`NOISE_STD`) and reconstructed by

* ``csgm`` and ``twist`` with ``digits-vae`` (both minimise the amplitude loss
  ``|| |A G(z)| - y ||^2`` of Deep Phase Retrieval; csgm with Adam and a small latent penalty,
  twist by gradient descent with Armijo steps and the sign twist), and
* the classical baselines ``twf``, ``sparta`` and ``copram`` (spectral initialisations, no
  prior; the sparse ones with their default sparsity rule).

Success is a relative error below :data:`THRESHOLD`, up to the global sign that magnitudes
cannot tell: ``min(||x_hat - x||, ||x_hat + x||) / ||x||`` (for the non-negative digits and the
prior's non-negative outputs the ``+`` term never wins; it matters only for the baselines).

A generator-only method cannot come closer to a digit than the prior's *representation
error*, ``min_z ||G(z) - x|| / ||x||``. It is measured directly (Adam on ``||G(z) - x||^2``
from many random codes, all digits of the npz in one batch), and success is also scored
against that best representable approximation ``x* = G(z*)``, which separates what the
measurements and the optimiser lose from what the prior cannot represent at all.

A control measures the evaluation digits' approximations ``x*`` themselves: images exactly in
the range, the setting of the theory, where only the measurements and the optimiser can fail.

No method is tuned on the evaluation digits: the options of csgm and twist are chosen among a
few variants suggested by the literature (more restarts, starting from the best of many random
codes, a fitted gain and offset, longer runs, plain descent without the twist) on separate
tuning digits (indices :data:`TUNING_START` on of the npz), at one m, by success against
``x*``; the evaluation digits are the first ones of the npz.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from . import Result, markdown_table
from ._common import image_grid, line_plot
from .cs_digits import load_digits

NOISE_STD = 0.01
THRESHOLD = 0.2  # success: relative error below this
TARGET = 0.9  # the claim: success of the generative methods at TARGET_MS ...
BASELINE_CEILING = 0.2  # ... where the baselines stay below this
TARGET_MS = (100, 200)
GRID_M = 100  # the m of the reconstruction grid
GENERATIVE = ("csgm", "twist")
BASELINES = ("twf", "sparta", "copram")
METHODS = GENERATIVE + BASELINES
TUNING_START = 100  # tuning digits: indices TUNING_START, TUNING_START + 1, ... of the npz


@dataclass(frozen=True)
class Sizes:
    """How much work a run does.

    Attributes
    ----------
    digits : int
        Evaluation digits: the first ones of ``digits_test.npz``.
    tuning : int
        Tuning digits: ``TUNING_START``, ``TUNING_START + 1``, ... of the npz.
    survey : int
        Digits (the first of the npz) whose representation error is measured; the evaluation
        and tuning digits are always included.
    ms : tuple of int
        Numbers of magnitude measurements (of n = 784 pixels).
    tune_m : int
        The m at which the variants of csgm and twist are compared on the tuning digits.
    restarts : int
        Random starts of csgm and twist, optimised as one batch.
    csgm_steps, twist_steps : int
        Steps of csgm (Adam) and twist (Armijo gradient descent).
    baseline_steps : int
        Most iterations of twf, sparta and copram (they stop earlier once converged).
    pool : int
        Random codes screened by the ``best-of`` starts.
    fit_restarts, fit_steps : int
        Random codes and Adam steps per digit of the representation fit; the evaluation
        digits are fitted again with ``check_factor`` times the codes.
    check_factor : int
        See ``fit_restarts``.
    in_range_ms : tuple of int
        The m of the control in which the evaluation digits' approximations ``x*`` themselves
        (images exactly in the prior's range) are measured and reconstructed.
    shown : int
        Digits in the reconstruction grid.
    """

    digits: int
    tuning: int
    survey: int
    ms: tuple[int, ...]
    tune_m: int
    restarts: int
    csgm_steps: int
    twist_steps: int
    baseline_steps: int
    pool: int
    fit_restarts: int
    fit_steps: int
    check_factor: int
    in_range_ms: tuple[int, ...]
    shown: int


# full: about 9 minutes on one CPU thread (representation fit 0.5, tuning 2.5, evaluation 5.5,
# in-range control 0.5)
FULL = Sizes(digits=20, tuning=20, survey=200, ms=(50, 100, 200, 400, 800, 1568, 3136),
             tune_m=100, restarts=20, csgm_steps=500, twist_steps=100, baseline_steps=100,
             pool=2000, fit_restarts=10, fit_steps=300, check_factor=5,
             in_range_ms=(100, 200), shown=8)
QUICK = Sizes(digits=2, tuning=2, survey=0, ms=(100, 800), tune_m=100, restarts=10,
              csgm_steps=200, twist_steps=60, baseline_steps=30, pool=500, fit_restarts=5,
              fit_steps=200, check_factor=2,
              in_range_ms=(100,), shown=2)


@dataclass(frozen=True)
class Variant:
    """One way of running csgm or twist.

    Attributes
    ----------
    label : str
        Short name in tables.
    method : str
        ``"csgm"`` or ``"twist"``.
    options : dict
        Keywords of :func:`napari_genprior.reconstruct` (``restarts``, ``steps``, options).
    best_of : bool
        Start the restarts at the codes with the lowest amplitude misfit among
        ``Sizes.pool`` random draws (instead of fresh N(0, I) draws).
    """

    label: str
    method: str
    options: dict[str, Any] = field(default_factory=dict)
    best_of: bool = False


def variants(sizes: Sizes) -> list[Variant]:
    """The candidates for csgm and twist, simplest and cheapest first (ties go to the first).

    Parameters
    ----------
    sizes : Sizes
        Restarts and steps.

    Returns
    -------
    list of Variant
    """
    R, cs, tw = sizes.restarts, sizes.csgm_steps, sizes.twist_steps
    return [
        Variant("csgm", "csgm", {"restarts": R, "steps": cs}),
        Variant("csgm best-of", "csgm", {"restarts": R, "steps": cs}, best_of=True),
        Variant("csgm restarts x2", "csgm", {"restarts": 2 * R, "steps": cs}),
        Variant("csgm lr 0.02", "csgm", {"restarts": R, "steps": cs, "lr": 0.02}),
        Variant("csgm best-of fit_gain", "csgm", {"restarts": R, "steps": cs, "fit_gain": True},
                best_of=True),
        Variant("csgm best-of steps x2", "csgm", {"restarts": R, "steps": 2 * cs},
                best_of=True),
        Variant("twist", "twist", {"restarts": R, "steps": tw}),
        Variant("twist best-of", "twist", {"restarts": R, "steps": tw}, best_of=True),
        Variant("twist best-of plain", "twist", {"restarts": R, "steps": tw, "twist": False},
                best_of=True),
        Variant("twist steps x2", "twist", {"restarts": R, "steps": 2 * tw}),
    ]


# -- errors and the representation fit -------------------------------------------------------

def relative_error(image: np.ndarray, x: np.ndarray) -> float:
    """``min(||image - x||, ||image + x||) / ||x||``: the error up to the lost global sign."""
    return float(min(np.linalg.norm(image - x), np.linalg.norm(image + x)) / np.linalg.norm(x))


def _aligned(image: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``image`` or ``-image``, whichever is closer to ``x`` (for display)."""
    return -image if np.linalg.norm(image + x) < np.linalg.norm(image - x) else image


def best_fit(prior: Any, X: np.ndarray, restarts: int, steps: int, seed: int,
             device: str, lr: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """The prior's best approximation of each image: ``argmin_z ||G(z) - x||^2`` by Adam.

    All images and ``restarts`` random codes per image (N(0, I)) are optimised as one batch,
    with no latent penalty; each image keeps its best code.

    Parameters
    ----------
    prior : Generator
        A prior whose outputs are in the images' units (``digits-vae``: [0, 1]).
    X : ndarray
        Images, shape ``(N, *prior.image_shape)``.
    restarts, steps : int
        Random codes per image and Adam steps.
    seed : int
        Seed of the codes.
    device : str
        Torch device.
    lr : float
        Adam's learning rate.

    Returns
    -------
    errors : ndarray
        ``(N,)`` relative errors ``||G(z*) - x|| / ||x||`` (the representation errors).
    images : ndarray
        ``(N, *image_shape)`` the approximations ``G(z*)``.
    """
    G = copy.deepcopy(prior).to(device).eval().requires_grad_(False)
    target = torch.as_tensor(X, dtype=torch.float32, device=device)
    N, k = len(X), G.latent_dim
    gen = torch.Generator(device="cpu").manual_seed(seed)
    z = torch.randn((N * restarts, k), generator=gen).to(device).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)

    def residual() -> torch.Tensor:
        return (G(z).reshape(N, restarts, -1) - target.reshape(N, 1, -1))

    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        residual().pow(2).sum().backward()
        opt.step()
    with torch.no_grad():
        err = residual().norm(dim=2) / target.reshape(N, -1).norm(dim=1, keepdim=True)
        best = err.argmin(dim=1)
        images = G(z.reshape(N, restarts, k)[torch.arange(N), best])
    return err.min(dim=1).values.cpu().numpy(), images.reshape(X.shape).cpu().numpy()


def _representation(prior: Any, X: np.ndarray, survey: list[int], evaluation: list[int],
                    sizes: Sizes, seed: int, device: str) -> dict[str, Any]:
    """Representation errors and approximations of the survey digits.

    The evaluation digits are fitted again with ``check_factor`` times the random codes (other
    seeds) and keep the better fit; how much that changed them shows whether the fit has
    converged.
    """
    errors, images = best_fit(prior, X[survey], sizes.fit_restarts, sizes.fit_steps, seed,
                              device)
    errors, images = dict(zip(survey, errors)), dict(zip(survey, images))
    many, many_images = best_fit(prior, X[evaluation], sizes.check_factor * sizes.fit_restarts,
                                 sizes.fit_steps, seed + 1, device)
    changes = []
    for i, e, im in zip(evaluation, many, many_images):
        changes.append(float(errors[i] - min(e, errors[i])))
        if e < errors[i]:
            errors[i], images[i] = float(e), im
    return {"errors": errors, "images": images, "check_improvement": changes}


# -- measurements and reconstructions ---------------------------------------------------------

def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def measure(x: np.ndarray, index: int, m: int, seed: int) -> tuple[Any, np.ndarray]:
    """``(A, y)``: digit ``index``'s own Gaussian ``phase`` operator and its noisy magnitudes.

    Parameters
    ----------
    x : ndarray
        The digit, in [0, 1].
    index : int
        Its index in the npz (with ``m`` and ``seed``, it seeds the matrix and the noise).
    m : int
        Number of measurements.
    seed : int
        The run's seed.
    """
    from .. import api

    A = api.make_operator("phase", shape=x.shape, m=m, matrix="gaussian",
                          seed=_seed(seed, index, m))
    return A, A.measure(x, noise_std=NOISE_STD, seed=_seed(seed, index, m, 1))


def best_codes(prior: Any, A: Any, y: np.ndarray, count: int, pool: int,
               seed: int) -> np.ndarray:
    """The ``count`` codes with the lowest amplitude misfit ``|| |A G(z)| - y ||`` among
    ``pool`` draws from N(0, I): a start for the restarts of csgm or twist."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    z = torch.randn((pool, prior.latent_dim), generator=gen)
    with torch.no_grad():
        misfit = (A(prior(z)) - torch.as_tensor(y)).pow(2).flatten(1).sum(1)
    return z[torch.argsort(misfit)[:count]].numpy()


def _reconstruct(method: str, y: np.ndarray, A: Any, *, prior: Any, variant: Variant | None,
                 sizes: Sizes, seed: int, device: str) -> np.ndarray:
    """One reconstruction: csgm or twist as ``variant`` says, or a baseline."""
    from .. import api

    if variant is None:
        return api.reconstruct(y, A, method=method, steps=sizes.baseline_steps, seed=seed,
                               device=device).image
    options = dict(variant.options)
    if variant.best_of:
        options["init"] = best_codes(prior, A, y, options["restarts"], sizes.pool, seed)
    return api.reconstruct(y, A, method=variant.method, prior=prior, seed=seed, device=device,
                           **options).image


def _misfit(A: Any, y: np.ndarray, image: np.ndarray) -> float:
    """``|| |A image| - y ||^2``."""
    with torch.no_grad():
        return float((A(torch.as_tensor(image)[None])[0] - torch.as_tensor(y)).pow(2).sum())


def _score(X: np.ndarray | dict[int, np.ndarray], star: dict[int, np.ndarray], digits: list[int],
           ms: tuple[int, ...], runs: dict[str, Variant | None], *, prior: Any, sizes: Sizes,
           seed: int, device: str, keep_m: int | None = None) -> dict[str, Any]:
    """Every method of ``runs`` (a name and its variant, None for a baseline) on every digit
    at every m; ``X[i]`` is digit ``i``'s ground truth and ``star[i]`` its approximation.

    Returns
    -------
    dict
        ``errors`` and ``errors_range``: ``{name: (len(ms), len(digits)) array}`` of relative
        errors against the digit and against its approximation ``x*``; ``fits_better``: same
        shape, whether the reconstruction fits ``y`` at least as well as ``x*`` does;
        ``seconds``: ``{name: total seconds}``; ``images``: ``{name: [reconstructions at
        keep_m]}``.
    """
    shape = (len(ms), len(digits))
    out: dict[str, Any] = {key: {name: np.zeros(shape) for name in runs}
                           for key in ("errors", "errors_range", "fits_better")}
    out["seconds"] = dict.fromkeys(runs, 0.0)
    out["images"] = {name: [] for name in runs}
    for j, m in enumerate(ms):
        for d, i in enumerate(digits):
            A, y = measure(X[i], i, m, seed)
            star_misfit = _misfit(A, y, star[i])
            for name, variant in runs.items():
                t0 = time.perf_counter()
                image = _reconstruct(name, y, A, prior=prior, variant=variant, sizes=sizes,
                                     seed=_seed(seed, i), device=device)
                out["seconds"][name] += time.perf_counter() - t0
                out["errors"][name][j, d] = relative_error(image, X[i])
                out["errors_range"][name][j, d] = relative_error(image, star[i])
                out["fits_better"][name][j, d] = _misfit(A, y, image) <= star_misfit
                if m == keep_m:
                    out["images"][name].append(_aligned(image, X[i]))
    return out


def _tune(X: np.ndarray, star: dict[int, np.ndarray], digits: list[int], *, prior: Any,
          sizes: Sizes, seed: int, device: str) -> tuple[list[dict[str, Any]], dict[str, Variant]]:
    """Score every :func:`variants` entry on the tuning digits at ``sizes.tune_m`` and pick,
    per method, the one with the highest success against ``x*`` (ties: the first listed)."""
    cands = variants(sizes)
    res = _score(X, star, digits, (sizes.tune_m,), {v.label: v for v in cands}, prior=prior,
                 sizes=sizes, seed=seed, device=device)
    table = []
    for v in cands:
        err, err_star = res["errors"][v.label][0], res["errors_range"][v.label][0]
        table.append({"label": v.label, "method": v.method, "options": v.options,
                      "best_of": v.best_of, "success": float(np.mean(err < THRESHOLD)),
                      "success_range": float(np.mean(err_star < THRESHOLD)),
                      "mean_error": float(err.mean()), "mean_error_range": float(err_star.mean()),
                      "seconds_per_run": res["seconds"][v.label] / len(digits)})
    chosen = {}
    for method in GENERATIVE:
        rows = [(row, v) for row, v in zip(table, cands) if v.method == method]
        best = max(r["success_range"] for r, _ in rows)
        chosen[method] = next(v for r, v in rows if r["success_range"] == best)
    return table, chosen


# -- summaries, text and figures ---------------------------------------------------------------

def _pct(v: float) -> str:
    return f"{100 * v:.0f}%"


def _num(v: float) -> str:
    return f"{v:.3f}"


def _per_m(values: np.ndarray, mask: np.ndarray | None = None) -> list[float | None]:
    """Mean over digits at each m of ``values`` ``(len(ms), digits)``, on ``mask``'s digits
    (None where there are none)."""
    if mask is not None:
        values = values[:, mask]
    return [float(v) for v in values.mean(1)] if values.shape[1] else [None] * len(values)


def _summarise(res: dict[str, Any], rep_errors: np.ndarray) -> dict[str, Any]:
    """Success rates, mean errors and failure counts per method and m (JSON-ready).

    ``rep_errors`` are the evaluation digits' representation errors."""
    err, err_star, better = res["errors"], res["errors_range"], res["fits_better"]
    ok = {n: err[n] < THRESHOLD for n in METHODS}
    fail_star = {n: err_star[n] >= THRESHOLD for n in GENERATIVE}
    return {
        "success": {n: _per_m(ok[n]) for n in METHODS},
        "success_range": {n: _per_m(err_star[n] < THRESHOLD) for n in METHODS},
        "success_representable": {n: _per_m(ok[n], rep_errors < THRESHOLD) for n in METHODS},
        "mean_error": {n: _per_m(err[n]) for n in METHODS},
        "mean_error_range": {n: _per_m(err_star[n]) for n in METHODS},
        # how much further from the digit than its best approximation (>= 0 up to the fit)
        "mean_excess_error": {n: _per_m(err[n] - rep_errors) for n in GENERATIVE},
        "failures_range": {n: [int(v) for v in fail_star[n].sum(1)] for n in GENERATIVE},
        # failures against x* whose reconstruction fits y at least as well as x* does: no
        # better optimiser of the amplitude loss would have fixed them
        "failures_fitting_better": {n: [int(v) for v in (fail_star[n] & (better[n] > 0)).sum(1)]
                                    for n in GENERATIVE},
    }


def _per_m_table(ms: list[int], values: dict[str, list[float | None]], fmt: Any,
                 methods: tuple[str, ...] = METHODS) -> str:
    return markdown_table(["m"] + list(methods),
                          [[m] + [None if values[n][j] is None else fmt(values[n][j])
                                  for n in methods] for j, m in enumerate(ms)])


def _markdown(d: dict[str, Any]) -> str:
    """The report, from the experiment's ``data``."""
    sizes, ms, rep, tune = d["sizes"], d["ms"], d["representation"], d["tuning"]
    jt = [ms.index(m) for m in TARGET_MS if m in ms]
    at = f"m = {', '.join(str(ms[j]) for j in jt)}"
    n_eval, n_repr = len(d["evaluation_digits"]), rep["evaluation_representable"]
    q = rep["quantiles_10_25_50_75_90"]
    setup = (
        f"{n_eval} held-out MNIST test digits (the first of `digits_test.npz`; `digits-vae` "
        "never saw them), each measured at every m by its own real Gaussian `phase` operator "
        f"(y = |A x| + noise, A with N(0, 1/m) entries, noise std {d['noise_std']}). Success: "
        f"relative error min(||x̂ - x||, ||x̂ + x||) / ||x|| < {THRESHOLD:g} (the sign term only "
        "matters for the baselines: the digits and the prior's outputs are non-negative). "
        f"Baselines: at most {sizes['baseline_steps']} iterations (sparta and copram stop "
        "earlier once converged), their default sparsity rule and spectral initialisations. "
        f"csgm and twist use the options chosen on {len(d['tuning_digits'])} separate tuning "
        "digits (below).")
    converged = max(rep["check_improvement"]) < 0.01
    rep_text = (
        "### The prior's representation error\n\n"
        "Best fit of `digits-vae` to the clean digit, min_z ||G(z) - x|| / ||x|| (Adam, "
        f"{sizes['fit_restarts']} random codes x {sizes['fit_steps']} steps per digit, no "
        f"latent penalty), over {len(rep['digits'])} held-out digits: median {q[2]:.3f} "
        f"(10/25/75/90%: {q[0]:.3f} / {q[1]:.3f} / {q[3]:.3f} / {q[4]:.3f}); **"
        f"{_pct(rep['fraction_within_threshold'])} of the digits can be represented within "
        f"{THRESHOLD:g} at all**. On the {n_eval} evaluation digits: median "
        f"{np.median(rep['evaluation_errors']):.3f}, {n_repr} within {THRESHOLD:g}. Refitting "
        f"them with {sizes['check_factor']}x the random codes lowered their error by at most "
        f"{max(rep['check_improvement']):.4f} "
        + ("(the fit has converged: the error is the prior's, not the optimiser's). "
           if converged else "(the fit may not have converged). ")
        + "A reconstruction in the range of G is never closer to the digit than the digit's "
          "best approximation x* = G(z*), so success against the digit is possible only on "
          "the digits the prior represents within the threshold; success against x* measures "
          "what the measurements and the optimisation lose on top of that.")
    tune_rows = [[r["label"], _pct(r["success_range"]), _pct(r["success"]),
                  r["mean_error_range"], r["mean_error"], r["seconds_per_run"]]
                 for r in tune["variants"]]
    tune_text = (
        f"### Tuning (digits {d['tuning_digits'][0]}-{d['tuning_digits'][-1]}, m = "
        f"{tune['m']})\n\n"
        f"{sizes['restarts']} restarts; csgm {sizes['csgm_steps']} Adam steps (lr 0.05 and lam "
        f"1e-3, the library defaults), twist {sizes['twist_steps']} Armijo steps, unless the "
        "variant says otherwise. best-of: the restarts start at the codes with the lowest "
        f"amplitude misfit among {sizes['pool']} random draws; fit_gain: a fitted gain and "
        "offset; plain: twist=False. Chosen per method, by the highest success against x* "
        "(ties: the first listed): "
        + ", ".join(f"**{v['label']}**" for v in tune["chosen"].values()) + ".\n\n"
        + markdown_table(["variant", "success vs x*", "success vs x", "mean error vs x*",
                          "mean error vs x", "s / run"], tune_rows, fmt="{:.3f}"))
    seconds = d["seconds_per_reconstruction"]
    gen_fail = "; ".join(
        f"{n}: {d['failures_fitting_better'][n][j]} of {d['failures_range'][n][j]} at "
        f"m = {ms[j]}" for n in GENERATIVE for j in jt)
    results = (
        "### Results\n\n"
        f"Success (error < {THRESHOLD:g} against the digit x):\n\n"
        + _per_m_table(ms, d["success"], _pct)
        + "\n\nSuccess against the digit's best approximation x* = G(z*):\n\n"
        + _per_m_table(ms, d["success_range"], _pct)
        + f"\n\nSuccess among the {n_repr} evaluation digits the prior represents within "
          f"{THRESHOLD:g}:\n\n" + _per_m_table(ms, d["success_representable"], _pct)
        + "\n\nMean relative error against x:\n\n" + _per_m_table(ms, d["mean_error"], _num)
        + "\n\nMean relative error against x*:\n\n"
        + _per_m_table(ms, d["mean_error_range"], _num)
        + "\n\nMean excess error, (error against x) - (representation error), for the "
          "generative methods:\n\n"
        + _per_m_table(ms, d["mean_excess_error"], _num, GENERATIVE)
        + "\n\nMean seconds per reconstruction: "
        + ", ".join(f"{n} {seconds[n]:.2f}" for n in METHODS)
        + f" (representation fit {rep['seconds']:.0f} s, tuning {tune['seconds']:.0f} s)."
        + "\n\nFailures against x* whose reconstruction fits the magnitudes at least as well "
          "as x* does (the amplitude loss prefers a wrong image in the range: no better "
          f"optimiser would fix them): {gen_fail}.")
    inr = d["in_range"]
    in_range = (
        "### Control: images inside the prior's range\n\n"
        "The same operators, noise and methods, with each evaluation digit's approximation "
        "x* = G(z*) as the image (in the range by construction, like the signals of the "
        "theory); success: error < "
        f"{THRESHOLD:g} against x*.\n\n"
        + markdown_table(["m"] + [f"{n} success" for n in GENERATIVE]
                         + [f"{n} mean error" for n in GENERATIVE],
                         [[m] + [_pct(inr["success"][n][j]) for n in GENERATIVE]
                          + [_num(inr["mean_error"][n][j]) for n in GENERATIVE]
                          for j, m in enumerate(inr["ms"])])
        + f"\n\n({inr['seconds']:.0f} s.)")
    jr = [inr["ms"].index(m) for m in TARGET_MS if m in inr["ms"]]
    gen_success = [d["success"][n][j] for n in GENERATIVE for j in jt]
    first = {n: next((m for m, v in zip(ms, d["success"][n]) if v > 0), None) for n in BASELINES}
    summary = (
        "### Summary\n\n"
        f"Against the digit itself csgm and twist succeed on {_pct(min(gen_success))}-"
        f"{_pct(max(gen_success))} of the digits at {at}, at most the {n_repr} of {n_eval} "
        f"({_pct(n_repr / n_eval)}) that the prior represents within {THRESHOLD:g}"
        + (f": the {TARGET:.0%} target is out of this prior's reach on representation error "
           "alone" if n_repr / n_eval < TARGET else "")
        + ". Against the best approximation x*: "
        + "; ".join(f"{n} " + ", ".join(f"{_pct(d['success_range'][n][j])} at m = {ms[j]}"
                                        for j in jt) for n in GENERATIVE)
        + ". For images inside the range: "
        + "; ".join(f"{n} " + ", ".join(f"{_pct(inr['success'][n][j])} at m = {inr['ms'][j]}"
                                        for j in jr) for n in GENERATIVE)
        + f". At m = {ms[-1]} their error exceeds the representation error by "
        + ", ".join(f"{d['mean_excess_error'][n][-1]:.3f} ({n})" for n in GENERATIVE)
        + " on average, so a representable digit near the threshold may still miss it. The baselines succeed on at most "
        + _pct(max(d["success"][n][j] for n in BASELINES for j in jt)) + f" at {at}; their "
        "first success: "
        + ", ".join(f"{n} at m = {first[n]}" if first[n] else f"{n} never" for n in BASELINES)
        + ".")
    sections = (setup, rep_text, tune_text, results, in_range, summary)
    return "\n\n".join(sections)


def _checks(d: dict[str, Any]) -> dict[str, bool]:
    ms = d["ms"]
    jt = [ms.index(m) for m in TARGET_MS if m in ms]
    at = f"m = {'-'.join(map(str, TARGET_MS))}"
    checks = {}
    for key, what in (("success", f"error < {THRESHOLD:g} vs the digit"),
                      ("success_range", "vs the prior's best approximation G(z*)")):
        for n in GENERATIVE:
            checks[f"{n}: >= {TARGET:.0%} success ({what}) at {at}"] = all(
                d[key][n][j] >= TARGET for j in jt)
    inr = d["in_range"]
    for n in GENERATIVE:
        checks[f"{n}: >= {TARGET:.0%} success at {at} on images inside the prior's range "
               "(x = G(z*) measured, the setting of the theory)"] = all(
            inr["success"][n][inr["ms"].index(m)] >= TARGET for m in TARGET_MS
            if m in inr["ms"])
    checks[f"baselines ({', '.join(BASELINES)}): < {BASELINE_CEILING:.0%} success at {at}"] = \
        all(d["success"][n][j] < BASELINE_CEILING for n in BASELINES for j in jt)
    return checks


def _histogram(errors: list[float]):
    import matplotlib.pyplot as plt

    errors = np.asarray(errors)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.hist(errors, bins=np.linspace(0, max(0.8, float(errors.max()) + 0.02), 33), color="C0",
            alpha=0.8)
    ax.axvline(THRESHOLD, color="k", ls="--", lw=1, label=f"success threshold {THRESHOLD:g}")
    ax.set(xlabel="representation error min_z ||G(z) - x|| / ||x||", ylabel="digits",
           title=f"digits-vae on {len(errors)} held-out MNIST test digits: "
                 f"{np.mean(errors < THRESHOLD):.0%} within {THRESHOLD:g}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _success_plot(d: dict[str, Any]):
    """Success vs m: against the digit (solid), against x* (dashed), images in the range
    (dotted), and the fraction of digits the prior represents within the threshold (grey)."""
    from matplotlib.ticker import NullLocator

    ms, inr = d["ms"], d["in_range"]
    styles = {"vs x": {}, "vs G(z*)": {"linestyle": "--", "marker": "s"},
              "on G(z*) in range": {"linestyle": ":", "marker": "^"}}
    curves = {f"{n} vs x": d["success"][n] for n in METHODS}
    curves.update({f"{n} vs G(z*)": d["success_range"][n] for n in GENERATIVE})
    curves.update({f"{n} on G(z*) in range": [
        inr["success"][n][inr["ms"].index(m)] if m in inr["ms"] else None for m in ms]
        for n in GENERATIVE})
    frac = d["representation"]["evaluation_representable"] / len(d["evaluation_digits"])
    ceiling = f"digits represented within {THRESHOLD:g}"
    curves[ceiling] = [frac] * len(ms)
    fig = line_plot(ms, curves, xlabel="measurements m (n = 784 pixels)",
                    ylabel=f"success rate (relative error < {THRESHOLD:g})",
                    title=f"Phase retrieval of {len(d['evaluation_digits'])} held-out digits, "
                          f"noise {d['noise_std']:g}")
    ax = fig.axes[0]
    colours = {}
    for line in ax.get_lines():  # one colour per method, one line style per criterion
        name, _, criterion = line.get_label().partition(" ")
        if line.get_label() == ceiling:
            line.set(color="grey", linestyle="-.", marker="")
        elif criterion == "vs x":
            colours[name] = line.get_color()
        else:
            line.set(color=colours[name], **styles[criterion])
    ax.set_xscale("log")
    ax.set_xticks(ms, [str(m) for m in ms])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.set_size_inches(8.5, 4.2)
    fig.tight_layout()
    return fig


def _grid(X: np.ndarray, star: dict[int, np.ndarray], rep_errors: dict[int, float],
          shown: list[int], res: dict[str, Any], j: int):
    """Digits, their best approximations and every method's reconstruction at ``GRID_M``."""
    rows = [("digit", [(f"#{i}", X[i]) for i in shown]),
            ("best fit G(z*)", [(f"{rep_errors[i]:.2f}", star[i]) for i in shown])]
    rows += [(n, [(f"{res['errors'][n][j, d]:.2f}", im)
                  for d, im in enumerate(res["images"][n][:len(shown)])]) for n in METHODS]
    return image_grid(rows, f"Phase retrieval from m = {GRID_M} magnitudes (noise "
                            f"{NOISE_STD:g}); captions: relative error vs the digit")


# -- the experiment ----------------------------------------------------------------------------

def run(quick: bool, device: str, seed: int) -> Result:
    """Success rate and error vs m of csgm and twist (digits-vae) against twf, sparta, copram.

    Parameters
    ----------
    quick : bool
        Small sizes (:data:`QUICK`) for a smoke test; else :data:`FULL`.
    device : str
        Torch device of the reconstructions and of the representation fit.
    seed : int
        Seeds every matrix, noise draw and random start (with the digit's index and m).

    Returns
    -------
    Result
        Tables, every error, the representation errors, the tuning table, the in-range control
        and three figures
        (``grid``, ``success``, ``representation``).
    """
    from .. import api

    t_start = time.perf_counter()
    sizes = QUICK if quick else FULL
    if GRID_M not in sizes.ms:
        raise ValueError(f"the sizes must include m = {GRID_M}.")  # pragma: no cover
    X = load_digits(max(sizes.survey, TUNING_START + sizes.tuning))
    prior = api.load_prior("digits-vae")
    evaluation = list(range(sizes.digits))
    tuning = list(range(TUNING_START, TUNING_START + sizes.tuning))
    survey = sorted(set(range(sizes.survey)) | set(evaluation) | set(tuning))
    common = {"prior": prior, "sizes": sizes, "seed": seed, "device": device}

    t0 = time.perf_counter()
    rep = _representation(prior, X, survey, evaluation, sizes, seed, device)
    rep_seconds = time.perf_counter() - t0
    star = rep["images"]
    rep_eval = np.array([rep["errors"][i] for i in evaluation])
    rep_all = np.array([rep["errors"][i] for i in survey])

    t0 = time.perf_counter()
    tune_table, chosen = _tune(X, star, tuning, **common)
    tune_seconds = time.perf_counter() - t0

    runs: dict[str, Variant | None] = {**chosen, **dict.fromkeys(BASELINES)}
    res = _score(X, star, evaluation, sizes.ms, runs, keep_m=GRID_M, **common)
    # control: the approximations x* themselves, in the range by construction, as the truth
    t0 = time.perf_counter()
    inside = _score(star, star, evaluation, sizes.in_range_ms, chosen, **common)
    in_range = {"ms": list(sizes.in_range_ms), "seconds": time.perf_counter() - t0,
                "errors": {n: inside["errors"][n].tolist() for n in GENERATIVE},
                "success": {n: _per_m(inside["errors"][n] < THRESHOLD) for n in GENERATIVE},
                "mean_error": {n: _per_m(inside["errors"][n]) for n in GENERATIVE}}
    data = {
        "sizes": asdict(sizes), "noise_std": NOISE_STD, "threshold": THRESHOLD,
        "prior": "digits-vae", "ms": list(sizes.ms), "methods": list(METHODS),
        "evaluation_digits": evaluation, "tuning_digits": tuning,
        "representation": {
            "digits": survey, "errors": rep_all.tolist(),
            "fraction_within_threshold": float(np.mean(rep_all < THRESHOLD)),
            "median": float(np.median(rep_all)),
            "quantiles_10_25_50_75_90": np.quantile(rep_all, [.1, .25, .5, .75, .9]).tolist(),
            "evaluation_errors": rep_eval.tolist(),
            "evaluation_representable": int(np.sum(rep_eval < THRESHOLD)),
            "check_improvement": rep["check_improvement"], "seconds": rep_seconds},
        "tuning": {"m": sizes.tune_m, "variants": tune_table, "seconds": tune_seconds,
                   "chosen": {n: asdict(v) for n, v in chosen.items()}},
        "errors": {n: res["errors"][n].tolist() for n in METHODS},
        "errors_range": {n: res["errors_range"][n].tolist() for n in METHODS},
        **_summarise(res, rep_eval),
        "in_range": in_range,
        "seconds_per_reconstruction": {n: res["seconds"][n] / (len(evaluation) * len(sizes.ms))
                                       for n in METHODS},
    }
    data["total_seconds"] = time.perf_counter() - t_start
    figures = {"grid": _grid(X, star, rep["errors"], evaluation[:sizes.shown], res,
                             sizes.ms.index(GRID_M)),
               "success": _success_plot(data), "representation": _histogram(data[
                   "representation"]["errors"])}
    return Result(
        name="phase",
        title="Phase retrieval under a generative prior (Hand, Leong, Voroninski 2018): "
              "csgm and twist with digits-vae vs twf, sparta, copram",
        markdown=_markdown(data), data=data, figures=figures, checks=_checks(data))
