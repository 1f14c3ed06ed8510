"""Prior files: safetensors weights with a JSON card; loading never unpickles anything.

A prior file ``name.safetensors`` holds the generator's tensors and, in the safetensors header
metadata, its card (``{"genprior_card": "<json>"}``): architecture, its configuration,
latent_dim, image_shape, normalisation, training data, version. A readable copy of the card is
written beside it as ``name.json``. Loading rebuilds the architecture named in the card from
this package's own classes and loads the tensors strictly, so a file cannot run code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from ._write import CARD_KEY, save_prior
from .generators import ARCHITECTURES as _GENERATORS
from .generators import ENCODERS, Generator
from .score import ScoreUNet

#: Every architecture a prior file may name: the latent generators and the score priors.
ARCHITECTURES: dict[str, type] = {**_GENERATORS, ScoreUNet.architecture: ScoreUNet}

__all__ = ["CARD_KEY", "list_priors", "load_prior", "read_card", "save_prior"]

BUNDLED_DIR = Path(__file__).parent / "bundled"


def list_priors() -> list[str]:
    """Names of the priors that ship with the package (``load_prior(name)`` loads them)."""
    if not BUNDLED_DIR.is_dir():
        return []
    return sorted(p.stem for p in BUNDLED_DIR.glob("*.safetensors"))


def _resolve(name_or_path: str | os.PathLike) -> Path:
    text = str(name_or_path)
    if text in list_priors():
        return BUNDLED_DIR / f"{text}.safetensors"
    path = Path(text).expanduser()
    if path.is_file():
        return path
    raise ValueError(
        f"no prior named {text!r}: not a bundled prior ({list_priors() or 'none'}) "
        "and not an existing file."
    )


def read_card(path: str | os.PathLike) -> dict[str, Any]:
    """The card stored in a prior file, without loading its weights."""
    from safetensors import SafetensorError, safe_open

    path = _resolve(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{path.name} is not a readable safetensors prior file ({exc}).") from exc
    if CARD_KEY not in meta:
        raise ValueError(
            f"{path.name} has no genprior card: it was not written by napari-genprior."
        )
    try:
        card = json.loads(meta[CARD_KEY])
    except ValueError as exc:
        raise ValueError(f"the card in {path.name} is not valid JSON ({exc}).") from exc
    if (
        not isinstance(card, dict)
        or not isinstance(card.get("architecture"), str)
        or card["architecture"] not in ARCHITECTURES
    ):
        raise ValueError(
            f"the card in {path.name} names an unknown architecture "
            f"{card.get('architecture') if isinstance(card, dict) else card!r}; "
            f"known: {sorted(ARCHITECTURES)}."
        )
    return card


def load_prior(
    name_or_path: str | os.PathLike, device: str | torch.device = "cpu"
) -> Generator | ScoreUNet:
    """Load a bundled prior by name, or a prior file by path (safetensors; never pickle).

    Raises
    ------
    ValueError
        Unknown name, missing or corrupt file, a card that does not match the weights.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = _resolve(name_or_path)
    card = read_card(path)
    cls = ARCHITECTURES[card["architecture"]]
    try:
        G = cls(**card["config"])
        if card.get("encoder"):  # a VAE saved with its encoder (warm starts, further training)
            enc = dict(card["encoder"])
            enc["image_shape"] = tuple(enc["image_shape"])
            G.encoder = ENCODERS[card["architecture"]](**enc)
        empty = [name for name, p in G.named_parameters() if p.numel() == 0]
        if empty:
            raise ValueError(f"layers {empty} have no weights")
    except (
        TypeError,
        ValueError,
        KeyError,
        IndexError,
        AttributeError,
        OverflowError,
        RuntimeError,
        MemoryError,
    ) as exc:  # whatever a hand-edited card makes a constructor raise
        raise ValueError(
            f"the card in {path.name} does not describe a valid "
            f"{card['architecture']!r} network ({exc})."
        ) from exc
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(
            f"cannot read the weights in {path.name} ({exc}); the file may be truncated."
        ) from exc
    try:
        G.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ValueError(
            f"the weights in {path.name} do not match its card's "
            f"{card['architecture']!r} network: {first}"
        ) from exc
    G.card = {**G.card, **_beside(path), **card}
    G.eval()
    return G.to(device)


#: Fields the JSON card beside a prior file may add to the card inside it: what was settled
#: after the weights were written (the training data's licence and notice), without rewriting
#: the weights.
DOCUMENTATION_FIELDS = ("data_licence", "notice")


def _beside(path: Path) -> dict[str, Any]:
    """:data:`DOCUMENTATION_FIELDS` from ``path``'s JSON card beside it, if it has one."""
    try:
        extra = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(extra, dict):
        return {}
    return {k: str(extra[k]) for k in DOCUMENTATION_FIELDS if k in extra}
