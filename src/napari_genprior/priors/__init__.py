"""Generators G (latent or noise input -> image). Issue 2 ships the untrained Deep Image Prior;
trained VAE/DCGAN priors, random expansive ReLU nets and model files come with later issues."""

from .dip import DIPNet, dip_depth

__all__ = ["DIPNet", "dip_depth"]
