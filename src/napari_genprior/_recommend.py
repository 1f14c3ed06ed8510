"""Which method a measurement calls for: README "Which method when" as a function.

Below the API (``reconstruct``'s default method is the recommended one) and free of torch at
import (the widgets load it at napari's start-up): a prior's architecture is looked up on use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Methods that search the latent space of a trained prior (they take restarts).
LATENT_METHODS = ("csgm", "ia", "twist", "sparse-gen")
#: Methods that take ``init="encoder"`` (the VAE encoder's code of the back-projection).
ENCODER_METHODS = ("csgm", "ia")
#: Without a prior: the method that does best on each kind of measurement in benchmarks/.
NO_PRIOR_METHOD = {
    # its weight and stop by SURE: 33.9 dB against dip's 32.1 (bench real-nuclei; BM3D 35.2)
    "denoise": "tv",
    # held-out pixels choose its weight: the demo sample 26.6 dB in 0.4 s against dip's 26.1 in
    # 33 s; on real nuclei tiles dip is 0.6 dB ahead (33.9 / 33.3) at 230x the time
    "inpaint": "tv",
    # FISTA's early iterate, its weight and stop on held-out pixels: on tiles cut from a blurred
    "blur": "tv",  # field 36.2 dB against dip's 34.3 and RL's 35.9 (bench real-nuclei), in 0.2 s
    "downsample": "dip",
    "cs": "lasso-dct",
    "mri": "tv",
    "phase": "twf",
}


#: Each iterative method's own maximum of steps (its solver's default; tests hold them equal):
#: what the widget's "max steps" shows when the method is chosen. Most stop earlier by a rule.
DEFAULT_STEPS = {
    "csgm": 1000,
    "ia": 1000,
    "score": 100,
    "twist": 1000,
    "sparse-gen": 1000,
    "dip": 2000,
    "cg": 200,
    "lasso-dct": 300,
    "lasso-wavelet": 300,
    "tv": 300,
    "richardson-lucy": 1000,
    "twf": 500,
    "sparta": 500,
    "copram": 500,
}


#: The share of its maximum time a method typically takes before its rule stops it (held-out
#: measurements, SURE, a plateau), by operator kind where it differs: what the widget's cost
#: estimate assumes (the maximum is said beside it). Mostly the share of its steps, from the
#: step counts of the recommended runs of benchmarks/estimate.py (tv: 0.10 denoising by SURE,
#: 0.40 deblurring, 0.72-0.73 MRI; Richardson-Lucy 0.17 on the stack sample); dip from the
#: demo (550 of 2000). tv inpainting runs all its steps, but its first 50 try 8 weights at once
#: and cost about 10x a later step; the probe times those, so its share is of the time: 0.25
#: (camera 512: 2.4 s against 10.3 s at the probe's pace).
TYPICAL_SHARE: dict[str, float | dict[str, float]] = {
    "tv": {"denoise": 0.1, "blur": 0.4, "mri": 0.75, "inpaint": 0.25},
    # its plateau rule: 6 single 64x64 tiles of real nuclei stopped at 0.33-1.0 of 1000 steps
    # (median 0.69); the recommended runs on the nuclei sample (4 restarts, a mosaic of 4) at
    # 0.79 (deblurring) and 1.0 (inpainting) of them (benchmarks/estimate.py)
    "csgm": 0.9,
    "richardson-lucy": 0.2,
    "dip": 0.3,
}


def typical_share(method: str, kind: str) -> float:
    """:data:`TYPICAL_SHARE` of ``method`` on an operator of ``kind`` (1 where none is known)."""
    share = TYPICAL_SHARE.get(method, 1.0)
    return float(share.get(kind, 1.0) if isinstance(share, dict) else share)


@dataclass(frozen=True)
class Advice:
    """Recommended settings (README "Which method when") and the reason, in words."""

    method: str
    restarts: int = 1
    init: str = "random"
    why: str = ""


#: The bundled score prior of fluorescence images, learned from noisy measurements alone, that
#: the advice for a blur without a prior names (bench self-supervised: 36.1 dB against tv's
#: 35.5 and Richardson-Lucy's 35.9 at its best count, held-out real nuclei, 100 photons).
FLUORESCENCE_SCORE = "nuclei-score"
#: Without a prior, a 3D stack under a 3D blur (README "3D deconvolution", bench deconv-3d).
VOLUME_BLUR_METHOD = "richardson-lucy"
#: Why a score prior does not take a 3D operator.
SCORE_VOLUME = (
    "a score prior reconstructs 2D images: deconvolve the stack plane by plane under a 2D PSF "
    "with it, or under the 3D PSF without a prior (Richardson-Lucy or tv)"
)


def recommend(kind: str, prior: Any = None, volume: bool = False) -> Advice:
    """The settings README "Which method when" recommends for a measurement of ``kind``.

    Parameters
    ----------
    kind : str
        The operator kind (``"denoise"``, ``"inpaint"``, ``"blur"``, ``"downsample"``, ``"cs"``,
        ``"mri"``, ``"phase"``).
    prior : optional
        The chosen prior: a loaded prior, a bundled prior's name or a prior file (its card is
        read, not its weights), or None for none. A prior without an encoder gets random
        starts.
    volume : bool
        Whether the operator acts on a 3D stack as one volume (3D deconvolution).

    Returns
    -------
    Advice
    """
    if isinstance(prior, str) or hasattr(prior, "__fspath__"):
        prior = _from_card(prior)
    if volume and kind == "blur":
        if prior is None:
            return Advice(
                VOLUME_BLUR_METHOD,
                1,
                "random",
                "a stack under a 3D PSF: Richardson-Lucy, stopped on held-out voxels (fast; "
                "tv deconvolves 2.4-4.1 dB better in bench deconv-3d, in 3.5-4x the time)",
            )
        if is_score_prior(prior):  # (reconstruct refuses it with SCORE_VOLUME's reason)
            return Advice("score", 1, "random", SCORE_VOLUME)
        return Advice(
            "csgm",
            1,
            "encoder" if getattr(prior, "encoder", None) is not None else "random",
            "a stack with a prior: csgm, one code per plane tile, "
            "one restart (each restart costs the whole volume)",
        )
    if prior is None:
        method = NO_PRIOR_METHOD.get(kind, "dip")
        why = {
            "dip": "no prior: Deep Image Prior, stopped on held-out measurements",
            "tv": (
                "no prior: total variation, its weight and stopping step by Stein's unbiased "
                "risk estimate (above dip on real nuclei, in milliseconds)"
                if kind == "denoise"
                else "no prior: total variation by FISTA, its weight and stopping step on "
                "held-out pixels (above dip and Richardson-Lucy on real nuclei, in milliseconds). "
                f"For fluorescence, the bundled prior {FLUORESCENCE_SCORE} with method score "
                "deconvolves held-out real nuclei 0.6 dB better, in seconds"
                if kind == "blur"
                else "no prior: total variation, its weight on held-out pixels (level with dip "
                "on the nuclei sample and real tiles, in a second instead of a minute)"
                if kind == "inpaint"
                else "no prior: total variation wins on MRI k-space"
            ),
            "lasso-dct": "no prior: L1 in the DCT for compressed sensing",
            "twf": "no prior: truncated Wirtinger flow for magnitude-only data",
        }[method]
        return Advice(method, 1, "random", why)
    if is_score_prior(prior):
        from .priors.score import learned_through, noise_floor  # (torch, on use)

        noisy = noise_floor(prior) is not None
        why = (
            "a score (diffusion) prior: method score, annealed denoising pulled back to "
            "the measurements (the best method on held-out real MRI slices)"
        )
        if noisy and learned_through(prior) is not None:
            why = (
                "a score prior learned from blurred noisy measurements through their blur: "
                "method score, which denoises a measurement under it (averaged over random "
                "splits) and deconvolves that same blur by FISTA-TV, its weight and stop "
                "scored on the other part of a split"
            )
        elif noisy:
            why = (
                "a score prior learned from noisy measurements: method score, which denoises "
                "with its denoiser (averaged over random splits of the measurement), mixed "
                "with tv's estimate and then Wiener-filtered under it, each by a weight fitted "
                "on a split, and deconvolves by annealed denoising pulled back to the "
                "measurements"
            )
        return Advice("score", 1, "random", why)
    encoder = getattr(prior, "encoder", None) is not None
    if kind == "phase":
        return Advice(
            "csgm",
            10,
            "random",
            "magnitude-only data: csgm on the amplitude loss, 10 random starts",
        )
    if kind == "mri":
        return Advice(
            "ia",
            1,
            "encoder" if encoder else "random",
            "MRI with a latent prior: ia (image-adaptive) is its best method; the score "
            "prior mri-score with method score does better (+3.3 dB over tv at 4x)",
        )
    init = "encoder" if encoder else "random"
    return Advice(
        "csgm", 4, init, f"with a prior: csgm, 4 restarts{', encoder start' if encoder else ''}"
    )


@dataclass(frozen=True)
class _CardPrior:
    """What :func:`recommend` needs of a prior (its architecture, whether it has an encoder),
    from its card alone."""

    architecture: str | None
    encoder: Any
    card: dict


def _from_card(name: Any) -> _CardPrior:
    from .priors.io import read_card

    card = read_card(name)
    return _CardPrior(card.get("architecture"), card.get("encoder"), card)


def is_score_prior(prior: Any) -> bool:
    """:func:`napari_genprior.priors.is_score_prior`, imported on use (it brings torch, which
    this module, loaded with the widgets, does not import at start-up)."""
    from .priors.score import is_score_prior as _is_score

    return _is_score(prior)
