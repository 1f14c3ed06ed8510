import numpy as np
import pytest
from skimage.restoration import inpaint_biharmonic

import napari_genprior as ngp


@pytest.fixture(scope="module")
def inpaint_problem(nuclei64):
    A = ngp.make_operator("inpaint", shape=nuclei64.shape, fraction=0.5, seed=0)
    y = A.measure(nuclei64, noise_std=8.0, seed=1)
    return nuclei64, A, y


@pytest.fixture(scope="module")
def dip_inpaint(inpaint_problem):
    x, A, y = inpaint_problem
    return ngp.reconstruct(y, A, method="dip", steps=300, seed=0, device="cpu")


def test_dip_inpainting_beats_scikit_image_biharmonic(inpaint_problem, dip_inpaint):
    x, A, y = inpaint_problem
    baseline = inpaint_biharmonic(y, ~A.mask)
    p_dip, p_base = ngp.metrics.psnr(x, dip_inpaint.image), ngp.metrics.psnr(x, baseline)
    p_zero = ngp.metrics.psnr(x, ngp.reconstruct(y, A, method="adjoint").image)
    assert p_dip > p_zero + 8, (p_dip, p_zero)
    assert p_dip > p_base + 1.0, (p_dip, p_base)


def test_result_carries_what_reproduces_it(inpaint_problem, dip_inpaint):
    x, A, y = inpaint_problem
    rec = dip_inpaint
    assert rec.image.shape == x.shape and rec.image.dtype == np.float32
    assert rec.method == "dip" and rec.spread is None and not rec.cancelled
    assert len(rec.history) == rec.params["stopped_at"] and rec.seconds > 0
    assert rec.params["operator"] == A.spec() and rec.params["seed"] == 0
    assert rec.params["options"]["steps"] == 300
    again = ngp.reconstruct(
        y,
        ngp.operators.from_spec(rec.params["operator"]),
        method="dip",
        seed=rec.params["seed"],
        device="cpu",
        **rec.params["options"],
    )
    np.testing.assert_allclose(again.image, rec.image, rtol=1e-5, atol=1e-3)


def test_dip_denoising_beats_the_noisy_input(nuclei64):
    A = ngp.make_operator("denoise", shape=nuclei64.shape)
    y = A.measure(nuclei64, noise_std=15.0, seed=2)
    rec = ngp.reconstruct(y, A, method="dip", steps=300, seed=0, device="cpu")
    assert ngp.metrics.psnr(nuclei64, rec.image) > ngp.metrics.psnr(nuclei64, y) + 4


def test_a_short_run_already_beats_the_measurement(inpaint_problem):
    # the running average warms up, so early outputs do not drag a short run down
    x, A, y = inpaint_problem
    rec = ngp.reconstruct(y, A, method="dip", steps=30, seed=0, device="cpu")
    assert ngp.metrics.psnr(x, rec.image) > ngp.metrics.psnr(x, y) + 4


def test_reconstruct_leaves_inputs_untouched(inpaint_problem):
    x, A, y = inpaint_problem
    y0, mask0, spec0 = y.copy(), A.mask.copy(), A.spec()
    ngp.reconstruct(y, A, method="dip", steps=5, seed=0, device="cpu")
    assert np.array_equal(y, y0) and np.array_equal(A.mask, mask0) and A.spec() == spec0


def test_callback_sees_progress_and_previews_and_can_cancel(inpaint_problem):
    x, A, y = inpaint_problem
    seen = []

    def callback(step, loss, image):
        seen.append((step, loss, image))
        return step < 25

    rec = ngp.reconstruct(
        y, A, method="dip", steps=1000, seed=0, device="cpu", callback=callback, preview_every=10
    )
    assert rec.cancelled and rec.params["cancelled_at"] == 25
    assert [s for s, _, _ in seen] == list(range(1, 26))
    previews = [img for s, _, img in seen if img is not None]
    assert len(previews) == 2 and previews[0].shape == x.shape
    assert np.all(np.isfinite(rec.image)) and rec.image.std() > 0


def test_iter_reconstruct_stops_when_sent_false(inpaint_problem):
    x, A, y = inpaint_problem
    run = ngp.iter_reconstruct(y, A, method="dip", steps=1000, seed=0, device="cpu")
    updates = [next(run) for _ in range(3)]
    assert [u.step for u in updates] == [1, 2, 3] and updates[0].total == 1000
    with pytest.raises(StopIteration) as stop:
        run.send(False)
    rec = stop.value.value
    assert rec.cancelled and len(rec.history) == 3


def test_adjoint_is_the_zero_filled_measurement(inpaint_problem):
    x, A, y = inpaint_problem
    rec = ngp.reconstruct(y, A, method="adjoint")
    np.testing.assert_allclose(rec.image, y, rtol=1e-5, atol=1e-4)


def test_tiny_images_and_odd_sizes_work():
    rng = np.random.default_rng(0)
    for shape in [(5, 7), (33, 17)]:
        x = rng.random(shape).astype(np.float32)
        A = ngp.make_operator("denoise", shape=shape)
        rec = ngp.reconstruct(A.measure(x, 0.1, seed=0), A, method="dip", steps=3, device="cpu")
        assert rec.image.shape == shape and np.all(np.isfinite(rec.image))


