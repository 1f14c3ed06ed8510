"""``peers``: ours against the tools a user could use instead, side by side (issue 18).

Every comparison uses the same image, the same measurement (the peers get our operator wrapped
as their forward model, or its own exact equivalent) and, for the iterative latent and DIP
searches, the same network and the same number of steps. Each tool runs in a process of its
own (``python -m napari_genprior.bench.peers``) at 1 and at 2 torch threads, so that one
tool's warm caches and thread pools never help another; times are medians of
:attr:`Sizes.repeats` calls of the chosen setting.

Peers: DeepInverse (``CSGMGenerator`` 10 times, best by measurement loss; ``DeepImagePrior``;
PGD with ``TVPrior`` and ``WaveletPrior``), SigPy's MRI apps (``TotalVariationRecon``,
``L1WaveletRecon``) and scikit-image (``richardson_lucy``, ``denoise_tv_chambolle``,
``inpaint_biharmonic``). A tool that is not installed is reported as such (DeepInverse needs a
torchvision that imports beside the installed torch).

Equal error, for the classical methods: each tool's weight is picked with the truth from a
grid of its own units (so no tool is handicapped by a poor weight rule), at its default
iteration count. Ours is then run at its best weight with a ladder of step counts: "ours at
equal error" is the fewest steps whose PSNR reaches the peer's (within 0.05 dB), and its time.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from . import Result, markdown_table
from ._common import json_from_process, op_times, scores, timed

#: Goals of issue 18: 10 CSGM restarts at least this many times faster than DeepInverse's.
CSGM_SPEEDUP = 3.0
#: PSNR slack (dB) of "equal error".
EQUAL_DB = 0.05
THREADS = (1, 2)
#: Richardson-Lucy iteration counts tried for "ours at equal error".
RL_LADDER = (1, 2, 5, 10, 20, 50)


@dataclass(frozen=True)
class Sizes:
    csgm_steps: int
    dip_steps: int
    peer_iters: int
    ladder: tuple[int, ...]
    grid: tuple[float, ...]
    peer_grid: tuple[float, ...]
    mri_side: int
    repeats: int


FULL = Sizes(
    csgm_steps=1000,
    dip_steps=500,
    peer_iters=100,
    ladder=(25, 50, 100, 200, 400, 800),
    grid=(0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0),
    peer_grid=(1 / 16, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0),
    mri_side=128,
    repeats=3,
)
QUICK = Sizes(
    csgm_steps=20,
    dip_steps=10,
    peer_iters=10,
    ladder=(10, 20),
    grid=(1.0,),
    peer_grid=(1.0,),
    mri_side=32,
    repeats=1,
)

#: (what, case, our tool, peer tools)
COMPARISONS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("csgm, 10 restarts", "inpaint-digit", "ours-csgm", ("deepinv-csgm",)),
    ("csgm, 10 restarts", "cs-digit", "ours-csgm", ("deepinv-csgm",)),
    ("dip", "deblur-nuclei", "ours-dip", ("deepinv-dip",)),
    ("tv", "deblur-nuclei", "ours-tv", ("deepinv-tv",)),
    ("tv", "mri-brain", "ours-tv", ("sigpy-tv", "deepinv-tv")),
    ("tv", "denoise-nuclei", "ours-tv", ("skimage-tv", "deepinv-tv")),
    ("l1-wavelet", "mri-brain", "ours-wavelet", ("sigpy-wavelet", "deepinv-wavelet")),
    ("richardson-lucy", "deblur-nuclei", "ours-rl", ("skimage-rl",)),
    ("inpainting", "inpaint-nuclei", "ours-tv", ("skimage-biharmonic",)),
)
#: Each peer's weight grid centre in its own units (times :attr:`Sizes.grid`).
PEER_WEIGHTS = {
    ("deepinv-tv", "deblur-nuclei"): 0.004,
    ("deepinv-tv", "mri-brain"): 0.002,
    ("deepinv-tv", "denoise-nuclei"): 0.04,
    ("sigpy-tv", "mri-brain"): 0.002,
    ("skimage-tv", "denoise-nuclei"): 0.08,
    ("sigpy-wavelet", "mri-brain"): 0.002,
    ("deepinv-wavelet", "mri-brain"): 0.002,
}


# -- the cases: the same data in every process ------------------------------------------------


def case_data(case: str, sizes: Sizes, seed: int) -> tuple[np.ndarray, np.ndarray, Any]:
    """``(x, y, A)`` of ``case``, made the same way in every process."""
    from .. import api
    from ._common import real_nuclei

    if case.endswith("-digit"):
        from .cs_digits import load_digits

        x = load_digits(1)[0]
        A = (
            api.make_operator("inpaint", shape=x.shape, seed=seed)
            if case == "inpaint-digit"
            else api.make_operator("cs", shape=x.shape, m=100, seed=seed)
        )
        return x, A.measure(x, noise_std=0.01, seed=seed), A
    if case.endswith("-nuclei"):
        x = real_nuclei(1)[0][0]
        kind, params, noise = {
            "deblur-nuclei": ("blur", {"sigma": 2.0}, 0.01),
            "denoise-nuclei": ("denoise", {}, 0.1),
            "inpaint-nuclei": ("inpaint", {"seed": seed}, 0.01),
        }[case]
        A = api.make_operator(kind, shape=x.shape, **params)
        return x, A.measure(x, noise_std=noise, seed=seed), A
    if case == "mri-brain":
        from skimage.transform import resize

        from .real_mri import FULL as MRI_FULL
        from .real_mri import held_out_slices

        x = resize(
            held_out_slices(MRI_FULL)[0][1], (sizes.mri_side,) * 2, anti_aliasing=True
        ).astype(np.float32)
        A = api.make_operator(
            "mri", shape=x.shape, acceleration=4, mask="variable-density", seed=seed
        )
        return x, A.measure(x, noise_std=0.005, seed=seed), A
    raise ValueError(f"unknown case {case!r}")


def _timed(fn: Callable[[], np.ndarray], repeats: int) -> tuple[float, np.ndarray]:
    """:func:`._common.timed`, and the last call's output."""
    out: list[Any] = []
    seconds, _ = timed(lambda: out.append(fn()), repeats)
    return seconds, np.asarray(out[-1])


