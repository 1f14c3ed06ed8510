import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import napari_genprior as ngp
from napari_genprior.operators import OPERATORS, from_spec

shapes = st.tuples(st.integers(1, 40), st.integers(1, 40))


def _linear_ops(shape, seed):
    rng = np.random.default_rng(seed)
    return [
        ngp.make_operator("denoise", shape=shape),
        ngp.make_operator("inpaint", shape=shape, fraction=0.3, seed=seed),
        ngp.make_operator("inpaint", shape=shape, mask=rng.random(shape) < 0.5 if shape != (1, 1)
                          else np.ones(shape, bool)),
    ]


@settings(max_examples=25, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_adjoint_dot_product(shape, seed):
    g = torch.Generator().manual_seed(seed)
    for A in _linear_ops(shape, seed):
        x = torch.randn(shape, generator=g, dtype=torch.float64)
        y = torch.randn(A.measurement_shape, generator=g, dtype=torch.float64)
        Ax, ATy = A.forward(x), A.adjoint(y)
        lhs, rhs = float((Ax * y).sum()), float((x * ATy).sum())
        denom = max(float(Ax.norm() * y.norm()), 1e-300)
        assert abs(lhs - rhs) / denom < 1e-5, A


def test_batched_forward_matches_per_image():
    A = ngp.make_operator("inpaint", shape=(16, 12), fraction=0.4, seed=3)
    xb = torch.randn(5, 16, 12, dtype=torch.float64)
    yb = A(xb)
    for i in range(5):
        torch.testing.assert_close(yb[i], A(xb[i]))


@pytest.mark.parametrize("params", [
    {"kind": "denoise"},
    {"kind": "inpaint", "fraction": 0.25, "seed": 11},
    {"kind": "inpaint", "mask": np.eye(20, 24, dtype=bool) | np.eye(20, 24, k=3, dtype=bool)},
])
def test_spec_round_trip_reproduces_forward(params):
    params = dict(params)
    A = ngp.make_operator(params.pop("kind"), shape=(20, 24), **params)
    spec = json.loads(json.dumps(A.spec()))  # survives JSON
    B = from_spec(spec)
    x = torch.randn(20, 24, dtype=torch.float64)
    assert torch.equal(A(x), B(x))
    assert B.spec() == A.spec()


def test_random_mask_is_determined_by_seed_and_keeps_the_fraction():
    a = ngp.make_operator("inpaint", shape=(50, 40), fraction=0.3, seed=5)
    b = ngp.make_operator("inpaint", shape=(50, 40), fraction=0.3, seed=5)
    c = ngp.make_operator("inpaint", shape=(50, 40), fraction=0.3, seed=6)
    assert np.array_equal(a.mask, b.mask)
    assert not np.array_equal(a.mask, c.mask)
    assert a.mask.sum() == round(0.3 * 2000)


def test_unseeded_random_mask_records_its_seed():
    A = ngp.make_operator("inpaint", shape=(10, 10), fraction=0.5)
    assert isinstance(A.spec()["seed"], int)
    assert np.array_equal(from_spec(A.spec()).mask, A.mask)


def test_measure_noise_only_on_observed_pixels_and_reproducible(nuclei64):
    A = ngp.make_operator("inpaint", shape=nuclei64.shape, fraction=0.5, seed=0)
    y1 = A.measure(nuclei64, noise_std=5.0, seed=1)
    y2 = A.measure(nuclei64, noise_std=5.0, seed=1)
    assert y1.dtype == np.float32 and y1.shape == nuclei64.shape
    assert np.array_equal(y1, y2)
    assert np.all(y1[~A.mask] == 0)
    resid = (y1 - nuclei64)[A.mask]
    assert 4.0 < resid.std() < 6.0


def test_measure_does_not_touch_its_input(nuclei64):
    x = nuclei64.copy()
    ngp.make_operator("denoise", shape=x.shape).measure(x, noise_std=1.0, seed=0)
    assert np.array_equal(x, nuclei64)


def test_to_moves_buffers_and_copy_leaves_original():
    A = ngp.make_operator("inpaint", shape=(8, 8), fraction=0.5, seed=0)
    B = A.copy().to("cpu")
    assert B._buffers["mask"].device.type == "cpu" and A.device.type == "cpu"
    assert B._buffers is not A._buffers


@pytest.mark.parametrize("call, error, words", [
    (lambda: ngp.make_operator("blurry", shape=(8, 8)), ValueError, "unknown operator kind"),
    (lambda: ngp.make_operator("inpaint"), ValueError, "needs shape"),
    (lambda: ngp.make_operator("inpaint", shape=(8,)), ValueError, "2D or 3D"),
    (lambda: ngp.make_operator("inpaint", shape="big"), ValueError, "2D or 3D"),
    (lambda: ngp.make_operator("inpaint", shape=(8, 8), fraction=0), ValueError, "fraction"),
    (lambda: ngp.make_operator("inpaint", shape=(8, 8), fraction=1.5), ValueError, "fraction"),
    (lambda: ngp.make_operator("inpaint", shape=(8, 8), mask=np.ones((4, 4))), ValueError, "mask has shape"),
    (lambda: ngp.make_operator("inpaint", shape=(8, 8), mask=np.zeros((8, 8))), ValueError, "no pixel"),
    (lambda: ngp.make_operator("denoise", shape=(8, 8), sigma=2), TypeError, "does not take"),
    (lambda: from_spec({"shape": [8, 8]}), ValueError, "'kind' and 'shape'"),
    (lambda: from_spec({"kind": "inpaint", "shape": [8, 8], "mask": {"shape": [8, 8], "packbits": "!!"}}),
     ValueError, "malformed"),
])
def test_bad_arguments_raise_a_sentence(call, error, words):
    with pytest.raises(error, match=words):
        call()


@pytest.mark.parametrize("x, words", [
    (np.full((8, 8), np.nan), "NaN"),
    (np.ones((8, 9)), "shape"),
    (np.ones((8, 8)) * 1j, "complex"),
    (np.array([["a"] * 8] * 8), "numeric"),
])
def test_measure_rejects_bad_images(x, words):
    A = ngp.make_operator("denoise", shape=(8, 8))
    with pytest.raises((ValueError, TypeError), match=words):
        A.measure(x)


def test_every_kind_is_registered():
    assert {"denoise", "inpaint"} <= set(OPERATORS)
