"""Advice before a run: which settings to use, whether a prior suits the image, what a run costs,
and which settings are physically implausible.

Pure library code (no napari): the dock widgets show what these functions return, and the
console can call them too. Nothing here changes a setting by itself; callers show the advice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# the recommendations live below the API (``reconstruct``'s default method is the recommended
# one); re-exported here, where the widgets and the console look for them
from ._recommend import (  # noqa: F401
    ENCODER_METHODS,
    LATENT_METHODS,
    NO_PRIOR_METHOD,
    SCORE_VOLUME,
    VOLUME_BLUR_METHOD,
    Advice,
    is_score_prior,
    recommend,
)

# -- does the prior suit the image? --------------------------------------------------------------


@dataclass
class PriorFit:
    """How well a prior explains a measurement after a short search.

    Attributes
    ----------
    explained : float
        ``1 - ||A x - y||^2 / ||y - mean(y)||^2`` over the measured entries for the prior's best
        image ``x`` after a few steps (1: everything explained; 0 or less: no better than a flat
        image).
    tiles : int
        Patches of the prior in the image's mosaic (1: the prior's own size).
    warnings : list of str
        Sentences to show; empty when the prior looks suitable.
    """

    explained: float
    tiles: int
    warnings: list[str] = field(default_factory=list)


#: Below this fraction of the measurement explained after the short search, a prior is
#: flagged. Measured with 30 steps on the bundled samples (tests/test_advice.py checks both ends):
#: nuclei-vae on the nuclei sample 0.75 (inpainting), 0.98 (deblurring), 0.998 (denoising);
#: digits-vae on noisy held-out digits (std 0.2) 0.81-0.94; mri-vae on 4x MRI k-space 0.99;
#: digits-vae and digits-conv on the nuclei below 0.
FIT_WARN = 0.6
#: More patches than this in the mosaic is flagged too: k-space is dominated by its centre, so
#: on MRI even digits explain 0.76-0.85 of it, but a prior trained on whole 28x28 images tiled
#: 100 times over a brain does not suit it (the bundled 64x64 priors tile 256x256 in 16).
MAX_TILES = 16


#: Kinds whose measurement is a whole (noisy) picture: their noise level is estimated from it
#: (scikit-image's wavelet estimate) and taken out of both the misfit and the total, so a noisy
#: measurement does not make a suitable prior look unsuitable.
PICTURE_KINDS = ("denoise", "blur", "downsample")


#: The kinds of image a prior can be trained on, by the words of its card's ``data`` that name
#: them (a card may also say its ``modality`` outright); the first match counts.
MODALITY_WORDS = {
    "mri": ("MRI",),
    "fluorescence": ("fluorescence", "nuclei"),
    "digits": ("MNIST", "digits"),
}
#: What a measurement's operator says about the image behind it, where it says anything:
#: k-space comes from an MRI scanner, a blur by a point spread function from a microscope's
#: optics. Denoising, inpainting, downsampling, compressed sensing and phase retrieval can be of
#: any image; there only the fit can tell.
MEASURED_KIND = {"mri": "mri", "blur": "fluorescence"}
#: Which image kinds cannot be behind which measurement: a microscope's PSF does not blur MRI,
#: and k-space holds nothing but MRI.
EXCLUDED = {"mri": ("fluorescence", "digits"), "blur": ("mri",)}
#: In words, for the messages.
KIND_NAMES = {
    "mri": "brain MRI images",
    "fluorescence": "fluorescence nuclei",
    "digits": "handwritten digits",
    "microscopy": "microscope images",
}
KIND_WORDS = {
    "mri": "MRI k-space",
    "blur": "an optical blur (a microscope's point spread function)",
}
#: A layer's own record of its image (``metadata["genprior"]["modality"]``, which the sample data
#: and measurement layers carry) or its length units say what operators cannot (inpainting,
#: denoising): pixels measured in micrometres or nanometres come from a microscope. Each kind
#: rules out the priors trained on the others; ``"microscopy"`` those trained on MRI and digits.
MICROSCOPE_UNITS = ("nanometer", "nm", "micrometer", "micron", "um", "\u00b5m")
RECORDED_EXCLUDES = {
    "microscopy": ("mri", "digits"),
    **{k: tuple(o for o in MODALITY_WORDS if o != k) for k in MODALITY_WORDS},
}


def prior_modality(prior: Any) -> str | None:
    """The kind of image ``prior`` was trained on (a key of :data:`MODALITY_WORDS`), from its
    card; None when the card does not say (a prior trained on a user's layers)."""
    return card_modality(getattr(prior, "card", {}) or {})


def card_modality(card: dict[str, Any]) -> str | None:
    """:func:`prior_modality` from a prior's card alone (no weights loaded)."""
    if card.get("modality"):
        return str(card["modality"])
    data = str(card.get("data", "")).lower()
    for kind, words in MODALITY_WORDS.items():
        if any(word.lower() in data for word in words):
            return kind
    return None


def modality_mismatch(prior: Any, A: Any) -> str | None:
    """A sentence when ``prior`` was trained on a kind of image that cannot be behind a
    measurement of ``A``'s kind (:data:`EXCLUDED`), else None."""
    return _ruled_out(
        prior,
        EXCLUDED.get(A.kind, ()),
        f"this measurement is {KIND_WORDS.get(A.kind)}, which is not how {{what}} are imaged",
    )


def _ruled_out(prior: Any, excluded: tuple[str, ...], because: str) -> str | None:
    """The sentence of :func:`modality_mismatch` and :func:`recorded_mismatch`: ``because``
    says why (``{what}`` stands for the kind the prior was trained on)."""
    kind = prior_modality(prior)
    if kind is None or kind not in excluded:
        return None
    name = prior.card.get("name", "this prior")
    what = KIND_NAMES.get(kind, kind)
    return (
        f"{name} was trained on {what}, but {because.format(what=what)}: its result would "
        f"look like {what}, not like your sample."
    )


def layer_image_kind(metadata: Any, units: Any = ()) -> str | None:
    """What a layer records about the kind of its image: the ``modality`` of its
    ``metadata["genprior"]`` (a key of :data:`MODALITY_WORDS`), else ``"microscopy"`` when its
    last two axes are in micrometres or nanometres (napari ``layer.units``), else None."""
    info = (metadata or {}).get("genprior", {}) if isinstance(metadata, dict) else {}
    kind = info.get("modality") if isinstance(info, dict) else None
    if kind in RECORDED_EXCLUDES:
        return str(kind)
    plane = [str(u).lower() for u in tuple(units or ())[-2:]]
    if len(plane) == 2 and all(u in MICROSCOPE_UNITS for u in plane):
        return "microscopy"
    return None


def recorded_mismatch(prior: Any, image_kind: str | None) -> str | None:
    """A sentence when ``prior`` was trained on a kind of image that the layer's own record
    (:func:`layer_image_kind`) rules out, else None."""
    excluded = RECORDED_EXCLUDES.get(image_kind or "", ())
    return _ruled_out(prior, excluded, f"this layer records {KIND_NAMES.get(image_kind or '')}")


def _explained(y: np.ndarray, A: Any, x: np.ndarray) -> float:
    r = np.asarray(A.measure(x), dtype=np.complex128 if np.iscomplexobj(y) else np.float64)
    yy = np.asarray(y, dtype=r.dtype)
    noise = 0.0
    if A.kind in PICTURE_KINDS and yy.ndim == 2 and min(yy.shape) >= 8:
        from skimage.restoration import estimate_sigma

        noise = float(estimate_sigma(yy.real)) ** 2 * yy.size
    obs = A.observed()
    if obs is not None:
        obs = np.broadcast_to(np.asarray(obs, bool), yy.shape)
        r, yy = r[obs], yy[obs]
    total = float(np.sum(np.abs(yy - yy.mean()) ** 2))
    misfit = float(np.sum(np.abs(r - yy) ** 2))
    return 1.0 - max(misfit - noise, 0.0) / max(total - noise, 1e-12 * total, 1e-30)


#: A stack is checked on this many planes from its middle: a prior's code per plane tile makes
#: a step cost the whole volume's (24 planes of 96x96: 230 s for the 30 steps; 4 planes: 1/6).
CHECK_PLANES = 4


def _slab(y: np.ndarray, A: Any) -> tuple[np.ndarray, Any]:
    """The middle :data:`CHECK_PLANES` planes of a blurred stack and their operator (exact
    where the border is unknown, as light from the planes outside is); else as they are."""
    if A.kind != "blur" or len(A.shape) != 3 or A.shape[0] <= CHECK_PLANES or y.ndim != 3:
        return y, A
    from . import api

    z0 = (A.shape[0] - CHECK_PLANES) // 2
    spec = {**A.spec(), "shape": [CHECK_PLANES, *A.shape[1:]]}
    try:
        part = api.from_spec(spec)
    except (ValueError, TypeError):  # an operator that cannot be cut: the whole stack
        return y, A
    return np.ascontiguousarray(y[z0 : z0 + CHECK_PLANES]), part


def _short_fit(y: np.ndarray, A: Any, prior: Any, steps: int, device: Any, seed: int) -> float:
    from . import api

    init = "encoder" if getattr(prior, "encoder", None) is not None and A.linear else None
    extra = {"init": init} if init else {}
    method = "csgm"
    if is_score_prior(prior):  # denoising steps pulled back to the data: a few suffice
        method, steps, extra = "score", min(steps, 10), {}
    rec = api.reconstruct(
        y, A, method=method, prior=prior, steps=steps, device=device, seed=seed, **extra
    )
    return _explained(y, A, rec.image)


def check_prior_fit(
    y: Any,
    A: Any,
    prior: Any,
    *,
    steps: int = 30,
    device: Any = "cpu",
    seed: int = 0,
    suggest: bool = True,
    image_kind: str | None = None,
) -> PriorFit:
    """A quick check (a few ``csgm`` steps from the encoder's start) of whether ``prior`` can
    represent the image behind ``y``, before a long run.

    Parameters
    ----------
    y : ndarray
        One measurement (one plane), of shape ``A.measurement_shape``.
    A : Operator
        Its operator.
    prior : str or prior
        A bundled prior's name, a path or a loaded prior.
    steps : int
        Steps of the short search.
    device, seed
        As for :func:`napari_genprior.reconstruct`.
    suggest : bool
        When the prior does not suit the image, also try the other bundled priors of a size
        that fits and name the best one in the warning.
    image_kind : str, optional
        What the layer records of its image (:func:`layer_image_kind`): priors trained on
        another kind stop at once. Where neither it nor the operator says, only the fit can
        tell, and a larger prior trained on other images can fit as well (an MRI autoencoder
        inpaints nuclei within 0.2 dB of the nuclei one).

    Returns
    -------
    PriorFit
    """
    from . import api

    G = (
        api.load_prior(prior)
        if isinstance(prior, (str,)) or hasattr(prior, "__fspath__")
        else prior
    )
    y = np.asarray(y)
    ph, pw = G.image_shape[-2:]
    h, w = A.shape[-2:]
    whole = (h, w) == (ph, pw) or is_score_prior(G)  # a score prior denoises any size whole
    tiles = 1 if whole else int(np.ceil(h / ph) * np.ceil(w / pw))
    name = G.card.get("name", "this prior")
    if not whole and (ph > h or pw > w):
        return PriorFit(
            float("nan"),
            0,
            [
                f"{name} makes {ph}x{pw} patches, larger than this {h}x{w} image: it cannot "
                "be used here. Use a prior of the image's size or smaller, or dip or tv."
            ],
        )
    wrong_kind = modality_mismatch(G, A)
    wanted = MEASURED_KIND.get(A.kind)
    if not wrong_kind:
        wrong_kind = recorded_mismatch(G, image_kind)
        wanted = "fluorescence" if image_kind == "microscopy" else image_kind
    if wrong_kind:
        from .priors.io import read_card

        right = [
            other
            for other in api.list_priors()
            if other != name and card_modality(read_card(other)) == wanted
        ]
        return PriorFit(
            float("nan"),
            tiles,
            [
                wrong_kind
                + (f" Priors trained on such images: {', '.join(right)}." if right else "")
            ],
        )
    if is_score_prior(G) and len(A.shape) != 2:
        return PriorFit(float("nan"), tiles, [SCORE_VOLUME])
    y, A = _slab(y, A)
    explained = _short_fit(y, A, G, steps, device, seed)
    fit = PriorFit(explained, tiles)
    if explained >= FIT_WARN and tiles <= MAX_TILES:
        return fit
    data = str(G.card.get("data", "its training images")).split(";")[0]
    what = f"{name} makes {ph}x{pw} patches of {data}"
    size = f"; this {h}x{w} image needs a mosaic of {tiles} of them" if tiles > 1 else ""
    msg = (
        f"{what}{size}. After {steps} steps it explains {max(explained, 0):.0%} of the "
        f"measurement (a suitable prior explains over {FIT_WARN:.0%}), so the result will "
        "look like its training images, not like this one."
    )
    if suggest:
        fits = []  # every other bundled prior that suits: the check cannot tell which of two
        for other in api.list_priors():  # equally good fits was trained on this kind of image
            if other == name:
                continue
            Go = api.load_prior(other)
            if is_score_prior(Go) != is_score_prior(G):  # another method's kind of prior
                continue
            gh, gw = Go.image_shape[-2:]
            if gh > h or gw > w or np.ceil(h / gh) * np.ceil(w / gw) > MAX_TILES:
                continue
            score = _short_fit(y, A, Go, steps, device, seed)
            if score >= FIT_WARN:
                fits.append((score, other))
        fits.sort(reverse=True)
        msg += (
            " Priors that fit: "
            + ", ".join(f"{o} (explains {sc:.0%})" for sc, o in fits)
            + "; or use dip or tv (no prior)"
            if fits
            else " Use dip or tv (no prior), or train a prior on images like this one (Train prior)"
        ) + "."
    fit.warnings.append(msg)
    return fit


# -- what a run costs ----------------------------------------------------------------------------


def output_ratio(A: Any, measurement_shape: tuple[int, ...] | None = None) -> float:
    """How many times more pixels the result has than the measurement layer shows."""
    shown = measurement_shape or A.measurement_shape
    return float(np.prod(A.shape)) / max(float(np.prod(shown)), 1.0)


def remaining_seconds(elapsed: float, done: int, total: int) -> float | None:
    """Time left at the pace so far (None before the first step)."""
    if done <= 0 or elapsed <= 0:
        return None
    return elapsed / done * max(total - done, 0)


# -- implausible settings ------------------------------------------------------------------------


def check_simulation(
    x: np.ndarray,
    kind: str,
    params: dict[str, Any],
    *,
    noise_std: float = 0.0,
    photons: float | None = None,
) -> list[str]:
    """Warnings (sentences) for physically implausible simulation settings; none raise.

    Parameters
    ----------
    x : ndarray
        The clean image.
    kind : str
        The operator kind.
    params : dict
        Its ``make_operator`` keywords.
    noise_std, photons
        The noise settings.
    """
    out: list[str] = []
    x = np.asarray(x, dtype=np.float64)
    finite = x[np.isfinite(x)]
    span = float(np.percentile(finite, 99.8) - np.percentile(finite, 0.2)) if finite.size else 0.0
    peak = float(np.abs(finite).max()) if finite.size else 0.0
    ref = span if span > 0 else peak
    if noise_std and ref > 0 and noise_std > 2 * ref:
        out.append(
            f"noise std {noise_std:g} is {noise_std / ref:.3g}x the image's intensity "
            f"range ({ref:.3g}): the measurement will be noise only."
        )
    if photons is not None and 0 < photons < 1:
        out.append(
            f"photons {photons:g}: under one photon at the brightest pixel, the "
            "measurement is almost all zeros."
        )
    size = min(x.shape[-2:])
    sigma = params.get("sigma")
    if kind == "blur" and sigma is not None and sigma > size / 8:
        out.append(
            f"blur sigma {sigma:g} px on a {size}-pixel image: the blur spans most of "
            "the image, so little of it can be recovered."
        )
    factor = params.get("factor")
    if kind == "downsample" and factor is not None and factor > size / 8:
        out.append(
            f"factor {factor} leaves {size // factor} pixels per side: too few to "
            "recover the image from."
        )
    if kind == "mri":
        acc = float(params.get("acceleration", 1))
        cf = float(params.get("center_fraction", 0.08))
        if cf <= 0:
            out.append(
                "center fraction 0: no k-space centre is measured, so the image's "
                "contrast is lost; fastMRI keeps 4-8% at the centre."
            )
        if acc > 16:
            out.append(
                f"acceleration {acc:g}x keeps {100 / acc:.1f}% of k-space: beyond what "
                "any method here recovers (8x is already hard)."
            )
    return out
