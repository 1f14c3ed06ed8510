"""Fuzzing the public API: ``make_operator`` + ``measure`` + ``reconstruct`` on random shapes,
dtypes and parameters, valid and not. Each call either gives a valid result or raises
ValueError/TypeError with a sentence; never another exception, a hang or a crash.

Hangs are caught by hypothesis's per-example deadline; every reconstruction here is capped at a
few steps, so a slow example means a solver ignored ``steps`` or looped.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import napari_genprior as ngp

KINDS = ["denoise", "inpaint", "blur", "downsample", "cs", "mri", "phase"]
DTYPES = [
    np.float64,
    np.float32,
    np.float16,
    np.uint8,
    np.uint16,
    np.int16,
    np.int64,
    bool,
    np.complex64,
    object,
    "U3",
]
# Values that are wrong in type or range for some parameter of some operator.
JUNK = st.sampled_from(
    [
        None,
        -1,
        0,
        0.0,
        -0.5,
        1e9,
        float("nan"),
        float("inf"),
        "x",
        [],
        [1, 2],
        {"a": 1},
        True,
        (3, 3),
        np.zeros((2, 2)),
        np.ones(3, bool),
    ]
)
EXPECTED = (ValueError, TypeError)
# CI tries 300 cases per run (a few seconds); GENPRIOR_FUZZ_EXAMPLES=3000 for a longer hunt.
EXAMPLES = int(os.environ.get("GENPRIOR_FUZZ_EXAMPLES", "300"))


def _sentence(exc: BaseException) -> None:
    """The error is a sentence a user can act on, not an empty or internal message."""
    msg = str(exc)
    assert len(msg) > 15, f"{type(exc).__name__} with a terse message: {msg!r}"
    assert "Traceback" not in msg


@st.composite
def shapes(draw):
    """Mostly small valid 2D/3D shapes; sometimes degenerate or nonsense ones."""
    kind = draw(st.sampled_from(["2d"] * 6 + ["3d", "3d", "degenerate", "junk"]))
    side = st.integers(1, 12)
    if kind == "2d":
        return (draw(side), draw(side))
    if kind == "3d":
        return (draw(st.integers(1, 4)), draw(side), draw(side))
    if kind == "degenerate":
        return draw(st.sampled_from([(0, 5), (5, 0), (1,), (7,), (1, 1), (), (2, 2, 2, 2)]))
    return draw(
        st.sampled_from([(-3, 4), (4.5, 4), ("a", 3), None, 5, "8x8", (np.int64(6), 6), (True, 4)])
    )


@st.composite
def params(draw, kind):
    """Keyword arguments for ``kind``: usually sensible, sometimes junk or unknown."""
    p: dict = {}
    if kind == "inpaint":
        p = draw(st.sampled_from([{"fraction": 0.3}, {"boxes": 2}, {"fraction": 0.9}, {}]))
    elif kind == "blur":
        p = draw(
            st.sampled_from(
                [
                    {"sigma": 1.0},
                    {"sigma": 0.3, "boundary": "periodic"},
                    {"psf": np.ones((3, 3))},
                    {"sigma": (1.0, 2.0)},
                ]
            )
        )
    elif kind == "downsample":
        p = draw(
            st.sampled_from([{"factor": 2}, {"factor": 3, "antialias": True}, {"factor": (2, 1)}])
        )
    elif kind == "cs":
        p = {
            "m": draw(st.sampled_from([1, 10, 30, 60, 0, 500])),
            "matrix": draw(st.sampled_from(["auto", "dense", "structured"])),
        }
    elif kind == "mri":
        p = draw(
            st.sampled_from(
                [
                    {"acceleration": 4},
                    {"acceleration": 1},
                    {"mask": "equispaced"},
                    {"acceleration": 2.5, "center_fraction": 0.2},
                ]
            )
        )
    elif kind == "phase":
        p = draw(st.sampled_from([{"m": 40}, {"masks": 2}, {}]))
    if kind in ("inpaint", "cs", "mri", "phase"):
        p = dict(p, seed=draw(st.integers(0, 3)))
    if draw(st.integers(0, 7)) == 0:  # one parameter replaced by junk, or an unknown one added
        key = draw(st.sampled_from(sorted(p) + ["bogus"]))
        # a copy: the dicts above are drawn from shared lists, and junk written into one of them
        # changed later draws (Hypothesis then reported its data generation flaky)
        p = {**p, key: draw(JUNK)}
    return p


def _image(draw, shape, dtype):
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.random(shape) * 4
    if dtype == "U3" or dtype is object:
        return x.astype(dtype)
    if np.issubdtype(np.dtype(dtype), np.complexfloating):
        return (x + 1j * x).astype(dtype)
    x = (x * 50).astype(dtype) if np.issubdtype(np.dtype(dtype), np.integer) else x.astype(dtype)
    if x.size and np.issubdtype(x.dtype, np.floating) and draw(st.integers(0, 5)) == 0:
        x.flat[draw(st.integers(0, x.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    return x


@settings(max_examples=EXAMPLES, deadline=20_000, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_make_operator_measure_reconstruct_only_raise_value_or_type_errors(data):
    torch.set_num_threads(1)
    kind = data.draw(st.sampled_from(KINDS * 3 + ["nope", 3]), label="kind")
    shape = data.draw(shapes(), label="shape")
    p = data.draw(params(kind if isinstance(kind, str) else "denoise"), label="params")
    try:
        A = ngp.make_operator(kind, shape=shape, **p)
    except EXPECTED as exc:
        _sentence(exc)
        event(f"make_operator refused {str(exc)[:50]}")
        return
    # A valid operator is what it says it is.
    assert A.shape == tuple(int(s) for s in shape)
    assert all(s >= 1 for s in A.measurement_shape)

    dtype = data.draw(st.sampled_from(DTYPES + [np.float32] * 6), label="dtype")
    x_shape = data.draw(
        st.sampled_from([A.shape] * 8 + [A.shape[::-1], (*A.shape, 1), (3,), (2, *A.shape)]),
        label="x_shape",
    )
    x = _image(data.draw, x_shape, dtype)
    noise = data.draw(st.sampled_from([0.0, 0.05] * 4 + [-1.0, float("nan")]), label="noise")
    photons = data.draw(st.sampled_from([None] * 6 + [100.0, 0.0, -5.0]), label="photons")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            y = A.measure(x, noise_std=noise, photons=photons, seed=0)
        except EXPECTED as exc:
            _sentence(exc)
            event(f"measure refused {str(exc)[:60]}")
            y = None
    if y is not None:  # measure takes batches (..., *shape)
        lead = x.shape[: x.ndim - len(A.shape)]
        assert y.shape == (*lead, *A.measurement_shape)
        assert np.all(np.isfinite(y)), "measure() returned NaN/inf from an input it accepted"
    else:  # measure refused: reconstruct still gets something of the right shape to chew on
        y = np.zeros(A.measurement_shape, np.complex64 if A.complex_measurements else np.float32)
    if data.draw(st.integers(0, 5), label="corrupt y") == 0:
        y = data.draw(
            st.sampled_from(
                [
                    y.astype(np.float64) if not np.iscomplexobj(y) else y,
                    y[..., :-1] if y.shape[-1] > 1 else y[None],
                    np.where(np.ones_like(y, bool), np.nan, y),
                    y.astype(np.int16) if not np.iscomplexobj(y) else y.real,
                    y.tolist(),
                    "y",
                ]
            ),
            label="y",
        )

    from napari_genprior.solvers import METHODS

    fits = [
        name
        for name, m in METHODS.items()  # mostly methods that apply to A
        if (not m.phase_only or A.kind == "phase") and (not m.needs_linear or A.linear)
    ]
    method = data.draw(st.sampled_from(fits * 4 + ngp.list_methods() + ["nope"]), label="method")
    prior = None
    if method in ("csgm", "twist", "sparse-gen", "ia"):
        prior = data.draw(
            st.sampled_from(["rp"] * 6 + ["rp-other", None, "no-such-prior", 5]), label="prior"
        )
        if prior == "rp":
            n = int(np.prod(A.shape))
            prior = ngp.random_prior(latent_dim=3, widths=(8, n), image_shape=A.shape)
        elif prior == "rp-other":
            prior = ngp.random_prior(latent_dim=3, widths=(8, 15), image_shape=(3, 5))
    elif method == "score":  # an untrained score prior: any image size
        from napari_genprior.priors import ScoreUNet

        prior = data.draw(st.sampled_from(["sp"] * 6 + [None, "rp"]), label="prior")
        if prior == "sp":
            prior = ScoreUNet(channels=2, levels=1)
        elif prior == "rp":
            prior = ngp.random_prior(latent_dim=3, widths=(8, int(np.prod(A.shape))))
    kwargs = data.draw(
        st.sampled_from(
            [{}] * 12
            + [
                {"restarts": 2},
                {"restarts": 0},
                {"seed": 1.5},
                {"lr": 0.01},
                {"nonsense": 1},
                {"steps": 0},
                {"lr": -1.0},
                {"lr": "fast"},
                {"steps": 2.5},
                {"device": "cuda:7"},
                {"device": "tpu"},
                {"lr": 1e9},
                {"channels": 0},
                {"ema": 2.0},
                {"step_size": -1.0},
                {"lam": -1.0},
                {"lam": float("nan")},
                {"tol": float("inf")},
                {"holdout": 1.0},
                {"patience": 0},
                {"lr_weights": 1e9},
                {"back_project": True},
                {"search_steps": 10**9},
                {"warmup": 0},
            ]
        ),
        label="kwargs",
    )
    if (
        method in ("csgm", "twist", "sparse-gen", "ia")
        and "restarts" not in kwargs
        and data.draw(st.booleans())
    ):
        kwargs["restarts"] = 2
    kwargs.setdefault("steps", 3)
    try:
        rec = ngp.reconstruct(y, A, method, prior, **{"device": "cpu", **kwargs})
    except EXPECTED as exc:
        _sentence(exc)
        event(f"reconstruct refused {str(exc)[:60]}")
        return
    event(f"reconstructed ({method})")
    assert rec.image.shape == A.shape
    assert rec.image.dtype == np.float32
    assert np.all(np.isfinite(rec.image)), f"{method} returned NaN/inf on {A.kind} {A.shape}"


@pytest.mark.parametrize("method", ngp.list_methods())
def test_each_method_on_a_one_pixel_image_is_a_result_or_a_sentence(method):
    """The smallest image there is, through every method that accepts its operator."""
    A = (
        ngp.make_operator("phase", shape=(1, 1), m=4, seed=0)
        if method in ("twf", "sparta", "copram")
        else ngp.make_operator("denoise", shape=(1, 1))
    )
    y = A.measure(np.ones((1, 1)), seed=0)
    prior = (
        ngp.random_prior(latent_dim=2, widths=(4, 1), image_shape=(1, 1))
        if method in ("csgm", "twist", "sparse-gen", "ia")
        else None
    )
    if method == "score":
        from napari_genprior.priors import ScoreUNet

        prior = ScoreUNet(channels=2, levels=1)
    try:
        rec = ngp.reconstruct(y, A, method, prior, steps=3, device="cpu")
    except EXPECTED as exc:
        _sentence(exc)
        return
    assert rec.image.shape == (1, 1) and np.all(np.isfinite(rec.image))
