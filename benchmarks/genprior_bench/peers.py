"""``peers``: ours against the tools a user could use instead, side by side (issue 18).

Every comparison uses the same image, the same measurement (the peers get our operator wrapped
as their forward model, or its own exact equivalent) and, for the iterative latent and DIP
searches, the same network and the same number of steps. Each tool runs in a process of its
own (``python -m genprior_bench.peers``) at 1 and at 2 torch threads, so that one
tool's warm caches and thread pools never help another; times are medians of
:attr:`Sizes.repeats` calls of the chosen setting.

Peers: DeepInverse (``CSGMGenerator`` 10 times, best by measurement loss; ``DeepImagePrior``;
PGD with ``TVPrior`` and ``WaveletPrior``), SigPy's MRI apps (``TotalVariationRecon``,
``L1WaveletRecon``) and scikit-image (``richardson_lucy``, ``denoise_tv_chambolle``,
``inpaint_biharmonic``). A tool that is not installed is reported as such (DeepInverse needs a
torchvision that imports beside the installed torch).

Equal error, for the classical methods: each tool's weight is picked with the truth from a
grid of its own units (so no tool is handicapped by a poor weight rule), at its default
iteration count. Ours is run with a ladder of step counts, each rung at its own truth-best
weight from our grid (as the peer's weight is the best for the peer's iteration count): "ours at
equal error" is the fewest steps whose PSNR reaches the peer's (within 0.05 dB), and its time.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from typing import Any

from . import Result, markdown_table
from ._common import json_from_process
from ._peers_cases import (  # noqa: F401 - the cases and sizes, importable from here as before
    COMPARISONS,
    CSGM_SPEEDUP,
    EQUAL_DB,
    FULL,
    PEER_WEIGHTS,
    QUICK,
    RL_LADDER,
    THREADS,
    Sizes,
    case_data,
)
from ._peers_tools import (  # noqa: F401 - the runners, importable from here as before
    _deepinv,
    _deepinv_physics,
    _ours,
    _sigpy,
    _skimage,
    step_profile,
)

# -- one tool, in a process of its own ------------------------------------------------------------


def run_tool(case: str, tool: str, threads: int, quick: bool, seed: int) -> dict[str, Any]:
    """One tool on one case at ``threads`` torch threads (in this process)."""
    import torch

    torch.set_num_threads(threads)
    sizes = QUICK if quick else FULL
    x, y, A = case_data(case, sizes, seed)
    family = tool.split("-")[0]
    fn = {"ours": _ours, "deepinv": _deepinv, "sigpy": _sigpy, "skimage": _skimage}[family]
    import importlib
    import importlib.metadata as md

    try:  # (DeepInverse fails with a RuntimeError where torchvision does not match torch)
        importlib.import_module({"ours": "napari_genprior"}.get(family, family))
    except Exception as exc:  # noqa: BLE001 - any failure to import means "not here"
        return {"error": f"{family} is not importable here: {type(exc).__name__}: {exc}"}
    out = fn(tool, case, x, y, A, sizes, seed)

    pkg = {"ours": "napari-genprior", "skimage": "scikit-image"}.get(family, family)
    return {**out, "threads": torch.get_num_threads(), "version": md.version(pkg)}


def _in_process(
    case: str, tool: str, threads: int, quick: bool, seed: int, timeout: float
) -> dict[str, Any]:
    return json_from_process(
        ["-m", "genprior_bench.peers", case, tool, str(threads), str(int(quick)), str(seed)],
        timeout,
    )


# -- the table ------------------------------------------------------------------------------------


def equal_error(ours: dict[str, Any], peer: dict[str, Any]) -> dict[str, Any] | None:
    """Ours at the peer's PSNR: the first rung of our ladder within :data:`EQUAL_DB` of it."""
    for rung in ours.get("ladder", ()):
        if rung["psnr"] >= peer["psnr"] - EQUAL_DB:
            return rung
    return None


