"""The tools of :mod:`.peers`, one runner per family: ours (with its ladder of step counts and
its per-step profile) and DeepInverse, SigPy and scikit-image, each given the same data."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ._common import op_times, scores, timed
from ._peers_cases import PEER_WEIGHTS, RL_LADDER, Sizes

# -- timing, and the truth-best weight of a grid ----------------------------------------------


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
    from napari_genprior import api

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
    else:  # tv / lasso-wavelet: a ladder of step counts, each at its truth-best weight
        method = "tv" if tool == "ours-tv" else "lasso-wavelet"
        # deconvolution: the iterates `tv` chooses among by default (FISTA's, rule="early")
        kw = {"rule": "early"} if method == "tv" and A.kind == "blur" else {}
        lam0 = float(api.reconstruct(y, A, method, device="cpu", seed=seed).params["lam"])
        ladder = []
        for n in sizes.ladder:
            # as a peer gets its truth-best weight for its own iteration count, each rung gets
            # ours for its step count (the best weight after 800 steps, a small one for
            # lasso-wavelet, is far from the best after 25)
            rung = _grid_best(
                x,
                lambda w, n=n: rec(method, lam=w, steps=n, tol=0.0, **kw),
                lam0,
                sizes,
                sizes.grid,
            )
            ladder.append({"steps": n, **rung})
        best = dict(ladder[-1])  # the longest rung: what ours reaches
        best["ladder"] = ladder
        best["default"] = {"lam": lam0}
        best["profile"] = step_profile(
            lambda n: rec(method, lam=best["weight"], steps=n, tol=0.0, **kw), sizes
        )
        return best
    seconds, image = _timed(fn, sizes.repeats)
    return {**scores(x, image), "seconds": seconds, "mse": float(np.mean((image - x) ** 2))}


def step_profile(solve: Callable[[int], Any], sizes: Sizes, top: int = 5) -> dict[str, Any]:
    """Where a classical solve's time goes: its set-up (a 1-step solve) and, under
    ``torch.profiler``, its torch ops per step between a 1-step and an ``n``-step solve (``n``:
    50, or the ladder's last rung if shorter)."""
    n = min(50, sizes.ladder[-1])
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
        from napari_genprior import api

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
        from napari_genprior.solvers.dip import DIPNet, dip_depth

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
