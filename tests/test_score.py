"""Score-based (diffusion) priors and method ``score`` (annealed splitting, DiffPIR)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import napari_genprior as ngp
from napari_genprior.priors import ScoreUNet


@pytest.fixture(scope="module")
def mri_slices():
    """Central 128x128 crops of two held-out MNI152 slices (never trained on)."""
    d = np.load(Path(ngp.__file__).parent / "sample_data" / "mri_heldout.npz")
    return [d["mni152_axial"][i, 64:192, 64:192].astype(np.float32) / 255 for i in (0, 2)]


def _blobs(n: int, side: int = 16, seed: int = 0) -> np.ndarray:
    """Smooth random images in [0, 1]: a family a small denoiser can learn in seconds."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    ims = gaussian_filter(rng.standard_normal((n, side, side)), (0, 2.5, 2.5), mode="wrap")
    ims -= ims.min(axis=(1, 2), keepdims=True)
    return (ims / ims.max(axis=(1, 2), keepdims=True)).astype(np.float32)


def test_the_denoiser_takes_images_of_any_size():
    net = ScoreUNet(channels=4, levels=2)
    for shape in ((1, 1), (2, 3), (37, 50), (64, 64)):
        x = torch.rand(2, *shape)
        out = net(x, torch.tensor([0.1, 0.5]))
        assert out.shape == x.shape and torch.isfinite(out).all()


def test_a_score_prior_round_trips_through_a_prior_file(tmp_path):
    net = ScoreUNet(channels=4)
    net.card["name"] = "tiny"
    net.save(tmp_path / "tiny.safetensors")
    back = ngp.load_prior(tmp_path / "tiny.safetensors")
    assert isinstance(back, ScoreUNet) and back.card["architecture"] == "score-unet"
    x = torch.rand(1, 20, 24)
    torch.testing.assert_close(back(x, 0.2), net(x, 0.2))


def test_train_prior_kind_score_learns_to_denoise():
    """Denoising score matching: after a short training the denoiser removes noise it never
    saw from images it never saw (PSNR well above the noisy input's)."""
    G = ngp.train_prior(
        _blobs(400),
        kind="score",
        epochs=8,
        lr=3e-3,
        channels=8,
        patches_per_epoch=1600,
        batch_size=32,
        normalise="none",
        device="cpu",
        seed=0,
    )
    assert isinstance(G, ScoreUNet) and G.card["kind"] == "score"
    clean = torch.from_numpy(_blobs(16, seed=1))
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        den = G(noisy, 0.1)
    gain = ngp.metrics.psnr(clean.numpy(), den.numpy(), 1.0) - ngp.metrics.psnr(
        clean.numpy(), noisy.numpy(), 1.0
    )
    assert gain > 3.0, gain


def test_score_beats_tv_and_ia_on_held_out_mri(mri_slices):
    """4x variable-density k-space of held-out real slices: the bundled score prior beats total
    variation (the best classical method there) and ``ia``, with nothing tuned on the truth."""
    margins = []
    for i, x in enumerate(mri_slices):
        A = ngp.make_operator("mri", shape=x.shape, acceleration=4, center_fraction=0.08, seed=i)
        y = A.measure(x, noise_std=0.005, seed=i)
        sc = ngp.reconstruct(y, A, method="score", prior="mri-score", device="cpu", seed=0)
        tv = ngp.reconstruct(y, A, method="tv", device="cpu", seed=0)
        margins.append(ngp.metrics.psnr(x, sc.image, 1.0) - ngp.metrics.psnr(x, tv.image, 1.0))
        assert sc.params["prior"]["architecture"] == "score-unet"
        assert 1 <= sc.params["chosen_step"] <= 100  # the default number of noise levels
    assert min(margins) > 0.5, margins


def test_method_and_prior_kinds_refuse_each_other():
    A = ngp.make_operator("denoise", shape=(64, 64))
    y = np.zeros((64, 64), np.float32)
    with pytest.raises(ValueError, match="score \\(diffusion\\) prior, which only method 'score'"):
        ngp.reconstruct(y, A, method="csgm", prior="mri-score", steps=2)
    with pytest.raises(ValueError, match="needs a score prior"):
        ngp.reconstruct(y, A, method="score", prior="mri-vae", steps=2)
    with pytest.raises(ValueError, match="needs a prior"):
        ngp.reconstruct(y, A, method="score", steps=2)
    with pytest.raises(ValueError, match="runs a single start"):  # deterministic
        ngp.reconstruct(y, A, method="score", prior="mri-score", steps=2, restarts=2)
    with pytest.raises(TypeError, match="whole images"):
        ngp.reconstruct(y, A, method="score", prior="mri-score", steps=2, overlap=8)
    with pytest.raises(ValueError, match="phase"):  # needs a linear operator
        P = ngp.make_operator("phase", shape=(8, 8), m=100, seed=0)
        ngp.reconstruct(np.ones(100), P, method="score", prior=ScoreUNet(channels=4))


