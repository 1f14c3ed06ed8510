"""What every solver shares: the problem it is handed, the updates it yields, the result.

A solver is a generator function ``solve(problem, **options)``. It yields :class:`Update` objects
as it works (every step; ``image`` only every ``preview_every`` steps) and RETURNS
``(image_tensor, extra_params)``: the estimate of ``x / problem.scale`` with the operator's image
shape, and a JSON-serialisable dict of what it chose (stopping step, regularisation weight...);
``extra_params["spread"]`` may hold a tensor (per-pixel std over restarts, normalised units),
which the API moves to ``Reconstruction.spread``. The consumer may ``send(False)`` into it to stop early: the
solver then returns its best result so far. This one protocol serves ``reconstruct(callback=...)``,
a napari ``thread_worker`` (``worker.send(False)``) and a terminal progress bar alike.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..operators import Operator


@dataclass(frozen=True)
class Update:
    """Progress of a running reconstruction.

    Attributes
    ----------
    step, total : int
        Steps done and the maximum number of steps (a solver may stop earlier).
    loss : float
        The solver's current objective (measurement misfit, in normalised units).
    image : ndarray or None
        A preview of the current estimate in the image's units, or None on steps without one.
    plane, planes : int
        Which plane of a stack is being reconstructed, and how many there are
        (:func:`napari_genprior.api.iter_reconstruct_stack`); 0 and 1 for a single image.

    Examples
    --------
    >>> import numpy as np
    >>> import napari_genprior as ngp
    >>> A = ngp.make_operator("denoise", shape=(16, 16))
    >>> run = ngp.iter_reconstruct(np.ones((16, 16)), A, method="tv", device="cpu")
    >>> update = next(run)
    >>> type(update).__name__, update.step, update.planes
    ('Update', 1, 1)
    """

    step: int
    total: int
    loss: float
    image: np.ndarray | None = None
    plane: int = 0
    planes: int = 1


@dataclass
class Reconstruction:
    """The result of :func:`napari_genprior.reconstruct`.

    Attributes
    ----------
    image : ndarray
        The reconstruction, float32, of the operator's image shape, in the units of the data
        (complex64 for operators with complex images: multi-coil ``mri``).
    spread : ndarray or None
        Per-pixel standard deviation over restarts (None with a single restart).
    history : list of float
        Objective per step.
    seconds : float
        Wall-clock time of the solve.
    method : str
        Method name.
    params : dict
        JSON-serialisable: method, operator spec and every option that reproduces the result.
    cancelled : bool
        True when the run was stopped early by the caller (the result is the best so far).

    Examples
    --------
    >>> import numpy as np
    >>> import napari_genprior as ngp
    >>> A = ngp.make_operator("inpaint", shape=(16, 16), fraction=0.5, seed=0)
    >>> rec = ngp.reconstruct(A.measure(np.ones((16, 16)), seed=0), A, method="tv",
    ...                       device="cpu", seed=3)
    >>> rec.method, rec.params["seed"], rec.params["operator"]["kind"], rec.spread is None
    ('tv', 3, 'inpaint', True)
    >>> len(rec.history) > 0 and rec.seconds > 0  # the objective per step, the time taken
    True
    """

    image: np.ndarray
    spread: np.ndarray | None
    history: list[float]
    seconds: float
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    cancelled: bool = False


@dataclass
class Problem:
    """A measurement prepared for a solver: tensors on one device, normalised to unit scale.

    ``y`` is the measurement divided by ``scale``; the solver estimates ``x / scale`` and
    :meth:`to_numpy` converts back to the data's units.
    """

    y: torch.Tensor
    A: Operator
    scale: float
    device: torch.device
    seed: int
    observed: torch.Tensor | None  # bool over the measurement entries that carry data
    holdout: torch.Tensor | None = None  # bool: the entries that may be held out (None: observed)
    prior: Any = None  # the generator (torch.nn.Module on ``device``) for methods that use one
    restarts: int = 1
    #: The field of view within the solvers' domain (``Operator.for_solver``); None: all of it.
    crop: tuple[slice, ...] | None = None
    #: Per-entry inverse noise variance, mean 1 (a camera's Poisson-Gaussian noise), that the
    #: weighted least-squares fits of ``tv`` and the lassos weigh entries by; None: all alike.
    precision: torch.Tensor | None = None

    def start(self) -> torch.Tensor | None:
        """A plausible image on the solvers' domain to start from where the domain is larger
        than the measurement (a blur's unknown border: the measurement mirrored over the
        margins), else None. Normalised units, shape :attr:`shape`."""
        extend = getattr(self.A, "extend", None)
        return None if extend is None else extend(self.y.real)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.A.shape

    @property
    def dtype(self) -> torch.dtype:
        """The images' dtype: complex64 for operators with complex images, else float32."""
        return torch.complex64 if self.A.complex_images else torch.float32

    def to_numpy(self, x: torch.Tensor) -> np.ndarray:
        """An estimate in the data's units, cut to the field of view, as numpy."""
        if self.crop is not None:
            x = x[(..., *self.crop)]
        out = x.detach().to("cpu", torch.complex64 if x.is_complex() else torch.float32).numpy()
        return (out * self.scale).astype(out.dtype)


