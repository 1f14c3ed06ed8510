"""A batch's files: reading an input and its operator, and writing its output (atomically;
a full disk stops the batch), with what a file and its planes carry between the two."""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .. import api
from .._io import disk_full, read_tiff, write_tiff
from .._layerdata import measurement_of
from ._plan import Job


class DiskFull(OSError):
    """An output could not be written because its disk is full: the batch stopped."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.ENOSPC, message)

    def __str__(self) -> str:
        return str(self.args[1])


@dataclass(frozen=True)
class FileResult:
    """What happened to one input file.

    Attributes
    ----------
    input, output : Path
        As in :class:`Job`.
    status : {"done", "skipped", "failed"}
        Reconstructed and written; already done; or not done (the output is not written).
    reason : str
        Why a file failed or was skipped, in one sentence ("" when done).
    planes : int
        Planes reconstructed.
    seconds : float
        Solver time summed over the file's planes.
    """

    input: Path
    output: Path
    status: Literal["done", "skipped", "failed"]
    reason: str = ""
    planes: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class _Settings:
    """What every plane of a batch shares."""

    operator: dict[str, Any] | None
    method: str
    prior: Any
    prior_source: str | None
    kwargs: dict[str, Any]
    threads: int


@dataclass
class _File:
    """An input read and checked, with its planes' results as they come back."""

    job: Job
    A: Any
    lead: tuple[int, ...]
    planes: list[np.ndarray]
    results: list[_Plane | None] = field(init=False)
    handles: list[Any] = field(default_factory=list)  # cluster futures kept until the file is done

    def __post_init__(self) -> None:
        self.results = [None] * len(self.planes)

    @property
    def complete(self) -> bool:
        return all(r is not None for r in self.results)


@dataclass(frozen=True)
class _Plane:
    """One plane's reconstruction, or why it failed."""

    image: np.ndarray | None = None
    params: dict[str, Any] | None = None
    seconds: float = 0.0
    error: str | None = None


def _prepare(job: Job, settings: _Settings) -> _File | FileResult:
    """Read ``job.input``, build its operator and check everything a plane needs."""

    def failed(reason: str) -> FileResult:
        return FileResult(job.input, job.output, "failed", reason)

    try:
        data, meta = read_tiff(job.input)
    except Exception as exc:  # noqa: BLE001 - whatever the reader says, the file is not usable
        return failed(f"cannot be read as a TIFF image ({_message(exc)}).")
    try:
        Y, A = _measurement_and_operator(data, meta, settings.operator)
        k = len(A.measurement_shape)
        if Y.ndim < k or Y.shape[Y.ndim - k :] != A.measurement_shape:
            raise ValueError(
                f"its data have shape {Y.shape}, but the {A.kind!r} operator expects "
                f"planes of shape {A.measurement_shape} (images {A.shape})."
            )
        lead = Y.shape[: Y.ndim - k]
        planes = [np.ascontiguousarray(Y[ix]) for ix in np.ndindex(*lead)]
        # every check reconstruct() makes (method, prior, options, the data) runs here, now
        api.iter_reconstruct_stack(Y, A, settings.method, settings.prior, **settings.kwargs).close()
    except Exception as exc:  # noqa: BLE001 - a file that does not fit is reported, not fatal
        return failed(_sentence(exc))
    return _File(job, A, lead, planes)


def _measurement_and_operator(
    data: np.ndarray, meta: dict[str, Any], operator: dict[str, Any] | None
) -> tuple[np.ndarray, Any]:
    if operator is None:
        if not isinstance(meta.get("operator"), dict):
            raise ValueError(
                "the file carries no operator in its metadata; give the operator "
                "explicitly (--operator on the command line)."
            )
        if "measurement" in meta:  # the exact values kept beside a picture (k-space, cs vector)
            return measurement_of(data, {"genprior": meta})
        return data, api.from_spec(meta["operator"])
    params = dict(operator)
    kind = params.pop("kind")
    volume = bool(params.pop("volume", False))
    if isinstance(params.get("psf"), str):  # a PSF file (e.g. a bead average saved as TIFF)
        params["psf"] = read_tiff(params["psf"])[0].astype(np.float64)
    if "shape" in params:
        return data, api.make_operator(kind, **params)
    if data.ndim < (3 if volume else 2):
        raise ValueError(
            f"its data have shape {data.shape}; "
            + (
                "a volume needs three axes (z, y, x)."
                if volume
                else "an image needs two axes (give the image shape as an operator "
                "parameter for vector measurements)."
            )
        )
    if volume:  # each (z, y, x) stack is one problem (a 3D PSF mixes its planes)
        return data, api.make_operator(kind, shape=data.shape[-3:], **params)
    plane = data.shape[-2:]
    A = api.make_operator(kind, shape=plane, **params)
    pairs = list(zip(plane, A.measurement_shape, strict=False))
    if A.measurement_shape != plane and len(pairs) == 2 and all(m and p % m == 0 for p, m in pairs):
        # a measurement smaller than its image (downsample): the image is as many times larger
        A = api.make_operator(kind, shape=tuple(p * (p // m) for p, m in pairs), **params)
    return data, A


def _message(exc: BaseException) -> str:
    """An exception's message on one line, without a final full stop (its type if empty)."""
    return " ".join(str(exc).split()).rstrip(".") or type(exc).__name__


def _sentence(exc: BaseException) -> str:
    """An exception as one sentence."""
    return f"{_message(exc)}."


def _finish(f: _File, settings: _Settings) -> FileResult:
    """Write a file whose planes are all back (or report why not)."""
    job = f.job
    errors = [(j, r.error) for j, r in enumerate(f.results) if r.error is not None]
    if errors:
        j, error = errors[0]
        where = f"plane {j} of {len(f.planes)}" if len(f.planes) > 1 else "the reconstruction"
        return FileResult(job.input, job.output, "failed", f"{where} failed: {error}")
    image = np.stack([r.image for r in f.results]).reshape(*f.lead, *f.A.shape)
    plane_params = [{k: v for k, v in r.params.items() if k != "operator"} for r in f.results]
    seconds = float(sum(r.seconds for r in f.results))
    meta = {
        **f.results[0].params,
        "planes": plane_params,
        "planes_done": len(f.results),
        "stack_shape": list(f.lead),
        "seconds": seconds,
        "input": job.input.name,
        "input_path": str(job.input.resolve()),
        "prior_source": settings.prior_source,
    }
    try:
        write_tiff(job.output, image, meta)
    except Exception as exc:  # noqa: BLE001 - write_tiff left nothing behind
        if disk_full(exc):  # every later file would fail too: stop now
            raise DiskFull(
                f"{_sentence(exc)} The batch stopped there; the files finished "
                "before are kept: free some space and run the same command again "
                "to do the rest."
            ) from exc
        return FileResult(
            job.input, job.output, "failed", f"the output could not be written: {_sentence(exc)}"
        )
    return FileResult(job.input, job.output, "done", planes=len(f.planes), seconds=seconds)
