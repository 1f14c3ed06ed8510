"""Generators G (latent or noise input -> image): VAE decoders, DCGAN, random expansive ReLU nets,
the Deep Image Prior network; prior files (safetensors + JSON card) and the bundled priors."""

from .dip import DIPNet, dip_depth
from .generators import (
    ARCHITECTURES,
    ENCODERS,
    ConvDecoder,
    ConvEncoder,
    DCGANGenerator,
    FCDecoder,
    FCEncoder,
    Generator,
    RandomReLU,
)
from .io import list_priors, load_prior, read_card, save_prior
from .score import ScoreUNet, is_score_prior


def random_prior(
    latent_dim: int = 10,
    widths: tuple[int, ...] = (250, 600),
    seed: int = 0,
    image_shape: tuple[int, ...] | None = None,
) -> RandomReLU:
    """An expansive ReLU network with i.i.d. N(0, 1/n_i) weights and no biases (Hand-Voroninski).

    Parameters
    ----------
    latent_dim : int
        k, the latent dimension.
    widths : tuple of int
        Layer widths n_1, ..., n_d; the last is the number of pixels.
    seed : int
        Seed of the weights.
    image_shape : tuple of int, optional
        Shape of the output (default ``(1, widths[-1])``).
    """
    if int(latent_dim) < 1 or not widths or any(int(w) < 1 for w in widths):
        raise ValueError(f"latent_dim and widths must be positive, got {latent_dim!r}, {widths!r}.")
    return RandomReLU(
        latent_dim=latent_dim, widths=tuple(widths), image_shape=image_shape, seed=seed
    )


__all__ = [
    "ARCHITECTURES",
    "ENCODERS",
    "ConvDecoder",
    "ConvEncoder",
    "DCGANGenerator",
    "DIPNet",
    "FCDecoder",
    "FCEncoder",
    "Generator",
    "RandomReLU",
    "ScoreUNet",
    "dip_depth",
    "is_score_prior",
    "list_priors",
    "load_prior",
    "random_prior",
    "read_card",
    "save_prior",
]
