import json

import numpy as np
import pytest
import scipy.fft
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import convolve
from scipy.signal import fftconvolve

import napari_genprior as ngp
from napari_genprior.operators import OPERATORS, from_spec, real_inner
from napari_genprior.operators._dct import dct, idct
from napari_genprior.operators.mri import fft2c, ifft2c

KINDS = ["denoise", "inpaint", "blur", "downsample", "cs", "mri", "phase"]


def _params(kind, shape, pick):
    """Valid parameters for ``kind`` on ``shape``; ``pick(options)`` chooses among options."""
    n = int(np.prod(shape))
    if kind == "inpaint":
        return pick(
            [
                {"fraction": 0.3, "seed": 1},
                {"boxes": 3, "seed": 2},
                {"mask": np.indices(shape).sum(0) % 3 == 0},
            ]
        )
    if kind == "blur":
        sig = pick([1.0, 2.5, tuple(0.5 + i for i in range(len(shape)))])
        psf_shape = [min(3, s) for s in shape]
        return pick(
            [
                {"sigma": sig},
                {"sigma": sig, "boundary": "zero"},
                {"sigma": sig, "boundary": "periodic"},
                {"psf": np.arange(1.0, 1 + np.prod(psf_shape)).reshape(psf_shape)},
            ]
        )
    if kind == "downsample":
        return {"factor": 2, "antialias": pick([False, True])}
    if kind == "cs":
        return {"m": pick([n // 2, 1, n]), "seed": 3, "matrix": pick(["dense", "structured"])}
    if kind == "mri":
        return {
            "acceleration": pick([4.0, 2.0, 1.0]),
            "seed": 4,
            "mask": pick(["random", "equispaced", "variable-density"]),
        }
    if kind == "phase":
        return pick([{"m": 2 * n, "seed": 5}, {"masks": 2, "seed": 5}])
    return {}


def _first(options):
    return options[0]


@st.composite
def operators(draw):
    kind = draw(st.sampled_from(KINDS))
    three_d = kind in ("denoise", "inpaint", "blur", "downsample", "cs") and draw(st.booleans())
    side = st.integers(2, 10).map(lambda k: 2 * k)  # even sides: downsample needs them
    shape = tuple(draw(st.lists(side, min_size=3 if three_d else 2, max_size=3 if three_d else 2)))
    return ngp.make_operator(
        kind, shape=shape, **_params(kind, shape, lambda opts: draw(st.sampled_from(opts)))
    )


def _random_pair(A, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(A.shape, generator=g, dtype=torch.float64)
    if A.complex_measurements:
        y = torch.complex(
            torch.randn(A.measurement_shape, generator=g, dtype=torch.float64),
            torch.randn(A.measurement_shape, generator=g, dtype=torch.float64),
        )
    else:
        y = torch.randn(A.measurement_shape, generator=g, dtype=torch.float64)
    return x, y


@settings(max_examples=80, deadline=None)
@given(operators())
def test_adjoint_dot_product(A):
    L = A if A.linear else A.linear_part
    # the operator, and the one its solvers use (a blur with an unknown border: larger images)
    for op in {id(L): L, id(L.for_solver()[0]): L.for_solver()[0]}.values():
        x, y = _random_pair(op)
        Ax, ATy = op.forward(x), op.adjoint(y)
        assert Ax.shape == op.measurement_shape and ATy.shape == op.shape
        err = abs(float(real_inner(Ax, y) - real_inner(x, ATy))) / max(
            float(Ax.norm() * y.norm()), 1e-300
        )
        assert err < 1e-5, (A, op, err)


@pytest.mark.parametrize("kind", KINDS)
def test_batched_forward_and_adjoint_match_per_image(kind):
    shape = (12, 10)
    A = ngp.make_operator(kind, shape=shape, **_params(kind, shape, _first))
    L = A if A.linear else A.linear_part
    xb = torch.randn(3, *shape, dtype=torch.float64)
    yb = A(xb)
    assert yb.shape == (3, *A.measurement_shape)
    for i in range(3):
        torch.testing.assert_close(yb[i], A(xb[i]))
    back = L.adjoint(L(xb))
    for i in range(3):
        torch.testing.assert_close(back[i], L.adjoint(L(xb[i])))


SPEC_CASES = [
    ("denoise", {}),
    ("inpaint", {"fraction": 0.25, "seed": 11}),
    ("inpaint", {"boxes": 4, "seed": 2}),
    ("inpaint", {"mask": np.eye(20, 24, dtype=bool) | np.eye(20, 24, k=3, dtype=bool)}),
    ("blur", {"sigma": [2.0, 1.0]}),
    ("blur", {"sigma": 1.5, "boundary": "periodic"}),
    ("blur", {"psf": np.outer([1, 2, 1], [1, 3, 3, 1])}),
    ("downsample", {"factor": [2, 3]}),
    ("downsample", {"factor": 2, "antialias": True}),
    ("cs", {"m": 100, "seed": 7}),
    ("cs", {"m": 100, "seed": 7, "matrix": "structured"}),
    ("mri", {"acceleration": 4, "seed": 3}),
    ("mri", {"mask": "equispaced", "seed": 3}),
    ("mri", {"mask": "variable-density", "acceleration": 3, "seed": 3}),
    ("mri", {"mask": np.arange(24) % 3 == 0}),
    ("mri", {"seed": 3, "complex_images": True}),
    ("phase", {"m": 300, "seed": 1}),
    ("phase", {"masks": 2, "seed": 1}),
]


@pytest.mark.parametrize(
    "kind, params", SPEC_CASES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(SPEC_CASES)]
)
def test_spec_round_trip_reproduces_forward_exactly(kind, params):
    A = ngp.make_operator(kind, shape=(20, 24), **params)
    spec = json.loads(json.dumps(A.spec()))  # survives JSON
    B = from_spec(spec)
    x = torch.randn(20, 24, dtype=torch.float64)
    assert torch.equal(A(x), B(x))
    assert B.spec() == A.spec()


@pytest.mark.parametrize(
    "kind, params",
    [
        ("inpaint", {"fraction": 0.5}),
        ("inpaint", {"boxes": 3}),
        ("cs", {"m": 50}),
        ("cs", {"m": 50, "matrix": "structured"}),
        ("mri", {}),
        ("mri", {"mask": "equispaced"}),
        ("phase", {"m": 50}),
        ("phase", {"masks": 2}),
    ],
)
def test_random_operators_are_determined_by_their_seed(kind, params):
    a, b, c = (ngp.make_operator(kind, shape=(16, 16), seed=s, **params) for s in (5, 5, 6))
    x = torch.randn(16, 16, dtype=torch.float64)
    assert torch.equal(a(x), b(x))
    assert not torch.equal(a(x), c(x))
    unseeded = ngp.make_operator(kind, shape=(16, 16), **params)
    assert isinstance(unseeded.spec()["seed"], int)
    assert torch.equal(from_spec(unseeded.spec())(x), unseeded(x))


# -- known answers ------------------------------------------------------------------------------
@pytest.mark.parametrize("boundary", ["zero", "periodic"])
@pytest.mark.parametrize("psf_shape", [(7, 7), (5, 4), (3, 6)])
def test_blur_of_a_delta_is_the_psf(boundary, psf_shape):
    rng = np.random.default_rng(0)
    psf = rng.random(psf_shape)
    A = ngp.make_operator("blur", shape=(21, 20), psf=psf, boundary=boundary)
    delta = np.zeros((21, 20))
    delta[10, 9] = 1
    out = A(torch.from_numpy(delta)).numpy()
    cy, cx = (psf_shape[0] - 1) // 2, (psf_shape[1] - 1) // 2
    window = out[10 - cy : 10 - cy + psf_shape[0], 9 - cx : 9 - cx + psf_shape[1]]
    np.testing.assert_allclose(window, psf / psf.sum(), atol=1e-12)
    assert out.sum() == pytest.approx(1.0)


def test_blur_matches_scipy_for_every_boundary():
    rng = np.random.default_rng(1)
    x, psf = rng.random((30, 25)), rng.random((5, 4))
    zero = ngp.make_operator("blur", shape=x.shape, psf=psf, boundary="zero")
    np.testing.assert_allclose(
        zero(torch.from_numpy(x)).numpy(),
        fftconvolve(x, psf / psf.sum(), mode="same"),
        atol=1e-12,
    )
    # the default, an unknown border: measure() extends the image by mirroring (numpy's
    # "symmetric") over the PSF's reach; the solvers' operator takes that extension as unknowns
    A = ngp.make_operator("blur", shape=x.shape, psf=psf)
    assert A.boundary == "unknown" and A.domain_shape == (34, 28)
    ext = np.pad(x, ((2, 2), (2, 1)), mode="symmetric")
    valid = fftconvolve(ext, psf / psf.sum(), mode="valid")
    np.testing.assert_allclose(A(torch.from_numpy(x)).numpy(), valid, atol=1e-12)
    W, crop = A.for_solver()
    assert W.shape == ext.shape and W.measurement_shape == x.shape
    np.testing.assert_allclose(W(torch.from_numpy(ext)).numpy(), valid, atol=1e-12)
    np.testing.assert_array_equal(ext[crop], x)
    psf3 = rng.random((5, 3))
    wrap = ngp.make_operator("blur", shape=x.shape, psf=psf3, boundary="periodic")(
        torch.from_numpy(x)
    )
    np.testing.assert_allclose(
        wrap.numpy(), convolve(x, psf3 / psf3.sum(), mode="wrap"), atol=1e-12
    )


@pytest.mark.parametrize("boundary", ["unknown", "zero", "periodic"])
def test_blur_is_the_same_through_scipy_and_through_torch(boundary):
    # on the CPU without gradients the FFTs are scipy's (faster); with them, torch's (autograd)
    A = ngp.make_operator("blur", shape=(6, 20, 18), sigma=(1.0, 1.5, 2.0), boundary=boundary)
    x = torch.rand(1, *A.shape, dtype=torch.float64)
    y = torch.rand(1, *A.measurement_shape, dtype=torch.float64)
    plain = A.forward(x), A.adjoint(y)
    graph = A.forward(x.clone().requires_grad_()), A.adjoint(y.clone().requires_grad_())
    for a, b in zip(plain, graph):
        assert b.requires_grad and not a.requires_grad
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_anisotropic_3d_gaussian_blur():
    A = ngp.make_operator("blur", shape=(31, 21, 21), sigma=(3.0, 1.5, 1.0))
    delta = torch.zeros(31, 21, 21, dtype=torch.float64)
    delta[15, 10, 10] = 1
    out = A(delta).numpy()
    var = [
        float((out.sum(axis=tuple(j for j in range(3) if j != i)) * (np.arange(s) - c) ** 2).sum())
        for i, (s, c) in enumerate(zip(out.shape, (15, 10, 10)))
    ]
    np.testing.assert_allclose(np.sqrt(var), [3.0, 1.5, 1.0], rtol=0.02)


def test_full_sampling_mri_adjoint_returns_the_image():
    rng = np.random.default_rng(2)
    x = torch.from_numpy(rng.random((24, 20)))
    A = ngp.make_operator("mri", shape=(24, 20), acceleration=1)
    assert A.sampled_fraction == 1.0
    torch.testing.assert_close(A.adjoint(A(x)), x)
    ref = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x.numpy()), norm="ortho"))
    np.testing.assert_allclose(fft2c(x.to(torch.complex128)).numpy(), ref, atol=1e-12)
    torch.testing.assert_close(ifft2c(fft2c(x.to(torch.complex128))).real, x)


