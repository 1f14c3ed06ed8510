"""What the ``speed`` experiment measures, and how: its sizes, priors and targets, and the
timings on one device (every method per task, csgm's restarts, the solver against a bare torch
loop of the same steps, the mosaic throughput). :mod:`.speed` runs them and reports.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._common import TASKS, held_out_brain, held_out_nuclei, op_times, timed, timed_together

LINEAR_METHODS = (
    "csgm",
    "twist",
    "sparse-gen",
    "dip",
    "adjoint",
    "lasso-dct",
    "lasso-wavelet",
    "tv",
)
PHASE_METHODS = ("twf", "sparta", "copram", "csgm", "twist")
#: The prior of each task (for the methods that take one).
PRIORS = {
    "cs": "digits-vae",
    "deconvolution": "nuclei-vae",
    "inpainting": "nuclei-vae",
    "denoising": "nuclei-vae",
    "mri": "mri-vae",
    "phase": "digits-vae",
}
#: Targets: restarts=10 over restarts=1 (CPU), and solver over bare loop.
RESTARTS_TARGET = 3.0
OVERHEAD_TARGET = 1.2
#: Issue 18: the cost of a step (set-up apart) over a bare loop's step.
PER_STEP_TARGET = 1.1


@dataclass(frozen=True)
class Sizes:
    """How much work a run does.

    Attributes
    ----------
    repeats : int
        Calls per (task, method); the median is reported.
    methods : dict
        ``{task: methods timed}``.
    steps : int
        Adam steps of the restarts and overhead comparisons.
    pair_repeats : int
        Calls of each side of those comparisons (they take well under a second each).
    mosaic_steps : int
        csgm steps of the throughput run.
    mosaic_restarts : tuple of int
        Restarts of the throughput runs.
    """

    repeats: int
    methods: dict[str, tuple[str, ...]]
    steps: int
    pair_repeats: int
    mosaic_steps: int
    mosaic_restarts: tuple[int, ...]


_ALL = {
    **{t: LINEAR_METHODS for t in ("cs", "deconvolution", "inpainting", "denoising", "mri")},
    "phase": PHASE_METHODS,
}
_FEW = {
    "cs": ("csgm", "tv", "adjoint"),
    **{t: ("tv", "adjoint") for t in ("deconvolution", "inpainting", "denoising", "mri")},
    "phase": ("twf", "csgm"),
}
# full: about 8-10 minutes on one CPU thread, most of it dip (up to 2000 steps at 64x64)
FULL = Sizes(
    repeats=3, methods=_ALL, steps=500, pair_repeats=7, mosaic_steps=40, mosaic_restarts=(1, 4)
)
QUICK = Sizes(
    repeats=1, methods=_FEW, steps=500, pair_repeats=3, mosaic_steps=10, mosaic_restarts=(1,)
)


def _test_images() -> dict[str, np.ndarray]:
    """One held-out image per task."""
    from .cs_digits import load_digits

    digit = load_digits(1)[0]
    nuclei = held_out_nuclei(1)[0]
    return {
        "cs": digit,
        "deconvolution": nuclei,
        "inpainting": nuclei,
        "denoising": nuclei,
        "mri": held_out_brain(1, (64, 64))[0],
        "phase": digit,
    }


def time_method(
    y: np.ndarray, A: Any, method: str, repeats: int, seed: int, device: str, **options: Any
) -> dict[str, Any]:
    """``{"seconds": median, "times": [...], "iterations": n}`` of ``repeats`` calls of
    :func:`napari_genprior.reconstruct` (``iterations``: the steps the last call ran)."""
    from napari_genprior import api

    last: list[Any] = []

    def call() -> None:
        last[:] = [api.reconstruct(y, A, method=method, seed=seed, device=device, **options)]

    med, times = timed(call, repeats)
    return {"seconds": med, "times": times, "iterations": len(last[0].history)}


def _per_method(
    sizes: Sizes, images: dict[str, np.ndarray], priors: dict[str, Any], seed: int, device: str
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{task: {method: time_method(...)}}`` on ``device``, each method at its defaults."""
    from napari_genprior.solvers import METHODS

    out: dict[str, dict[str, dict[str, Any]]] = {}
    for task, methods in sizes.methods.items():
        A, y = TASKS[task].measure(images[task], seed)
        out[task] = {
            m: time_method(
                y,
                A,
                m,
                sizes.repeats,
                seed,
                device,
                **({"prior": priors[task]} if METHODS[m].needs_prior else {}),
            )
            for m in methods
        }
    return out


