"""``real-digits``: compressed sensing and phase retrieval of held-out MNIST digits with the
stronger digits prior (issue 14's bars).

Images: held-out MNIST test digits (``sample_data/digits_test.npz``; no prior saw the test
set). Compressed sensing: each digit its own Gaussian ``cs`` matrix per m, noise std 0.01;
``csgm`` and ``ia`` with ``digits-conv`` (10 restarts) against ``lasso-dct`` and
``lasso-wavelet`` (weights on held-out measurements); per-pixel MSE, mean over digits, and the
measurements each method needs to reach MSE 0.01. Phase retrieval: Gaussian ``phase`` with
m = 200 magnitudes, noise std 0.01; success is a relative error under 0.2 against the digit
itself (up to the lost sign); ``csgm`` (Deep Phase Retrieval's amplitude loss, restarts started
at the best of a pool of random codes) against TWF, SPARTA and CoPRAM.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from . import Result, markdown_table
from .cs_digits import best_lasso_ratio, load_digits, measurements_needed

PRIOR = "digits-conv"
CS_METHODS = ("csgm", "ia", "lasso-dct", "lasso-wavelet")
PHASE_BASELINES = ("twf", "sparta", "copram")
LEVEL = 0.01


@dataclass(frozen=True)
class Sizes:
    digits: int
    ms: tuple[int, ...]
    steps: int
    restarts: int
    phase_digits: int
    phase_m: int
    phase_restarts: int
    phase_steps: int
    pool: int


FULL = Sizes(
    digits=10,
    ms=(25, 50, 100, 200, 300, 500),
    steps=1000,
    restarts=10,
    phase_digits=20,
    phase_m=200,
    phase_restarts=10,
    phase_steps=1000,
    pool=2000,
)
QUICK = Sizes(
    digits=1,
    ms=(100,),
    steps=30,
    restarts=2,
    phase_digits=1,
    phase_m=200,
    phase_restarts=2,
    phase_steps=30,
    pool=50,
)


def _cs(X: np.ndarray, sizes: Sizes, seed: int, device: str) -> dict[str, Any]:
    import time

    from napari_genprior import api

    mse = {m: np.zeros((len(sizes.ms), len(X))) for m in CS_METHODS}
    secs = {m: np.zeros((len(sizes.ms), len(X))) for m in CS_METHODS}
    for j, m_count in enumerate(sizes.ms):
        for i, x in enumerate(X):
            A = api.make_operator("cs", shape=x.shape, m=m_count, seed=seed + 1000 * i + m_count)
            y = A.measure(x, noise_std=0.01, seed=seed + i)
            for meth in CS_METHODS:
                kw = (
                    {"prior": PRIOR, "restarts": sizes.restarts, "steps": sizes.steps}
                    if meth in ("csgm", "ia")
                    else {}
                )
                t0 = time.perf_counter()
                rec = api.reconstruct(y, A, method=meth, seed=seed + i, device=device, **kw)
                secs[meth][j, i] = time.perf_counter() - t0
                mse[meth][j, i] = float(np.mean((rec.image - x) ** 2))
    mean = {k: v.mean(1) for k, v in mse.items()}
    needed = {k: measurements_needed(sizes.ms, mean[k], LEVEL) for k in CS_METHODS}
    return {
        "mse": {k: v.tolist() for k, v in mse.items()},
        "mean": {k: v.tolist() for k, v in mean.items()},
        "seconds": {k: float(np.median(v)) for k, v in secs.items()},
        "needed": needed,
    }


def _phase(X: np.ndarray, sizes: Sizes, seed: int, device: str) -> dict[str, Any]:
    from napari_genprior import api

    from .phase import best_codes, measure, relative_error

    G = api.load_prior(PRIOR)
    errors: dict[str, list[float]] = {m: [] for m in ("csgm",) + PHASE_BASELINES}
    for i, x in enumerate(X):
        A, y = measure(x, i, sizes.phase_m, seed)
        init = best_codes(G, A, y, sizes.phase_restarts, sizes.pool, seed + i)
        rec = api.reconstruct(
            y,
            A,
            method="csgm",
            prior=G,
            restarts=sizes.phase_restarts,
            steps=sizes.phase_steps,
            init=init,
            seed=seed + i,
            device=device,
        )
        errors["csgm"].append(relative_error(rec.image, x))
        for m in PHASE_BASELINES:
            errors[m].append(
                relative_error(
                    api.reconstruct(y, A, method=m, seed=seed + i, device=device).image, x
                )
            )
    success = {m: float(np.mean(np.asarray(e) < 0.2)) for m, e in errors.items()}
    return {"errors": errors, "success": success}


def run(quick: bool, device: str, seed: int) -> Result:
    sizes = QUICK if quick else FULL
    X = load_digits(max(sizes.digits, sizes.phase_digits))
    cs = _cs(X[: sizes.digits], sizes, seed, device)
    ph = _phase(X[: sizes.phase_digits], sizes, seed, device)

    rows = [
        [m_count] + [cs["mean"][k][j] for k in CS_METHODS] for j, m_count in enumerate(sizes.ms)
    ]
    gen = [cs["needed"][k] for k in ("csgm", "ia") if cs["needed"][k] is not None]
    # the better Lasso over the better generative method (a Lasso that never reached the
    # level counts as the largest m: a lower bound)
    ratio, _ = best_lasso_ratio({**cs["needed"], "csgm": min(gen) if gen else None}, max(sizes.ms))
    checks = {}
    if 300 in sizes.ms:
        j = sizes.ms.index(300)
        best300 = min(cs["mean"][k][j] for k in ("csgm", "ia"))
        checks["cs: best generative MSE <= 0.003 at m = 300"] = best300 <= 0.003
    if len(sizes.ms) > 2:
        checks[
            f"cs: best Lasso needs >= 5x the measurements of the best generative method at "
            f"MSE {LEVEL}"
        ] = ratio is not None and ratio >= 5
    s = ph["success"]
    checks[f"phase: csgm success >= 90% at m = {sizes.phase_m}"] = s["csgm"] >= 0.9
    checks[f"phase: TWF, SPARTA and CoPRAM under 20% at m = {sizes.phase_m}"] = all(
        s[m] < 0.2 for m in PHASE_BASELINES
    )
    text = [
        f"`{PRIOR}` (a convolutional VAE, see its card) on {sizes.digits} held-out MNIST test "
        f"digits; `csgm` and `ia` {sizes.restarts} restarts x {sizes.steps} steps. Per-pixel "
        "MSE, mean over digits:",
        "",
        markdown_table(["m"] + list(CS_METHODS), rows),
        "",
        "Measurements needed for MSE 0.01: "
        + ", ".join(f"{k} {'-' if v is None else f'{v:.0f}'}" for k, v in cs["needed"].items())
        + (f"; best Lasso / best generative = {ratio:.1f}x" if ratio else "")
        + ".",
        "",
        "Median seconds per reconstruction: "
        + ", ".join(f"{k} {v:.2f}" for k, v in cs["seconds"].items())
        + ".",
        "",
        f"Phase retrieval, m = {sizes.phase_m}, {sizes.phase_digits} held-out digits, success "
        "(relative error < 0.2 against the digit): "
        + ", ".join(f"{k} {100 * v:.0f}%" for k, v in s.items())
        + ".",
    ]
    return Result(
        name="real-digits",
        title="Held-out MNIST: compressed sensing and phase retrieval with the "
        "convolutional digits prior",
        markdown="\n".join(text),
        data={"sizes": asdict(sizes), "prior": PRIOR, "cs": cs, "phase": ph, "ratio": ratio},
        checks=checks,
    )