@pytest.mark.parametrize("mask", ["random", "equispaced", "variable-density"])
@pytest.mark.parametrize("acceleration, center_fraction", [(4, 0.08), (8, 0.04)])
def test_mri_masks_follow_fastmri_conventions(mask, acceleration, center_fraction):
    fractions = []
    for seed in range(10):
        A = ngp.make_operator(
            "mri",
            shape=(64, 320),
            acceleration=acceleration,
            center_fraction=center_fraction,
            mask=mask,
            seed=seed,
        )
        cols = A.mask[0]
        assert np.all(A.mask == cols)  # Cartesian: whole columns
        n_low = round(320 * center_fraction)
        pad = (320 - n_low + 1) // 2
        assert cols[pad : pad + n_low].all()  # the centre of k-space is always sampled
        fractions.append(cols.mean())
    assert abs(np.mean(fractions) - 1 / acceleration) < 0.02
    if mask == "equispaced":
        outside = np.flatnonzero(cols)[np.flatnonzero(cols) < pad]
        assert len(set(np.diff(outside))) <= 2  # evenly spaced (rounding allows two gaps)


def test_variable_density_samples_low_frequencies_more():
    hits = np.zeros(320)
    for seed in range(50):
        hits += ngp.make_operator("mri", shape=(8, 320), mask="variable-density", seed=seed).mask[0]
    assert hits[100:130].mean() > 3 * hits[:30].mean()