def _cs_problem(seed: int) -> tuple[np.ndarray, Any, np.ndarray]:
    from .cs_digits import load_digits

    x = load_digits(1)[0]
    A, y = TASKS["cs"].measure(x, seed)
    return x, A, y


def _restarts(sizes: Sizes, prior: Any, seed: int, device: str) -> dict[str, Any]:
    """Median seconds of csgm with 1 and with 10 restarts (one batch), and their ratio."""
    from napari_genprior import api

    _, A, y = _cs_problem(seed)
    runs = [
        lambda r=r: api.reconstruct(
            y,
            A,
            method="csgm",
            prior=prior,
            restarts=r,
            steps=sizes.steps,
            seed=seed,
            device=device,
        )
        for r in (1, 10)
    ]
    (t1, times1), (t10, times10) = timed_together(runs, sizes.pair_repeats, warmup=True)
    out: dict[str, Any] = {"1": t1, "times_1": times1, "10": t10, "times_10": times10}
    out["ratio"] = out["10"] / out["1"]
    return out


def bare_loop(
    prior: Any,
    A: Any,
    y: np.ndarray,
    steps: int,
    seed: int,
    device: str,
    lr: float = 0.05,
    lam: float = 1e-3,
):
    """csgm's objective minimised by a hand-written Adam loop; returns a callable running it.

    Prepared as :func:`napari_genprior.reconstruct` prepares a problem (the prior copied to
    ``device`` without gradients, the measurement divided by the operator's scale, the
    prior's output mapped to data units), so that only the loop itself is timed: per step
    ``zero_grad``, ``G(z)``, ``A(x)``, misfit + ``lam ||z||^2``, ``backward``, ``step``.
    """
    import torch

    dev = torch.device(device)
    G = copy.deepcopy(prior).to(dev).eval().requires_grad_(False)
    op = A.copy().to(dev)
    y_t = torch.as_tensor(y, device=dev)
    scale = op.estimate_scale(y_t)
    y_t = y_t / scale
    norm = G.card.get("normalisation", {}) or {}
    low = float(norm.get("low", 0.0))
    span = float(norm.get("high", 1.0)) - low
    z0 = torch.randn((1, G.latent_dim), generator=torch.Generator().manual_seed(seed)).to(dev)

    def loop() -> None:
        z = z0.clone().requires_grad_(True)
        opt = torch.optim.Adam([z], lr=lr)
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            x = (low + G(z) * span) / scale
            loss = (op(x) - y_t).pow(2).sum() + lam * z.pow(2).sum()
            loss.backward()
            opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    return loop


def op_breakdown(solver: Any, loop: Any, top: int = 12) -> dict[str, Any]:
    """Where the solver's extra time goes: its torch ops against the bare loop's.

    Both are run once under ``torch.profiler``; for every op the difference of calls and of
    self CPU time (solver minus loop) is taken. Ops the solver calls about as often as the
    loop (less than 10% more) differ mostly by timing noise and are left out of ``top``.

    Returns
    -------
    dict
        ``solver_ops_s`` and ``loop_ops_s`` (self CPU time of all ops), and ``top``: the ops
        the solver calls more often, largest extra time first (``op``, ``extra_calls``,
        ``extra_ms``).
    """
    s, b = op_times(solver), op_times(loop)
    diff = [
        (
            k,
            s.get(k, (0, 0.0))[0] - b.get(k, (0, 0.0))[0],
            s.get(k, (0, 0.0))[1] - b.get(k, (0, 0.0))[1],
        )
        for k in set(s) | set(b)
    ]
    diff = sorted((d for d in diff if d[1] > 0.1 * b.get(d[0], (0, 0.0))[0]), key=lambda d: -d[2])
    return {
        "solver_ops_s": sum(v[1] for v in s.values()),
        "loop_ops_s": sum(v[1] for v in b.values()),
        "top": [{"op": k, "extra_calls": c, "extra_ms": 1e3 * t} for k, c, t in diff[:top]],
    }


