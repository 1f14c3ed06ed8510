"""Shared helpers of the phase-retrieval baselines (see the package docstring).

Option checks, the problem set-up, power iterations, support estimates, and what ``twf`` and
``sparta`` share beyond that: the step-size safeguard (:class:`_Safeguard`) and the safeguarded
gradient loop around it (:func:`_guarded_descent`). Every solver starts with
:func:`_zero_start` when the magnitudes are all zero and reports each step with
:func:`_report`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ..common import Problem, Update

_TINY = 1e-30


def default_sparsity(n: int, m: int) -> int:
    """The default sparsity of ``sparta`` and ``copram``: ``min(n // 4, m // (2 ln n))``, >= 1.

    Parameters
    ----------
    n : int
        Number of pixels.
    m : int
        Number of (real or complex) magnitude measurements.

    Returns
    -------
    int
        The sparsity ``k`` (depends on ``n`` and ``m`` only).
    """
    return max(1, min(n // 4, int(m / (2 * math.log(max(n, 2))))))


def _check_options(steps: int, tol: float, preview_every: int, **positive: float) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}.")
    if isinstance(preview_every, bool) or not isinstance(preview_every, int) or preview_every < 1:
        raise ValueError(f"preview_every must be a positive integer, got {preview_every!r}.")
    if not (isinstance(tol, (int, float)) and math.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol must be a non-negative number, got {tol!r}.")
    for name, value in positive.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value <= 0
        ):
            raise ValueError(f"{name} must be a positive number, got {value!r}.")


def _check_count(name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
    return value


def _setup(problem: Problem) -> tuple[Any, torch.Tensor, int, int, bool]:
    """The linear part, the float32 magnitudes, ``n``, ``m`` and whether ``L`` is complex."""
    A = problem.A
    L = getattr(A, "linear_part", None)
    if A.kind != "phase" or L is None:
        raise ValueError(f"phase-retrieval baselines need a 'phase' operator, got {A.kind!r}.")
    y = problem.y.to(device=problem.device, dtype=torch.float32).abs()
    return L, y, int(A.size), int(y.numel()), bool(L.complex_measurements)


def _phase(u: torch.Tensor) -> torch.Tensor:
    """``u / |u|`` (the sign for real ``u``), 1 where ``u == 0``."""
    if u.is_complex():
        mag = u.abs()
        return torch.where(mag > 0, u / mag.clamp_min(_TINY), torch.ones_like(u))
    return torch.where(u >= 0, torch.ones_like(u), -torch.ones_like(u))


def _misfit(Lz: torch.Tensor, y: torch.Tensor) -> float:
    return float((Lz.abs() - y).pow(2).mean())


def _rel_change(new: torch.Tensor, old: torch.Tensor) -> float:
    return float((new - old).norm() / old.norm().clamp_min(_TINY))


def _power(
    apply: Callable[[torch.Tensor], torch.Tensor],
    v: torch.Tensor,
    iters: int,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Leading eigenvector of the PSD map ``apply`` by power iterations from ``v``.

    With ``mask`` the iterations stay on its support (``v <- P apply(P v)``). Stops early when the
    iterate changes by less than 1e-7 (in norm, up to sign).
    """
    if mask is not None:
        v = v * mask
    v = v / v.norm().clamp_min(_TINY)
    for _ in range(iters):
        w = apply(v)
        if mask is not None:
            w = w * mask
        norm = w.norm()
        if float(norm) == 0.0:
            break
        w = w / norm
        done = float(torch.minimum((w - v).norm(), (w + v).norm())) < 1e-7
        v = w
        if done:
            break
    return v


def _random_start(problem: Problem, shape: tuple[int, ...]) -> torch.Tensor:
    gen = torch.Generator(device="cpu").manual_seed(problem.seed)
    return torch.randn(shape, generator=gen, dtype=torch.float32).to(problem.device)


def _top_k_mask(score: torch.Tensor, k: int) -> torch.Tensor:
    """A float mask (shape of ``score``) on its ``k`` largest entries."""
    flat = score.reshape(-1)
    mask = torch.zeros_like(flat)
    if k >= flat.numel():
        return torch.ones_like(score)
    mask[torch.topk(flat, k).indices] = 1.0
    return mask.reshape(score.shape)


def _hard_threshold(z: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` entries of largest magnitude (``H_k``)."""
    if k >= z.numel():
        return z
    return z * _top_k_mask(z.abs(), k)


def _dense_matrix(L: Any, like: torch.Tensor) -> torch.Tensor | None:
    """The ``m x n`` matrix of a dense Gaussian linear part, or None (coded diffraction)."""
    buffers = getattr(L, "_buffers", {})
    if "A" in buffers and not L.complex_measurements:
        return L._buffer("A", like)
    return None


def _sparsity(k: Any, n: int, m: int) -> tuple[int, dict[str, Any]]:
    """The sparsity of ``sparta`` and ``copram`` (``k`` capped at ``n``, or
    :func:`default_sparsity` for None) and the start of their record, which says which rule."""
    if k is None:
        k_used = default_sparsity(n, m)
    else:
        k_used = min(_check_count("sparsity", k), n)
    return k_used, {
        "sparsity": k_used,
        "sparsity_rule": "given" if k is not None else "min(n // 4, m // (2 ln n))",
    }


def _estimate_support(
    problem: Problem, L: Any, y: torch.Tensor, k: int, init_iters: int, weights: torch.Tensor
) -> tuple[torch.Tensor, str]:
    """Support estimate (float mask over the image) of size ``k``, and how it was found.

    Gaussian matrix: the ``k`` largest marginals ``(1/m) sum_i y_i^2 a_ij^2``. Otherwise the
    ``k`` largest entries of the leading eigenvector of ``L^T(weights * L(.))`` on all pixels.
    """
    shape = problem.shape
    n = int(math.prod(shape))
    if k >= n:
        return torch.ones(shape, device=problem.device), "all"
    M = _dense_matrix(L, y)
    if M is not None:
        marginals = (y.pow(2) @ M.pow(2)) / y.numel()
        return _top_k_mask(marginals.reshape(shape), k), "marginals"
    v = _power(lambda u: L.adjoint(weights * L(u)), _random_start(problem, shape), init_iters)
    return _top_k_mask(v.abs(), k), "dense-spectral"


def _finish(step: int, steps: int, preview_every: int, done: bool) -> bool:
    return step % preview_every == 0 or step == steps or done


class _Safeguard:
    """Step-size safeguard of the gradient methods (``twf``, ``sparta``).

    A step is rejected, and the step size halved, when the amplitude misfit of the new estimate
    is not finite or exceeds a reference: with ``slack=None`` (monotone, ``sparta``) the current
    misfit times ``1 + 1e-4``; with a ``slack`` (``twf``, which minimises a truncated intensity
    loss, not the amplitude misfit, and may raise the latter for a while) ``slack`` times the
    smallest misfit so far. Both add a float32 round-off floor ``1e-10 mean(y^2)``. After 30
    rejections in a row the run counts as stalled.

    Measured on 16x16 images (20-40 seeds each): it never triggered for ``twf`` with ``m >= 3n``
    (Gaussian) or ``masks >= 2``, nor for ``sparta`` given the true sparsity with ``m >= n``, so
    there the iterates are exactly the papers'; it stops the divergence of ``twf`` with
    ``m < n`` and the limit cycles of ``sparta`` with ``mu = 1`` and a sparsity well above the
    true one.
    """

    def __init__(
        self, enabled: bool, mu: float, loss: float, y: torch.Tensor, slack: float | None = None
    ):
        self.enabled, self.step_size, self.slack = enabled, float(mu), slack
        self.loss = self.best = loss
        self.floor = 1e-10 * float(y.pow(2).mean())
        self.halvings = self.in_a_row = 0

    def accept(self, loss: float) -> bool:
        """Whether to take the step that gives ``loss``; halves the step size when not."""
        if self.slack is None:
            ref = self.loss * (1 + 1e-4) + self.floor
        else:
            ref = self.slack * self.best + self.floor
        if not self.enabled or (math.isfinite(loss) and loss <= ref):
            self.loss, self.in_a_row = loss, 0
            self.best = min(self.best, loss)
            return True
        self.step_size *= 0.5
        self.halvings += 1
        self.in_a_row += 1
        return False

    @property
    def stalled(self) -> bool:
        return self.in_a_row >= 30

    def step(
        self,
        z: torch.Tensor,
        Lz: torch.Tensor,
        z_new: torch.Tensor,
        Lz_new: torch.Tensor,
        y: torch.Tensor,
        tol: float,
    ):
        """Take the candidate if :meth:`accept` allows it: ``(z, Lz, converged)``."""
        if self.accept(_misfit(Lz_new, y)):
            return z_new, Lz_new, _rel_change(z_new, z) < tol
        return z, Lz, self.stalled

    def record(self) -> dict[str, Any]:
        return {"final_step_size": self.step_size, "step_halvings": self.halvings}


def _zero_start(problem: Problem, steps: int, extra: dict[str, Any], **record: Any):
    """The whole run when the magnitudes are all zero: one update with the zero image.

    Use as ``return (yield from _zero_start(...))``; returns ``(z, extra)`` with ``extra``
    updated by ``iterations``, ``converged`` and ``record``.
    """
    z = torch.zeros(problem.shape, device=problem.device)
    yield Update(1, steps, 0.0, problem.to_numpy(z))
    extra.update(iterations=1, converged=True, **record)
    return z, extra


def _report(
    problem: Problem,
    z: torch.Tensor,
    step: int,
    steps: int,
    preview_every: int,
    converged: bool,
    loss: float,
    extra: dict[str, Any],
):
    """Yield the :class:`Update` of ``step`` (a preview on :func:`_finish` steps).

    Use as ``if (yield from _report(...)): break``; returns True when the consumer sent back
    ``False`` (the run is cancelled; ``extra["cancelled_at"]`` records the step).
    """
    preview = problem.to_numpy(z) if _finish(step, steps, preview_every, converged) else None
    keep_going = yield Update(step, steps, loss, preview)
    if keep_going is False:
        extra["cancelled_at"] = step
        return True
    return False


def _guarded_descent(
    problem: Problem,
    L: Any,
    y: torch.Tensor,
    z: torch.Tensor,
    candidate: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor],
    *,
    backtrack: bool,
    mu: float,
    slack: float | None = None,
    steps: int,
    tol: float,
    preview_every: int,
    extra: dict[str, Any],
):
    """The safeguarded gradient loop of ``twf`` and ``sparta``, from ``z``.

    Each step proposes ``candidate(z, L z, step_size)``, which a :class:`_Safeguard`
    (``backtrack``, initial step size ``mu``, ``slack``) takes or rejects, halving the step
    size; the loop stops after ``steps``, on convergence (relative change below ``tol``, or a
    stalled safeguard) or when the consumer cancels.

    Use as ``return (yield from _guarded_descent(...))``; returns ``(z, extra)`` with
    ``extra`` updated by ``iterations``, ``converged`` and the safeguard's record.
    """
    Lz = L(z)
    guard = _Safeguard(backtrack, mu, _misfit(Lz, y), y, slack=slack)
    step, converged = 0, False
    for step in range(1, steps + 1):
        z_new = candidate(z, Lz, guard.step_size)
        Lz_new = L(z_new)
        z, Lz, converged = guard.step(z, Lz, z_new, Lz_new, y, tol)
        if (
            yield from _report(problem, z, step, steps, preview_every, converged, guard.loss, extra)
        ):
            break
        if converged:
            break
    extra.update(iterations=step, converged=converged, **guard.record())
    return z, extra