def test_score_is_reproducible_cancellable_and_leaves_the_input(mri_slices):
    x = mri_slices[0][32:96, 32:96].copy()
    A = ngp.make_operator("inpaint", shape=x.shape, fraction=0.5, seed=0)
    y = A.measure(x, noise_std=0.02, seed=0)
    y0 = y.copy()
    a = ngp.reconstruct(y, A, method="score", prior="mri-score", steps=12, device="cpu", seed=1)
    b = ngp.reconstruct(y, A, method="score", prior="mri-score", steps=12, device="cpu", seed=1)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(y, y0)
    zero_filled = ngp.reconstruct(y, A, method="adjoint").image
    assert ngp.metrics.psnr(x, a.image, 1.0) > ngp.metrics.psnr(x, zero_filled, 1.0) + 5
    seen = []
    c = ngp.reconstruct(
        y,
        A,
        method="score",
        prior="mri-score",
        steps=12,
        device="cpu",
        callback=lambda step, loss, image: seen.append(step) or step < 3,
    )
    assert c.cancelled and seen[-1] == 3 and np.isfinite(c.image).all()


def test_advice_recommends_score_for_a_score_prior():
    from napari_genprior.advice import recommend

    assert recommend("mri", ngp.load_prior("mri-score")).method == "score"
    assert recommend("mri", ngp.load_prior("mri-vae")).method == "ia"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_score_runs_on_cuda(mri_slices):
    x = mri_slices[0]
    A = ngp.make_operator("mri", shape=x.shape, acceleration=4, seed=0)
    y = A.measure(x, noise_std=0.005, seed=0)
    gpu = ngp.reconstruct(y, A, method="score", prior="mri-score", steps=10, device="cuda")
    cpu = ngp.reconstruct(y, A, method="score", prior="mri-score", steps=10, device="cpu")
    assert abs(ngp.metrics.psnr(x, gpu.image, 1.0) - ngp.metrics.psnr(x, cpu.image, 1.0)) < 0.5


def test_score_reconstructs_a_stack_plane_by_plane(mri_slices):
    x = np.stack([s[32:96, 32:96] for s in mri_slices])
    A = ngp.make_operator("inpaint", shape=x.shape[1:], fraction=0.5, seed=0)
    ys = np.stack([A.measure(p, noise_std=0.02, seed=i) for i, p in enumerate(x)])
    rec = ngp.reconstruct_stack(ys, A, method="score", prior="mri-score", steps=20, device="cpu")
    assert rec.image.shape == x.shape
    for plane, truth, y in zip(rec.image, x, ys):
        zero_filled = ngp.reconstruct(y, A, method="adjoint").image
        assert ngp.metrics.psnr(truth, plane, 1.0) > ngp.metrics.psnr(truth, zero_filled, 1.0) + 5


def test_the_caller_runs_with_grad_mode_as_it_was_between_steps():
    """``score`` computes without gradients, but not across its yields: the caller's code
    (a callback, a widget's thread) runs between them, and grad mode is per thread. Both the
    annealed path and the path under a prior learned from noisy measurements."""
    y = np.random.default_rng(0).poisson(20 * np.ones((32, 32))).astype(np.float32)
    A = ngp.make_operator("denoise", shape=y.shape)
    noisy = ScoreUNet((32, 32), channels=4)
    noisy.card["noisy_training"] = {"sigma": 0.05}
    for prior, options in ((ScoreUNet((32, 32), channels=4), {"steps": 4}), (noisy, {})):
        modes: list[bool] = []
        ngp.reconstruct(
            y,
            A,
            method="score",
            prior=prior,
            callback=lambda *_, seen=modes: seen.append(torch.is_grad_enabled()),
            **options,
        )
        assert modes and all(modes), (options, modes)
    assert torch.is_grad_enabled()
