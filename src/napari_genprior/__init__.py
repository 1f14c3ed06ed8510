"""napari-genprior: image reconstruction under generative priors, in napari and in Python.

The public API (docs/python.md) is loaded lazily, so that ``import napari_genprior`` (and napari
reading this plugin's manifest at start-up) does not import torch::

    import napari_genprior as ngp
    A = ngp.make_operator("inpaint", shape=(128, 128), fraction=0.5, seed=0)
    y = A.measure(x, noise_std=0.05, seed=0)
    rec = ngp.reconstruct(y, A, seed=0)  # the method recommended for A: here tv
    ngp.metrics.psnr(x, rec.image)
    again = ngp.rerun(rec, measurement=y)  # the same image, from rec.params
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

_API = {
    "make_operator": "napari_genprior.api",
    "reconstruct": "napari_genprior.api",
    "rerun": "napari_genprior.api",
    "iter_reconstruct": "napari_genprior.api",
    "iter_reconstruct_stack": "napari_genprior.api",
    "reconstruct_stack": "napari_genprior.api",
    "reconstruct_chunked": "napari_genprior.batch",
    "measurement_from_layer": "napari_genprior.api",
    "iter_train": "napari_genprior.api",
    "list_methods": "napari_genprior.api",
    "Reconstruction": "napari_genprior.api",
    "Update": "napari_genprior.api",
    "list_priors": "napari_genprior.api",
    "load_prior": "napari_genprior.api",
    "random_prior": "napari_genprior.api",
    "train_prior": "napari_genprior.api",
}
_SUBMODULES = {
    "metrics",
    "operators",
    "priors",
    "solvers",
    "api",
    "devices",
    "training",
    "batch",
    "tiling",
    "synthetic",
}

__all__ = ["__version__", *_API, *sorted(_SUBMODULES)]

if TYPE_CHECKING:  # pragma: no cover
    from . import api, devices, metrics, operators, priors, solvers
    from .api import (
        Reconstruction,
        Update,
        iter_reconstruct,
        iter_reconstruct_stack,
        iter_train,
        list_methods,
        list_priors,
        load_prior,
        make_operator,
        measurement_from_layer,
        random_prior,
        reconstruct,
        reconstruct_stack,
        rerun,
        train_prior,
    )
    from .batch import reconstruct_chunked


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
