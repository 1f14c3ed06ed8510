"""Generators and prior files: shapes, exact save/load, and refusal of bad or malicious files."""

import json
import pickle

import numpy as np
import pytest
import torch

import napari_genprior as ngp
from napari_genprior.priors import (
    ARCHITECTURES,
    ENCODERS,
    ConvDecoder,
    DCGANGenerator,
    FCDecoder,
    load_prior,
    read_card,
)

SMALL = [
    lambda: FCDecoder(latent_dim=5, image_shape=(8, 8), hidden=(16,)),
    lambda: ConvDecoder(latent_dim=6, image_shape=(16, 16), channels=4),
    lambda: DCGANGenerator(latent_dim=7, image_shape=(16, 16), ngf=4),
    lambda: ngp.random_prior(latent_dim=4, widths=(20, 36), image_shape=(6, 6), seed=3),
]


@pytest.mark.parametrize("make", SMALL)
def test_generators_map_latent_batches_to_images(make):
    G = make().eval()
    z = torch.randn(3, G.latent_dim)
    out = G(z)
    assert out.shape == (3, *G.image_shape)
    assert G.card["architecture"] in ARCHITECTURES and G.card["latent_dim"] == G.latent_dim


@pytest.mark.parametrize("make", SMALL)
def test_save_and_load_restore_the_generator_exactly(make, tmp_path):
    G = make().eval()
    G.card["data"] = "test data"
    G.save(tmp_path / "g")
    path = tmp_path / "g.safetensors"
    assert path.is_file() and json.loads((tmp_path / "g.json").read_text())["data"] == "test data"
    H = ngp.load_prior(path)
    z = torch.randn(4, G.latent_dim)
    assert torch.equal(G(z), H(z))
    assert H.card["data"] == "test data" and H.image_shape == G.image_shape


def test_encoders_match_their_decoders():
    for arch, enc_cls in ENCODERS.items():
        kwargs = {
            "fc-decoder": {"image_shape": (8, 8), "hidden": (16,)},
            "conv-decoder": {"image_shape": (16, 16), "channels": 4},
        }[arch]
        enc = enc_cls(latent_dim=5, **kwargs)
        mu, logvar = enc(torch.rand(2, *kwargs["image_shape"]))
        assert mu.shape == logvar.shape == (2, 5)


def test_random_prior_has_the_theory_weights():
    G = ngp.random_prior(latent_dim=10, widths=(250, 600), seed=0)
    W1, W2 = (lin.weight.detach() for lin in G.layers)
    assert W1.shape == (250, 10) and W2.shape == (600, 250)
    assert all(lin.bias is None for lin in G.layers)
    assert abs(float(W2.var()) - 1 / 600) < 0.1 / 600
    assert torch.equal(
        W1, ngp.random_prior(latent_dim=10, widths=(250, 600), seed=0).layers[0].weight
    )
    assert torch.all(G(torch.randn(2, 10)) >= 0)


# -- bad files -------------------------------------------------------------------------------
@pytest.fixture
def saved(tmp_path):
    G = FCDecoder(latent_dim=5, image_shape=(8, 8), hidden=(16,))
    G.save(tmp_path / "g.safetensors")
    return tmp_path / "g.safetensors"


def test_truncated_file_is_refused(saved):
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="g.safetensors"):
        load_prior(saved)


def test_card_that_does_not_match_the_weights_is_refused(saved, tmp_path):
    from safetensors.torch import load_file, save_file

    card = read_card(saved)
    card["config"]["hidden"] = [32]
    save_file(
        load_file(str(saved)),
        str(tmp_path / "bad.safetensors"),
        metadata={"genprior_card": json.dumps(card)},
    )
    with pytest.raises(ValueError, match="do not match"):
        load_prior(tmp_path / "bad.safetensors")


def test_wrong_tensor_shapes_and_foreign_files_are_refused(saved, tmp_path):
    from safetensors.torch import save_file

    tensors = {"net.0.weight": torch.zeros(3, 3)}
    save_file(tensors, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ValueError, match="no genprior card"):
        load_prior(tmp_path / "plain.safetensors")
    card = read_card(saved)
    save_file(
        tensors, str(tmp_path / "shapes.safetensors"), metadata={"genprior_card": json.dumps(card)}
    )
    with pytest.raises(ValueError, match="do not match"):
        load_prior(tmp_path / "shapes.safetensors")
    card["architecture"] = "evil-net"
    save_file(
        tensors, str(tmp_path / "arch.safetensors"), metadata={"genprior_card": json.dumps(card)}
    )
    with pytest.raises(ValueError, match="unknown architecture"):
        load_prior(tmp_path / "arch.safetensors")


class _Payload:
    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(MARKER),))


MARKER = ""


def test_a_pickle_disguised_as_a_prior_is_refused_without_running_it(tmp_path):
    global MARKER
    MARKER = str(tmp_path / "pwned")
    evil = tmp_path / "model.safetensors"
    evil.write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(ValueError):
        load_prior(evil)
    torch_file = tmp_path / "torch_model.safetensors"
    torch.save({"payload": _Payload()}, torch_file)
    with pytest.raises(ValueError):
        load_prior(torch_file)
    assert not (tmp_path / "pwned").exists()


def test_unknown_prior_name_is_a_clear_error():
    with pytest.raises(ValueError, match="no prior named"):
        ngp.load_prior("no-such-prior")
    assert isinstance(ngp.list_priors(), list)


def test_random_prior_rejects_bad_sizes():
    with pytest.raises(ValueError):
        ngp.random_prior(latent_dim=0)
    with pytest.raises(ValueError, match="image_shape"):
        ngp.random_prior(latent_dim=3, widths=(10, 20), image_shape=(3, 3))
    np.testing.assert_equal(ngp.random_prior(3, (10, 16), image_shape=(4, 4)).image_shape, (4, 4))