SolverGen = Generator[Update, "bool | None", "tuple[torch.Tensor, dict[str, Any]]"]
Solver = Callable[..., SolverGen]


def draw_holdout(problem: Problem, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(observed, held)``: bool masks over the measurement entries; ``held`` is a random
    ``fraction`` of the observed entries (of :attr:`Problem.holdout` where the operator names
    candidates), drawn with a generator seeded by ``problem.seed``."""
    y = problem.y
    observed = (
        torch.ones(y.shape, dtype=torch.bool, device=y.device)
        if problem.observed is None
        else problem.observed.to(device=y.device, dtype=torch.bool)
    )
    candidates = (
        observed
        if problem.holdout is None
        else observed & problem.holdout.to(device=y.device, dtype=torch.bool)
    )
    held = torch.zeros_like(observed)
    if fraction > 0:
        idx = torch.nonzero(candidates.flatten().cpu()).flatten()
        n_held = max(1, int(round(fraction * int(observed.sum()))))
        n_held = min(n_held, idx.numel())
        gen = torch.Generator(device="cpu").manual_seed(problem.seed)
        pick = idx[torch.randperm(idx.numel(), generator=gen)[:n_held]]
        held.view(-1)[pick.to(held.device)] = True
    return observed, held


def split_holdout(
    problem: Problem, fraction: float, min_observed: int = 200
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(train, held)``: 0/1 masks (the measurement's real dtype) of the observed entries to
    fit and of a random ``fraction`` of them held out (:func:`draw_holdout`); nothing is held
    out when fewer than ``min_observed`` entries are observed."""
    y = problem.y
    n_obs = y.numel() if problem.observed is None else int(problem.observed.sum())
    observed, held = draw_holdout(problem, fraction if n_obs >= min_observed else 0.0)
    real = y.real.dtype
    return (observed & ~held).to(real), held.to(real)


def real_normal(A: Operator, weight: torch.Tensor, rho: float = 0.0):
    """``d -> Re A^T W A d + rho d``: the normal operator of a weighted least-squares fit of a
    real image (plus a Tikhonov term), for :func:`conjugate_gradients`."""

    def normal(d: torch.Tensor) -> torch.Tensor:
        out = A.adjoint(A(d) * weight)
        out = out.real if out.is_complex() else out
        return out + rho * d if rho else out

    return normal


def conjugate_gradients(
    normal: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    r: torch.Tensor,
    iterations: int,
    tol: float,
) -> torch.Tensor:
    """Conjugate gradients on ``normal(x) = b`` for real images ``(B, ...)``, each batch member
    its own system: from ``x`` with residual ``r = b - normal(x)``; stops after ``iterations``
    or once every member's squared residual is below ``tol`` times its first."""
    shape = (-1,) + (1,) * (r.ndim - 1)
    p = r.clone()
    rs = r.square().flatten(1).sum(1)
    rs0 = rs.clone()
    for _ in range(iterations):
        Np = normal(p)
        alpha = rs / (p * Np).flatten(1).sum(1).clamp_min(1e-30)
        x = x + alpha.reshape(shape) * p
        r = r - alpha.reshape(shape) * Np
        rs_new = r.square().flatten(1).sum(1)
        if bool((rs_new <= tol * rs0.clamp_min(1e-30)).all()):
            break
        p = r + (rs_new / rs.clamp_min(1e-30)).reshape(shape) * p
        rs = rs_new
    return x
