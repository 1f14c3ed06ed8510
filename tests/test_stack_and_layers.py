"""Stacks plane by plane and measurement layers from the API (what the console section shows)."""

from __future__ import annotations

import numpy as np
import pytest

import napari_genprior as ngp
from napari_genprior._layerdata import measurement_layer


def test_reconstruct_stack_does_every_plane_and_matches_single_planes(nuclei64):
    clean = np.stack([nuclei64, nuclei64.T, nuclei64[::-1]])
    A = ngp.make_operator("blur", shape=(64, 64), sigma=1.5)
    Y = np.stack([A.measure(x, noise_std=2.0, seed=i) for i, x in enumerate(clean)])
    planes = []
    rec = ngp.reconstruct_stack(
        Y, A, method="tv", seed=0, callback=lambda u: planes.append((u.plane, u.planes))
    )
    assert rec.image.shape == (3, 64, 64) and rec.params["planes_done"] == 3
    assert {p for p, _ in planes} == {0, 1, 2} and {n for _, n in planes} == {3}
    single = ngp.reconstruct(Y[1], A, method="tv", seed=0).image
    np.testing.assert_allclose(rec.image[1], single, rtol=1e-5, atol=1e-4)
    for k in range(3):
        assert ngp.metrics.psnr(clean[k], rec.image[k]) > ngp.metrics.psnr(clean[k], Y[k])


def test_reconstruct_stack_stops_and_keeps_finished_planes(nuclei64):
    A = ngp.make_operator("denoise", shape=(64, 64))
    Y = np.stack([nuclei64] * 3)
    rec = ngp.reconstruct_stack(
        Y, A, method="dip", steps=40, callback=lambda u: False if u.plane == 1 else None
    )
    assert rec.cancelled and rec.params["planes_done"] == 2
    assert np.all(rec.image[2] == 0) and np.any(rec.image[0] != 0)


def test_reconstruct_stack_checks_shapes_before_any_work():
    A = ngp.make_operator("denoise", shape=(16, 16))
    with pytest.raises(ValueError, match="measurement shape"):
        ngp.reconstruct_stack(np.zeros((2, 16, 15)), A, method="tv")
    with pytest.raises(ValueError, match="unknown method"):
        ngp.reconstruct_stack(np.zeros((2, 16, 16)), A, method="nope")


@pytest.mark.parametrize(
    "kind, kw",
    [
        ("mri", {"acceleration": 4}),
        ("cs", {"m": 60}),
        ("downsample", {"factor": 2}),
        ("inpaint", {"fraction": 0.5}),
    ],
)
def test_measurement_layers_round_trip_exactly(kind, kw):
    x = np.random.default_rng(1).random((16, 16))
    A = (
        ngp.make_operator(kind, shape=x.shape, seed=0, **kw)
        if kind != "downsample"
        else ngp.make_operator(kind, shape=x.shape, **kw)
    )
    y = A.measure(x, noise_std=0.01, seed=2)
    data, kwargs, layer_type = measurement_layer(y, A, "m", noise_std=0.01)
    assert layer_type == "image" and data.dtype == np.float32 and data.ndim == 2
    y2, A2 = ngp.measurement_from_layer(data, kwargs["metadata"])
    np.testing.assert_array_equal(y2, y)
    assert A2.spec() == A.spec()


def test_measurement_from_layer_refuses_edited_metadata():
    A = ngp.make_operator("cs", shape=(8, 8), m=20, seed=0)
    y = A.measure(np.ones((8, 8)), seed=0)
    data, kwargs, _ = measurement_layer(y, A, "m")
    meta = kwargs["metadata"]
    with pytest.raises(ValueError, match="no operator"):
        ngp.measurement_from_layer(data, {})
    bad = {
        "genprior": {
            **meta["genprior"],
            "operator": {"kind": "cs", "shape": [8, 8], "m": 21, "seed": 0},
        }
    }
    with pytest.raises(ValueError, match="shape"):
        ngp.measurement_from_layer(data, bad)
    nonsense = {"genprior": {**meta["genprior"], "operator": {"kind": "warp", "shape": [8, 8]}}}
    with pytest.raises(ValueError):
        ngp.measurement_from_layer(data, nonsense)


def test_data_consistency_and_residual_metrics():
    x = np.random.default_rng(3).random((16, 16))
    A = ngp.make_operator("mri", shape=x.shape, acceleration=2, seed=0)
    y = A.measure(x, noise_std=0.01, seed=0)
    good = ngp.metrics.data_consistency(y, A, x)
    bad = ngp.metrics.data_consistency(y, A, np.zeros_like(x))
    assert good < 0.1 < bad == pytest.approx(1.0)
    r = ngp.metrics.residual_image(y, A, x)
    assert r.shape == x.shape and np.abs(r).max() < 0.1
    with pytest.raises(ValueError, match="shape"):
        ngp.metrics.data_consistency(y, A, np.zeros((8, 8)))


def test_a_dask_stack_is_read_one_plane_at_a_time(nuclei64):
    import dask
    import dask.array as da

    read = []

    @dask.delayed
    def load(k):
        read.append(k)
        return nuclei64 + k

    Y = da.stack([da.from_delayed(load(k), shape=(64, 64), dtype=np.float32) for k in range(3)])
    A = ngp.make_operator("denoise", shape=(64, 64))
    seen = []

    def callback(u):
        seen.append((u.plane, list(read)))

    rec = ngp.reconstruct_stack(Y, A, method="tv", callback=callback)
    assert rec.image.shape == (3, 64, 64)
    first_plane_reads = [r for p, r in seen if p == 0]
    assert first_plane_reads and all(2 not in r for r in first_plane_reads)
    assert sorted(set(read)) == [0, 1, 2]
