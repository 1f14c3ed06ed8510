"""napari sample data: every sample loads, fast and the same every time; its measurement layer
rebuilds its operator and measurement, and a classical reconstruction beats the back-projection."""

from __future__ import annotations

import time

import numpy as np
import pytest

import napari_genprior as ngp
from napari_genprior import _sample_data
from napari_genprior._layerdata import measurement_of

# key in napari.yaml -> (function, layer names, (operator kind, measurement shape and dtype,
#                        a method that should beat the adjoint, its options))
SAMPLES = {
    "nuclei": ("nuclei", ["nuclei"], None),
    "nuclei-inpaint": (
        "nuclei_inpaint",
        ["nuclei", "nuclei [50% pixels, noisy]"],
        ("inpaint", (128, 128), np.float32, "tv", {}),
    ),
    "nuclei-blur": (
        "nuclei_blur",
        ["nuclei", "nuclei [blur 2 px, Poisson]"],
        ("blur", (128, 128), np.float32, "tv", {}),
    ),
    "mri-phantom": (
        "mri_phantom",
        ["brain phantom", "brain phantom [mri 4x k-space]"],
        ("mri", (256, 256), np.complex64, "tv", {}),
    ),
    "digit-cs": (
        "digit_cs",
        ["digit", "digit [cs, 200 measurements]"],
        ("cs", (200,), np.float32, "lasso-dct", {}),
    ),
    "nuclei-stack": (
        "nuclei_stack",
        ["nuclei stack", "nuclei stack [widefield NA 1.2, Poisson]"],
        ("blur", (24, 96, 96), np.float32, "richardson-lucy", {}),
    ),
}
DEGRADED = [key for key, (_, _, measured) in SAMPLES.items() if measured is not None]


def _load(key: str) -> list[tuple]:
    return getattr(_sample_data, SAMPLES[key][0])()


@pytest.mark.parametrize("key", list(SAMPLES))
def test_sample_loads_fast_and_the_same_every_time(key):
    _load(key)  # warm: imports and file caches
    t0 = time.perf_counter()
    layers = _load(key)
    from conftest import latency_limit

    assert time.perf_counter() - t0 < latency_limit(1.0)
    assert [kwargs["name"] for _, kwargs, _ in layers] == SAMPLES[key][1]
    assert all(kind == "image" for _, _, kind in layers)
    for (a, ka, _), (b, kb, _) in zip(layers, _load(key)):
        np.testing.assert_array_equal(a, b)
        assert ka.get("metadata") == kb.get("metadata")


@pytest.mark.parametrize("key", DEGRADED)
def test_measurement_layer_rebuilds_operator_and_measurement(key):
    (clean, _, _), (data, kwargs, _) = _load(key)
    kind, shape, dtype, _, _ = SAMPLES[key][2]
    y, A = measurement_of(data, kwargs["metadata"])
    assert A.kind == kind and A.shape == clean.shape
    assert y.shape == shape == A.measurement_shape
    if dtype == np.complex64:
        assert np.iscomplexobj(y) and data.dtype == np.float32  # shown as log-magnitude
        np.testing.assert_allclose(data, np.log1p(np.abs(y)), rtol=1e-6)
        assert np.all(y[~A.observed()] == 0)
    else:
        assert np.isrealobj(y)
    assert kwargs["metadata"]["genprior"]["role"] == "measurement"


def test_blur_sample_has_poisson_noise_at_100_photons():
    (clean, _, _), (y, kwargs, _) = _load("nuclei-blur")
    info = kwargs["metadata"]["genprior"]
    assert info["photons"] == 100.0 and info["operator"]["sigma"] in (2.0, [2.0, 2.0])
    A = ngp.make_operator("blur", shape=clean.shape, sigma=2.0)
    blurred = A.measure(clean)
    peak = float(blurred.max())
    counts = y * (100.0 / peak)
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-3)  # whole photons
    # Poisson: the variance of the counts is their mean
    resid = counts - blurred * (100.0 / peak)
    ratio = float(np.mean(resid**2) / np.mean(blurred * (100.0 / peak)))
    assert 0.8 < ratio < 1.2, ratio


def test_mri_and_digit_samples_use_the_documented_settings():
    (x, _, _), (data, kwargs, _) = _load("mri-phantom")
    _, A = measurement_of(data, kwargs["metadata"])
    assert x.shape == (256, 256) and 0 <= x.min() and x.max() <= 1
    assert (A.acceleration, A.center_fraction, A.mask_kind) == (4.0, 0.08, "variable-density")
    assert 0.2 < A.sampled_fraction < 0.3
    assert kwargs["metadata"]["genprior"]["noise_std"] == 0.005
    (digit, _, _), (strip, kwargs, _) = _load("digit-cs")
    assert strip.shape == (1, 200) and digit.dtype == np.float32
    assert 0 <= digit.min() and digit.max() <= 1 and digit.max() > 0.9
    assert kwargs["metadata"]["genprior"]["operator"]["m"] == 200


@pytest.mark.parametrize("key", DEGRADED)
def test_classical_reconstruction_beats_the_adjoint(key):
    (clean, _, _), (data, kwargs, _) = _load(key)
    method, options = SAMPLES[key][2][3:]
    y, A = measurement_of(data, kwargs["metadata"])
    x = clean.astype(np.float32)
    p_adj = ngp.metrics.psnr(x, ngp.reconstruct(y, A, method="adjoint").image)
    p_rec = ngp.metrics.psnr(x, ngp.reconstruct(y, A, method=method, seed=0, **options).image)
    assert p_rec > p_adj + 1, (p_adj, p_rec)


@pytest.mark.gui
@pytest.mark.parametrize("key", list(SAMPLES))
def test_samples_open_in_napari(make_napari_viewer, key):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-genprior", key)
    assert [layer.name for layer in viewer.layers] == SAMPLES[key][1]
    if SAMPLES[key][2] is not None:
        layer = viewer.layers[-1]
        y, A = measurement_of(layer.data, layer.metadata)
        assert A.kind == SAMPLES[key][2][0] and y.shape == SAMPLES[key][2][1]