def test_dense_cs_with_m_equal_n_is_invertible_by_least_squares():
    A = ngp.make_operator("cs", shape=(12, 10), m=120, seed=0, matrix="dense")
    x = torch.randn(120, dtype=torch.float64)
    y = A(x.reshape(12, 10))
    M = A._buffer("A", x)
    sol = torch.linalg.lstsq(M, y.unsqueeze(-1)).solution.squeeze(-1)
    torch.testing.assert_close(sol, x)


def test_dct_matches_scipy_and_inverts():
    for n in (1, 2, 7, 64, 99):
        x = np.random.default_rng(n).random((3, n))
        c = dct(torch.from_numpy(x))
        np.testing.assert_allclose(c.numpy(), scipy.fft.dct(x, norm="ortho"), atol=1e-12)
        np.testing.assert_allclose(idct(c).numpy(), x, atol=1e-12)


def test_structured_cs_is_o_n_and_preserves_energy_on_average():
    A = ngp.make_operator("cs", shape=(256, 256), m=8000, seed=0)
    assert A.matrix == "structured" and "A" not in A._buffers
    assert sum(b.numel() for b in A._buffers.values()) <= 2 * 256 * 256
    g = torch.Generator().manual_seed(0)
    ratios = [
        float(A(x).norm() ** 2 / x.norm() ** 2)
        for x in torch.randn(5, 256, 256, generator=g, dtype=torch.float64)
    ]
    assert abs(np.mean(ratios) - 1) < 0.1
    small = ngp.make_operator("cs", shape=(28, 28), m=100, seed=0)
    assert small.matrix == "dense"