@pytest.mark.parametrize(
    "kind, params",
    [
        ("blur", {"sigma": 1.5}),
        ("downsample", {"factor": 2}),
        ("cs", {"m": 300, "seed": 0}),
        ("mri", {"acceleration": 2, "seed": 0}),
        ("phase", {"m": 1500, "seed": 0}),
        ("phase", {"masks": 2, "seed": 0}),
    ],
)
def test_every_operator_goes_through_reconstruct(kind, params):
    rng = np.random.default_rng(0)
    x = rng.random((24, 24)).astype(np.float32)
    A = ngp.make_operator(kind, shape=x.shape, **params)
    y = A.measure(x, noise_std=0.01, seed=0)
    rec = ngp.reconstruct(y, A, method="dip", steps=3, device="cpu")
    assert rec.image.shape == x.shape and rec.image.dtype == np.float32
    assert np.all(np.isfinite(rec.image))
    if A.linear:
        back = ngp.reconstruct(y, A, method="adjoint").image
        assert back.shape == x.shape and np.isrealobj(back)
    else:
        with pytest.raises(ValueError, match="linear"):
            ngp.reconstruct(y, A, method="adjoint")


def test_zero_filled_mri_is_the_real_part_of_the_inverse_fft():
    rng = np.random.default_rng(1)
    x = rng.random((32, 32))
    A = ngp.make_operator("mri", shape=x.shape, acceleration=4, seed=0)
    y = A.measure(x, seed=0)
    rec = ngp.reconstruct(y, A, method="adjoint")
    expected = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(y), norm="ortho")).real
    np.testing.assert_allclose(rec.image, expected, atol=1e-5)


def test_integer_measurements_are_accepted(nuclei64):
    y = nuclei64.astype(np.uint16)
    A = ngp.make_operator("denoise", shape=y.shape)
    rec = ngp.reconstruct(y, A, method="dip", steps=2, device="cpu")
    assert rec.image.dtype == np.float32


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(y=np.ones((8, 9))), ValueError, r"shape \(8, 9\)"),
        (dict(y=np.full((8, 8), np.nan)), ValueError, "NaN"),
        (dict(y=np.ones((8, 8)) + 1j), TypeError, "complex"),
        (dict(y=np.zeros((0, 0))), ValueError, "empty"),
        (dict(y="not an image"), TypeError, "numpy array"),
        (dict(A="denoise"), TypeError, "make_operator"),
        (dict(method="magic"), ValueError, "unknown method"),
        (dict(steps=0), ValueError, "steps"),
        (dict(restarts=3), ValueError, "single start"),
        (dict(seed=1.5), TypeError, "seed"),
        (dict(prior="digits-vae"), ValueError, "no trained prior"),
        (dict(learning_rate=0.1), TypeError, "does not take"),
        (dict(device="tpu"), ValueError, "device"),
    ],
)
def test_bad_arguments_raise_a_sentence(kwargs, error, words):
    args = dict(
        y=np.ones((8, 8)), A=ngp.make_operator("denoise", shape=(8, 8)), method="dip", steps=2
    )
    args.update(kwargs)
    with pytest.raises(error, match=words):
        ngp.reconstruct(args.pop("y"), args.pop("A"), **args)


def test_cuda_request_without_a_gpu_is_a_clear_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    A = ngp.make_operator("denoise", shape=(8, 8))
    with pytest.raises(ValueError, match="no CUDA GPU"):
        ngp.reconstruct(np.ones((8, 8)), A, method="dip", steps=1, device="cuda")


@pytest.mark.skipif("not __import__('torch').cuda.is_available()")
def test_cuda_and_cpu_agree(inpaint_problem):
    x, A, y = inpaint_problem
    cpu = ngp.reconstruct(y, A, method="dip", steps=200, seed=0, device="cpu")
    gpu = ngp.reconstruct(y, A, method="dip", steps=200, seed=0, device="cuda")
    assert gpu.params["device"].startswith("cuda")
    assert abs(ngp.metrics.psnr(x, gpu.image) - ngp.metrics.psnr(x, cpu.image)) < 1.5


@pytest.mark.parametrize(
    "method, options, words",
    [
        ("dip", {"lr": 0.0}, "lr must be > 0"),
        ("dip", {"channels": 100_000}, "channels must be between"),
        ("dip", {"ema": 5.0}, "ema must be"),
        ("dip", {"holdout": 0.99}, "holdout must be"),
        ("dip", {"lr": 1e9}, "diverged"),
    ],
)
def test_solver_options_out_of_range_or_divergent_are_value_errors(method, options, words):
    # Before: channels=100000 escaped as the CPU allocator's RuntimeError, lr=1e9 returned NaNs,
    # ema=5 and holdout=0.99 ran with nonsense.
    rng = np.random.default_rng(0)
    A = ngp.make_operator("denoise", shape=(24, 24))
    with pytest.raises(ValueError, match=words):
        ngp.reconstruct(
            rng.random((24, 24)).astype(np.float32), A, method, steps=3, device="cpu", **options
        )


@pytest.mark.parametrize(
    "kind, params, words",
    [
        ("inpaint", {"boxes": 10**9}, "boxes must be between"),
        ("phase", {"m": 10**9}, "m \\(number of measurements\\) must be between"),
        ("phase", {"masks": 10**6}, "masks must be between"),
        ("phase", {"m": 3000, "matrix": "gaussian"}, "GiB"),
        ("cs", {"m": 60_000, "matrix": "dense"}, "GiB"),
    ],
)
def test_parameters_that_would_hang_or_exhaust_memory_are_refused(kind, params, words):
    # Before: boxes=1e9 looped for hours (found by tests/test_fuzz.py), the others allocated
    # gigabytes before failing.
    with pytest.raises(ValueError, match=words):
        ngp.make_operator(kind, shape=(256, 256), **params)
