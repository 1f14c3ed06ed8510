"""Volumes larger than memory: 3D deconvolution in overlapping chunks on dask.

The volume is cut into chunks; each is deconvolved with its margin (the overlap) under the
boundary-free blur (``boundary="unknown"``: light from beyond the chunk is what that operator
models), and only its core is kept, so the result has no seams. One stopping rule for the whole
volume: Richardson-Lucy's count is chosen by its held-out rule on one block around the chunk
with the most signal, and every chunk then runs that count, so neighbouring chunks agree; one
camera, fitted once, serves every chunk too. The chunks
are dask tasks (:func:`dask.array.map_overlap`): the threaded scheduler by default, a
``dask.distributed`` cluster when given one; memory is bounded by the chunk size.

Nothing here imports napari or Qt.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Methods that run chunk by chunk (their stopping rule set once for the volume).
CHUNKED_METHODS = ("richardson-lucy",)
#: The PSF's reach: as far as it stays above this share of its peak along each axis (its
#: maximum over the other axes); the overlap is twice that (at most a chunk): with the reach
#: alone a 24x64x64 stack in 8x32x32 chunks came out 0.14 dB under the whole-volume run.
REACH_SHARE = 1e-3
#: The stopping step is chosen on one block of at most this many voxels around the brightest
#: chunk (the most signal): the whole volume when it is smaller (64x512x512: 16 M voxels).
PROBE_VOXELS = 64 * 512 * 512
#: The camera (offset, gain, read noise) is fitted once, on this many planes of the stack.
CAMERA_PLANES = 8


def psf_reach(psf: np.ndarray, share: float = REACH_SHARE) -> tuple[int, ...]:
    """How far (voxels, per axis) the PSF reaches from its centre above ``share`` of its peak."""
    psf = np.asarray(psf, dtype=np.float64)
    peak = float(psf.max())
    out = []
    for axis in range(psf.ndim):
        profile = psf.max(axis=tuple(a for a in range(psf.ndim) if a != axis))
        above = np.nonzero(profile >= share * peak)[0]
        centre = (psf.shape[axis] - 1) // 2
        out.append(int(max(centre - above.min(), above.max() - centre)) if above.size else 0)
    return tuple(out)


def chunk_psf(params: dict[str, Any]) -> Any:
    """The ``psf`` of :func:`reconstruct_chunked` from ``make_operator("blur", ...)``'s
    keywords: ``optics`` as it is, ``psf`` (an array, or a TIFF's path) as an array, else
    ``sigma`` (z, y, x) as a Gaussian PSF."""
    if "optics" in params:
        return params["optics"]
    if "psf" in params:
        psf = params["psf"]
        if isinstance(psf, (str, os.PathLike)):
            from .._io import read_tiff

            return read_tiff(psf)[0]
        return psf
    from ..operators.blur import gaussian_psf

    return gaussian_psf(tuple(float(s) for s in params["sigma"]))


def _kernel(psf: Any, block: tuple[int, ...]) -> np.ndarray:
    """The PSF as an array no larger than ``block``: a given array cropped around its centre,
    or the optics' PSF computed for the block (``optics_psf``)."""
    if isinstance(psf, dict):
        from ..operators.psf import optics_psf

        return np.asarray(optics_psf(block, psf), dtype=np.float64)
    kernel = np.asarray(psf, dtype=np.float64)
    if kernel.ndim != len(block):
        raise ValueError(f"psf has {kernel.ndim} axes; the volume has {len(block)}.")
    crop = []
    for k, b in zip(kernel.shape, block):
        keep = min(k, b if b % 2 else b - 1)  # odd, centred
        start = (k - 1) // 2 - (keep - 1) // 2
        crop.append(slice(start, start + keep))
    return kernel[tuple(crop)]


def _as_dask(y: Any, chunks: tuple[int, ...]):
    import dask.array as da

    if isinstance(y, da.Array):
        arr = y
    else:
        arr = da.from_array(np.asarray(y), chunks=chunks)
    if arr.ndim != 3:
        raise ValueError(
            f"reconstruct_chunked deconvolves 3D stacks; this array has shape {arr.shape}."
        )
    return arr.rechunk(chunks)


def _check_chunks(chunks: Sequence[int], shape: tuple[int, ...]) -> tuple[int, ...]:
    chunks = tuple(int(c) for c in chunks)
    if len(chunks) != 3 or min(chunks) < 1:
        raise ValueError(f"chunks must be three positive sizes (z, y, x), got {chunks!r}.")
    return tuple(min(c, s) for c, s in zip(chunks, shape))


def _deconvolve(block: np.ndarray, kernel: np.ndarray, method: str, options: dict[str, Any]):
    from .. import api

    A = api.make_operator("blur", shape=block.shape, psf=kernel, boundary="unknown")
    rec = api.reconstruct(block.astype(np.float32), A, method=method, **options)
    return rec


def reconstruct_chunked(
    y: Any,
    psf: Any,
    method: str = "richardson-lucy",
    chunks: Sequence[int] = (64, 256, 256),
    out: Any = None,
    scheduler: Any = None,
    *,
    steps: int | None = None,
    depth: Sequence[int] | None = None,
    camera: Any = "auto",
    device: str = "cpu",
    seed: int = 0,
    **method_options: Any,
):
    """Deconvolve a 3D stack chunk by chunk (see the module docstring).

    Parameters
    ----------
    y : array, dask array or path
        The measured stack ``(Z, Y, X)``, or an OME-Zarr folder (read lazily, with its voxel
        size).
    psf : array or dict
        The 3D PSF (cropped to a chunk with its margin where larger), or the optics dict that
        ``make_operator("blur", optics=...)`` takes.
    method : str
        ``"richardson-lucy"``.
    chunks : (int, int, int)
        The core of each chunk, in voxels; each is deconvolved with ``depth`` more on each side.
        The default's 64 planes halve the share of FFT work spent on the z overlap and the
        unknown border against 32 (64x512x512, 20 iterations: 22 s against 28 s, the same PSNR).
    out : path, optional
        Write the result there as OME-Zarr (chunk by chunk, with a pyramid for viewing, the
        voxel size and these parameters in its ``genprior`` attribute) and return the path.
        An existing path is refused.
    scheduler : optional
        How the chunks run: ``"sync"``, ``"threads"`` or a ``dask.distributed`` Client. With
        no ``out`` and no scheduler the result is returned lazily, as a dask array.
    steps : int, optional
        Richardson-Lucy's count for every chunk; default: chosen by its held-out rule on a
        block of up to :data:`PROBE_VOXELS` around the brightest chunk.
    depth : (int, int, int), optional
        The overlap; default: twice the PSF's reach (:func:`psf_reach`), at most a chunk.
    camera : "auto", dict or None
        As for :func:`napari_genprior.reconstruct`, but one camera for the whole volume:
        ``"auto"`` fits it once, on up to :data:`CAMERA_PLANES` planes spread through the stack.
    device, seed
        As for :func:`napari_genprior.reconstruct` (each chunk runs on ``device``).
    **method_options
        Passed to the method (e.g. ``read_variance``).

    Returns
    -------
    numpy.ndarray, dask.array.Array or pathlib.Path
        The deconvolved stack, float32, the shape of ``y``: computed with ``scheduler``, lazy
        without one, or the OME-Zarr written to ``out``.

    Examples
    --------
    >>> import numpy as np
    >>> import napari_genprior as ngp
    >>> from napari_genprior.volumes import nuclei_volume
    >>> x = nuclei_volume((16, 48, 48), voxel=(0.25, 0.1, 0.1), seed=0)
    >>> A = ngp.make_operator("blur", shape=x.shape, sigma=(1.5, 1.0, 1.0))
    >>> y = A.measure(x, photons=300, seed=0)
    >>> vol = ngp.reconstruct_chunked(y, A.psf, chunks=(8, 24, 24), scheduler="sync")
    >>> vol.shape, vol.dtype, ngp.metrics.psnr(x, vol) > ngp.metrics.psnr(x, y)
    ((16, 48, 48), dtype('float32'), True)
    """
    import dask.array as da

    from .._omezarr import compute, refuse_existing, write_ome_zarr

    if out is not None:  # before the work, not after it
        refuse_existing(out)
    plan = _plan(y, psf, method, chunks, steps, depth, camera, device, seed, method_options)
    result = da.map_overlap(
        plan.one,
        plan.vol,
        depth=plan.depth,
        boundary="none",
        trim=True,
        dtype=np.float32,
        meta=np.array((), np.float32),
    )
    if out is not None:
        return write_ome_zarr(out, result, plan.voxel, plan.params, compute_with=scheduler)
    return result if scheduler is None else np.asarray(compute(result, scheduler))


@dataclass(frozen=True)
class ChunkUpdate:
    """One chunk of :func:`iter_reconstruct_chunked` written: ``step`` of ``total`` chunks,
    at ``core`` (slices of the volume) of the output, each run for ``iterations``."""

    step: int
    total: int
    core: tuple[slice, ...] | None = None
    iterations: int = 0
    image: None = None  # (no preview: the output holds every chunk written so far)


def iter_reconstruct_chunked(
    y: Any,
    psf: Any,
    out: str | os.PathLike,
    method: str = "richardson-lucy",
    chunks: Sequence[int] = (64, 256, 256),
    *,
    steps: int | None = None,
    depth: Sequence[int] | None = None,
    camera: Any = "auto",
    device: str = "cpu",
    seed: int = 0,
    voxel: Sequence[float] | None = None,
    **method_options: Any,
):
    """:func:`reconstruct_chunked` to the OME-Zarr ``out``, one chunk after another, as a
    generator: after each chunk is written it yields a :class:`ChunkUpdate`; send it False to
    stop (the chunks written are kept, the output says ``"cancelled_after"`` chunks). Returns
    the path. The same chunks, overlap, count and camera as :func:`reconstruct_chunked`, so
    the same volume; what napari's Deconvolve in chunks runs (its progress and cancel).
    ``voxel`` (Z, Y, X) is written as the output's scale where ``y`` is an array."""
    from .._omezarr import create_ome_zarr, finish_ome_zarr, refuse_existing

    refuse_existing(out)
    plan = _plan(y, psf, method, chunks, steps, depth, camera, device, seed, method_options)
    vol = plan.vol
    # stored a plane deep (each core fills whole zarr chunks, never shares one): napari shows
    # a plane by reading only it (a 2048x2048 plane: 16 MiB, not a 64-plane slab's 1 GiB)
    group, target = create_ome_zarr(out, vol.shape, (1, *plan.chunks[1:]))
    starts = [np.cumsum((0,) + c) for c in vol.chunks]
    cores = [
        tuple(slice(int(starts[a][i]), int(starts[a][i + 1])) for a, i in enumerate(idx))
        for idx in np.ndindex(*vol.numblocks)
    ]
    params = dict(plan.params)
    for done, core in enumerate(cores, 1):
        block = tuple(
            slice(max(0, c.start - d), min(n, c.stop + d))
            for c, d, n in zip(core, plan.depth, vol.shape)
        )
        result = plan.one(np.asarray(vol[block].compute()))
        target[core] = result[
            tuple(slice(c.start - b.start, c.stop - b.start) for c, b in zip(core, block))
        ]
        if (yield ChunkUpdate(done, len(cores), core, plan.steps)) is False and done < len(cores):
            params["cancelled_after"] = done
            break
    return finish_ome_zarr(group, plan.voxel if plan.voxel else voxel, params)


@dataclass
class _Plan:
    vol: Any
    voxel: tuple[float, ...] | None
    chunks: tuple[int, ...]
    depth: tuple[int, ...]
    steps: int
    one: Any
    params: dict[str, Any]


def _plan(y, psf, method, chunks, steps, depth, camera, device, seed, method_options) -> _Plan:
    """What every chunk shares: the lazy volume, the overlap, the kernel, one camera and one
    count (the held-out rule's on a probe block unless given), and the block function."""
    if method not in CHUNKED_METHODS:
        raise ValueError(
            f"method {method!r} does not run in chunks yet; use one of {CHUNKED_METHODS}."
        )
    from .._omezarr import is_ome_zarr, read_ome_zarr

    voxel = None
    if isinstance(y, (str, os.PathLike)):
        if not is_ome_zarr(y):
            raise ValueError(f"{y} is not an OME-Zarr folder; give an array or an OME-Zarr path.")
        y, voxel, _ = read_ome_zarr(y)
    shape = tuple(int(s) for s in np.shape(y))
    chunks = _check_chunks(chunks, shape)
    vol = _as_dask(y, chunks)
    if depth is None:
        probe = _kernel(psf, tuple(2 * c + 1 for c in chunks))
        depth = tuple(min(2 * r, c) for r, c in zip(psf_reach(probe), chunks))
    depth = tuple(int(d) for d in depth)
    if len(depth) != 3 or min(depth) < 0:
        raise ValueError(f"depth must be three sizes >= 0, got {depth!r}.")
    block = tuple(min(c + 2 * d, s) for c, d, s in zip(chunks, depth, shape))
    kernel = _kernel(psf, block)
    _check_chunk_memory(chunks, depth, block, kernel.shape)
    cam = _camera(vol, camera)
    common = {"device": device, "seed": int(seed), "camera": cam, **method_options}
    if steps is None:
        steps = _probe_steps(vol, kernel, method, common, depth)
    fixed = {**common, "steps": int(steps), "holdout": 0.0}

    def one(b: np.ndarray) -> np.ndarray:
        k = _kernel(kernel, b.shape)
        return _deconvolve(b, k, method, fixed).image.astype(np.float32)

    from .._version import __version__

    params = {
        "method": method,
        "steps": int(steps),
        "chunks": list(chunks),
        "depth": list(depth),
        "camera": cam,
        "psf": psf if isinstance(psf, dict) else {"shape": list(np.shape(psf))},
        "options": dict(method_options),
        "version": __version__,
    }
    return _Plan(vol, voxel, chunks, depth, int(steps), one, params)


#: What a chunk's Richardson-Lucy holds per voxel of its FFT grid (its iterate, the data,
#: spectra, temporaries: ~1.1 GiB for the 80x288x288 grid of a 64x256x256 core, measured
#: with the process's baseline).
CHUNK_BYTES_PER_VOXEL = 100


def _physical_memory() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # (not on every platform)
        return None


def _check_chunk_memory(chunks, depth, block, kernel_shape) -> None:
    """ValueError with the reason when one chunk alone would need over half the machine's
    memory: a PSF that reaches far (a computed widefield PSF) makes the overlap and the
    unknown border's margin large."""
    grid = tuple(b + k - 1 for b, k in zip(block, kernel_shape))
    need = CHUNK_BYTES_PER_VOXEL * math.prod(grid)
    total = _physical_memory()
    if total and need > total / 2:
        raise ValueError(
            f"each chunk would need about {need / 2**30:.1f} GiB, over half of this machine's "
            f"{total / 2**30:.0f} GiB: its core {'x'.join(map(str, chunks))} grows to "
            f"{'x'.join(map(str, grid))} voxels with the overlap {tuple(depth)} and the PSF's "
            f"reach (kernel {'x'.join(map(str, kernel_shape))}). Give smaller chunks, or a PSF "
            "cropped to where it matters (a widefield PSF's faint tails reach far)."
        )


def _camera(vol, camera: Any) -> dict[str, float] | None:
    """One camera for every chunk: fitted once (``"auto"``) on planes spread through the stack,
    or as given; None where the noise is not photon counts (no camera to model)."""
    if camera is None or isinstance(camera, dict):
        return camera
    if not (isinstance(camera, str) and camera == "auto"):
        raise ValueError(f"camera must be 'auto', None or a dict, got {camera!r}.")
    from ..solvers.camera import estimate_camera

    n = vol.shape[0]
    picks = np.unique(np.linspace(0, n - 1, min(n, CAMERA_PLANES)).round().astype(int))
    planes = np.asarray(vol[picks].compute(), dtype=np.float32)
    try:
        cam = estimate_camera(planes)
    except ValueError:  # too small to fit a camera to: the data as they are
        return None
    if not cam["poisson"]:
        return None
    return {k: float(cam[k]) for k in ("offset", "gain", "read_noise")}


def _probe_steps(vol, kernel: np.ndarray, method: str, common: dict[str, Any], depth) -> int:
    """The stopping step of the held-out rule on one block of up to :data:`PROBE_VOXELS` around
    the brightest chunk (the whole volume when it is smaller)."""
    import dask.array as da

    means = da.map_blocks(lambda b: np.array([[[b.mean()]]]), vol, chunks=(1, 1, 1))
    means = np.asarray(means.compute())
    idx = np.unravel_index(int(np.argmax(means)), means.shape)
    centre = [
        (int(np.cumsum((0,) + vol.chunks[a])[i]) + vol.chunks[a][i] // 2) for a, i in enumerate(idx)
    ]
    # grow the block around the chunk's centre, each axis in proportion, up to the budget
    scale = min(1.0, (PROBE_VOXELS / math.prod(vol.shape)) ** (1 / 3))
    size = [
        max(min(n, c + 2 * d), round(n * scale))
        for n, c, d in zip(vol.shape, (max(c) for c in vol.chunks), depth)
    ]
    while math.prod(size) > PROBE_VOXELS and max(size) > 1:
        a = int(np.argmax(size))
        size[a] = max(1, int(size[a] * 0.9))
    sl = []
    for n, c, k in zip(vol.shape, centre, size):
        lo = min(max(0, c - k // 2), n - k)
        sl.append(slice(lo, lo + k))
    b = np.asarray(vol[tuple(sl)].compute())
    rec = _deconvolve(b, _kernel(kernel, b.shape), method, common)
    return max(1, int(rec.params.get("iterations") or 1))