def test_coded_diffraction_is_a_tight_frame_and_phase_loses_only_the_sign():
    P = ngp.make_operator("phase", shape=(16, 16), masks=3, seed=0)
    x = torch.randn(16, 16, dtype=torch.float64)
    torch.testing.assert_close(P.linear_part.adjoint(P.linear_part(x)), x)
    assert P.measurement_shape == (3, 16, 16) and P.m == 3 * 256
    G = ngp.make_operator("phase", shape=(16, 16), m=500, seed=0)
    for op in (P, G):
        torch.testing.assert_close(op(x), op.linear_part(x).abs())
        torch.testing.assert_close(op(-x), op(x))
        assert torch.all(op(x) >= 0)


def test_downsample_known_answers():
    A = ngp.make_operator("downsample", shape=(6, 9), factor=(2, 3))
    x = torch.arange(54, dtype=torch.float64).reshape(6, 9)
    expected = x.reshape(3, 2, 3, 3).mean(dim=(1, 3))
    torch.testing.assert_close(A(x), expected)
    assert A.measurement_shape == (3, 3)
    ones = torch.ones(6, 9, dtype=torch.float64)
    torch.testing.assert_close(A(ones), torch.ones(3, 3, dtype=torch.float64))


# -- noise ---------------------------------------------------------------------------------------
def test_poisson_noise_has_the_photon_statistics():
    x = np.full((100, 100), 50.0)
    x[:50] = 100.0
    y = ngp.make_operator("denoise", shape=x.shape).measure(x, photons=400, seed=0)
    # brightest value (100) = 400 photons: a pixel at 100 has variance 100 * 100/400 = 25
    assert abs(y[:50].mean() - 100) < 0.5 and abs(y[:50].var() - 25) < 2.5
    assert abs(y[50:].mean() - 50) < 0.5 and abs(y[50:].var() - 12.5) < 1.5
    both = ngp.make_operator("denoise", shape=x.shape).measure(x, photons=400, noise_std=3, seed=0)
    assert abs(both[:50].var() - 34) < 3.5


def test_complex_noise_has_the_asked_power_and_only_on_sampled_kspace():
    A = ngp.make_operator("mri", shape=(64, 64), seed=0)
    y0 = A.measure(np.zeros((64, 64)), noise_std=0.5, seed=1)
    assert y0.dtype == np.complex64
    assert np.all(y0[~A.mask] == 0)
    assert abs(np.mean(np.abs(y0[A.mask]) ** 2) - 0.25) < 0.02


def test_measure_is_reproducible_and_leaves_its_input(nuclei64):
    A = ngp.make_operator("inpaint", shape=nuclei64.shape, fraction=0.5, seed=0)
    x = nuclei64.copy()
    y1, y2 = (A.measure(x, noise_std=5.0, seed=1) for _ in range(2))
    assert np.array_equal(y1, y2) and np.array_equal(x, nuclei64)
    assert y1.dtype == np.float32 and np.all(y1[~A.mask] == 0)
    assert 4.0 < (y1 - nuclei64)[A.mask].std() < 6.0


