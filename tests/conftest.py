"""Shared fixtures. torch is imported before any Qt binding (a known torch/PyQt clash)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

# The CI machines have 2 shared cores; torch on 2 threads there was measured many times slower.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def nuclei() -> np.ndarray:
    """The bundled clean nuclei sample (128x128, uint16)."""
    from napari_genprior._io import read_tiff
    from napari_genprior._sample_data import NUCLEI, sample_path

    return read_tiff(sample_path(NUCLEI))[0]


@pytest.fixture(scope="session")
def nuclei64(nuclei) -> np.ndarray:
    """A 64x64 float32 crop of the nuclei sample: small enough for fast reconstructions."""
    return nuclei[32:96, 32:96].astype(np.float32)


def latency_limit(seconds: float) -> float:
    """A latency bound for GUI tests: ``seconds`` on a machine with a free core, three times
    that when every core is already busy with other work (the event loop itself is starved)."""
    import os

    return seconds if os.getloadavg()[0] < (os.cpu_count() or 1) else 3 * seconds


@pytest.fixture(autouse=True)
def _no_run_confirmation(request, monkeypatch):
    """GUI tests run long settings on purpose (100,000 steps, then Cancel): the Reconstruct
    widget's "over a minute: click Run again" stop is off for them, except where a test turns it
    on (``widget.confirm_seconds``), as tests/test_newcomer.py does."""
    if "make_napari_viewer" in request.fixturenames:
        monkeypatch.setattr("napari_genprior._widgets.reconstruct.CONFIRM_SECONDS", None)
