"""Phase-retrieval baselines: twf, sparta, copram.  (Being written; see issue 4.)"""

from __future__ import annotations

from .common import Problem, SolverGen


def solve_twf(problem: Problem, *, steps: int = 500, preview_every: int = 10) -> SolverGen:
    raise NotImplementedError("twf is not written yet")
    yield


def solve_sparta(problem: Problem, *, steps: int = 500, preview_every: int = 10) -> SolverGen:
    raise NotImplementedError("sparta is not written yet")
    yield


def solve_copram(problem: Problem, *, steps: int = 500, preview_every: int = 10) -> SolverGen:
    raise NotImplementedError("copram is not written yet")
    yield
