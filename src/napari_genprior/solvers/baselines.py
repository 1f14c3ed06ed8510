"""Classical baselines. ``adjoint``: the back-projection A^T y (zero-filled for inpainting)."""

from __future__ import annotations

from .common import Problem, SolverGen, Update


def solve_adjoint(problem: Problem) -> SolverGen:
    """Back-projection ``A^T y``: what the measurement looks like as an image, with no prior."""
    if not problem.A.linear:
        raise ValueError(f"method 'adjoint' needs a linear operator; {problem.A.kind!r} is not.")
    x = problem.A.adjoint(problem.y)
    yield Update(1, 1, float((problem.A(x) - problem.y).abs().pow(2).mean()), problem.to_numpy(x))
    return x, {}
