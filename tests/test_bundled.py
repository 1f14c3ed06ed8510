"""The priors that ship with the package load, carry honest cards, and do their job."""

from pathlib import Path

import numpy as np
import pytest

import napari_genprior as ngp

SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"


def test_bundled_priors_are_listed_and_load():
    names = ngp.list_priors()
    assert {"digits-vae", "nuclei-vae", "mri-vae", "mri-score"} <= set(names)
    for name in names:
        G = ngp.load_prior(name)
        assert G.card["name"] == name and G.card["data"] and G.card["training"]["epochs"] > 0
        noisy = G.card.get("noisy_training")
        if noisy:  # learned from noisy pixels: its held-out PSNR at its own noise, > 5 dB gain
            held = G.card["training"]["final_losses"]["held-out PSNR"]
            assert held > -20 * np.log10(noisy["sigma"]) + 5
        elif G.card["kind"] == "score":  # a diffusion prior: no encoder; its held-out record
            assert G.card["heldout_denoising_gain_db"]["0.05"] > 5
        else:
            assert hasattr(G, "encoder")
    assert ngp.load_prior("digits-vae").image_shape == (28, 28)
    assert ngp.load_prior("nuclei-vae").image_shape == (64, 64)
    total = sum(
        p.stat().st_size
        for p in (Path(ngp.priors.__file__).parent / "bundled").glob("*.safetensors")
    )
    assert total < 30e6


def test_digits_vae_beats_lasso_on_held_out_digits():
    digits = np.load(SAMPLES / "digits_test.npz")["images"][:3].astype(np.float32) / 255
    G = ngp.load_prior("digits-vae")
    mse = {"csgm": [], "lasso-wavelet": []}
    for i, x in enumerate(digits):
        A = ngp.make_operator("cs", shape=x.shape, m=100, seed=i)
        y = A.measure(x, noise_std=0.01, seed=i)
        mse["csgm"].append(
            np.mean(
                (
                    ngp.reconstruct(
                        y, A, method="csgm", prior=G, restarts=5, steps=300, seed=i
                    ).image
                    - x
                )
                ** 2
            )
        )
        mse["lasso-wavelet"].append(
            np.mean((ngp.reconstruct(y, A, method="lasso-wavelet", seed=i).image - x) ** 2)
        )
    assert np.mean(mse["csgm"]) < np.mean(mse["lasso-wavelet"]) / 2, mse


@pytest.mark.parametrize("name", ["nuclei-vae", "mri-vae"])
def test_patch_priors_denoise_their_own_kind_of_image(name):
    from napari_genprior.synthetic import brain_patches, nuclei_images

    x = (
        nuclei_images(1, seed=12345)[0] if name == "nuclei-vae" else brain_patches(1, seed=12345)[0]
    ) * 500 + 100  # any intensity scale: gain is fitted
    A = ngp.make_operator("denoise", shape=x.shape)
    y = A.measure(x, noise_std=100, seed=0)
    rec = ngp.reconstruct(y, A, method="csgm", prior=name, restarts=5, steps=300, seed=0)
    assert ngp.metrics.psnr(x, rec.image) > ngp.metrics.psnr(x, y) + 3


def _training_script():
    """``scripts/train_bundled_priors.py`` as a module (it is not part of the package)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / "train_bundled_priors.py"
    spec = importlib.util.spec_from_file_location("train_bundled_priors", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_training_script_balances_the_priors_over_processes():
    T = _training_script()
    names = list(T.JOBS)
    groups = T.balance(names, 2)
    assert sorted(n for g in groups for n in g) == sorted(names)  # each trained once
    loads = [sum(T.COST[n] for n in g) for g in groups]
    # the two processes carry about half each: the two largest in different ones
    assert max(loads) < 0.6 * sum(T.COST.values())
    assert T.balance(names, 1) == [sorted(names, key=lambda n: -T.COST[n])]


def test_training_script_writes_the_floor_recorded_in_the_card(monkeypatch):
    """The floor the script measures for ``digits-conv`` has the card's fields and, on a few
    digits with fewer steps, the card's scale (the full measurement reproduces the card)."""
    T = _training_script()
    monkeypatch.setattr(T, "FLOOR_DIGITS", 3)
    monkeypatch.setattr(T, "FLOOR_DIGIT_STEPS", 150)
    G = ngp.load_prior("digits-conv")
    floor = T.digits_floor(G)
    assert set(floor) == set(G.card["floor"])
    assert 0 < floor["mse_mean"] < 5 * G.card["floor"]["mse_mean"]
    assert "3 MNIST test digits" in floor["held_out"]
