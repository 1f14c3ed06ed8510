"""``bench phase``: the figures (representation errors, success vs m, reconstruction grid)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._common import image_grid, line_plot
from ._config import GENERATIVE, GRID_M, METHODS, NOISE_STD, THRESHOLD


def _histogram(errors: list[float]):
    import matplotlib.pyplot as plt

    errors = np.asarray(errors)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.hist(
        errors, bins=np.linspace(0, max(0.8, float(errors.max()) + 0.02), 33), color="C0", alpha=0.8
    )
    ax.axvline(THRESHOLD, color="k", ls="--", lw=1, label=f"success threshold {THRESHOLD:g}")
    ax.set(
        xlabel="representation error min_z ||G(z) - x|| / ||x||",
        ylabel="digits",
        title=f"digits-vae on {len(errors)} held-out MNIST test digits: "
        f"{np.mean(errors < THRESHOLD):.0%} within {THRESHOLD:g}",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _success_plot(d: dict[str, Any]):
    """Success vs m: against the digit (solid), against x* (dashed), images in the range
    (dotted), and the fraction of digits the prior represents within the threshold (grey)."""
    from matplotlib.ticker import NullLocator

    ms, inr = d["ms"], d["in_range"]
    styles = {
        "vs x": {},
        "vs G(z*)": {"linestyle": "--", "marker": "s"},
        "on G(z*) in range": {"linestyle": ":", "marker": "^"},
    }
    curves = {f"{n} vs x": d["success"][n] for n in METHODS}
    curves.update({f"{n} vs G(z*)": d["success_range"][n] for n in GENERATIVE})
    curves.update(
        {
            f"{n} on G(z*) in range": [
                inr["success"][n][inr["ms"].index(m)] if m in inr["ms"] else None for m in ms
            ]
            for n in GENERATIVE
        }
    )
    frac = d["representation"]["evaluation_representable"] / len(d["evaluation_digits"])
    ceiling = f"digits represented within {THRESHOLD:g}"
    curves[ceiling] = [frac] * len(ms)
    fig = line_plot(
        ms,
        curves,
        xlabel="measurements m (n = 784 pixels)",
        ylabel=f"success rate (relative error < {THRESHOLD:g})",
        title=f"Phase retrieval of {len(d['evaluation_digits'])} held-out digits, "
        f"noise {d['noise_std']:g}",
    )
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


def _grid(
    X: np.ndarray,
    star: dict[int, np.ndarray],
    rep_errors: dict[int, float],
    shown: list[int],
    res: dict[str, Any],
    j: int,
):
    """Digits, their best approximations and every method's reconstruction at ``GRID_M``."""
    rows = [
        ("digit", [(f"#{i}", X[i]) for i in shown]),
        ("best fit G(z*)", [(f"{rep_errors[i]:.2f}", star[i]) for i in shown]),
    ]
    rows += [
        (
            n,
            [
                (f"{res['errors'][n][j, d]:.2f}", im)
                for d, im in enumerate(res["images"][n][: len(shown)])
            ],
        )
        for n in METHODS
    ]
    return image_grid(
        rows,
        f"Phase retrieval from m = {GRID_M} magnitudes (noise "
        f"{NOISE_STD:g}); captions: relative error vs the digit",
    )
