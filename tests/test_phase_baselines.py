"""The classical phase-retrieval baselines: twf, sparta, copram (solvers/phase_baselines/)."""

from __future__ import annotations

import numpy as np
import pytest

import napari_genprior as ngp
from napari_genprior.solvers.phase_baselines import default_sparsity

SHAPE = (16, 16)
N = SHAPE[0] * SHAPE[1]


def sign_error(rec: np.ndarray, x: np.ndarray) -> float:
    """Relative error up to the global sign that magnitudes cannot tell."""
    return float(min(np.linalg.norm(rec - x), np.linalg.norm(rec + x)) / np.linalg.norm(x))


def dense_image(seed: int) -> np.ndarray:
    return np.random.default_rng(100 + seed).standard_normal(SHAPE).astype(np.float32)


def sparse_image(seed: int, k: int = 10) -> np.ndarray:
    rng = np.random.default_rng(200 + seed)
    x = np.zeros(N)
    x[rng.choice(N, k, replace=False)] = rng.standard_normal(k)
    return x.reshape(SHAPE).astype(np.float32)


def gaussian_problem(x: np.ndarray, m: int, seed: int):
    A = ngp.make_operator("phase", shape=x.shape, m=m, seed=seed, matrix="gaussian")
    return A, A.measure(x, seed=seed)


def test_twf_recovers_a_gaussian_vector_from_8n_magnitudes():
    errors = []
    for seed in range(5):
        x = dense_image(seed)
        A, y = gaussian_problem(x, 8 * N, seed)
        rec = ngp.reconstruct(y, A, method="twf", steps=500, seed=seed, device="cpu")
        errors.append(sign_error(rec.image, x))
        assert rec.image.shape == SHAPE and rec.image.dtype == np.float32
    assert sum(e < 1e-3 for e in errors) >= 4, errors


@pytest.mark.parametrize("method", ["sparta", "copram"])
def test_sparse_methods_recover_a_10_sparse_image_from_2n_magnitudes(method):
    errors = []
    for seed in range(5):
        x = sparse_image(seed)
        A, y = gaussian_problem(x, 2 * N, seed)
        rec = ngp.reconstruct(y, A, method=method, steps=500, seed=seed, device="cpu")
        errors.append(sign_error(rec.image, x))
        assert rec.params["sparsity"] == default_sparsity(N, 2 * N)
        assert rec.params["sparsity_rule"] != "given"
    assert sum(e < 1e-2 for e in errors) >= 4, errors