def test_to_and_copy():
    for kind, params in SPEC_CASES:
        A = ngp.make_operator(kind, shape=(20, 24), **params)
        B = A.copy().to("cpu")
        assert B._buffers is not A._buffers
        x = torch.randn(20, 24)
        assert torch.equal(A(x), B(x))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize(
    "kind, params", SPEC_CASES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(SPEC_CASES)]
)
def test_cuda_matches_cpu(kind, params):
    A = ngp.make_operator(kind, shape=(20, 24), **params)
    x = torch.randn(20, 24, dtype=torch.float64)
    G = A.copy().to("cuda")
    torch.testing.assert_close(G(x.cuda()).cpu(), A(x))
    if A.linear:
        y = A(x)
        torch.testing.assert_close(G.adjoint(y.cuda()).cpu(), A.adjoint(y))


# -- bad input -----------------------------------------------------------------------------------
BAD = [
    (lambda: ngp.make_operator("blurry", shape=(8, 8)), ValueError, "unknown operator kind"),
    (lambda: ngp.make_operator("inpaint"), ValueError, "needs shape"),
    (lambda: ngp.make_operator("inpaint", shape=(8,)), ValueError, "2D or 3D"),
    (lambda: ngp.make_operator("inpaint", shape="big"), ValueError, "shape"),
    (lambda: ngp.make_operator("inpaint", shape=(8, 8), fraction=0), ValueError, "fraction"),
    (lambda: ngp.make_operator("inpaint", shape=(8, 8), fraction=1.5), ValueError, "fraction"),
    (
        lambda: ngp.make_operator("inpaint", shape=(8, 8), fraction=0.5, boxes=2),
        ValueError,
        "one of",
    ),
    (
        lambda: ngp.make_operator("inpaint", shape=(8, 8), mask=np.ones((4, 4))),
        ValueError,
        "mask has shape",
    ),
    (
        lambda: ngp.make_operator("inpaint", shape=(8, 8), mask=np.zeros((8, 8))),
        ValueError,
        "no pixel",
    ),
    (lambda: ngp.make_operator("denoise", shape=(8, 8), sigma=2), TypeError, "does not take"),
    (lambda: ngp.make_operator("blur", shape=(8, 8)), ValueError, "sigma"),
    (lambda: ngp.make_operator("blur", shape=(8, 8), sigma=-1), ValueError, "sigma"),
    (lambda: ngp.make_operator("blur", shape=(8, 8), sigma=(1, 2, 3)), ValueError, "one per axis"),
    (
        lambda: ngp.make_operator("blur", shape=(8, 8), psf=np.ones((9, 3))),
        ValueError,
        "larger than the image",
    ),
    (
        lambda: ngp.make_operator("blur", shape=(8, 8), psf=np.full((3, 3), np.nan)),
        ValueError,
        "finite",
    ),
    (lambda: ngp.make_operator("blur", shape=(8, 8), psf=np.ones(3)), ValueError, "axes"),
    (
        lambda: ngp.make_operator("blur", shape=(8, 8), sigma=1, boundary="reflect"),
        ValueError,
        "boundary",
    ),
    (
        lambda: ngp.make_operator("downsample", shape=(9, 8), factor=2),
        ValueError,
        "multiple of factor",
    ),
    (lambda: ngp.make_operator("downsample", shape=(8, 8), factor=0), ValueError, "factor"),
    (lambda: ngp.make_operator("cs", shape=(8, 8)), ValueError, "needs m"),
    (lambda: ngp.make_operator("cs", shape=(8, 8), m=0), ValueError, "m .number of measurements"),
    (lambda: ngp.make_operator("cs", shape=(8, 8), m=65), ValueError, "between 1 and 64"),
    (lambda: ngp.make_operator("cs", shape=(8, 8), m=10, matrix="sparse"), ValueError, "matrix"),
    (lambda: ngp.make_operator("mri", shape=(8, 8), acceleration=0.5), ValueError, "acceleration"),
    (
        lambda: ngp.make_operator("mri", shape=(8, 8), center_fraction=2),
        ValueError,
        "center_fraction",
    ),
    (lambda: ngp.make_operator("mri", shape=(8, 8, 8)), ValueError, "2D"),
    (
        lambda: ngp.make_operator("mri", shape=(8, 8), mask="spiral"),
        ValueError,
        "mask must be one of",
    ),
    (
        lambda: ngp.make_operator("mri", shape=(8, 8), mask=np.ones(5, bool)),
        ValueError,
        "mask has shape",
    ),
    (lambda: ngp.make_operator("phase", shape=(8, 8)), ValueError, "needs m"),
    (lambda: ngp.make_operator("phase", shape=(8, 8, 8), masks=2), ValueError, "2D"),
    (lambda: ngp.make_operator("phase", shape=(8, 8), m=0), ValueError, "m .number"),
    (lambda: from_spec({"shape": [8, 8]}), ValueError, "'kind' and 'shape'"),
    (
        lambda: from_spec(
            {"kind": "inpaint", "shape": [8, 8], "mask": {"shape": [8, 8], "packbits": "!!"}}
        ),
        ValueError,
        "malformed",
    ),
    (
        lambda: from_spec(
            {"kind": "blur", "shape": [8, 8], "psf": {"shape": [3, 3], "float64": "AAAA"}}
        ),
        ValueError,
        "malformed",
    ),
]


