"""The settings of ``bench phase``: constants, work sizes and the csgm / twist variants."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
FULL = Sizes(
    digits=20,
    tuning=20,
    survey=200,
    ms=(50, 100, 200, 400, 800, 1568, 3136),
    tune_m=100,
    restarts=20,
    csgm_steps=500,
    twist_steps=100,
    baseline_steps=100,
    pool=2000,
    fit_restarts=10,
    fit_steps=300,
    check_factor=5,
    in_range_ms=(100, 200),
    shown=8,
)
QUICK = Sizes(
    digits=2,
    tuning=2,
    survey=0,
    ms=(100, 800),
    tune_m=100,
    restarts=10,
    csgm_steps=200,
    twist_steps=60,
    baseline_steps=30,
    pool=500,
    fit_restarts=5,
    fit_steps=200,
    check_factor=2,
    in_range_ms=(100,),
    shown=2,
)


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
        Variant(
            "csgm best-of fit_gain",
            "csgm",
            {"restarts": R, "steps": cs, "fit_gain": True},
            best_of=True,
        ),
        Variant("csgm best-of steps x2", "csgm", {"restarts": R, "steps": 2 * cs}, best_of=True),
        Variant("twist", "twist", {"restarts": R, "steps": tw}),
        Variant("twist best-of", "twist", {"restarts": R, "steps": tw}, best_of=True),
        Variant(
            "twist best-of plain",
            "twist",
            {"restarts": R, "steps": tw, "twist": False},
            best_of=True,
        ),
        Variant("twist steps x2", "twist", {"restarts": R, "steps": 2 * tw}),
    ]
