"""OME-Zarr in and out (NGFF 0.4, the version napari-ome-zarr, bioio and Fiji read), with zarr.

:func:`read_ome_zarr` opens a volume lazily as a dask array with its voxel size;
:func:`write_ome_zarr` writes a dask or numpy array chunk by chunk (memory bounded by a chunk)
as the full-resolution level of a multiscale pyramid (each further level halves Y and X), with
the voxel size and the reconstruction's parameters in the group's attributes. The layout is the
NGFF specification's (https://ngff.openmicroscopy.org/0.4/): a group whose ``multiscales``
attribute lists the levels ``0``, ``1``, ... with their ``scale`` transforms and axes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

NGFF_VERSION = "0.4"
AXES = ("z", "y", "x")
#: Pyramid levels are added until Y and X are both under this size.
SMALLEST_LEVEL = 256


def _zarr():
    try:
        import zarr
    except ImportError as exc:  # Python 3.10: zarr 3 needs 3.11
        raise ImportError(
            "OME-Zarr needs the zarr package (3 or later, which needs Python 3.11): "
            "pip install 'zarr>=3'."
        ) from exc
    return zarr


def refuse_existing(path: str | os.PathLike) -> Path:
    """``path`` as a Path, or FileExistsError when something is there: output never
    overwrites data."""
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists; give a new path (nothing is overwritten).")
    return path


def compute(graph: Any, scheduler: Any = None) -> Any:
    """Run a dask collection on ``scheduler``: a name (``"sync"``, ``"threads"``), a
    ``dask.distributed`` Client, or None (dask's default)."""
    if scheduler is not None and not isinstance(scheduler, str):
        return scheduler.compute(graph).result()
    return graph.compute(scheduler=scheduler)


def is_ome_zarr(path: Any) -> bool:
    """Whether ``path`` names a zarr group folder, as an OME-Zarr is (:func:`read_ome_zarr`
    says whether it holds an image)."""
    try:
        p = Path(os.fspath(path))
    except TypeError:
        return False
    return p.is_dir() and ((p / ".zattrs").is_file() or (p / "zarr.json").is_file())


def read_ome_zarr(path: str | os.PathLike) -> tuple[Any, tuple[float, ...] | None, dict]:
    """The full-resolution level of the OME-Zarr at ``path``: ``(dask array, voxel size or
    None, the group's attributes)``. Lazy: nothing is read until computed."""
    levels, scale, attrs = read_ome_zarr_levels(path)
    return levels[0], scale, attrs


def read_ome_zarr_levels(
    path: str | os.PathLike,
) -> tuple[list[Any], tuple[float, ...] | None, dict]:
    """:func:`read_ome_zarr` with every level of the pyramid, finest first (dask arrays,
    lazy): what a viewer shows."""
    import dask.array as da

    zarr = _zarr()
    try:
        group = zarr.open_group(str(path), mode="r")
        attrs = dict(group.attrs)
        ms = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
        datasets = ms[0]["datasets"]
        level = datasets[0]
    except (OSError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise ValueError(
            f"{path} is not an OME-Zarr image (no readable multiscales metadata: {exc})."
        ) from exc
    levels = [da.from_zarr(group[d["path"]]) for d in datasets]
    scale = None
    for t in level.get("coordinateTransformations", ()):
        if t.get("type") == "scale":
            scale = tuple(float(s) for s in t["scale"])[-levels[0].ndim :]
    return levels, scale, attrs


def write_ome_zarr(
    path: str | os.PathLike,
    data: Any,
    voxel: tuple[float, ...] | None = None,
    metadata: dict[str, Any] | None = None,
    chunks: tuple[int, ...] | None = None,
    compute_with: Any = None,
    dtype: Any = np.float32,
) -> Path:
    """Write ``data`` (Z, Y, X) to ``path`` as OME-Zarr with a pyramid for viewing.

    ``metadata`` goes into the group's ``genprior`` attribute (JSON). ``compute_with``: how
    the dask graph runs (None: dask's default; a ``dask.distributed`` Client). ``dtype``: as
    stored (float32 for results; a camera's uint16 for raw stacks). An existing ``path`` is
    refused: a reconstruction never overwrites data.
    """
    import dask.array as da

    arr = data if isinstance(data, da.Array) else da.from_array(np.asarray(data))
    if arr.ndim != len(AXES):
        raise ValueError(f"OME-Zarr output takes a (Z, Y, X) volume, got shape {arr.shape}.")
    if chunks is not None:
        arr = arr.rechunk(chunks)
    arr = arr.astype(dtype)
    group, target = create_ome_zarr(path, arr.shape, [max(c) for c in arr.chunks], dtype)
    # each dask chunk is one zarr chunk (the last ones smaller), so writes never share a
    # chunk: no lock, and no rechunking (to_zarr would merge chunks to its own size)
    compute(da.store(arr, target, lock=False, compute=False), compute_with)
    return finish_ome_zarr(group, voxel, metadata, compute_with)


def create_ome_zarr(
    path: str | os.PathLike,
    shape: tuple[int, ...],
    chunks: tuple[int, ...] | list[int],
    dtype: Any = np.float32,
) -> tuple[Any, Any]:
    """A new OME-Zarr group at ``path`` and its full-resolution level ``0`` (``dtype``, zeros
    until written): ``(group, array)``. Write into the array, then :func:`finish_ome_zarr`.
    An existing ``path`` is refused."""
    zarr = _zarr()
    path = refuse_existing(path)
    group = zarr.open_group(str(path), mode="w-", zarr_format=2)
    target = group.create_array(
        "0", shape=tuple(int(s) for s in shape), chunks=tuple(chunks), dtype=np.dtype(dtype)
    )
    return group, target


def finish_ome_zarr(
    group: Any,
    voxel: tuple[float, ...] | None = None,
    metadata: dict[str, Any] | None = None,
    compute_with: Any = None,
) -> Path:
    """Add the pyramid (each level halves Y and X of the one before, read back from it:
    memory stays a chunk's) and the NGFF and ``genprior`` attributes to a group made by
    :func:`create_ome_zarr` whose level ``0`` is written; return its path."""
    import dask.array as da

    level = da.from_zarr(group["0"])
    known = voxel is not None
    scale = tuple(float(v) for v in (voxel or (1.0,) * level.ndim))

    def entry(name: str) -> dict[str, Any]:
        return {
            "path": name,
            "coordinateTransformations": [{"type": "scale", "scale": list(scale)}],
        }

    levels = [entry("0")]
    while max(level.shape[-2:]) > SMALLEST_LEVEL:
        level = da.coarsen(np.mean, level, {1: 2, 2: 2}, trim_excess=True).astype(level.dtype)
        scale = (scale[0], scale[1] * 2, scale[2] * 2)
        name = str(len(levels))
        target = group.create_array(
            name, shape=level.shape, chunks=[max(c) for c in level.chunks], dtype=level.dtype
        )
        compute(da.store(level, target, lock=False, compute=False), compute_with)
        level = da.from_zarr(target)
        levels.append(entry(name))
    path = Path(str(group.store.root)) if hasattr(group.store, "root") else Path(group.path)
    group.attrs["multiscales"] = [
        {
            "version": NGFF_VERSION,
            "name": path.stem,
            "axes": [
                {"name": a, "type": "space", **({"unit": "micrometer"} if known else {})}
                for a in AXES
            ],
            "datasets": levels,
            "type": "mean",
        }
    ]
    if metadata:
        group.attrs["genprior"] = json.loads(json.dumps(metadata, default=str))
    return path
