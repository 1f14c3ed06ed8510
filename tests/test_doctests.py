"""The Examples sections of the public API's docstrings run, and say what they show (issue 19).

The public API: every name ``napari_genprior`` exports (``make_operator``, ``reconstruct``,
``load_prior``, ``train_prior``, ...) and every function of ``metrics``. Each must have a
numpydoc ``Examples`` section with examples, and they must pass as doctests.
"""

import doctest
import importlib

import pytest
import torch

CORE = [
    ("napari_genprior.operators", "make_operator"),
    ("napari_genprior.api", "reconstruct"),
    ("napari_genprior.api", "load_prior"),
    ("napari_genprior.api", "train_prior"),
    ("napari_genprior.api", "iter_reconstruct"),
    ("napari_genprior.api", "iter_reconstruct_stack"),
    ("napari_genprior.api", "reconstruct_stack"),
    ("napari_genprior.api", "rerun"),
    ("napari_genprior.batch", "reconstruct_chunked"),
    ("napari_genprior.api", "measurement_from_layer"),
    ("napari_genprior.api", "list_methods"),
    ("napari_genprior.api", "list_priors"),
    ("napari_genprior.api", "random_prior"),
    ("napari_genprior.api", "iter_train"),
    ("napari_genprior.api", "Reconstruction"),
    ("napari_genprior.api", "Update"),
    ("napari_genprior.metrics", None),  # the module's own example
    ("napari_genprior.metrics", "psnr"),
    ("napari_genprior.metrics", "ssim"),
    ("napari_genprior.metrics", "nmse"),
    ("napari_genprior.metrics", "data_range"),
    ("napari_genprior.metrics", "data_consistency"),
]


@pytest.mark.parametrize(("module", "name"), CORE, ids=[f"{m}.{n or ''}" for m, n in CORE])
def test_core_examples_run(module, name):
    mod = importlib.import_module(module)
    obj = mod if name is None else getattr(mod, name)
    assert "\n    Examples\n    --------\n" in obj.__doc__ or (
        name is None and "\nExamples\n--------\n" in obj.__doc__
    ), f"{module}.{name}: no Examples"
    tests = doctest.DocTestFinder(recurse=False).find(
        obj, name or module, module=mod, globs=dict(vars(mod))
    )
    assert tests and tests[0].examples, f"{module}.{name}: its Examples section has no examples"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    threads = torch.get_num_threads()
    try:
        for t in tests:
            runner.run(t)
    finally:
        torch.set_num_threads(threads)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed (above)"


def test_every_exported_name_is_checked():
    import napari_genprior as ngp

    exported = {n for n in ngp._API if not n.startswith("_")}
    assert exported <= {name for _, name in CORE}, exported - {name for _, name in CORE}


def test_a_wrong_example_fails():
    def f():
        """
        Examples
        --------
        >>> 1 + 1
        3
        """

    runner = doctest.DocTestRunner()
    for t in doctest.DocTestFinder().find(f, "f"):
        runner.run(t, out=lambda s: None)
    assert runner.summarize(verbose=False).failed == 1
