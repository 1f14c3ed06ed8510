"""Stacks in the public API: a stack of measurements reconstructed plane by plane, each plane
read only when its turn comes."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import numpy as np

from .._drive import drive
from ..operators import Operator
from ..solvers import METHODS, Reconstruction, Update
from ._reconstruct import iter_reconstruct


def iter_reconstruct_stack(
    Y: Any, A: Operator, method: str | None = None, prior: Any = None, **kwargs: Any
) -> Generator[Update, bool | None, Reconstruction]:
    """Reconstruct a stack plane by plane: ``Y`` has shape ``(*planes, *A.measurement_shape)``.

    ``Y`` may be a lazy array (dask, zarr): each plane is read only when its turn comes. Each
    plane is :func:`iter_reconstruct` with the same arguments (``kwargs``); its updates are
    passed on with ``plane`` / ``planes`` set. The result's ``image`` (and ``spread``) have the
    stack's leading axes; ``history`` is the planes' histories one after another and
    ``params["planes"]`` lists each plane's parameters. Sending False stops the current plane
    (which keeps its best result so far) and skips the rest: skipped planes are left at zero
    and ``params["planes_done"]`` says how many were reconstructed.

    Examples
    --------
    Three noisy planes of a 2D operator; each update says which plane it is from:

    >>> import numpy as np
    >>> import napari_genprior as ngp
    >>> A = ngp.make_operator("denoise", shape=(16, 16))
    >>> Y = np.stack([A.measure(np.full((16, 16), v), noise_std=0.1, seed=0) for v in (1, 2, 3)])
    >>> run = ngp.iter_reconstruct_stack(Y, A, method="tv", steps=100, device="cpu")
    >>> planes = set()
    >>> try:
    ...     while True:
    ...         planes.add(next(run).plane)
    ... except StopIteration as stop:
    ...     rec = stop.value
    >>> sorted(planes), rec.image.shape, rec.params["planes_done"]
    ([0, 1, 2], (3, 16, 16), 3)
    """
    lazy = (
        hasattr(Y, "__array__")
        and hasattr(Y, "shape")
        and hasattr(Y, "ndim")
        and hasattr(Y, "__getitem__")
    )  # dask, zarr, h5py: planes are read one at a time
    if not lazy and hasattr(Y, "__array__") and not isinstance(Y, np.ndarray):
        Y = np.asarray(Y)
    if not (lazy or isinstance(Y, np.ndarray)):
        raise TypeError(f"Y must be an array (a stack of measurements), got {type(Y).__name__}.")
    k = len(A.measurement_shape)
    if Y.ndim < k or Y.shape[Y.ndim - k :] != A.measurement_shape:
        raise ValueError(
            f"Y has shape {Y.shape}; its last axes must be the {A.kind!r} operator's "
            f"measurement shape {A.measurement_shape}."
        )
    lead = Y.shape[: Y.ndim - k]
    index = list(np.ndindex(*lead))
    first = iter_reconstruct(np.asarray(Y[index[0]]), A, method, prior, **kwargs)  # checks now
    return _run_stack(Y, A, method, prior, kwargs, lead, index, first)


def _run_stack(Y, A, method, prior, kwargs, lead, index, first):
    images = np.zeros((*lead, *A.shape), np.complex64 if A.complex_images else np.float32)
    spreads: np.ndarray | None = None
    history: list[float] = []
    params: list[dict] = []
    seconds, cancelled, done = 0.0, False, 0
    for i, ix in enumerate(index):
        run = first if i == 0 else iter_reconstruct(np.asarray(Y[ix]), A, method, prior, **kwargs)
        reply = None
        try:
            while True:
                u = run.send(reply)
                reply = yield Update(u.step, u.total, u.loss, u.image, plane=i, planes=len(index))
                cancelled = cancelled or reply is False
        except StopIteration as stop:
            rec: Reconstruction = stop.value
        images[ix] = rec.image
        if rec.spread is not None:
            if spreads is None:
                spreads = np.zeros_like(images)
            spreads[ix] = rec.spread
        history += rec.history
        params.append(rec.params)
        seconds += rec.seconds
        done += 1
        if cancelled:
            break
    out = {**params[0], "planes": params, "planes_done": done, "stack_shape": list(lead)}
    return Reconstruction(
        image=images,
        spread=spreads,
        history=history,
        seconds=seconds,
        method=METHODS[method].name,
        params=out,
        cancelled=cancelled,
    )


def reconstruct_stack(
    Y: Any,
    A: Operator,
    method: str | None = None,
    prior: Any = None,
    *,
    callback: Callable[[Update], bool | None] | None = None,
    **kwargs: Any,
) -> Reconstruction:
    """Reconstruct a stack ``(*planes, *A.measurement_shape)`` plane by plane.

    Same arguments as :func:`reconstruct`; ``callback(update)`` gets each :class:`Update`
    (with ``update.plane`` / ``update.planes``) and may return False to stop. See
    :func:`iter_reconstruct_stack` for the result.

    Examples
    --------
    >>> import numpy as np
    >>> import napari_genprior as ngp
    >>> A = ngp.make_operator("denoise", shape=(16, 16))
    >>> Y = np.stack([A.measure(np.full((16, 16), v), noise_std=0.1, seed=0) for v in (1, 2)])
    >>> rec = ngp.reconstruct_stack(Y, A, method="tv", steps=100, device="cpu")
    >>> rec.image.shape, [round(float(p.mean()), 1) for p in rec.image]
    ((2, 16, 16), [1.0, 2.0])
    """
    run = iter_reconstruct_stack(Y, A, method, prior, **kwargs)
    return drive(run, callback or (lambda u: None))
