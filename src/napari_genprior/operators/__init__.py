"""Forward operators A (the physics layer): ``make_operator(kind, shape=..., **params)``.

Every operator has ``forward``/``adjoint`` on batched torch tensors, ``measure`` (numpy in and
out), ``spec()`` (a JSON-serialisable dict) and ``to(device)``; :func:`from_spec` rebuilds an
identical operator from a spec.
"""

from __future__ import annotations

import inspect
from typing import Any

from .base import Operator, real_inner
from .blur import Blur, gaussian_psf
from .cs import CompressedSensing
from .downsample import Downsample
from .mri import MRI, column_mask
from .phase import CodedDiffraction, PhaseRetrieval
from .pixel import Denoise, Inpaint

OPERATORS: dict[str, type[Operator]] = {
    cls.kind: cls
    for cls in (Denoise, Inpaint, Blur, Downsample, CompressedSensing, MRI, PhaseRetrieval)
}

__all__ = [
    "MRI",
    "OPERATORS",
    "Blur",
    "CodedDiffraction",
    "CompressedSensing",
    "Denoise",
    "Downsample",
    "Inpaint",
    "Operator",
    "PhaseRetrieval",
    "column_mask",
    "from_spec",
    "gaussian_psf",
    "make_operator",
    "real_inner",
]


def make_operator(kind: str, shape: Any = None, **params: Any) -> Operator:
    """Build the forward operator ``kind`` for images of ``shape``.

    Parameters
    ----------
    kind : str
        One of :data:`OPERATORS`:

        - ``"denoise"``: identity (noise comes from ``measure``);
        - ``"inpaint"``: ``mask``, or ``fraction`` / ``boxes`` with ``seed``;
        - ``"blur"``: ``sigma`` (per axis allowed) or ``psf``; ``boundary``;
        - ``"downsample"``: ``factor``, ``antialias``;
        - ``"cs"``: ``m``, ``seed``, ``matrix`` (``"auto"``, ``"dense"``, ``"structured"``);
        - ``"mri"``: ``acceleration``, ``center_fraction``, ``mask``, ``seed``, ``coils``
          (multi-coil: coil maps or a number of simulated coils; images are then complex);
        - ``"phase"``: ``m`` (Gaussian) or ``masks`` (coded diffraction), ``seed``, ``matrix``.
    shape : tuple of int
        Image shape, e.g. ``(128, 128)`` (``(Z, Y, X)`` for 3D where the kind allows it).
    **params
        The operator's own keywords, listed above; see each class for details.

    Raises
    ------
    ValueError
        Unknown kind, missing shape, or invalid parameter values.
    TypeError
        A keyword the operator does not take.

    Examples
    --------
    Half of the pixels of a 64x64 image, measured with noise, and the measurement as the
    operator's adjoint puts it back on the image grid:

    >>> import numpy as np
    >>> import napari_genprior as ngp
    >>> x = np.ones((64, 64))
    >>> A = ngp.make_operator("inpaint", shape=(64, 64), fraction=0.5, seed=0)
    >>> A
    Inpaint(shape=(64, 64), fraction=0.5, seed=0)
    >>> y = A.measure(x, noise_std=0.01, seed=0)
    >>> y.shape, round(float((y == 0).mean()), 2)  # the missing pixels are zeros
    ((64, 64), 0.5)

    4x undersampled MRI k-space (complex measurements) and compressed sensing:

    >>> A = ngp.make_operator("mri", shape=(64, 64), acceleration=4, seed=0)
    >>> A.measure(x, noise_std=0.0).dtype
    dtype('complex64')
    >>> ngp.make_operator("cs", shape=(28, 28), m=100, seed=0).measurement_shape
    (100,)

    A spec (stored in a layer's metadata) rebuilds the same operator:

    >>> from napari_genprior.operators import from_spec
    >>> from_spec(A.spec()).spec() == A.spec()
    True

    >>> ngp.make_operator("blur", shape=(64, 64), radius=3)
    Traceback (most recent call last):
    ...
    TypeError: operator 'blur' does not take ['radius']; it takes ['boundary', 'optics', 'psf', 'sigma'].
    """
    if not isinstance(kind, str) or kind not in OPERATORS:
        raise ValueError(f"unknown operator kind {kind!r}; choose one of {sorted(OPERATORS)}.")
    if shape is None:
        raise ValueError(f"make_operator({kind!r}) needs shape=, the image shape, e.g. (128, 128).")
    cls = OPERATORS[kind]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "shape"}
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise TypeError(f"operator {kind!r} does not take {unknown}; it takes {sorted(accepted)}.")
    return cls(shape, **params)


def from_spec(spec: dict[str, Any]) -> Operator:
    """Rebuild an operator from ``Operator.spec()`` (e.g. read from a layer's metadata)."""
    if not isinstance(spec, dict) or "kind" not in spec or "shape" not in spec:
        raise ValueError(
            f"an operator spec must be a dict with 'kind' and 'shape', got {spec!r:.200}."
        )
    params = {k: v for k, v in spec.items() if k not in ("kind", "shape")}
    return make_operator(spec["kind"], shape=spec["shape"], **params)
