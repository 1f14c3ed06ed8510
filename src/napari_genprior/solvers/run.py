"""Running a method: the problem on the device, the solver loop, and what to do when memory runs
out (smaller chunks of the mosaic, then the CPU). :func:`napari_genprior.api.iter_reconstruct`
checks the arguments and calls :func:`run_method`."""

from __future__ import annotations

import copy
import time
from collections.abc import Generator

import torch

from .._version import __version__
from .common import Problem, Reconstruction, Update


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is running out of memory (CUDA, MPS, or the CPU allocator)."""
    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    text = str(exc).lower()
    return isinstance(exc, (oom, MemoryError)) or (
        isinstance(exc, RuntimeError)
        and ("out of memory" in text or "can't allocate memory" in text)
    )  # CUDA/MPS; CPU allocator


def make_problem(y, A, dev, seed, prior, restarts, precision=None) -> Problem:
    A, y = A.compacted(y)
    observed, candidates = A.observed(), A.holdout_candidates()
    if candidates is observed:
        candidates = None
    solver_op, crop = A.for_solver()  # a blur with an unknown border: the extended scene
    op = solver_op.copy().to(dev)
    y_t = torch.as_tensor(
        y, dtype=torch.complex64 if A.complex_measurements else torch.float32, device=dev
    )
    scale = op.estimate_scale(y_t)
    G = None
    if prior is not None:
        G = copy.deepcopy(prior).to(dev).eval().requires_grad_(False)
    return Problem(
        prior=G,
        restarts=restarts,
        y=y_t / scale,
        A=op,
        scale=scale,
        device=dev,
        seed=seed,
        observed=None if observed is None else torch.as_tensor(observed, device=dev),
        holdout=None if candidates is None else torch.as_tensor(candidates, device=dev),
        crop=crop,
        precision=None if precision is None else torch.as_tensor(precision, device=dev),
    )


def run_method(
    y, A, m, dev, seed, options, prior=None, restarts=1, prior_info=None, precision=None
) -> Generator[Update, bool | None, Reconstruction]:
    """Run method ``m`` on ``y``, ``A`` (checked by the caller) as a generator of updates
    that returns the :class:`Reconstruction`.

    On running out of accelerator memory, start again with the mosaic's patches in
    smaller chunks (down to 16), then on the CPU, saying so in ``params["notes"]``."""
    notes: list[str] = []
    history: list[float] = []
    t0 = time.perf_counter()
    cancelled = False
    while True:
        problem = solver = None
        reply: bool | None = None
        solver_grad = torch.is_grad_enabled()  # grad mode as the solver last left it
        try:  # setting up (the prior and data moved to the device) can run out of memory too
            problem = make_problem(y, A, dev, seed, prior, restarts, precision)
            solver = m.solver(problem, **options)
            while True:
                # a solver that yields inside ``torch.no_grad()`` would leave gradients off for
                # the caller's code between its steps (grad mode is per thread): each step
                # runs in the solver's mode, the caller's code in its own
                caller_grad = torch.is_grad_enabled()
                torch.set_grad_enabled(solver_grad)
                try:
                    update = solver.send(reply)
                finally:
                    solver_grad = torch.is_grad_enabled()
                    torch.set_grad_enabled(caller_grad)
                history.append(update.loss)
                reply = yield update
                cancelled = cancelled or reply is False
        except StopIteration as stop:
            x, extra = stop.value
            break
        except Exception as exc:  # noqa: BLE001 - only out-of-memory is handled; re-raised else
            if not is_out_of_memory(exc):
                raise
            del problem, solver
            if dev.type == "cuda":
                torch.cuda.empty_cache()
            chunk = getattr(prior, "max_batch", None)
            if chunk is not None and chunk > 16:
                prior.max_batch = max(16, chunk // 4)
                notes.append(
                    f"out of memory on {dev} with {chunk} patches at a time; started "
                    f"again with {prior.max_batch}."
                )
            elif dev.type != "cpu":
                notes.append(f"out of memory on {dev}; started again on the CPU.")
                dev = torch.device("cpu")
            else:
                raise MemoryError(
                    "the reconstruction does not fit in memory even on the CPU "
                    "in the smallest chunks; use a smaller image or fewer "
                    "restarts."
                ) from exc
            history.clear()
    seconds = time.perf_counter() - t0
    # (one NaN or inf makes the sum so; ``isfinite(x).all()`` took 20 us on a 64x64 image)
    if not bool(torch.isfinite(x.sum())):
        raise ValueError(
            f"method {m.name!r} diverged: its result has NaN or infinite values. "
            "Use a smaller step (lr= or step_size=) or the method's defaults."
        )
    spread = extra.pop("spread", None)
    notes = list(extra.pop("notes", [])) + notes
    params = {
        "method": m.name,
        "operator": A.spec(),
        "seed": seed,
        "device": str(dev),
        "restarts": restarts,
        "prior": prior_info,
        "options": {k: v for k, v in options.items() if k != "preview_every"},
        "scale": problem.scale,
        "version": __version__,
        **extra,
    }
    if notes:
        params["notes"] = notes
    return Reconstruction(
        image=problem.to_numpy(x),
        spread=None if spread is None else problem.to_numpy(spread),
        history=history,
        seconds=seconds,
        method=m.name,
        params=params,
        cancelled=cancelled,
    )
