"""``random-prior``: the twist against plain gradient descent on random expansive ReLU nets.

The setting of Hand and Voroninski (2017) and Huang, Heckel, Hand and Voroninski (2018): a
generator ``G(z) = relu(W2 relu(W1 z))`` with i.i.d. Gaussian weights (k = 10, widths 250 and
600, d = 2 layers, a new network for every trial), a latent code ``z0 ~ N(0, I)`` and
``m`` noiseless Gaussian measurements ``y = A G(z0)``. The loss ``f(z) = ||A G(z) - y||^2 / 2``
has, besides ``z0``, a spurious critical point near ``-rho z0`` (0 < rho < 1) where plain
gradient descent can stay; the twist (``method="twist"``) compares ``f(z)`` with ``f(-z)`` after
every step and jumps to ``-z`` when that is lower. Plain descent is ``twist=False``; both use
the same Armijo steps, the same start and at most the same number of steps.

Two starts: a random draw ``N(0, I)`` (the methods' default, what a user gets), and ``-z0``,
the start on the wrong side that shows what the twist is for. A trial succeeds when the
relative error of the recovered latent code, ``||z - z0|| / ||z0||``, is below 1e-2; a run is
"caught near -rho z0" when the cosine between ``z`` and ``-z0`` exceeds 0.9.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from . import Result, markdown_table

K = 10
WIDTHS = (250, 600)
SUCCESS_TOL = 1e-2  # relative error of the latent code
CAUGHT_COS = 0.7  # cosine of the final z with -z0 (as in tests/test_latent.py)
TARGET_SUCCESS = 0.9  # twist's success at the largest m/k
STARTS = ("random", "minus-z0")
VARIANTS = ("twist", "plain")


@dataclass(frozen=True)
class Sizes:
    """How much work a run does.

    Attributes
    ----------
    ratios : tuple of int
        The values of m / k (m Gaussian measurements of the 600-pixel output).
    trials : int
        Networks (and latent codes, matrices, random starts) per ratio.
    steps : int
        The most gradient steps of each run (runs stop earlier once z stops moving).
    """

    ratios: tuple[int, ...]
    trials: int
    steps: int


FULL = Sizes(ratios=(1, 2, 3, 5, 8, 12, 20), trials=100, steps=1000)
QUICK = Sizes(ratios=(3, 20), trials=4, steps=1000)


def _trial(trial: int, ratios: tuple[int, ...], steps: int, device: str) -> dict[str, Any]:
    """One trial (a network, a latent code, a matrix seed, a random start): every
    (ratio, start, variant) run.

    Returns ``{"error": ..., "cosine": ...}``, each an array of shape
    ``(len(ratios), len(STARTS), len(VARIANTS))``: the relative error of the recovered latent
    code and its cosine with ``-z0``.
    """
    import torch

    from napari_genprior import api

    # independent streams: the network's weights, z0, the matrices and the random start
    net_seed, z_seed, a_seed, start_seed = (
        int(v) for v in np.random.SeedSequence(trial).generate_state(4) % 2**31
    )
    G = api.random_prior(latent_dim=K, widths=WIDTHS, seed=net_seed)
    z0 = torch.randn(K, generator=torch.Generator().manual_seed(z_seed))
    with torch.no_grad():
        x0 = G(z0[None])[0].numpy()
    shape = (len(ratios), len(STARTS), len(VARIANTS))
    error, cosine = np.zeros(shape), np.zeros(shape)
    for a, ratio in enumerate(ratios):
        A = api.make_operator("cs", shape=x0.shape, m=ratio * K, seed=a_seed, matrix="dense")
        y = A.measure(x0)
        for b, start in enumerate(STARTS):
            init = None if start == "random" else (-z0).numpy()
            for c, variant in enumerate(VARIANTS):
                rec = api.reconstruct(
                    y,
                    A,
                    method="twist",
                    prior=G,
                    steps=steps,
                    init=init,
                    twist=variant == "twist",
                    seed=start_seed,
                    device=device,
                )
                z = torch.tensor(rec.params["latent"])
                error[a, b, c] = float((z - z0).norm() / z0.norm())
                cosine[a, b, c] = float(-(z @ z0) / (z.norm() * z0.norm()).clamp_min(1e-30))
    return {"error": error, "cosine": cosine}


def _plot(ratios: tuple[int, ...], success: np.ndarray, trials: int):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    colours = {"twist": "C0", "plain": "C3"}
    labels = {"twist": "twist", "plain": "plain gradient descent"}
    for b, start in enumerate(STARTS):
        for c, variant in enumerate(VARIANTS):
            p = success[:, b, c]
            ax.errorbar(
                ratios,
                p,
                yerr=np.sqrt(p * (1 - p) / trials),
                capsize=2,
                marker="o",
                ms=4,
                color=colours[variant],
                ls="-" if start == "random" else "--",
                label=f"{labels[variant]}, start " + ("N(0, I)" if start == "random" else "-z0"),
            )
    ax.set(
        xscale="log",
        xlabel="m / k",
        ylabel=f"P(||z - z0|| / ||z0|| < {SUCCESS_TOL:g})",
        ylim=(-0.03, 1.03),
        title=f"Random ReLU net k={K}, widths {WIDTHS}: {trials} trials per point",
    )
    ax.set_xticks(ratios, [str(r) for r in ratios])
    ax.minorticks_off()
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def run(quick: bool, device: str, seed: int) -> Result:
    """Success probability vs m / k of the twist and of plain gradient descent.

    Parameters
    ----------
    quick : bool
        Small sizes (:data:`QUICK`) for a smoke test; else :data:`FULL`.
    device : str
        Torch device of the reconstructions.
    seed : int
        Offset of the trials' seeds: trial ``t`` uses ``seed + t`` for its network, its
        latent code, its matrices and its random start.

    Returns
    -------
    Result
        Success and "caught near -rho z0" fractions per m / k, start and variant, every
        run's error and cosine, and the figure ``success``.
    """
    sizes = QUICK if quick else FULL
    ratios = sizes.ratios
    runs = [_trial(seed + t, ratios, sizes.steps, device) for t in range(sizes.trials)]
    error = np.stack([r["error"] for r in runs])  # (trials, ratios, starts, variants)
    cosine = np.stack([r["cosine"] for r in runs])
    success = (error < SUCCESS_TOL).mean(0)
    caught = (cosine > CAUGHT_COS).mean(0)

    def table(b: int) -> str:
        rows = [
            [r]
            + [
                float(v)
                for v in (success[a, b, 0], success[a, b, 1], caught[a, b, 0], caught[a, b, 1])
            ]
            for a, r in enumerate(ratios)
        ]
        return markdown_table(
            [
                "m / k",
                "twist success",
                "plain GD success",
                "twist caught near -rho z0",
                "plain GD caught near -rho z0",
            ],
            rows,
            fmt="{:.2f}",
        )

    t_rand, t_neg = STARTS.index("random"), STARTS.index("minus-z0")
    i_tw, i_gd = VARIANTS.index("twist"), VARIANTS.index("plain")
    never_worse = {
        start: bool(np.all(success[:, b, i_tw] >= success[:, b, i_gd]))
        for b, start in enumerate(STARTS)
    }
    last = float(success[-1, t_rand, i_tw])
    failed = error[:, :, t_neg, i_gd] >= SUCCESS_TOL
    cos_failed = cosine[:, :, t_neg, i_gd][failed]
    near = float(np.mean(cos_failed > CAUGHT_COS)) if failed.any() else 0.0
    wrong_side = (
        float(np.mean((cos_failed > 0) & (cos_failed <= CAUGHT_COS))) if failed.any() else 0.0
    )
    intro = (
        f"Random expansive ReLU networks (k = {K}, widths {WIDTHS}, no biases; a new "
        f"network, latent code z0 ~ N(0, I), Gaussian matrix and start for each of "
        f"{sizes.trials} trials per point), m = (m/k) x {K} noiseless Gaussian measurements "
        f"of G(z0), at most {sizes.steps} Armijo gradient steps. Success: "
        f"||z - z0|| / ||z0|| < {SUCCESS_TOL:g} for the recovered latent code z. Caught "
        f"near -rho z0: cos(z, -z0) > {CAUGHT_COS:g}."
    )
    summary = (
        f"From a random start, plain descent ends near -rho z0 in "
        f"{caught[:, t_rand, i_gd].mean():.1%} of all its runs and the twist in "
        f"{caught[:, t_rand, i_tw].mean():.1%}; started at -z0, plain descent stays "
        f"there in {caught[:, t_neg, i_gd].mean():.1%} and the twist in "
        f"{caught[:, t_neg, i_tw].mean():.1%}. Of plain descent's "
        f"{int(failed.sum())} failures from -z0 (all m/k), {near:.0%} end near -rho z0 "
        f"(cos(z, -z0) > {CAUGHT_COS:g}) and {wrong_side:.0%} elsewhere on -z0's side "
        f"(0 < cos(z, -z0) <= {CAUGHT_COS:g})."
    )
    text = [
        intro,
        "",
        "**Random start z ~ N(0, I)** (the same start for both):",
        "",
        table(t_rand),
        "",
        "**Start at -z0** (on the spurious critical point's side):",
        "",
        table(t_neg),
        "",
        summary,
    ]
    checks = {
        "twist success >= plain gradient descent at every m/k (random start)": never_worse[
            "random"
        ],
        "twist success >= plain gradient descent at every m/k (start at -z0)": never_worse[
            "minus-z0"
        ],
        f"twist success >= {TARGET_SUCCESS:g} at m/k = {ratios[-1]} (random start)": last
        >= TARGET_SUCCESS,
    }
    data = {
        "sizes": asdict(sizes),
        "k": K,
        "widths": list(WIDTHS),
        "noise_std": 0.0,
        "success_tol": SUCCESS_TOL,
        "success_on": "relative error of the latent code",
        "caught_cosine": CAUGHT_COS,
        "ratios": list(ratios),
        "starts": list(STARTS),
        "variants": list(VARIANTS),
        "success": {
            s: {v: success[:, b, c].tolist() for c, v in enumerate(VARIANTS)}
            for b, s in enumerate(STARTS)
        },
        "caught": {
            s: {v: caught[:, b, c].tolist() for c, v in enumerate(VARIANTS)}
            for b, s in enumerate(STARTS)
        },
        "latent_error": error.tolist(),
        "cosine_with_minus_z0": cosine.tolist(),
        "axes": "[trial][ratio][start][variant]",
    }
    return Result(
        name="random-prior",
        title="The twist vs plain gradient descent on random expansive ReLU "
        "networks (Hand-Voroninski; Huang et al. 2018)",
        markdown="\n".join(text),
        data=data,
        figures={"success": _plot(ratios, success, sizes.trials)},
        checks=checks,
    )