def _grid_best(
    x: np.ndarray,
    solve: Callable[[float], np.ndarray],
    centre: float,
    sizes: Sizes,
    grid: tuple[float, ...] | None = None,
) -> dict[str, Any]:
    """The truth-best weight of ``centre * grid`` (ours: ``sizes.grid``; peers:
    ``sizes.peer_grid``), re-timed ``repeats`` times; ``at_edge``: the best is a grid end."""
    best = None
    grid = sizes.peer_grid if grid is None else grid
    for w in (centre * g for g in grid):
        s = scores(x, np.abs(solve(w)))
        if best is None or s["psnr"] > best["psnr"]:
            best = {**s, "weight": w}
    assert best is not None
    seconds, image = _timed(lambda: solve(best["weight"]), sizes.repeats)
    edge = len(grid) > 1 and best["weight"] in (centre * grid[0], centre * grid[-1])
    return {
        **scores(x, np.abs(image)),
        "seconds": seconds,
        "weight": best["weight"],
        "at_edge": edge,
    }


# -- ours ---------------------------------------------------------------------------------------


def _ours(
    tool: str, case: str, x: np.ndarray, y: np.ndarray, A: Any, sizes: Sizes, seed: int
) -> dict[str, Any]:
    from .. import api

    def rec(method: str, **kw: Any) -> np.ndarray:
        return api.reconstruct(y, A, method, device="cpu", seed=seed, **kw).image

    if tool == "ours-csgm":  # Bora's objective as DeepInverse runs it: no ||z||^2, no gain
        G = api.load_prior("digits-vae")  # loaded once, as DeepInverse's model holds it

        def fn():
            return rec(
                "csgm",
                prior=G,
                restarts=10,
                steps=sizes.csgm_steps,
                lam=0.0,
                fit_gain=False,
            )
    elif tool == "ours-dip":  # all the steps (the held-out stop is past the end)
        fn = lambda: rec("dip", steps=sizes.dip_steps, patience=sizes.dip_steps)  # noqa: E731
    elif tool == "ours-rl":  # the peer's iteration count, and a ladder of fewer

        def rl(n: int) -> np.ndarray:
            return rec("richardson-lucy", steps=n, holdout=0.0, patience=n)

        seconds, image = _timed(lambda: rl(sizes.peer_iters), sizes.repeats)
        ladder = []
        for n in RL_LADDER:
            sec, im = _timed(lambda n=n: rl(n), sizes.repeats)
            ladder.append({"steps": n, "seconds": sec, **scores(x, im)})
        return {**scores(x, image), "seconds": seconds, "ladder": ladder}
    else:  # tv / lasso-wavelet: the truth-best weight, then the ladder of step counts
        method = "tv" if tool == "ours-tv" else "lasso-wavelet"
        lam0 = float(api.reconstruct(y, A, method, device="cpu", seed=seed).params["lam"])
        top = sizes.ladder[-1]
        best = _grid_best(
            x, lambda w: rec(method, lam=w, steps=top, tol=0.0), lam0, sizes, sizes.grid
        )
        ladder = []
        for n in sizes.ladder:
            sec, image = _timed(
                lambda n=n: rec(method, lam=best["weight"], steps=n, tol=0.0), sizes.repeats
            )
            ladder.append({"steps": n, "seconds": sec, **scores(x, image)})
        best["ladder"] = ladder
        best["default"] = {"lam": lam0}
        best["profile"] = step_profile(
            lambda n: rec(method, lam=best["weight"], steps=n, tol=0.0), sizes
        )
        return best
    seconds, image = _timed(fn, sizes.repeats)
    return {**scores(x, image), "seconds": seconds, "mse": float(np.mean((image - x) ** 2))}


