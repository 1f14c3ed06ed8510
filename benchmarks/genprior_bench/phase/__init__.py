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

The experiment is a package: :mod:`._config` (constants, sizes, variants), :mod:`._runs` (the
representation fit, measurements and reconstructions), :mod:`._report` (summaries, text,
checks) and :mod:`._figures`; :func:`run` ties them together.
"""

from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np

from .. import Result
from ..cs_digits import load_digits
from ._config import (
    BASELINE_CEILING,
    BASELINES,
    FULL,
    GENERATIVE,
    GRID_M,
    METHODS,
    NOISE_STD,
    QUICK,
    TARGET,
    TARGET_MS,
    THRESHOLD,
    TUNING_START,
    Sizes,
    Variant,
    variants,
)
from ._figures import _grid, _histogram, _success_plot
from ._report import _checks, _markdown, _per_m, _summarise
from ._runs import _representation, _score, _tune, best_codes, best_fit, measure, relative_error

__all__ = [
    "BASELINES",
    "BASELINE_CEILING",
    "FULL",
    "GENERATIVE",
    "GRID_M",
    "METHODS",
    "NOISE_STD",
    "QUICK",
    "TARGET",
    "TARGET_MS",
    "THRESHOLD",
    "TUNING_START",
    "Sizes",
    "Variant",
    "best_codes",
    "best_fit",
    "measure",
    "relative_error",
    "run",
    "variants",
]


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
    from napari_genprior import api

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
    in_range = {
        "ms": list(sizes.in_range_ms),
        "seconds": time.perf_counter() - t0,
        "errors": {n: inside["errors"][n].tolist() for n in GENERATIVE},
        "success": {n: _per_m(inside["errors"][n] < THRESHOLD) for n in GENERATIVE},
        "mean_error": {n: _per_m(inside["errors"][n]) for n in GENERATIVE},
    }
    data = {
        "sizes": asdict(sizes),
        "noise_std": NOISE_STD,
        "threshold": THRESHOLD,
        "prior": "digits-vae",
        "ms": list(sizes.ms),
        "methods": list(METHODS),
        "evaluation_digits": evaluation,
        "tuning_digits": tuning,
        "representation": {
            "digits": survey,
            "errors": rep_all.tolist(),
            "fraction_within_threshold": float(np.mean(rep_all < THRESHOLD)),
            "median": float(np.median(rep_all)),
            "quantiles_10_25_50_75_90": np.quantile(rep_all, [0.1, 0.25, 0.5, 0.75, 0.9]).tolist(),
            "evaluation_errors": rep_eval.tolist(),
            "evaluation_representable": int(np.sum(rep_eval < THRESHOLD)),
            "check_improvement": rep["check_improvement"],
            "seconds": rep_seconds,
        },
        "tuning": {
            "m": sizes.tune_m,
            "variants": tune_table,
            "seconds": tune_seconds,
            "chosen": {n: asdict(v) for n, v in chosen.items()},
        },
        "errors": {n: res["errors"][n].tolist() for n in METHODS},
        "errors_range": {n: res["errors_range"][n].tolist() for n in METHODS},
        **_summarise(res, rep_eval),
        "in_range": in_range,
        "seconds_per_reconstruction": {
            n: res["seconds"][n] / (len(evaluation) * len(sizes.ms)) for n in METHODS
        },
    }
    data["total_seconds"] = time.perf_counter() - t_start
    figures = {
        "grid": _grid(
            X, star, rep["errors"], evaluation[: sizes.shown], res, sizes.ms.index(GRID_M)
        ),
        "success": _success_plot(data),
        "representation": _histogram(data["representation"]["errors"]),
    }
    return Result(
        name="phase",
        title="Phase retrieval under a generative prior (Hand, Leong, Voroninski 2018): "
        "csgm and twist with digits-vae vs twf, sparta, copram",
        markdown=_markdown(data),
        data=data,
        figures=figures,
        checks=_checks(data),
    )
