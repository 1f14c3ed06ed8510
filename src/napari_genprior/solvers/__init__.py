"""Reconstruction methods. Each is a generator solver (see :mod:`.common`) in :data:`METHODS`."""

from __future__ import annotations

from dataclasses import dataclass

from .adaptive import solve_ia
from .baselines import solve_adjoint
from .cg import solve_cg
from .classical import solve_lasso_dct, solve_lasso_wavelet
from .common import Problem, Reconstruction, Solver, Update
from .dip import solve_dip
from .latent import solve_csgm, solve_sparse_gen, solve_twist
from .phase_baselines import solve_copram, solve_sparta, solve_twf
from .richardson_lucy import solve_richardson_lucy
from .score import solve_score
from .tv import solve_tv


@dataclass(frozen=True)
class Method:
    """A reconstruction method: its solver and what it needs."""

    name: str
    solver: Solver
    needs_prior: bool
    iterative: bool
    description: str
    needs_linear: bool = False
    phase_only: bool = False
    #: Estimates complex images itself (multi-coil MRI); the others get a magnitude with the
    #: smooth phase of the data (:class:`~napari_genprior.operators.mri.FixedPhase`).
    complex_images: bool = False
    #: Runs several starts at once (``restarts=``); None: the methods that need a prior do.
    restarts: bool | None = None

    @property
    def takes_restarts(self) -> bool:
        return self.needs_prior if self.restarts is None else self.restarts


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            "csgm",
            solve_csgm,
            needs_prior=True,
            iterative=True,
            description="CSGM: min_z ||A G(z) - y||^2 + lam ||z||^2, batched restarts "
            "(the Deep Phase Retrieval amplitude loss for 'phase')",
        ),
        Method(
            "ia",
            solve_ia,
            needs_prior=True,
            iterative=True,
            description="image-adaptive (Hussein et al. 2020): csgm, then z and a private "
            "copy of the prior's weights fitted together; stops on held-out "
            "measurements",
        ),
        Method(
            "score",
            solve_score,
            needs_prior=True,
            iterative=True,
            needs_linear=True,
            restarts=False,  # deterministic: every start would give the same image
            description="score-based (diffusion) prior: annealed denoising steps pulled back "
            "to the measurements (DiffPIR); noise and stopping from held-out measurements",
        ),
        Method(
            "twist",
            solve_twist,
            needs_prior=True,
            iterative=True,
            description="gradient descent with the twist (jump to -z when f(-z) < f(z))",
        ),
        Method(
            "sparse-gen",
            solve_sparse_gen,
            needs_prior=True,
            iterative=True,
            description="Sparse-Gen: G(z) plus a sparse deviation, for images outside "
            "the prior's range",
        ),
        Method(
            "dip",
            solve_dip,
            needs_prior=False,
            iterative=True,
            description="Deep Image Prior: an untrained network fitted to this one measurement",
        ),
        Method(
            "adjoint",
            solve_adjoint,
            needs_prior=False,
            iterative=False,
            description="back-projection A^T y (zero-filled; SENSE-combined for multi-coil "
            "MRI), the no-prior baseline",
            needs_linear=True,
            complex_images=True,
        ),
        Method(
            "cg",
            solve_cg,
            needs_prior=False,
            iterative=True,
            needs_linear=True,
            complex_images=True,
            description="least squares by conjugate gradients (SENSE for multi-coil MRI); "
            "iteration count by held-out measurements",
        ),
        Method(
            "lasso-dct",
            solve_lasso_dct,
            needs_prior=False,
            iterative=True,
            needs_linear=True,
            complex_images=True,
            description="L1 in an orthonormal DCT (FISTA); weight by held-out measurements",
        ),
        Method(
            "lasso-wavelet",
            solve_lasso_wavelet,
            needs_prior=False,
            iterative=True,
            needs_linear=True,
            complex_images=True,
            description="L1 in orthonormal Daubechies wavelets (FISTA); weight by held-out "
            "measurements",
        ),
        Method(
            "tv",
            solve_tv,
            needs_prior=False,
            iterative=True,
            needs_linear=True,
            complex_images=True,
            description="total variation (primal-dual); weight by held-out measurements",
        ),
        Method(
            "richardson-lucy",
            solve_richardson_lucy,
            needs_prior=False,
            iterative=True,
            needs_linear=True,
            description="Richardson-Lucy deconvolution (Poisson likelihood, non-negative); "
            "iteration count by held-out measurements",
        ),
        Method(
            "twf",
            solve_twf,
            needs_prior=False,
            iterative=True,
            phase_only=True,
            description="truncated Wirtinger flow (Chen-Candes), spectral initialisation",
        ),
        Method(
            "sparta",
            solve_sparta,
            needs_prior=False,
            iterative=True,
            phase_only=True,
            description="SPARTA: sparse truncated amplitude flow (Wang et al.)",
        ),
        Method(
            "copram",
            solve_copram,
            needs_prior=False,
            iterative=True,
            phase_only=True,
            description="CoPRAM: compressive phase retrieval with alternating minimisation "
            "(Jagatap-Hegde)",
        ),
    )
}

__all__ = ["METHODS", "Method", "Problem", "Reconstruction", "Update"]