def step_profile(solve: Callable[[int], Any], sizes: Sizes, top: int = 5) -> dict[str, Any]:
    """Where a classical solve's time goes: its set-up (a 1-step solve) and, under
    ``torch.profiler``, its torch ops per step between a 1-step and an ``n``-step solve."""
    n = sizes.ladder[len(sizes.ladder) // 2]
    setup, _ = _timed(lambda: solve(1), sizes.repeats)
    per_n, _ = _timed(lambda: solve(n), sizes.repeats)

    one, many = op_times(lambda: solve(1)), op_times(lambda: solve(n))
    diff = {
        k: (many[k][0] - one.get(k, (0, 0))[0], many[k][1] - one.get(k, (0, 0))[1]) for k in many
    }
    calls = sum(c for c, _ in diff.values() if c > 0) / (n - 1)
    rows = sorted(
        ((k, c / (n - 1), 1e6 * t / max(c, 1)) for k, (c, t) in diff.items() if c > 0),
        key=lambda r: -r[1] * r[2],
    )
    return {
        "steps": n,
        "setup_s": setup,
        "ms_per_step": 1e3 * (per_n - setup) / (n - 1),
        "ops_per_step": calls,
        "top": [{"op": k, "per_step": c, "us_per_call": us} for k, c, us in rows[:top]],
    }


# -- the peers ------------------------------------------------------------------------------------


def _deepinv_physics(A: Any) -> Any:
    import deepinv as dinv

    return dinv.physics.LinearPhysics(
        A=lambda v: A(v[:, 0]), A_adjoint=lambda w: A.adjoint(w)[:, None]
    )


def _deepinv(
    tool: str, case: str, x: np.ndarray, y: np.ndarray, A: Any, sizes: Sizes, seed: int
) -> dict[str, Any]:
    import torch
    from deepinv.models import CSGMGenerator, DeepImagePrior

    phys = _deepinv_physics(A)
    yt = torch.from_numpy(y)[None]
    if tool == "deepinv-csgm":
        from .. import api

        G = api.load_prior("digits-vae").eval()

        class Backbone(torch.nn.Module):  # our generator as DeepInverse wants it
            nz = G.latent_dim

            def __init__(self) -> None:
                super().__init__()
                self.G = G

            def forward(self, z: torch.Tensor) -> torch.Tensor:
                return self.G(z.flatten(1)).reshape(z.shape[0], 1, *x.shape)

        model = CSGMGenerator(
            Backbone(), inf_max_iter=sizes.csgm_steps, inf_tol=0.0, inf_lr=0.05
        ).eval()

        def fn() -> np.ndarray:
            best, best_loss = None, float("inf")
            for r in range(10):
                torch.manual_seed(seed + r)
                xh = model(yt, phys).detach()
                loss = float((phys.A(xh) - yt).abs().pow(2).sum())
                if loss < best_loss:
                    best, best_loss = xh, loss
            return best[0, 0].numpy()
    elif tool == "deepinv-dip":
        from ..solvers.dip import DIPNet, dip_depth

        def fn() -> np.ndarray:
            torch.manual_seed(seed)
            net = DIPNet(in_channels=32, out_channels=1, channels=32, depth=dip_depth(x.shape))
            model = DeepImagePrior(
                net, img_size=(32, *x.shape), iterations=sizes.dip_steps, learning_rate=0.01
            )
            return model(yt, phys).detach()[0, 0].numpy()
    else:  # PGD with a TV or wavelet prior
        from deepinv.optim import optim_builder
        from deepinv.optim.data_fidelity import L2
        from deepinv.optim.prior import TVPrior, WaveletPrior

        # (its TV prox is an inner loop of up to 1000 steps by default: 100 keeps the grid
        # affordable and only makes it faster)
        prior = TVPrior(n_it_max=100) if tool == "deepinv-tv" else WaveletPrior(wv="db4", level=3)

        def solve(w: float) -> np.ndarray:
            model = optim_builder(
                "PGD",
                prior=prior,
                data_fidelity=L2(),
                max_iter=sizes.peer_iters,
                params_algo={"stepsize": 1.0, "lambda": w},
                early_stop=True,
            )
            with torch.no_grad():
                return model(yt, phys)[0, 0].numpy()

        return _grid_best(x, solve, PEER_WEIGHTS[tool, case], sizes)
    seconds, image = _timed(fn, sizes.repeats)
    return {**scores(x, image), "seconds": seconds, "mse": float(np.mean((image - x) ** 2))}


def _sigpy(
    tool: str, case: str, x: np.ndarray, y: np.ndarray, A: Any, sizes: Sizes, seed: int
) -> dict[str, Any]:
    import sigpy as sp
    from sigpy.mri.app import L1WaveletRecon, TotalVariationRecon

    mps = np.ones((1, *x.shape), np.complex64)
    weights = A.mask.cpu().numpy().astype(np.float32) if hasattr(A.mask, "cpu") else A.mask
    App = TotalVariationRecon if tool == "sigpy-tv" else L1WaveletRecon

    def solve(w: float) -> np.ndarray:
        return App(
            y[None].astype(np.complex64),
            mps,
            w,
            weights=weights,
            max_iter=sizes.peer_iters,
            device=sp.cpu_device,
            show_pbar=False,
        ).run()

    return _grid_best(x, solve, PEER_WEIGHTS[tool, case], sizes)


def _skimage(
    tool: str, case: str, x: np.ndarray, y: np.ndarray, A: Any, sizes: Sizes, seed: int
) -> dict[str, Any]:
    from skimage.restoration import denoise_tv_chambolle, inpaint_biharmonic, richardson_lucy

    if tool == "skimage-tv":
        return _grid_best(
            x, lambda w: denoise_tv_chambolle(y, weight=w), PEER_WEIGHTS[tool, case], sizes
        )
    if tool == "skimage-rl":
        psf = A.psf.cpu().numpy() if hasattr(A.psf, "cpu") else np.asarray(A.psf)

        def fn():
            return richardson_lucy(
                np.clip(y, 0, None),
                psf,
                num_iter=sizes.peer_iters,
                clip=False,
            )
    else:
        mask = A.mask.cpu().numpy() if hasattr(A.mask, "cpu") else np.asarray(A.mask)
        fn = lambda: inpaint_biharmonic(y, ~mask.astype(bool))  # noqa: E731
    seconds, image = _timed(fn, sizes.repeats)
    return {**scores(x, image), "seconds": seconds}


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
        ["-m", "napari_genprior.bench.peers", case, tool, str(threads), str(int(quick)), str(seed)],
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
        f"PSNR (within {EQUAL_DB} dB) at our best weight.\n"
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
