"""Classical baselines. ``adjoint``: the back-projection A^T y (zero-filled for inpainting)."""

from __future__ import annotations

from .common import Problem, SolverGen, Update


def solve_adjoint(problem: Problem) -> SolverGen:
    """Back-projection ``A^T y``: what the measurement looks like as an image, with no prior."""
    x = problem.A.adjoint(problem.y)
    yield Update(1, 1, float((problem.A(x) - problem.y).pow(2).mean()), problem.to_numpy(x))
    return x, {}
