"""Reconstruction methods. Each is a generator solver (see :mod:`.common`) in :data:`METHODS`."""

from __future__ import annotations

from dataclasses import dataclass

from .baselines import solve_adjoint
from .common import Problem, Reconstruction, Solver, Update
from .dip import solve_dip


@dataclass(frozen=True)
class Method:
    """A reconstruction method: its solver and what it needs."""

    name: str
    solver: Solver
    needs_prior: bool
    iterative: bool
    description: str
    needs_linear: bool = False


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("dip", solve_dip, needs_prior=False, iterative=True,
               description="Deep Image Prior: an untrained network fitted to this one measurement"),
        Method("adjoint", solve_adjoint, needs_prior=False, iterative=False,
               description="back-projection A^T y (zero-filled), the no-prior baseline",
               needs_linear=True),
    )
}

__all__ = ["METHODS", "Method", "Problem", "Reconstruction", "Update"]
