"""The priors in the public API: listing, loading, a random prior, training; and the check that
turns what a caller passes as ``prior=`` into a generator (a mosaic of its patches when the image
is larger)."""

from __future__ import annotations

from typing import Any

from ..devices import resolve_device
from ..operators import Operator


def _check_prior(prior: Any, A: Operator, method: str, **tiling: Any):
    """The generator for a prior method (loaded when given by name or path), and its record.

    A 2D patch prior smaller than the image becomes a :class:`~napari_genprior.tiling.Mosaic`
    of its patches (``tiling``: its ``overlap`` and ``max_batch``)."""
    from ..priors import Generator as PriorModule
    from ..priors import ScoreUNet, load_prior

    if prior is None:
        raise ValueError(
            f"method {method!r} needs a prior: a bundled name ({list_priors()}), "
            "a prior file, ngp.random_prior(...) or a trained prior."
        )
    source = None
    if isinstance(prior, (str, bytes)) or hasattr(prior, "__fspath__"):
        source = str(prior)
        prior = load_prior(prior)
    if not isinstance(prior, (PriorModule, ScoreUNet)):
        raise TypeError(
            f"prior must be a generator (from load_prior, random_prior or "
            f"train_prior) or its name/path, got {type(prior).__name__}."
        )
    if isinstance(prior, ScoreUNet) != (method == "score"):
        name = source or prior.card.get("name") or prior.card.get("architecture")
        raise ValueError(
            f"the prior {name!r} is a score (diffusion) prior, which only method 'score' uses"
            if method != "score"
            else f"method 'score' needs a score prior (for example 'mri-score'); {name!r} is a "
            "latent generator, which 'csgm', 'ia' and the other latent methods use."
        )
    patch, shape = tuple(prior.image_shape), tuple(A.domain_shape)
    mosaic = None
    if isinstance(prior, ScoreUNet):  # fully convolutional: any image size whole, no mosaic
        if tiling:
            raise TypeError(f"a score prior denoises whole images; it takes no {sorted(tiling)}.")
        _check_learned_through(prior, A, source)
    elif patch != shape:
        if (
            len(patch) == 2
            and len(shape) in (2, 3)
            and all(s >= p for s, p in zip(shape[-2:], patch))
        ):
            from ..tiling import Mosaic

            prior = mosaic = Mosaic(prior, shape, **tiling)
        else:
            raise ValueError(
                f"the prior makes images of shape {patch}, but the {A.kind!r} "
                f"operator is for images of shape {shape}; a prior's patches tile "
                "larger 2D images and the planes of 3D stacks, but not smaller "
                "or other-dimensional ones."
            )
    elif tiling:
        raise TypeError(
            f"{sorted(tiling)} apply to images larger than the prior's patch "
            f"{patch}; this image is the patch size."
        )
    info = {
        "architecture": prior.card.get("architecture"),
        "latent_dim": prior.latent_dim,
        "image_shape": list(patch),
        "data": prior.card.get("data"),
        "source": source or prior.card.get("name"),
    }
    if mosaic is not None:
        info["mosaic"] = mosaic.card["mosaic"]
    return prior, info


def list_priors() -> list[str]:
    """Names of the bundled priors (``load_prior(name)``).

    Examples
    --------
    >>> import napari_genprior as ngp
    >>> ngp.list_priors()
    ['digits-conv', 'digits-vae', 'mri-score', 'mri-vae', 'nuclei-score', 'nuclei-vae']
    """
    from ..priors import list_priors as _list

    return _list()


def load_prior(name_or_path: Any, device: Any = "cpu"):
    """Load a bundled prior by name or a prior file (safetensors + card) by path.

    Parameters
    ----------
    name_or_path : str or path
        A name of :func:`list_priors` or the path of a ``.safetensors`` prior file (written by
        ``G.save`` or :func:`train_prior`'s checkpoint). Nothing is unpickled: the card names one
        of this package's architectures and the tensors are loaded into it strictly.
    device : str
        Where to put it: ``"auto"``, ``"cpu"``, ``"cuda:N"``, ``"mps"``.

    Returns
    -------
    Generator
        A ``torch.nn.Module`` mapping ``(B, latent_dim)`` latents to ``(B, *image_shape)``
        images, with ``latent_dim``, ``image_shape`` and ``card`` (what it was trained on, how
        images are normalised for it).

    Raises
    ------
    ValueError
        An unknown name, or a file that is not a prior (a sentence says which).

    Examples
    --------
    >>> import napari_genprior as ngp
    >>> G = ngp.load_prior("digits-vae")
    >>> G.latent_dim, G.image_shape
    (20, (28, 28))
    >>> G.card["data"]  # doctest: +ELLIPSIS
    'MNIST training set ...'
    >>> ngp.load_prior("no-such-prior")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: ...
    """
    from ..priors import load_prior as _load

    return _load(name_or_path, device=resolve_device(device))


