"""``deconv-3d-scale``: time and peak memory of 3D deconvolution on large stacks, alone.

The same probes as the last table of ``deconv-3d`` (:func:`.deconv3d.scale_report`: each stack
size and method in a process of its own, CPU, 1 thread), without the quality runs, so that the
table can be remade quickly after a change to the operator or the solvers.
"""

from __future__ import annotations

from dataclasses import asdict, replace

from . import Result
from .deconv3d import FULL, QUICK, scale_report


def run(quick: bool, device: str, seed: int) -> Result:
    sizes = QUICK if quick else replace(FULL, scale_iterations=5)
    text, scale, checks = scale_report(sizes)
    return Result(
        name="deconv-3d-scale",
        title="3D deconvolution: time and peak memory against stack size",
        markdown="\n".join(text[1:]),  # without the heading line of deconv-3d
        data={"sizes": asdict(sizes), "scale": scale},
        checks=checks,
    )