@pytest.mark.parametrize("call, error, words", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_arguments_raise_a_sentence(call, error, words):
    with pytest.raises(error, match=words):
        call()


@pytest.mark.parametrize(
    "x, kw, words",
    [
        (np.full((8, 8), np.nan), {}, "NaN"),
        (np.ones((8, 9)), {}, "shape"),
        (np.ones((8, 8)) * 1j, {}, "complex"),
        (np.array([["a"] * 8] * 8), {}, "numeric"),
        (np.ones((8, 8)), {"noise_std": -1}, "noise_std"),
        (np.ones((8, 8)), {"noise_std": float("nan")}, "noise_std"),
        (np.ones((8, 8)), {"photons": 0}, "photons"),
        (-np.ones((8, 8)), {"photons": 10}, "positive signal"),
    ],
)
def test_measure_rejects_bad_input(x, kw, words):
    A = ngp.make_operator("denoise", shape=(8, 8))
    with pytest.raises((ValueError, TypeError), match=words):
        A.measure(x, **kw)


def test_poisson_noise_on_complex_measurements_is_refused():
    with pytest.raises(ValueError, match="complex"):
        ngp.make_operator("mri", shape=(8, 8), seed=0).measure(np.ones((8, 8)), photons=100)


def test_every_kind_is_registered():
    assert set(KINDS) == set(OPERATORS)


def test_an_absurd_image_side_is_refused_with_a_sentence():
    """Found by the metadata fuzz: a shape of 9.2e18 pixels reached next_fast_len and raised a
    bare OverflowError."""
    for kind, params in (("blur", {"sigma": 1.0}), ("denoise", {})):
        with pytest.raises(ValueError, match="no image is that large"):
            ngp.make_operator(kind, shape=(2**63, 12), **params)


def test_scale_quantile_is_torch_quantile():
    """The scale estimate's 99.9th percentile (top-k, not a full sort) is torch.quantile's."""
    from napari_genprior.operators.base import _quantile

    gen = torch.Generator().manual_seed(0)
    for n in (1, 2, 3, 999, 1000, 1001, 4096, 262_144):
        values = torch.rand(n, generator=gen, dtype=torch.float64) ** 3
        assert _quantile(values, 0.999) == float(torch.quantile(values, 0.999)), n


@pytest.mark.parametrize("shape", [(16, 16), (15, 17), (16, 13)])
def test_single_coil_mri_normal_map_is_its_fourier_multiplier(shape):
    """tv's exact data step relies on A^T W A x = irfft2(rfft2(x) m) for real images."""
    A = ngp.make_operator("mri", shape=shape, acceleration=3, mask="random", seed=1)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, *shape, generator=gen, dtype=torch.float64)
    w = (torch.rand(shape, generator=gen, dtype=torch.float64) > 0.3).double()
    m = A.normal_multiplier(w)
    torch.testing.assert_close(
        torch.fft.irfft2(torch.fft.rfft2(x) * m, s=shape), A.adjoint(w * A(x)), atol=1e-12, rtol=0
    )
    assert ngp.make_operator("mri", shape=shape, coils=2).normal_multiplier(w) is None
    assert ngp.make_operator("blur", shape=shape, sigma=1.0).normal_multiplier(w) is None
