"""``bench phase``: the representation fit, the measurements and the reconstructions."""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import torch

from ._config import GENERATIVE, NOISE_STD, THRESHOLD, Sizes, Variant, variants

# -- errors and the representation fit -------------------------------------------------------


def relative_error(image: np.ndarray, x: np.ndarray) -> float:
    """``min(||image - x||, ||image + x||) / ||x||``: the error up to the lost global sign."""
    return float(min(np.linalg.norm(image - x), np.linalg.norm(image + x)) / np.linalg.norm(x))


def _aligned(image: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``image`` or ``-image``, whichever is closer to ``x`` (for display)."""
    return -image if np.linalg.norm(image + x) < np.linalg.norm(image - x) else image


def best_fit(
    prior: Any, X: np.ndarray, restarts: int, steps: int, seed: int, device: str, lr: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
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
        return G(z).reshape(N, restarts, -1) - target.reshape(N, 1, -1)

    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        residual().pow(2).sum().backward()
        opt.step()
    with torch.no_grad():
        err = residual().norm(dim=2) / target.reshape(N, -1).norm(dim=1, keepdim=True)
        best = err.argmin(dim=1)
        images = G(z.reshape(N, restarts, k)[torch.arange(N), best])
    return err.min(dim=1).values.cpu().numpy(), images.reshape(X.shape).cpu().numpy()


def _representation(
    prior: Any,
    X: np.ndarray,
    survey: list[int],
    evaluation: list[int],
    sizes: Sizes,
    seed: int,
    device: str,
) -> dict[str, Any]:
    """Representation errors and approximations of the survey digits.

    The evaluation digits are fitted again with ``check_factor`` times the random codes (other
    seeds) and keep the better fit; how much that changed them shows whether the fit has
    converged.
    """
    errors, images = best_fit(prior, X[survey], sizes.fit_restarts, sizes.fit_steps, seed, device)
    errors, images = dict(zip(survey, errors)), dict(zip(survey, images))
    many, many_images = best_fit(
        prior,
        X[evaluation],
        sizes.check_factor * sizes.fit_restarts,
        sizes.fit_steps,
        seed + 1,
        device,
    )
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
    from napari_genprior import api

    A = api.make_operator(
        "phase", shape=x.shape, m=m, matrix="gaussian", seed=_seed(seed, index, m)
    )
    return A, A.measure(x, noise_std=NOISE_STD, seed=_seed(seed, index, m, 1))


def best_codes(prior: Any, A: Any, y: np.ndarray, count: int, pool: int, seed: int) -> np.ndarray:
    """The ``count`` codes with the lowest amplitude misfit ``|| |A G(z)| - y ||`` among
    ``pool`` draws from N(0, I): a start for the restarts of csgm or twist."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    z = torch.randn((pool, prior.latent_dim), generator=gen)
    with torch.no_grad():
        misfit = (A(prior(z)) - torch.as_tensor(y)).pow(2).flatten(1).sum(1)
    return z[torch.argsort(misfit)[:count]].numpy()


def _reconstruct(
    method: str,
    y: np.ndarray,
    A: Any,
    *,
    prior: Any,
    variant: Variant | None,
    sizes: Sizes,
    seed: int,
    device: str,
) -> np.ndarray:
    """One reconstruction: csgm or twist as ``variant`` says, or a baseline."""
    from napari_genprior import api

    if variant is None:
        return api.reconstruct(
            y, A, method=method, steps=sizes.baseline_steps, seed=seed, device=device
        ).image
    options = dict(variant.options)
    if variant.best_of:
        options["init"] = best_codes(prior, A, y, options["restarts"], sizes.pool, seed)
    return api.reconstruct(
        y, A, method=variant.method, prior=prior, seed=seed, device=device, **options
    ).image


def _misfit(A: Any, y: np.ndarray, image: np.ndarray) -> float:
    """``|| |A image| - y ||^2``."""
    with torch.no_grad():
        return float((A(torch.as_tensor(image)[None])[0] - torch.as_tensor(y)).pow(2).sum())


def _score(
    X: np.ndarray | dict[int, np.ndarray],
    star: dict[int, np.ndarray],
    digits: list[int],
    ms: tuple[int, ...],
    runs: dict[str, Variant | None],
    *,
    prior: Any,
    sizes: Sizes,
    seed: int,
    device: str,
    keep_m: int | None = None,
) -> dict[str, Any]:
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
    out: dict[str, Any] = {
        key: {name: np.zeros(shape) for name in runs}
        for key in ("errors", "errors_range", "fits_better")
    }
    out["seconds"] = dict.fromkeys(runs, 0.0)
    out["images"] = {name: [] for name in runs}
    for j, m in enumerate(ms):
        for d, i in enumerate(digits):
            A, y = measure(X[i], i, m, seed)
            star_misfit = _misfit(A, y, star[i])
            for name, variant in runs.items():
                t0 = time.perf_counter()
                image = _reconstruct(
                    name,
                    y,
                    A,
                    prior=prior,
                    variant=variant,
                    sizes=sizes,
                    seed=_seed(seed, i),
                    device=device,
                )
                out["seconds"][name] += time.perf_counter() - t0
                out["errors"][name][j, d] = relative_error(image, X[i])
                out["errors_range"][name][j, d] = relative_error(image, star[i])
                out["fits_better"][name][j, d] = _misfit(A, y, image) <= star_misfit
                if m == keep_m:
                    out["images"][name].append(_aligned(image, X[i]))
    return out


def _tune(
    X: np.ndarray,
    star: dict[int, np.ndarray],
    digits: list[int],
    *,
    prior: Any,
    sizes: Sizes,
    seed: int,
    device: str,
) -> tuple[list[dict[str, Any]], dict[str, Variant]]:
    """Score every :func:`variants` entry on the tuning digits at ``sizes.tune_m`` and pick,
    per method, the one with the highest success against ``x*`` (ties: the first listed)."""
    cands = variants(sizes)
    res = _score(
        X,
        star,
        digits,
        (sizes.tune_m,),
        {v.label: v for v in cands},
        prior=prior,
        sizes=sizes,
        seed=seed,
        device=device,
    )
    table = []
    for v in cands:
        err, err_star = res["errors"][v.label][0], res["errors_range"][v.label][0]
        table.append(
            {
                "label": v.label,
                "method": v.method,
                "options": v.options,
                "best_of": v.best_of,
                "success": float(np.mean(err < THRESHOLD)),
                "success_range": float(np.mean(err_star < THRESHOLD)),
                "mean_error": float(err.mean()),
                "mean_error_range": float(err_star.mean()),
                "seconds_per_run": res["seconds"][v.label] / len(digits),
            }
        )
    chosen = {}
    for method in GENERATIVE:
        rows = [(row, v) for row, v in zip(table, cands) if v.method == method]
        best = max(r["success_range"] for r, _ in rows)
        chosen[method] = next(v for r, v in rows if r["success_range"] == best)
    return table, chosen
