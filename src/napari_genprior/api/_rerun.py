"""Rerun a result from its record: ``rerun(layer)`` reproduces a result layer's image exactly.

A result's ``params`` (``metadata["genprior"]`` of a result layer) hold everything a run took:
the operator's spec, the method, its options and steps, the seed, the restarts, the prior's
name or path, the camera, and (for results the Reconstruct widget made, up to
:data:`EMBED_MAX_BYTES`) the measurement itself. :func:`rerun` turns that record back into the
call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._io import EMBED_MAX_BYTES, decode_array, encode_array
from ..operators import from_spec
from ..solvers import Reconstruction
from ._priors import list_priors
from ._reconstruct import measurement_from_layer, reconstruct
from ._stacks import reconstruct_stack


def embed_measurement(y: Any) -> dict[str, Any] | None:
    """``y`` encoded for a result's metadata (exactly), or None when it is over
    :data:`EMBED_MAX_BYTES` (or lazy: a dask array is not read for this)."""
    if not isinstance(y, np.ndarray):
        return None
    itemsize = 16 if np.iscomplexobj(y) else 8
    if y.size * itemsize > EMBED_MAX_BYTES:
        return None
    return encode_array(y)


def _record(result: Any, metadata: dict | None) -> dict[str, Any]:
    """The ``params`` record of ``result``: a result layer, a :class:`Reconstruction`, a
    layer's metadata or the record itself."""
    if metadata is None:
        if isinstance(result, Reconstruction):
            return result.params
        metadata = getattr(result, "metadata", result)
    if not isinstance(metadata, dict):
        raise TypeError(
            "rerun needs a result layer, its metadata, or a Reconstruction; got "
            f"{type(result).__name__}."
        )
    record = metadata.get("genprior", metadata)
    if not isinstance(record, dict) or "method" not in record or "operator" not in record:
        role = record.get("role") if isinstance(record, dict) else None
        raise ValueError(
            "this is not a reconstruction's record (no method and operator in "
            f"metadata['genprior']{f'; its role is {role!r}' if role else ''}): rerun takes "
            "a result layer made by Reconstruct, or the Reconstruction that reconstruct returned."
        )
    return record


def _measurement(record: dict[str, Any], measurement: Any, A: Any) -> Any:
    if measurement is None:
        if "measurement" not in record:
            source = record.get("source_layer")
            raise ValueError(
                "this result does not hold its measurement (over "
                f"{EMBED_MAX_BYTES // 2**20} MiB, or made by a script): pass it as "
                "measurement=" + (f" (the layer {source!r})" if source else "") + "."
            )
        return decode_array(record["measurement"])
    if hasattr(measurement, "metadata") and hasattr(measurement, "data"):  # a napari layer
        y, _ = measurement_from_layer(measurement.data, measurement.metadata)
        return y
    return measurement


def _prior(record: dict[str, Any], prior: Any) -> Any:
    info = record.get("prior")
    if prior is not None or not info:
        return prior
    source = info.get("source") if isinstance(info, dict) else None
    if source in list_priors():
        return source
    from pathlib import Path

    if source and Path(source).is_file():
        return source
    raise ValueError(
        f"the result's prior {source!r} is neither a bundled prior nor a file here (a prior "
        "trained in the session and not saved): pass it as prior=."
    )


def _camera(record: dict[str, Any]) -> Any:
    """The camera argument the run had: the values it was given ("auto" fits the rest)."""
    cam = record.get("camera")
    if not isinstance(cam, dict):
        return None
    given = {
        k: cam[k]
        for k in ("offset", "gain", "read_noise")
        if k in cam and k not in cam.get("estimated", ())
    }
    return given or "auto"


def rerun(
    result: Any,
    metadata: dict | None = None,
    *,
    measurement: Any = None,
    prior: Any = None,
    device: Any = None,
    callback: Callable[[int, float, Any], bool | None] | None = None,
) -> Reconstruction:
    """Run a result's reconstruction again, exactly as it was run.

    Parameters
    ----------
    result : napari layer, dict or Reconstruction
        A result layer made by the Reconstruct widget (or its ``metadata``, or its data with
        ``metadata`` given), or a :class:`Reconstruction` returned by :func:`reconstruct`.
    metadata : dict, optional
        The result layer's metadata, when ``result`` is its data.
    measurement : array or napari layer, optional
        The measurement, where the result does not hold it (over 8 MiB, or a
        :class:`Reconstruction` from a script): an array, or the measurement layer.
    prior : optional
        The prior, where the result's is not a bundled one or a file (trained in the session).
    device : str, optional
        Where to run (default: where the result was made; the same device gives the same
        image).
    callback : callable, optional
        As for :func:`reconstruct`.

    Returns
    -------
    Reconstruction
        With the same ``image`` as the result's, bit for bit, on the same device.

    Examples
    --------
    >>> import numpy as np
    >>> import napari_genprior as ngp
    >>> x = np.zeros((32, 32)); x[8:24, 8:24] = 1.0
    >>> A = ngp.make_operator("blur", shape=x.shape, sigma=1.5)
    >>> y = A.measure(x, noise_std=0.01, seed=0)
    >>> rec = ngp.reconstruct(y, A, method="tv", steps=50, device="cpu")
    >>> again = ngp.rerun(rec, measurement=y)
    >>> np.array_equal(again.image, rec.image), again.params["options"] == rec.params["options"]
    (True, True)

    A result layer made by the Reconstruct widget holds its measurement: ``ngp.rerun(layer)``.
    """
    record = _record(result, metadata)
    A = from_spec(record["operator"])
    y = _measurement(record, measurement, A)
    options = dict(record.get("options") or {})
    steps = options.pop("steps", None)
    info = record.get("prior") or {}
    mosaic = info.get("mosaic") if isinstance(info, dict) else None
    if mosaic and "overlap" in mosaic:
        options["overlap"] = mosaic["overlap"]
    kwargs = dict(
        restarts=int(record.get("restarts", 1)),
        steps=steps,
        device=record.get("device", "auto") if device is None else device,
        seed=int(record.get("seed", 0)),
        camera=_camera(record),
        **options,
    )
    method, prior = record["method"], _prior(record, prior)

    def relay(u: Any) -> bool | None:
        return None if callback is None else callback(u.step, u.loss, u.image)

    if "planes" in record:  # a stack's record (what the widget makes): plane by plane
        return reconstruct_stack(y, A, method, prior, callback=relay, **kwargs)
    return reconstruct(y, A, method, prior, callback=callback, **kwargs)
