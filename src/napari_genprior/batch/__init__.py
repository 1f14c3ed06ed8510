"""Folders of images: reconstruct every plane of every file, locally or on a dask cluster.

:func:`plan_batch` turns folders, glob patterns and file names into :class:`Job` objects (input,
output, whether it is already done); :func:`run_batch` reconstructs them with
:func:`napari_genprior.api.reconstruct` and writes one float32 TIFF per input, with everything
that reproduces it in its metadata. A file's planes are its leading axes: a 2D image is one
plane, ``(Z, H, W)`` or ``(T, Z, H, W)`` are stacks.

How the work is split
---------------------
Every **plane** is one dask task. Planes, not files, because a folder of microscope images is
as often a few large stacks as many single images: with one task per file, one 40-plane stack
would keep one core busy and the others idle. This process reads the files (one at a time,
a few files ahead of the workers, so memory stays bounded), sends their planes to the workers
and writes each output as soon as all of its planes are back, so the workers need no access to
the output folder, and an interrupted batch keeps every file it finished. On a distributed
cluster the planes are futures, submitted as workers free up; dask's local schedulers
(``"sync"``, ``"threads"``) take them in waves of whole files. Each plane runs
:func:`~napari_genprior.api.reconstruct` with the same arguments and seed as
:func:`~napari_genprior.api.reconstruct_stack` would, on torch with a fixed number of threads
(1 by default), so a batch gives the same numbers on any scheduler.

Nothing here imports napari or Qt: it runs on a headless dask worker.

The package's modules: :mod:`._plan` (which files, their outputs, which are done),
:mod:`._files` (reading an input and its operator, writing an output, the full disk),
:mod:`._dask` (the planes on dask's schedulers or a cluster: submitting, retrying) and
:mod:`._run` (:func:`run_batch` and its arguments).
"""

from __future__ import annotations

from ._chunked import ChunkUpdate, iter_reconstruct_chunked, reconstruct_chunked
from ._files import DiskFull, FileResult
from ._plan import TIFF_SUFFIXES, Job, plan_batch
from ._run import BatchReport, default_workers, run_batch

__all__ = [
    "ChunkUpdate",
    "iter_reconstruct_chunked",
    "reconstruct_chunked",
    "TIFF_SUFFIXES",
    "BatchReport",
    "DiskFull",
    "FileResult",
    "Job",
    "default_workers",
    "plan_batch",
    "run_batch",
]
