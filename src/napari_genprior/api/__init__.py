"""The public API (DESIGN.md): the functions the console, the CLI, the widgets and tests share.

``napari_genprior`` re-exports them (``ngp.reconstruct`` is :func:`reconstruct`). They live in
``_reconstruct`` (arguments, running a method, layers), ``_stacks`` (plane by plane) and
``_priors`` (loading and training priors); ``_rerun`` (a result run again from its record).
"""

from ..devices import available_devices, resolve_device
from ..operators import from_spec, make_operator
from ..solvers import Reconstruction, Update
from ._priors import iter_train, list_priors, load_prior, random_prior, train_prior
from ._reconstruct import (
    iter_reconstruct,
    list_methods,
    measurement_from_layer,
    reconstruct,
)
from ._rerun import rerun
from ._stacks import iter_reconstruct_stack, reconstruct_stack

__all__ = [
    "Reconstruction",
    "Update",
    "available_devices",
    "from_spec",
    "list_priors",
    "load_prior",
    "random_prior",
    "resolve_device",
    "train_prior",
    "iter_train",
    "iter_reconstruct",
    "iter_reconstruct_stack",
    "reconstruct_stack",
    "measurement_from_layer",
    "list_methods",
    "make_operator",
    "reconstruct",
    "rerun",
]
