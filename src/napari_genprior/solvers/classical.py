"""Classical sparsity baselines: lasso-dct, lasso-wavelet, tv.  (Being written; see issue 4.)"""

from __future__ import annotations

from .common import Problem, SolverGen


def solve_lasso_dct(problem: Problem, *, steps: int = 300, preview_every: int = 10) -> SolverGen:
    raise NotImplementedError("lasso-dct is not written yet")
    yield


def solve_lasso_wavelet(problem: Problem, *, steps: int = 300, preview_every: int = 10) -> SolverGen:
    raise NotImplementedError("lasso-wavelet is not written yet")
    yield


def solve_tv(problem: Problem, *, steps: int = 300, preview_every: int = 10) -> SolverGen:
    raise NotImplementedError("tv is not written yet")
    yield
