"""train_prior: VAE and GAN on small data, callbacks, cancel, checkpoints, files, bad input."""

import numpy as np
import pytest
import torch

import napari_genprior as ngp


def _blobs(n, side=16, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side, :side]
    out = np.zeros((n, side, side), np.float32)
    for i in range(n):
        cy, cx = rng.uniform(4, side - 4, 2)
        r = rng.uniform(2, 4)
        out[i] = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2))
    return out


def test_vae_learns_and_reports_progress(tmp_path):
    data = _blobs(512)
    seen = []
    G = ngp.train_prior(
        data,
        latent_dim=4,
        epochs=30,
        normalise="none",
        hidden=(64,),
        batch_size=32,
        device="cpu",
        seed=0,
        checkpoint=tmp_path / "ckpt",
        callback=lambda e, losses, samples: seen.append((e, losses, samples)),
    )
    assert [e for e, _, _ in seen] == list(range(1, 31))
    assert seen[-1][1]["loss"] < seen[0][1]["loss"]
    assert seen[0][2].shape == (8, 16, 16)
    assert G.image_shape == (16, 16) and G.latent_dim == 4 and G.architecture == "fc-decoder"
    card = G.card
    assert card["training"]["epochs"] == 30 and not card["training"]["cancelled"]
    assert card["normalisation"]["per_image"] is False
    ck = ngp.load_prior(tmp_path / "ckpt.safetensors")  # the last checkpoint is a usable prior
    assert ck.card["training"]["epochs"] == 30
    # the trained prior represents the data better than an untrained one
    x = data[0]
    A = ngp.make_operator("denoise", shape=x.shape)
    rec = ngp.reconstruct(
        A.measure(x, 0.05, seed=0), A, method="csgm", prior=G, restarts=4, steps=300, device="cpu"
    )
    assert ngp.metrics.psnr(x, rec.image) > ngp.metrics.psnr(x, A.measure(x, 0.05, seed=0)) + 3


def test_same_seed_same_prior_and_exact_round_trip_with_encoder(tmp_path):
    data = _blobs(128, seed=1)
    kw = dict(latent_dim=3, epochs=1, normalise="none", hidden=(32,), batch_size=32, device="cpu")
    G1, G2 = ngp.train_prior(data, seed=5, **kw), ngp.train_prior(data, seed=5, **kw)
    for a, b in zip(G1.state_dict().values(), G2.state_dict().values()):
        assert torch.equal(a, b)
    G1.save(tmp_path / "p.safetensors")
    H = ngp.load_prior(tmp_path / "p.safetensors")
    z = torch.randn(5, 3)
    assert torch.equal(G1(z), H(z))
    x = torch.from_numpy(data[:3])
    assert torch.equal(G1.encoder(x)[0], H.encoder(x)[0])


def test_patches_from_large_images_of_different_sizes_with_per_image_normalisation():
    rng = np.random.default_rng(0)
    images = [rng.random((40, 50)) * 1000 + 100, rng.random((64, 33)) * 10]
    G = ngp.train_prior(
        images,
        latent_dim=3,
        epochs=1,
        patch_size=16,
        patches_per_epoch=64,
        batch_size=32,
        hidden=(16,),
        device="cpu",
    )
    assert G.image_shape == (16, 16)
    assert G.card["normalisation"]["per_image"] is True


def test_conv_vae_and_gan_train_on_square_patches():
    data = _blobs(64, side=32)
    G = ngp.train_prior(
        data, latent_dim=4, epochs=1, normalise="none", channels=4, batch_size=16, device="cpu"
    )
    assert G.architecture == "conv-decoder" and G(torch.randn(2, 4)).shape == (2, 32, 32)
    gan = ngp.train_prior(
        data,
        kind="gan",
        latent_dim=4,
        epochs=1,
        normalise="none",
        channels=4,
        batch_size=16,
        device="cpu",
    )
    assert gan.architecture == "dcgan" and gan.card["kind"] == "gan"
    assert set(gan.card["training"]["final_losses"]) == {"generator", "discriminator"}


def test_cancel_returns_the_prior_trained_so_far():
    data = _blobs(64)
    G = ngp.train_prior(
        data,
        latent_dim=2,
        epochs=50,
        normalise="none",
        hidden=(16,),
        batch_size=32,
        device="cpu",
        callback=lambda e, loss, s: e < 2,
    )
    assert G.card["training"]["cancelled"] and G.card["training"]["epochs"] == 2


@pytest.mark.parametrize(
    "images, kwargs, error, words",
    [
        ([], {}, ValueError, "empty"),
        (np.full((4, 8, 8), np.nan), {}, ValueError, "NaN"),
        (np.zeros((2, 2, 8, 8)), {}, ValueError, "stack"),
        (np.zeros((4, 8, 8)), {"patch_size": 16}, ValueError, "larger than"),
        (np.zeros((4, 8, 8)), {"kind": "diffusion"}, ValueError, "kind"),
        (np.zeros((4, 8, 8)), {"epochs": 0}, ValueError, "epochs"),
        (np.zeros((4, 8, 8)), {"normalise": "zscore"}, ValueError, "normalise"),
        ("images", {}, TypeError, "array"),
    ],
)
def test_bad_input_is_refused(images, kwargs, error, words):
    with pytest.raises(error, match=words):
        ngp.train_prior(images, device="cpu", **kwargs)


def test_encoder_warm_start_for_csgm():
    data = _blobs(512)
    G = ngp.train_prior(
        data,
        latent_dim=4,
        epochs=20,
        normalise="none",
        hidden=(64,),
        batch_size=32,
        device="cpu",
        seed=0,
    )
    x = data[3]
    A = ngp.make_operator("inpaint", shape=x.shape, fraction=0.6, seed=0)
    y = A.measure(x, 0.02, seed=0)
    warm = ngp.reconstruct(y, A, method="csgm", prior=G, steps=1, init="encoder", device="cpu")
    cold = ngp.reconstruct(y, A, method="csgm", prior=G, steps=1, device="cpu")
    # after a single step the warm start is already much closer than a random start
    assert ngp.metrics.psnr(x, warm.image) > ngp.metrics.psnr(x, cold.image) + 3
    with pytest.raises(ValueError, match="encoder"):
        ngp.reconstruct(
            y,
            A,
            method="csgm",
            prior=ngp.random_prior(4, (8, 256), image_shape=(16, 16)),
            steps=1,
            init="encoder",
            device="cpu",
        )