def run(quick: bool, device: str, seed: int) -> Result:
    sizes = QUICK if quick else FULL
    timeout = 120.0 if quick else 1800.0
    runs: dict[str, dict[str, Any]] = {}
    for _, case, ours, peers in COMPARISONS:
        for tool in (ours, *peers):
            for t in THREADS:
                key = f"{case}/{tool}/{t}"
                if key not in runs:
                    t0 = time.perf_counter()
                    runs[key] = _in_process(case, tool, t, quick, seed, timeout)
                    print(
                        f"peers: {key}: {time.perf_counter() - t0:.0f} s"
                        + (f" ({runs[key]['error'][:60]})" if "error" in runs[key] else ""),
                        file=sys.stderr,
                        flush=True,
                    )
    rows, checks = [], {}
    for what, case, ours, peers in COMPARISONS:
        for t in THREADS:
            o = runs[f"{case}/{ours}/{t}"]
            for peer in peers:
                p = runs[f"{case}/{peer}/{t}"]
                if "error" in o or "error" in p:
                    rows.append(
                        [
                            what,
                            case,
                            t,
                            peer,
                            None,
                            None,
                            None,
                            None,
                            None,
                            (o.get("error") or p.get("error"))[:80],
                        ]
                    )
                    continue
                eq = equal_error(o, p) if "ladder" in o else None
                if "ladder" in o:
                    secs = eq["seconds"] if eq else None
                    note = (
                        f"ours reaches its PSNR in {eq['steps']} steps"
                        if eq
                        else f"ours at most {max(r['psnr'] for r in o['ladder']):.2f} dB"
                    )
                    edges = [n for n, r in (("ours", o), ("peer", p)) if r.get("at_edge")]
                    if edges:
                        note += f"; {' and '.join(edges)}: best weight at the grid's end"
                else:
                    secs = o["seconds"] if o["psnr"] >= p["psnr"] - EQUAL_DB else None
                    note = "same steps"
                rows.append(
                    [
                        what,
                        case,
                        t,
                        peer,
                        p["psnr"],
                        p["seconds"],
                        o["psnr"],
                        o["seconds"],
                        secs,
                        note,
                    ]
                )
                if what.startswith("csgm"):
                    ok = o["mse"] <= p["mse"] * 1.05 and p["seconds"] >= CSGM_SPEEDUP * o["seconds"]
                    checks[
                        f"{case}, {t} thread(s): ours >= {CSGM_SPEEDUP:g}x faster than "
                        f"{peer} at equal or lower error"
                    ] = ok
                elif what != "dip":
                    checks[
                        f"{what} on {case}, {t} thread(s): ours no slower than {peer} at "
                        "equal error"
                    ] = secs is not None and secs <= p["seconds"]
    header = [
        "method",
        "case",
        "threads",
        "peer",
        "peer PSNR",
        "peer s",
        "ours PSNR",
        "ours s",
        "ours s at peer's PSNR",
        "note",
    ]
    why = []
    for (what, case, ours, _), t in ((c, 1) for c in COMPARISONS):
        prof = runs[f"{case}/{ours}/{t}"].get("profile")
        missed = [k for k, ok in checks.items() if not ok and k.startswith(f"{what} on {case}")]
        if prof and missed:
            tops = ", ".join(
                f"`{r['op']}` {r['per_step']:.0f}x{r['us_per_call']:.0f} us" for r in prof["top"]
            )
            why.append(
                f"- {what} on {case} (1 thread): set-up {1e3 * prof['setup_s']:.1f} ms, "
                f"then {prof['ms_per_step']:.3f} ms a step for {prof['ops_per_step']:.0f} "
                f"torch ops a step; the most costly: {tops}."
            )
    md_text = (
        markdown_table(header, rows, fmt="{:.3g}")
        + "\n\n"
        + "One process per tool and thread count; times are medians of "
        f"{sizes.repeats} calls. Classical weights: the truth-best of each tool's grid; "
        "'ours s at peer's PSNR' is the fewest steps of our ladder that reach the peer's "
        f"PSNR (within {EQUAL_DB} dB), each step count at its own truth-best weight.\n"
        + (
            "\nWhere ours is slower, where its time goes (`torch.profiler`, per step "
            "between a 1-step and a longer solve):\n\n" + "\n".join(why) + "\n"
            if why
            else ""
        )
    )
    data = {"sizes": asdict(sizes), "runs": runs, "seed": seed}
    return Result(
        "peers", "Ours against DeepInverse, SigPy and scikit-image", md_text, data, checks=checks
    )


if __name__ == "__main__":  # one tool in this process: prints one JSON line
    c, tl, th, q, s = sys.argv[1:6]
    print(json.dumps(run_tool(c, tl, int(th), bool(int(q)), int(s)), default=float))
