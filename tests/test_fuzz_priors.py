"""Prior files damaged at random (bytes flipped, cut short, the card's JSON edited into
nonsense): ``load_prior`` loads a working generator or raises ValueError with a sentence;
nothing else, and never by unpickling."""

from __future__ import annotations

import json
import os
import pickle
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import napari_genprior as ngp
from napari_genprior.priors import read_card

EXAMPLES = int(os.environ.get("GENPRIOR_FUZZ_EXAMPLES", "150"))


@pytest.fixture(scope="module")
def prior_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("prior") / "p.safetensors"
    ngp.random_prior(latent_dim=3, widths=(6, 16), image_shape=(4, 4)).save(path)
    return path.read_bytes()


def _check(path):
    """Load under a guard: any unpickling attempt fails the test."""
    with (
        mock.patch.object(pickle, "loads", side_effect=AssertionError("unpickled")),
        mock.patch.object(pickle, "load", side_effect=AssertionError("unpickled")),
    ):
        try:
            G = ngp.load_prior(path)
        except ValueError as exc:
            assert len(str(exc)) > 15
            event("refused")
            return
    event("loaded")
    with torch.no_grad():  # what loads, works
        out = G(G.sample_latent(2))
    assert out.shape == (2, *G.image_shape)


@settings(
    max_examples=EXAMPLES,
    deadline=5_000,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_damaged_prior_files_are_refused_with_a_sentence(prior_bytes, tmp_path, data):
    raw = bytearray(prior_bytes)
    how = data.draw(st.sampled_from(["flip", "cut", "flip", "zero-run"]), label="damage")
    if how == "cut":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1), label="length")]
    elif how == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] = data.draw(st.integers(0, 255))
    else:
        i = data.draw(st.integers(0, len(raw) - 1))
        n = data.draw(st.integers(1, 64))
        raw[i : i + n] = bytes(len(raw[i : i + n]))
    path = tmp_path / "damaged.safetensors"
    path.write_bytes(bytes(raw))
    _check(path)


JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**6),
    st.floats(),
    st.text(max_size=5),
    st.lists(st.integers(-3, 50), max_size=4),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@settings(
    max_examples=EXAMPLES,
    deadline=5_000,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_a_card_edited_into_nonsense_is_refused_with_a_sentence(prior_bytes, tmp_path, data):
    from safetensors.torch import load, save_file

    src = tmp_path / "src.safetensors"
    src.write_bytes(prior_bytes)
    card = read_card(src)
    keys = [("architecture",), ("latent_dim",), ("image_shape",), ("config",)] + [
        ("config", k) for k in card["config"]
    ]
    key = data.draw(st.sampled_from(keys), label="key")
    target = card if len(key) == 1 else card["config"]
    if data.draw(st.booleans(), label="delete"):
        target.pop(key[-1], None)
    else:
        target[key[-1]] = data.draw(JUNK, label="value")
    path = tmp_path / "edited.safetensors"
    save_file(load(prior_bytes), str(path), metadata={"genprior_card": json.dumps(card)})
    _check(path)


def test_a_prior_for_another_image_size_is_refused_by_reconstruct(prior_bytes, tmp_path):
    path = tmp_path / "p.safetensors"
    path.write_bytes(prior_bytes)  # makes 4x4 images
    y = np.zeros((3, 3), np.float32)
    with pytest.raises(ValueError, match=r"shape \(4, 4\).*not smaller"):
        ngp.reconstruct(y, ngp.make_operator("denoise", shape=(3, 3)), "csgm", str(path), steps=1)
    A = ngp.make_operator("denoise", shape=(2, 3, 3))
    with pytest.raises(ValueError, match=r"shape \(4, 4\).*not smaller"):
        ngp.reconstruct(np.zeros((2, 3, 3), np.float32), A, "csgm", str(path), steps=1)
    # a stack of planes the prior's size: every plane gets its own code (issue 16)
    A = ngp.make_operator("denoise", shape=(2, 4, 4))
    rec = ngp.reconstruct(np.zeros((2, 4, 4), np.float32), A, "csgm", str(path), steps=1)
    assert rec.image.shape == (2, 4, 4)
