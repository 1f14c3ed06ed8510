"""``ia``: image-adaptive reconstruction (Hussein, Tirer, Giryes 2020)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import napari_genprior as ngp
from napari_genprior.solvers import METHODS


@pytest.fixture(scope="module")
def digits():
    from pathlib import Path

    d = np.load(Path(ngp.__file__).parent / "sample_data" / "digits_test.npz")
    return d["images"][:4].astype(np.float32) / 255


@pytest.fixture(scope="module")
def mri_crops():
    """64x64 crops of two held-out MNI152 slices (never trained on)."""
    from pathlib import Path

    d = np.load(Path(ngp.__file__).parent / "sample_data" / "mri_heldout.npz")
    return [d["mni152_axial"][i, 96:160, 96:160].astype(np.float32) / 255 for i in (0, 2)]


@pytest.fixture(scope="module")
def G():
    return ngp.load_prior("digits-vae")


def _outside_the_range(x: np.ndarray) -> np.ndarray:
    """A digit with a bright square in its corner: nothing the digits prior can make."""
    x = x.copy()
    x[3:8, 3:8] = 1.0
    return x


def test_ia_is_a_method_of_its_own_that_needs_a_prior():
    assert "ia" in ngp.list_methods() and METHODS["ia"].needs_prior
    A = ngp.make_operator("denoise", shape=(28, 28))
    with pytest.raises(ValueError, match="needs a prior"):
        ngp.reconstruct(np.zeros((28, 28), np.float32), A, method="ia")


def test_adaptation_removes_the_floor_of_the_prior(mri_crops):
    """Inpainting held-out real brain MRI crops with the MRI prior: csgm is held at the
    prior's floor; adapting the weights (stopped on held-out pixels, never on the truth) goes
    well past it."""
    gains = []
    for i, x in enumerate(mri_crops):
        A = ngp.make_operator("inpaint", shape=x.shape, fraction=0.5, seed=i)
        y = A.measure(x, noise_std=0.02, seed=i)
        common = dict(prior="mri-vae", seed=0, device="cpu", init="encoder")
        cs = ngp.reconstruct(y, A, method="csgm", steps=300, **common)
        ia = ngp.reconstruct(y, A, method="ia", steps=600, **common)
        gains.append(ngp.metrics.psnr(x, ia.image, 1.0) - ngp.metrics.psnr(x, cs.image, 1.0))
        assert ia.params["heldout_entries"] > 0 and ia.params["adapt_steps"] > 0
    assert min(gains) > 3.0, gains


def test_ia_never_changes_the_prior_it_is_given(digits, G):
    before = {k: v.clone() for k, v in G.state_dict().items()}
    A = ngp.make_operator("inpaint", shape=(28, 28), fraction=0.5, seed=0)
    y = A.measure(digits[0], noise_std=0.01, seed=0)
    ngp.reconstruct(y, A, method="ia", prior=G, steps=40, lr_weights=1e-2, device="cpu")
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())
    fresh = ngp.load_prior("digits-vae")
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in G.state_dict().items())


def test_restarts_adapt_their_own_weights_in_one_batch_and_give_a_spread(digits, G):
    A = ngp.make_operator("inpaint", shape=(28, 28), fraction=0.5, seed=1)
    y = A.measure(digits[1], noise_std=0.01, seed=1)
    rec = ngp.reconstruct(y, A, method="ia", prior=G, restarts=4, steps=60, device="cpu")
    assert rec.spread is not None and rec.spread.shape == (28, 28) and rec.spread.max() > 0
    assert len(rec.params["restart_misfits"]) == 4
    assert 0 <= rec.params["best_restart"] < 4


def test_held_out_rule_stops_early_and_holdout_zero_runs_every_step(digits, G):
    x = _outside_the_range(digits[2])
    A = ngp.make_operator("denoise", shape=x.shape)
    y = A.measure(x, noise_std=0.2, seed=0)  # very noisy: adapting soon fits noise
    early = ngp.reconstruct(
        y,
        A,
        method="ia",
        prior=G,
        steps=3000,
        search_steps=100,
        lr_weights=1e-2,
        patience=50,
        check_every=5,
        device="cpu",
    )
    assert early.params["stopped_at"] < 3000
    assert len(early.history) == early.params["stopped_at"]
    full = ngp.reconstruct(
        y, A, method="ia", prior=G, steps=150, search_steps=100, holdout=0.0, device="cpu"
    )
    assert full.params["stopped_at"] == 150 and full.params["heldout_entries"] == 0


def test_params_reproduce_the_run(digits, G):
    A = ngp.make_operator("cs", shape=(28, 28), m=300, seed=0)
    y = A.measure(digits[0], noise_std=0.01, seed=0)
    rec = ngp.reconstruct(y, A, method="ia", prior=G, restarts=2, steps=50, seed=3, device="cpu")
    p = rec.params
    A2 = ngp.api.from_spec(p["operator"])
    again = ngp.reconstruct(
        y,
        A2,
        method=p["method"],
        prior="digits-vae",
        restarts=p["restarts"],
        seed=p["seed"],
        device="cpu",
        **p["options"],
    )
    np.testing.assert_allclose(again.image, rec.image, atol=1e-5)


@pytest.mark.parametrize("stop_at", [5, 45])  # during the search, during the adaptation
def test_cancel_returns_the_best_so_far(digits, G, stop_at):
    A = ngp.make_operator("inpaint", shape=(28, 28), fraction=0.5, seed=0)
    y = A.measure(digits[0], noise_std=0.01, seed=0)
    rec = ngp.reconstruct(
        y,
        A,
        method="ia",
        prior=G,
        steps=60,
        search_steps=30,
        device="cpu",
        callback=lambda step, loss, im: step < stop_at,
    )
    assert rec.cancelled and rec.params["cancelled_at"] == stop_at
    assert np.all(np.isfinite(rec.image))


def test_a_diverging_adaptation_returns_the_best_iterate_and_says_so():
    R = ngp.random_prior(latent_dim=10, widths=(250, 600), seed=0)  # ReLU, no sigmoid: can blow up
    with torch.no_grad():
        x = R(torch.randn(1, 10, generator=torch.Generator().manual_seed(1)))[0].numpy()
    A = ngp.make_operator("cs", shape=x.shape, m=300, seed=0)
    y = A.measure(x, noise_std=0.01, seed=0)
    rec = ngp.reconstruct(
        y,
        A,
        method="ia",
        prior=R,
        steps=80,
        search_steps=20,
        lr_weights=1e12,
        warmup=1,
        device="cpu",
    )
    assert np.all(np.isfinite(rec.image))
    assert any("diverged" in n for n in rec.params["notes"])


def test_back_projection_agrees_with_the_measurements(digits, G):
    A = ngp.make_operator("inpaint", shape=(28, 28), fraction=0.5, seed=0)
    x = digits[3]
    y = A.measure(x, seed=0)  # no noise
    rec = ngp.reconstruct(
        y, A, method="ia", prior=G, steps=40, back_project=True, holdout=0.0, device="cpu"
    )
    mask = A.observed()
    np.testing.assert_allclose(rec.image[mask], x[mask], atol=1e-4)
    assert rec.params["back_projected"]


def test_ia_on_a_mosaic_adapts_one_copy_per_restart_against_the_whole_image():
    from pathlib import Path

    from napari_genprior._io import read_tiff

    img = read_tiff(Path(ngp.__file__).parent / "sample_data" / "nuclei.tif")[0]
    x = img[:96, :96].astype(np.float32)
    A = ngp.make_operator("blur", shape=x.shape, sigma=1.5)
    y = A.measure(x, noise_std=0.02 * float(x.max()), seed=0)
    rec = ngp.reconstruct(
        y, A, method="ia", prior="nuclei-vae", restarts=2, steps=30, init="encoder", device="cpu"
    )
    assert rec.image.shape == (96, 96) and np.all(np.isfinite(rec.image))
    assert rec.params["prior"]["mosaic"]["grid"] == [2, 2]
    assert rec.spread is not None and rec.spread.shape == (96, 96)


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(lr_weights=-1.0), ValueError, "lr_weights"),
        (dict(holdout=0.9), ValueError, "holdout"),
        (dict(back_project="yes"), TypeError, "back_project"),
        (dict(search_steps=-3), ValueError, "search_steps"),
        (dict(init="nonsense"), ValueError, "init"),
        (dict(optimizer="adam"), TypeError, "does not take"),
    ],
)
def test_bad_options_raise_a_sentence(digits, G, kwargs, error, words):
    A = ngp.make_operator("inpaint", shape=(28, 28), fraction=0.5, seed=0)
    y = A.measure(digits[0], seed=0)
    with pytest.raises(error, match=words):
        ngp.reconstruct(y, A, method="ia", prior=G, steps=5, device="cpu", **kwargs)


def test_back_projection_of_noisy_k_space_with_held_out_samples_helps(mri_crops):
    """Noisy k-space is not conjugate-symmetric: a pseudo-inverse solved in k-space diverged
    here (values of 1e6). Solved on the normal equations it must be bounded and help."""
    x = mri_crops[0]
    A = ngp.make_operator(
        "mri", shape=x.shape, acceleration=4, center_fraction=0.08, mask="variable-density", seed=0
    )
    y = A.measure(x, noise_std=0.005, seed=0)
    common = dict(prior="mri-vae", steps=60, seed=0, init="encoder", device="cpu")
    plain = ngp.reconstruct(y, A, method="ia", **common)
    bp = ngp.reconstruct(y, A, method="ia", back_project=True, **common)
    assert plain.params["heldout_entries"] > 0
    assert np.abs(bp.image).max() < 2.0
    assert ngp.metrics.psnr(x, bp.image, 1.0) > ngp.metrics.psnr(x, plain.image, 1.0) + 1.0


def test_back_projection_needs_a_linear_operator(G):
    A = ngp.make_operator("phase", shape=(28, 28), m=200, seed=0)
    y = A.measure(np.zeros((28, 28), np.float32), seed=0)
    with pytest.raises(ValueError, match="linear"):
        ngp.reconstruct(y, A, method="ia", prior=G, steps=5, back_project=True, device="cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_ia_on_cuda_matches_the_cpu_closely(digits, G):
    A = ngp.make_operator("inpaint", shape=(28, 28), fraction=0.5, seed=0)
    y = A.measure(digits[0], noise_std=0.01, seed=0)
    cpu = ngp.reconstruct(y, A, method="ia", prior=G, steps=100, device="cpu")
    gpu = ngp.reconstruct(y, A, method="ia", prior=G, steps=100, device="cuda")
    assert (
        abs(
            ngp.metrics.psnr(digits[0], cpu.image, 1.0)
            - ngp.metrics.psnr(digits[0], gpu.image, 1.0)
        )
        < 1.0
    )


def test_a_stack_and_the_batch_command_run_ia(tmp_path, nuclei):
    from napari_genprior import cli
    from napari_genprior._io import read_tiff, write_tiff

    x = nuclei.astype(np.float32)
    stack = np.stack([x[:64, :64], x[64:, 64:]])
    A = ngp.make_operator("blur", shape=(64, 64), sigma=1.5)
    Y = np.stack([A.measure(p, noise_std=20.0, seed=i) for i, p in enumerate(stack)])
    rec = ngp.reconstruct_stack(Y, A, method="ia", prior="nuclei-vae", steps=20, device="cpu")
    assert rec.image.shape == (2, 64, 64) and rec.params["planes_done"] == 2
    assert all(p["method"] == "ia" for p in rec.params["planes"])

    (tmp_path / "in").mkdir()
    write_tiff(tmp_path / "in" / "a.tif", Y[0])
    rc = cli.main(
        [
            "batch",
            str(tmp_path / "in"),
            "--out",
            str(tmp_path / "out"),
            "--operator",
            "blur",
            "--param",
            "sigma=1.5",
            "--method",
            "ia",
            "--prior",
            "nuclei-vae",
            "--steps",
            "20",
            "--scheduler",
            "sync",
        ]
    )
    assert rc == 0
    out = read_tiff(next((tmp_path / "out").glob("*.tif")))[0]
    assert out.shape == (64, 64) and np.all(np.isfinite(out))


@pytest.mark.gui
def test_the_reconstruct_widget_runs_ia_with_preview_and_cancel(
    make_napari_viewer, qtbot, nuclei64
):
    viewer = make_napari_viewer()
    A = ngp.make_operator("blur", shape=nuclei64.shape, sigma=1.5)
    layer = viewer.add_image(A.measure(nuclei64, noise_std=20.0, seed=0), name="blurred")
    before = layer.data.copy()
    _, widget = viewer.window.add_plugin_dock_widget("napari-genprior", "Reconstruct")
    widget.layer.value = layer
    widget.operator.value = "deblur / deconvolve (PSF)"
    widget.sigma.value = 1.5
    widget.prior.value = "nuclei-vae"
    widget.method.value = "ia"
    widget.steps.value = 100_000
    widget.start()
    assert widget.worker is not None, widget.status.value
    previews = []
    widget.worker.yielded.connect(
        lambda u: previews.append(u.step) if u.image is not None else None
    )
    qtbot.waitUntil(lambda: len(previews) >= 2, timeout=120_000)
    widget.cancel()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=30_000)
    result = viewer.layers["blurred [ia, nuclei-vae, cancelled]"]
    meta = result.metadata["genprior"]
    assert meta["method"] == "ia" and meta["cancelled"]
    assert result.data.shape == nuclei64.shape and np.all(np.isfinite(result.data))
    assert np.array_equal(layer.data, before), "the input layer was modified"