@pytest.mark.parametrize("method", ["twf", "sparta", "copram"])
def test_all_fail_on_a_dense_image_with_n_over_4_magnitudes(method):
    for seed in range(3):
        x = dense_image(seed)
        A, y = gaussian_problem(x, N // 4, seed)
        rec = ngp.reconstruct(y, A, method=method, steps=200, seed=seed, device="cpu")
        assert np.all(np.isfinite(rec.image))
        assert sign_error(rec.image, x) > 0.2


def test_twf_recovers_an_image_from_coded_diffraction():
    x = np.random.default_rng(7).random(SHAPE).astype(np.float32)
    A = ngp.make_operator("phase", shape=SHAPE, masks=6, seed=3)
    y = A.measure(x, seed=0)
    rec = ngp.reconstruct(y, A, method="twf", steps=500, seed=0, device="cpu")
    assert sign_error(rec.image, x) < 1e-2


@pytest.mark.parametrize("method", ["sparta", "copram"])
def test_sparse_methods_run_on_coded_diffraction(method):
    x = sparse_image(1)
    A = ngp.make_operator("phase", shape=SHAPE, masks=4, seed=1)
    rec = ngp.reconstruct(A.measure(x, seed=0), A, method=method, steps=300, seed=0, device="cpu")
    assert rec.params["support_estimate"] == "dense-spectral"
    assert sign_error(rec.image, x) < 1e-2


@pytest.mark.parametrize("method", ["sparta", "copram"])
def test_given_sparsity_is_kept(method):
    x = sparse_image(2)
    A, y = gaussian_problem(x, 2 * N, 2)
    rec = ngp.reconstruct(y, A, method=method, steps=100, seed=0, device="cpu", sparsity=10)
    assert rec.params["sparsity"] == 10 and rec.params["sparsity_rule"] == "given"
    assert np.count_nonzero(rec.image) <= 10
    assert sign_error(rec.image, x) < 1e-2


@pytest.mark.parametrize("method", ["twf", "sparta", "copram"])
def test_callback_false_stops_the_run(method):
    x = sparse_image(3)
    A, y = gaussian_problem(x, 4 * N, 3)
    seen = []

    def stop_at_3(step, loss, image):
        seen.append((step, loss, image))
        return step < 3

    rec = ngp.reconstruct(
        y, A, method=method, steps=500, seed=0, device="cpu", callback=stop_at_3, tol=0.0
    )
    assert rec.cancelled
    assert [s for s, _, _ in seen] == [1, 2, 3] and len(rec.history) == 3
    assert rec.params["cancelled_at"] == 3 and rec.params["iterations"] == 3
    assert all(isinstance(loss, float) for _, loss, _ in seen)
    assert rec.image.shape == SHAPE and np.all(np.isfinite(rec.image))


@pytest.mark.parametrize("method", ["twf", "sparta", "copram"])
def test_previews_follow_preview_every(method):
    x = sparse_image(4)
    A, y = gaussian_problem(x, 4 * N, 4)
    run = ngp.iter_reconstruct(
        y, A, method=method, steps=12, seed=0, device="cpu", preview_every=5, tol=0.0
    )
    updates = []
    try:
        while True:
            updates.append(next(run))
    except StopIteration as stop:
        rec = stop.value
    assert [u.step for u in updates] == list(range(1, 13))
    with_image = [u.step for u in updates if u.image is not None]
    assert with_image == [5, 10, 12]
    assert all(u.image.shape == SHAPE for u in updates if u.image is not None)
    np.testing.assert_allclose(updates[-1].image, rec.image)
    assert not rec.cancelled and rec.params["iterations"] == 12


@pytest.mark.parametrize("method", ["twf", "sparta", "copram"])
def test_same_seed_same_result(method):
    x = sparse_image(5)
    A, y = gaussian_problem(x, 2 * N, 5)
    a = ngp.reconstruct(y, A, method=method, steps=50, seed=11, device="cpu")
    b = ngp.reconstruct(y, A, method=method, steps=50, seed=11, device="cpu")
    np.testing.assert_array_equal(a.image, b.image)
    assert a.history == b.history


def test_zero_measurement_gives_zero_image():
    A = ngp.make_operator("phase", shape=SHAPE, m=2 * N, seed=0)
    y = np.zeros(A.measurement_shape, np.float32)
    for method in ("twf", "sparta", "copram"):
        rec = ngp.reconstruct(y, A, method=method, device="cpu")
        assert np.all(rec.image == 0)


def test_bad_options_are_refused():
    x = sparse_image(0)
    A, y = gaussian_problem(x, 2 * N, 0)
    with pytest.raises(ValueError, match="sparsity"):
        ngp.reconstruct(y, A, method="sparta", sparsity=0, device="cpu")
    with pytest.raises(ValueError, match="mu"):
        ngp.reconstruct(y, A, method="twf", mu=-1.0, device="cpu")
    with pytest.raises(TypeError, match="sparsity"):
        ngp.reconstruct(y, A, method="twf", sparsity=10, device="cpu")


def test_default_sparsity_rule():
    assert default_sparsity(256, 1024) == 64  # capped at n // 4
    assert default_sparsity(256, 512) == int(512 / (2 * np.log(256)))
    assert default_sparsity(256, 4) == 1


def test_non_phase_operators_are_refused():
    x = dense_image(0)
    A_cs = ngp.make_operator("cs", shape=SHAPE, m=100, seed=0)
    y = A_cs.measure(x, seed=0)
    for method in ("twf", "sparta", "copram"):
        with pytest.raises(ValueError, match="phase"):
            ngp.reconstruct(y, A_cs, method=method)


@pytest.mark.parametrize("method", ["twf", "sparta", "copram"])
def test_the_caller_runs_with_gradients_on_between_steps(method):
    """These solvers compute inside ``torch.no_grad()`` and yield there; the caller's code
    between their steps (a callback, a widget's thread) still runs with gradients on, as
    before the call (grad mode is per thread)."""
    import torch

    x = sparse_image(0)
    A, y = gaussian_problem(x, 8 * N, 0)
    modes = []
    ngp.reconstruct(
        y,
        A,
        method=method,
        steps=5,
        device="cpu",
        callback=lambda *_: modes.append(torch.is_grad_enabled()),
    )
    assert modes and all(modes) and torch.is_grad_enabled()
