"""``speed``: seconds per reconstruction, the cost of restarts and of the solver's bookkeeping.

1. Seconds per reconstruction of every method at its default settings (one start, default
   step limit, early stopping where the method has it) on one image per task
   (:data:`._common.TASKS`): ``cs`` (m = 100) of a held-out 28x28 MNIST digit with
   ``digits-vae``; ``blur``, ``inpaint`` and ``denoise`` of a held-out 64x64 procedural nuclei
   image with ``nuclei-vae``; ``mri`` 4x of a held-out 64x64 brain phantom with ``mri-vae``;
   ``phase`` (m = 4n Gaussian magnitudes) of the digit with ``twf``, ``sparta``, ``copram``,
   ``csgm`` and ``twist`` (``digits-vae``). Median wall clock of :attr:`Sizes.repeats` calls
   of :func:`napari_genprior.reconstruct`.
2. Restarts: ``csgm`` with 10 restarts (one batch) against 1 restart (``digits-vae``, ``cs``
   m = 100, 500 steps). Target on the CPU: less than 3x.
3. Overhead: ``reconstruct(method="csgm")`` (same problem, 500 steps) against a bare torch loop
   of the same 500 Adam steps on the same objective (``z.grad`` cleared, ``G(z)``, ``A(x)``,
   misfit + ``lam ||z||^2``, ``backward``, ``step``; set-up not timed). Target: less than
   1.2x. When missed, one solver call is profiled (``cProfile``) and the functions taking the
   most time of their own are listed.
4. Throughput: ``csgm`` on a 256x256 ``mri`` slice with ``mri-vae`` as a mosaic of 25 patches,
   in patch-steps per second (patches x restarts x steps / solver seconds).

On a CUDA device everything is measured on the device and on the CPU, and the table gives the
speedup. ``torch.get_num_threads()`` is recorded: CPU times depend on it.

The measurements (sizes, priors, targets and the timing runs) are in :mod:`._speed_runs`; this
module runs them on each device and writes the tables, the profile text and the figure.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

from . import Result, markdown_table
from ._common import TASKS, label
from ._speed_runs import (
    FULL,
    LINEAR_METHODS,
    OVERHEAD_TARGET,
    PER_STEP_TARGET,
    PHASE_METHODS,
    PRIORS,
    QUICK,
    RESTARTS_TARGET,
    Sizes,
    _measure,
    bare_loop,
    op_breakdown,
    time_method,
)

__all__ = [
    "FULL",
    "LINEAR_METHODS",
    "OP_SOURCES",
    "OVERHEAD_TARGET",
    "PER_STEP_TARGET",
    "PHASE_METHODS",
    "PRIORS",
    "QUICK",
    "RESTARTS_TARGET",
    "Sizes",
    "bare_loop",
    "op_breakdown",
    "run",
    "time_method",
]

#: Where torch ops that the bare loop lacks come from in ``reconstruct``/``solve_csgm``.
OP_SOURCES = {
    "aten::clone": "best-iterate tracking (copies)",
    "aten::lt": "best-iterate tracking (`misfit < best_misfit`)",
    "aten::where": "best-iterate tracking (`torch.where`)",
    "aten::view_as_real": "`_misfit` of complex measurements",
    "aten::expand": "per-restart sums, backward (gradient broadcast)",
    "aten::reshape": "per-restart sums (`flatten(1)`)",
    "aten::sum": "per-restart sums (`_misfit`, the objective)",
    "aten::min": "the loss reported each step (`float(best_misfit.min())`)",
    "aten::item": "the loss reported each step (a host sync)",
    "aten::_local_scalar_dense": "the loss reported each step (a host sync)",
    "aten::argmin": "previews (the best restart)",
    "aten::select": "previews, tracking",
    "aten::_to_copy": "set-up (prior and operator copied to the device)",
    "aten::copy_": "set-up (prior and operator copied to the device)",
    "aten::detach": "detached copies each step",
}


def _seconds_table(
    per: dict[str, dict[str, dict[str, Any]]], cpu: dict[str, dict[str, dict[str, Any]]] | None
) -> str:
    """Methods x tasks: median seconds (iterations run), and the speedup over the CPU."""
    tasks = list(per)
    methods = list(dict.fromkeys(m for t in tasks for m in per[t]))
    rows = []
    for m in methods:
        row: list[Any] = [label(m)]
        for t in tasks:
            r = per[t].get(m)
            if r is None:
                row.append(None)
                continue
            cell = f"{r['seconds']:.3g} ({r['iterations']})"
            if cpu is not None:
                cell += f", {cpu[t][m]['seconds'] / r['seconds']:.1f}x"
            row.append(cell)
        rows.append(row)
    return markdown_table(["method"] + [f"{t} ({TASKS[t].kind})" for t in tasks], rows)


def _bar_plot(per: dict[str, dict[str, dict[str, Any]]], device: str):
    import matplotlib.pyplot as plt

    tasks = list(per)
    methods = list(dict.fromkeys(m for t in tasks for m in per[t]))
    fig, ax = plt.subplots(figsize=(8, 4.2))
    width = 0.8 / len(methods)
    for j, m in enumerate(methods):
        xs = [i + (j - (len(methods) - 1) / 2) * width for i, t in enumerate(tasks) if m in per[t]]
        ax.bar(xs, [per[t][m]["seconds"] for t in tasks if m in per[t]], width, label=label(m))
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set(
        yscale="log",
        ylabel="seconds per reconstruction (median)",
        title=f"Default settings, one image per task ({device})",
    )
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def run(quick: bool, device: str, seed: int) -> Result:
    """Time every method per task, the cost of restarts and of the solver's bookkeeping.

    Parameters
    ----------
    quick : bool
        Small sizes (:data:`QUICK`: one call each, a few methods) for a smoke test; else
        :data:`FULL`.
    device : str
        Torch device; on anything but the CPU, the CPU is measured too.
    seed : int
        Seed of the measurements and the methods.

    Returns
    -------
    Result
        Tables of seconds, the restarts ratio, the overhead ratio (with a profile when it
        misses its target), the mosaic throughput, and the figure ``seconds``.
    """
    import torch

    sizes = QUICK if quick else FULL
    devices = [device] if device == "cpu" else [device, "cpu"]
    measured = {d: _measure(sizes, d, seed) for d in devices}
    main = measured[device]
    cpu = measured["cpu"]
    threads = torch.get_num_threads()

    rs, ov = cpu["restarts"], main["overhead"]
    checks = {
        f"csgm restarts=10 costs < {RESTARTS_TARGET:g}x restarts=1 (one batch, CPU)": bool(
            math.isfinite(rs["ratio"]) and rs["ratio"] < RESTARTS_TARGET
        ),
        f"reconstruct(csgm) < {OVERHEAD_TARGET:g}x a bare torch loop of the same steps "
        f"({device})": bool(ov["ratio"] < OVERHEAD_TARGET),
        f"a csgm step (set-up apart) < {PER_STEP_TARGET:g}x a bare loop's step ({device})": bool(
            ov["per_step"]["ratio"] < PER_STEP_TARGET
        ),
    }
    intro = (
        f"Device {device}; torch on {threads} CPU thread(s). Median wall clock of "
        f"{sizes.repeats} call(s) of `reconstruct` per cell, each method at its default "
        "settings (one start, default step limit; early stopping where the method has "
        "it), in seconds, with the iterations run in brackets"
        + (" and the speedup over the CPU" if device != "cpu" else "")
        + ". Images: a "
        "held-out MNIST digit (28x28: cs, phase), a held-out procedural nuclei image "
        "(64x64: blur, inpaint, denoise) and a held-out 64x64 brain phantom (mri); the "
        "priors: " + ", ".join(f"{t} `{p}`" for t, p in PRIORS.items()) + "."
    )
    text = [
        intro,
        "",
        _seconds_table(main["per_method"], cpu["per_method"] if device != "cpu" else None),
        "",
    ]
    for d in devices:
        r, o, tp = measured[d]["restarts"], measured[d]["overhead"], measured[d]["throughput"]
        text += [
            f"**{d}**:",
            (
                f"- restarts: csgm ({sizes.steps} steps, `digits-vae`, cs m = 100) takes "
                f"{r['1']:.3f} s with 1 restart and {r['10']:.3f} s with 10 in one batch: "
                f"{r['ratio']:.2f}x (median of {sizes.pair_repeats})."
            ),
            (
                f'- overhead: `reconstruct(method="csgm")` {o["solver"]:.3f} s '
                f"({o['ms_per_step']['solver']:.3f} ms/step) vs the bare loop {o['bare']:.3f} s "
                f"({o['ms_per_step']['bare']:.3f} ms/step): {o['ratio']:.2f}x "
                f"(median of {sizes.pair_repeats}). Per step, set-up apart (the slope between "
                f"{sizes.steps} and {3 * sizes.steps} steps): {o['per_step']['solver_ms']:.3f} "
                f"against {o['per_step']['bare_ms']:.3f} ms, {o['per_step']['ratio']:.2f}x; the "
                f"solver's set-up (problem, prior copy, checks) {o['per_step']['solver_setup_ms']:.0f}"
                " ms."
            ),
            "- throughput: csgm on a 256x256 `mri` slice, `mri-vae` as a mosaic of "
            f"{tp['tiles']} patches, {tp['steps']} steps: "
            + ", ".join(
                f"{v['patch_steps_per_s']:.0f} patch-steps/s with {k} restart(s) "
                f"({v['seconds']:.2f} s)"
                for k, v in tp["runs"].items()
            )
            + ".",
            "",
        ]
    if "profile" in ov:
        text += [_profile_text(ov, sizes.steps), ""]
    data = {
        "sizes": asdict(sizes),
        "device": device,
        "torch_threads": threads,
        "priors": PRIORS,
        "measured": measured,
    }
    figures = {"seconds": _bar_plot(main["per_method"], device)}
    return Result(
        name="speed",
        title="Speed: seconds per reconstruction, restarts, solver overhead, mosaic throughput",
        markdown="\n".join(text),
        data=data,
        figures=figures,
        checks=checks,
    )


def _profile_text(ov: dict[str, Any], steps: int) -> str:
    """What the op-level profile of the solver against the bare loop says, as markdown."""
    prof = ov["profile"]
    rows = [
        [p["op"], p["extra_calls"], p["extra_ms"], OP_SOURCES.get(p["op"], "")] for p in prof["top"]
    ]
    table = markdown_table(["torch op", "extra calls", "extra self ms", "from"], rows, fmt="{:.3g}")
    extra_ops = prof["solver_ops_s"] - prof["loop_ops_s"]
    extra_wall = ov["solver"] - ov["bare"]
    return (
        f"The overhead target ({OVERHEAD_TARGET:g}x) is missed: the solver takes "
        f"{1e3 * extra_wall:.0f} ms more over {steps} steps "
        f"({1e6 * extra_wall / steps:.0f} us per step, against "
        f"{1e3 * ov['ms_per_step']['bare']:.0f} us for a whole bare step). Under "
        "`torch.profiler` (one call each), the solver's torch ops take "
        f"{1e3 * prof['solver_ops_s']:.0f} ms of CPU against the loop's "
        f"{1e3 * prof['loop_ops_s']:.0f} ms ({1e3 * extra_ops:+.0f} ms; the profiler's own "
        "cost per op inflates this). The ops the solver calls more often than the loop, "
        "by extra time (in one call; mostly one or two per step):\n\n" + table
    )