def _overhead(sizes: Sizes, prior: Any, seed: int, device: str) -> dict[str, Any]:
    """The solver's wall time over the bare loop's, on the same csgm problem."""
    from napari_genprior import api

    _, A, y = _cs_problem(seed)

    def solving(steps: int):
        return lambda: api.reconstruct(
            y, A, method="csgm", prior=prior, steps=steps, seed=seed, device=device
        )

    solver, loop = solving(sizes.steps), bare_loop(prior, A, y, sizes.steps, seed, device)
    out: dict[str, Any] = {}
    (out["solver"], out["solver_times"]), (out["bare"], out["bare_times"]) = timed_together(
        [solver, loop], sizes.pair_repeats, warmup=True
    )
    out["ratio"] = out["solver"] / out["bare"]
    out["ms_per_step"] = {
        "solver": 1e3 * out["solver"] / sizes.steps,
        "bare": 1e3 * out["bare"] / sizes.steps,
    }
    # per step, set-up apart: the slope between runs of n and 3n steps
    n3 = 3 * sizes.steps
    (s3, _), (b3, _) = timed_together(
        [solving(n3), bare_loop(prior, A, y, n3, seed, device)], sizes.pair_repeats, warmup=True
    )
    slope_s, slope_b = (
        (s3 - out["solver"]) / (n3 - sizes.steps),
        (b3 - out["bare"]) / (n3 - sizes.steps),
    )
    out["per_step"] = {
        "solver_ms": 1e3 * slope_s,
        "bare_ms": 1e3 * slope_b,
        "ratio": slope_s / slope_b,
        "solver_setup_ms": 1e3 * (out["solver"] - sizes.steps * slope_s),
        "bare_setup_ms": 1e3 * (out["bare"] - sizes.steps * slope_b),
    }
    if out["ratio"] >= OVERHEAD_TARGET or out["per_step"]["ratio"] >= PER_STEP_TARGET:
        out["profile"] = op_breakdown(solver, loop)
    return out


def _throughput(sizes: Sizes, prior: Any, seed: int, device: str) -> dict[str, Any]:
    """Patch-steps per second of csgm on a 256x256 mosaic (per number of restarts)."""
    from napari_genprior import api
    from napari_genprior.tiling import Mosaic

    x = held_out_brain(1, (256, 256))[0]
    A, y = TASKS["mri"].measure(x, seed)
    tiles = Mosaic(prior, x.shape).tiles
    out: dict[str, Any] = {"tiles": tiles, "steps": sizes.mosaic_steps, "runs": {}}
    for r in sizes.mosaic_restarts:
        rec = api.reconstruct(
            y,
            A,
            method="csgm",
            prior=prior,
            restarts=r,
            steps=sizes.mosaic_steps,
            seed=seed,
            device=device,
        )
        out["runs"][str(r)] = {
            "seconds": rec.seconds,
            "patch_steps_per_s": tiles * r * sizes.mosaic_steps / rec.seconds,
        }
    return out


def _measure(sizes: Sizes, device: str, seed: int) -> dict[str, Any]:
    """Everything on one device."""
    from napari_genprior import api

    priors = {name: api.load_prior(name) for name in set(PRIORS.values())}
    task_priors = {t: priors[p] for t, p in PRIORS.items()}
    _, A, y = _cs_problem(seed)  # warm-up: the first calls in a process pay one-time costs
    api.reconstruct(y, A, method="csgm", prior=priors["digits-vae"], steps=5, device=device)
    return {
        "per_method": _per_method(sizes, _test_images(), task_priors, seed, device),
        "restarts": _restarts(sizes, priors["digits-vae"], seed, device),
        "overhead": _overhead(sizes, priors["digits-vae"], seed, device),
        "throughput": _throughput(sizes, priors["mri-vae"], seed, device),
    }