def random_prior(
    latent_dim: int = 10,
    widths: tuple[int, ...] = (250, 600),
    seed: int = 0,
    image_shape: tuple[int, ...] | None = None,
):
    """An expansive Gaussian ReLU network with no biases (Hand-Voroninski); see
    :func:`napari_genprior.priors.random_prior`.

    Examples
    --------
    >>> import torch
    >>> import napari_genprior as ngp
    >>> R = ngp.random_prior(latent_dim=10, widths=(250, 600), seed=0)
    >>> R.latent_dim, R.image_shape
    (10, (1, 600))
    >>> R(torch.zeros(2, 10)).shape
    torch.Size([2, 1, 600])
    """
    from ..priors import random_prior as _random

    return _random(latent_dim=latent_dim, widths=widths, seed=seed, image_shape=image_shape)


def train_prior(
    images: Any,
    kind: str = "vae",
    latent_dim: int = 20,
    epochs: int = 50,
    *,
    device: Any = "auto",
    seed: int = 0,
    callback: Any = None,
    **options: Any,
):
    """Train a generative prior on images; see :func:`napari_genprior.training.train_prior`
    for every option.

    Examples
    --------
    A small VAE on sixteen 16x16 images for two epochs, saved and loaded back:

    >>> import os, tempfile
    >>> import numpy as np
    >>> import napari_genprior as ngp
    >>> images = np.random.default_rng(0).random((16, 16, 16))
    >>> G = ngp.train_prior(images, kind="vae", latent_dim=4, epochs=2, device="cpu")
    >>> type(G).__name__, G.latent_dim, G.image_shape
    ('FCDecoder', 4, (16, 16))
    >>> G.card["training"]["epochs"], G.card["training"]["cancelled"]
    (2, False)
    >>> path = os.path.join(tempfile.mkdtemp(), "my-prior.safetensors")
    >>> G.save(path)
    >>> ngp.load_prior(path).card["architecture"]
    'fc-decoder'
    """
    from ..training import train_prior as _train

    return _train(
        images,
        kind=kind,
        latent_dim=latent_dim,
        epochs=epochs,
        device=device,
        seed=seed,
        callback=callback,
        **options,
    )


def iter_train(
    images: Any,
    kind: str = "vae",
    latent_dim: int = 20,
    epochs: int = 50,
    *,
    device: Any = "auto",
    seed: int = 0,
    **options: Any,
):
    """Train step by step: a generator of ``TrainUpdate`` (epoch, losses, samples) that returns
    the generator; send False to stop early. See :func:`napari_genprior.training.iter_train`.

    Examples
    --------
    Stop after the first of three epochs; the prior trained so far comes back:

    >>> import numpy as np
    >>> import napari_genprior as ngp
    >>> images = np.random.default_rng(0).random((16, 16, 16))
    >>> run = ngp.iter_train(images, latent_dim=4, epochs=3, device="cpu")
    >>> update = next(run)
    >>> update.epoch, update.total, sorted(update.losses)
    (1, 3, ['kl', 'loss', 'reconstruction'])
    >>> try:
    ...     run.send(False)
    ... except StopIteration as stop:
    ...     G = stop.value
    >>> G.card["training"]["epochs"], G.card["training"]["cancelled"]
    (1, True)
    """
    from ..training import iter_train as _iter

    return _iter(
        images, kind=kind, latent_dim=latent_dim, epochs=epochs, device=device, seed=seed, **options
    )


def _check_learned_through(prior: Any, A: Operator, source: str | None) -> None:
    """A score prior that learned its measurements through a blur knows blurred images: it
    denoises them (``denoise``) or deconvolves that same blur (2D), nothing else."""
    from ..priors.score import learned_through, same_blur

    through = learned_through(prior)
    if through is None or A.kind == "denoise":
        return
    name = source or prior.card.get("name") or "this prior"
    if A.kind != "blur" or len(A.shape) != 2 or not same_blur(through, A.spec()):
        given = f"a {A.kind!r} operator"
        if A.kind == "blur":
            given = f"a blur of shape {tuple(A.shape)} with {_psf_words(A.spec())}"
        raise ValueError(
            f"{name!r} learned images as recorded through a 2D blur with {_psf_words(through)}: "
            f"method 'score' uses it to denoise such images ('denoise') or to deconvolve that "
            f"same blur, not {given}. Train a prior through this blur, or use 'tv'."
        )


def _psf_words(spec: dict[str, Any]) -> str:
    """The PSF of a blur's spec, in words."""
    if "sigma" in spec:
        return f"sigma {list(spec['sigma'])}"
    if "optics" in spec:
        return f"the optics {spec['optics']}"
    return "a given PSF array"
