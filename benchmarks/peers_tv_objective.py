"""Is DeepInverse's better TV deblurring (bench peers) a better TV solution? (issue 18)

Solves the nuclei deblurring case of ``bench peers`` with DeepInverse's PGD + ``TVPrior`` and with
our ``tv`` at the same weight, and scores both with one objective, 1/2 ||A x - y||^2 + lam TV(x)
(isotropic TV, forward differences). Needs DeepInverse (see docs/benchmarks.md for the
environment): ``python benchmarks/peers_tv_objective.py``.
"""

import time

import numpy as np
import torch

from genprior_bench._common import scores
from genprior_bench._peers_cases import FULL, case_data
from genprior_bench._peers_tools import _deepinv_physics
from napari_genprior import api
from napari_genprior.solvers._classical_ops import gradient

LAM = 0.002  # DeepInverse's truth-best weight in benchmarks/results/peers.json


def main() -> None:
    from deepinv.optim import optim_builder
    from deepinv.optim.data_fidelity import L2
    from deepinv.optim.prior import TVPrior

    torch.set_num_threads(1)
    x, y, A = case_data("deblur-nuclei", FULL, 0)

    def objective(image: np.ndarray) -> float:
        t = torch.from_numpy(np.asarray(image, np.float32))[None]
        residual = A(t)[0].numpy() - y
        tv = float(gradient(t, 2).pow(2).sum(1).sqrt().sum())
        return 0.5 * float((residual**2).sum()) + LAM * tv

    def report(who: str, image: np.ndarray, seconds: float) -> None:
        psnr = scores(x, image)["psnr"]
        print(f"{who}: {psnr:.2f} dB, objective {objective(image):.5f} ({seconds:.0f} s)")

    phys, yt = _deepinv_physics(A), torch.from_numpy(y)[None]
    for iters, inner in ((100, 100), (400, 300)):
        t0 = time.perf_counter()
        model = optim_builder(
            "PGD",
            prior=TVPrior(n_it_max=inner),
            data_fidelity=L2(),
            max_iter=iters,
            params_algo={"stepsize": 1.0, "lambda": LAM},
            early_stop=iters == 100,  # as bench peers runs it
        )
        with torch.no_grad():
            image = model(yt, phys)[0, 0].numpy()
        report(f"DeepInverse PGD, {iters} steps ({inner} inner)", image, time.perf_counter() - t0)
    # ours solves in units of y / scale: the same problem has the weight LAM / scale there
    scale = api.reconstruct(y, A, "tv", device="cpu", lam=1e-3, steps=1).params["scale"]
    for steps in (100, 800, 3000):
        t0 = time.perf_counter()
        rec = api.reconstruct(y, A, "tv", device="cpu", lam=LAM / scale, steps=steps, tol=0.0)
        report(f"ours tv, {steps} steps", rec.image, time.perf_counter() - t0)


if __name__ == "__main__":
    main()
