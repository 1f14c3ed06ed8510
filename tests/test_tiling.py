"""Mosaics of patch priors for images larger than the patch (issue 7)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import napari_genprior as ngp
from napari_genprior.tiling import Mosaic, tile_grid, window


class _Const(torch.nn.Module):
    """A toy 'generator': each patch is the constant z[0] (for exact overlap-add checks)."""

    def __init__(self, patch=(16, 16)):
        super().__init__()
        self.latent_dim, self.image_shape = 2, patch
        self.card = {"architecture": "const"}

    def forward(self, z):
        return z[:, :1, None].expand(-1, *self.image_shape) + 0 * z[:, 1:2, None]


def test_window_and_grid():
    w = window(16, 4)
    assert w.shape == (16,) and torch.all(w > 0) and torch.all(w[4:12] == 1)
    assert torch.allclose(w[:4], w[-4:].flip(0))
    assert tile_grid(64, 64, 16) == (1, 48, 64)
    n, s, padded = tile_grid(256, 64, 16)
    assert s == 48 and padded >= 256 and padded == 64 + 48 * (n - 1) and 64 + 48 * (n - 2) < 256


def test_the_mosaic_is_a_partition_of_unity_and_places_tiles_right():
    M = Mosaic(_Const(), (40, 56), overlap=4)
    ones = torch.ones(3, M.latent_dim)
    np.testing.assert_allclose(M(ones).numpy(), 1.0, rtol=1e-6)  # equal tiles -> flat image
    z = torch.zeros(1, M.tiles, 2)
    z[0, 0, 0] = 1.0  # only the top-left tile is bright
    img = M(z.reshape(1, -1))[0].numpy()
    ty, tx = M.crop
    assert img[0, 0] == pytest.approx(1.0) and img[-1, -1] == pytest.approx(0.0)
    assert img.shape == (40, 56)


def test_mosaic_refuses_what_it_cannot_tile():
    with pytest.raises(ValueError, match="smaller than the prior's patch"):
        Mosaic(_Const(), (8, 40))
    with pytest.raises(ValueError, match="overlap"):
        Mosaic(_Const(), (40, 40), overlap=16)
    with pytest.raises(ValueError, match="max_batch"):
        Mosaic(_Const(), (40, 40), max_batch=0)


def test_chunked_generation_gives_the_same_image_and_gradient():
    G = ngp.load_prior("nuclei-vae")
    z = torch.randn(2, Mosaic(G, (128, 128)).latent_dim, generator=torch.Generator().manual_seed(0))
    grads = []
    for max_batch in (4096, 5):
        M = Mosaic(G, (128, 128), max_batch=max_batch)
        zz = z.clone().requires_grad_(True)
        out = M(zz)
        out.square().sum().backward()
        grads.append((out.detach(), zz.grad))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grads[0][1], grads[1][1], rtol=1e-4, atol=1e-6)


def test_encoder_codes_each_tile():
    G = ngp.load_prior("nuclei-vae")
    M = Mosaic(G, (128, 160))
    x = torch.rand(1, 128, 160)
    mu, logvar = M.encoder(x)
    assert mu.shape == logvar.shape == (1, M.latent_dim)
    first = M.tiles_of(x)[:, 0]
    mu0, _ = G.encoder(first)
    torch.testing.assert_close(mu[:, : G.latent_dim], mu0)


def _seam_ratio(img: np.ndarray, M: Mosaic) -> float:
    """Mean squared gradient across tile-border lines over that across interior lines."""
    gy = np.diff(img, axis=0) ** 2  # gy[i] is the jump between rows i and i+1
    ty, _ = M.crop
    sy = M.stride[0]
    # borders: where one tile's window ends (the last row of a tile); interior: tile middles
    border_rows = [
        r for r in (np.arange(1, M.grid[0]) * sy + M.overlap // 2 - ty) if 0 <= r < gy.shape[0]
    ]
    mid_rows = [
        r for r in (np.arange(M.grid[0]) * sy + M.patch[0] // 2 - ty) if 0 <= r < gy.shape[0]
    ]
    return float(gy[border_rows].mean() / gy[mid_rows].mean())


def test_a_256_image_with_a_64_prior_reconstructs_without_seams():
    from napari_genprior.synthetic import nuclei_images

    x = nuclei_images(1, shape=(256, 256), seed=321)[0].astype(np.float32)
    # (a zero boundary: the mosaic then tiles the image itself, where the seams are looked for;
    # with the default unknown border it tiles the image and the PSF's reach beyond it)
    A = ngp.make_operator("blur", shape=x.shape, sigma=2.0, boundary="zero")
    y = A.measure(x, photons=100, seed=0)
    rec = ngp.reconstruct(
        y, A, method="csgm", prior="nuclei-vae", steps=150, seed=0, init="encoder"
    )
    assert rec.image.shape == (256, 256)
    assert rec.params["prior"]["mosaic"]["grid"] == [5, 5]
    assert ngp.metrics.psnr(x, rec.image, 1.0) > ngp.metrics.psnr(x, y, 1.0) + 2
    M = Mosaic(ngp.load_prior("nuclei-vae"), (256, 256))
    ratio = _seam_ratio(rec.image, M)
    ratio_t = _seam_ratio(rec.image.T.copy(), M)
    assert ratio < 2.0 and ratio_t < 2.0, (ratio, ratio_t)


def test_tiling_options_are_checked():
    A = ngp.make_operator("denoise", shape=(64, 64))
    y = np.zeros((64, 64), np.float32)
    with pytest.raises(TypeError, match="no"):
        ngp.reconstruct(y, A, method="tv", overlap=8)
    with pytest.raises(TypeError, match="patch size"):
        ngp.reconstruct(y, A, method="csgm", prior="nuclei-vae", overlap=8, steps=1)
    A2 = ngp.make_operator("denoise", shape=(32, 96))
    with pytest.raises(ValueError, match="not smaller"):
        ngp.reconstruct(np.zeros((32, 96), np.float32), A2, method="csgm", prior="nuclei-vae")


def test_out_of_memory_retries_with_smaller_chunks_and_says_so(monkeypatch, nuclei64):
    # A fake allocator: any generator call on more than 8 patches "runs out of memory".
    from napari_genprior.priors.generators import Generator

    calls = []
    G = ngp.load_prior("nuclei-vae")
    original = type(G).forward

    def guarded(self, z):
        calls.append(z.shape[0])
        if z.shape[0] > 20:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(self, z)

    monkeypatch.setattr(type(G), "forward", guarded)
    big = np.tile(nuclei64, (2, 2))  # 128x128: a 3x3 mosaic, 9 patches per restart
    A = ngp.make_operator("denoise", shape=big.shape)
    rec = ngp.reconstruct(big, A, method="csgm", prior=G, restarts=4, steps=3, max_batch=64)
    assert rec.image.shape == (128, 128) and np.all(np.isfinite(rec.image))
    assert rec.params["notes"] and "started again with 16" in rec.params["notes"][0]
    assert max(calls[-5:]) <= 16
    assert isinstance(Generator, type)


def test_other_errors_inside_the_solver_are_not_swallowed(monkeypatch, nuclei64):
    G = ngp.load_prior("nuclei-vae")

    def broken(self, z):
        raise RuntimeError("a bug")

    monkeypatch.setattr(type(G), "forward", broken)
    A = ngp.make_operator("denoise", shape=(64, 64))
    with pytest.raises(RuntimeError, match="a bug"):
        ngp.reconstruct(nuclei64, A, method="csgm", prior=G, steps=2)


def test_twist_previews_a_mosaic():
    # Regression (found by tests/test_fuzz.py): twist's preview decoded one unbatched latent
    # code, which a mosaic of patches reshaped into garbage and raised a RuntimeError.
    A = ngp.make_operator("blur", shape=(6, 12), sigma=1.0)
    y = A.measure(np.random.default_rng(0).random((6, 12)), seed=0)
    G = ngp.random_prior(latent_dim=3, widths=(8, 15), image_shape=(3, 5))
    rec = ngp.reconstruct(
        y,
        A,
        "twist",
        G,
        restarts=2,
        steps=3,
        device="cpu",
        preview_every=1,
        callback=lambda s, loss, img: None,
    )
    assert rec.image.shape == (6, 12) and np.all(np.isfinite(rec.image))
