"""Reconstruction in the public API: checking the arguments, running a method step by step or
to the end, and reading a measurement back from a napari layer's data and metadata."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Generator
from typing import Any

import numpy as np

from .._drive import drive
from ..devices import resolve_device
from ..operators import Operator
from ..operators.base import is_numeric
from ..solvers import METHODS, Reconstruction, Update
from ..solvers.camera import estimate_camera, noise_precision
from ..solvers.run import run_method
from ._priors import _check_prior

Callback = Callable[[int, float, "np.ndarray | None"], "bool | None"]


def list_methods() -> list[str]:
    """Names of the reconstruction methods ``reconstruct`` accepts.

    Examples
    --------
    >>> import napari_genprior as ngp
    >>> ngp.list_methods()[:5]
    ['csgm', 'ia', 'score', 'twist', 'sparse-gen']
    >>> {"tv", "lasso-wavelet", "richardson-lucy", "cg"} <= set(ngp.list_methods())
    True
    """
    return list(METHODS)


@functools.cache
def _parameters(solver: Callable[..., Any]) -> frozenset[str]:
    """The names a solver takes (``inspect.signature`` costs as much as a small TV solve)."""
    return frozenset(inspect.signature(solver).parameters)


def _check_measurement(y: Any, A: Operator) -> np.ndarray:
    if not isinstance(A, Operator):
        raise TypeError(f"A must be an operator from make_operator(), got {type(A).__name__}.")
    if hasattr(y, "__array__") and not isinstance(y, np.ndarray):
        y = np.asarray(y)  # dask arrays, napari layer data, lists
    if not isinstance(y, np.ndarray):
        raise TypeError(f"y must be a numpy array (the measurement), got {type(y).__name__}.")
    if not is_numeric(y):
        raise TypeError(f"y must be numeric, got dtype {y.dtype}.")
    if y.size == 0:
        raise ValueError("y is empty: there is nothing to reconstruct.")
    if np.iscomplexobj(y) and not A.complex_measurements:
        raise TypeError(f"y is complex, but the {A.kind!r} operator measures real values.")
    if y.shape != A.measurement_shape:
        raise ValueError(
            f"y has shape {y.shape}, but the {A.kind!r} operator expects "
            f"measurements of shape {A.measurement_shape} (images of shape {A.shape})."
        )
    if not np.all(np.isfinite(y)):
        bad = int(np.size(y) - np.count_nonzero(np.isfinite(y)))
        raise ValueError(
            f"y contains {bad} NaN or infinite value(s); mask them out (e.g. with an "
            "'inpaint' operator) or replace them before reconstructing."
        )
    return y


def _recommended(A: Operator, prior: Any, options: dict[str, Any]) -> tuple[str, Any, dict]:
    """The method README "Which method when" recommends for ``A`` (and ``prior``), the prior
    loaded (a name or a path says nothing of its kind), and ``init="encoder"`` where it is
    recommended and not given."""
    from .._recommend import recommend
    from ._priors import load_prior

    if prior is not None and not hasattr(prior, "card"):
        prior = load_prior(prior)
    advice = recommend(A.kind, prior, volume=A.kind == "blur" and len(A.shape) == 3)
    if advice.init == "encoder" and "init" not in options:
        options = {**options, "init": "encoder"}
    return advice.method, prior, options


def iter_reconstruct(
    y: Any,
    A: Operator,
    method: str | None = None,
    prior: Any = None,
    *,
    restarts: int = 1,
    steps: int | None = None,
    device: Any = "auto",
    seed: int = 0,
    preview_every: int = 10,
    camera: Any = "auto",
    **options: Any,
) -> Generator[Update, bool | None, Reconstruction]:
    """Reconstruct step by step: a generator of :class:`Update` that returns the result.

    Same arguments as :func:`reconstruct`. Send ``False`` into the generator to stop early; it
    then returns the best result so far with ``cancelled=True``. Arguments are checked (and
    errors raised) when the generator is created, before any work starts.

    Examples
    --------
    Run total variation on a blurred square, watch the updates, and stop after step 5; the
    generator then returns the best result so far:

    >>> import numpy as np
    >>> import napari_genprior as ngp
    >>> x = np.zeros((32, 32)); x[8:24, 8:24] = 1.0
    >>> A = ngp.make_operator("blur", shape=x.shape, sigma=1.5)
    >>> run = ngp.iter_reconstruct(A.measure(x, noise_std=0.01, seed=0), A, method="tv",
    ...                            device="cpu", preview_every=5)
    >>> steps, reply = [], None
    >>> try:
    ...     while True:
    ...         update = run.send(reply)
    ...         steps.append((update.step, update.image is not None))
    ...         reply = False if update.step == 5 else None
    ... except StopIteration as stop:
    ...     rec = stop.value
    >>> steps
    [(1, False), (2, False), (3, False), (4, False), (5, True)]
    >>> rec.cancelled, rec.image.shape
    (True, (32, 32))
    """
    y = _check_measurement(y, A)
    if method is None:
        method, prior, options = _recommended(A, prior, options)
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {list_methods()}.")
    m = METHODS[method]
    cam = _camera(y, A, camera)
    if cam is not None:
        y = ((y - cam["offset"]) / cam["gain"]).astype(np.float32)
        # the methods that model the read noise of photoelectrons (score: only when they are)
        reads = m.name == "richardson-lucy" or (m.name == "score" and cam["poisson"])
        if reads and "read_variance" not in options:
            options["read_variance"] = cam["read_noise"] ** 2
    if m.phase_only and A.kind != "phase":
        raise ValueError(
            f"method {method!r} is for magnitude-only measurements (operator "
            f"'phase'), but A is {A.kind!r}."
        )
    if m.needs_linear and not A.linear:
        raise ValueError(f"method {method!r} needs a linear operator; {A.kind!r} is not linear.")
    if prior is not None and not m.needs_prior:
        raise ValueError(f"method {method!r} uses no trained prior; leave prior=None.")
    phase = None
    if A.complex_images and not m.complex_images:
        if m.name == "richardson-lucy":
            raise ValueError(
                f"method {method!r} needs non-negative intensities, but {A.kind!r} "
                "with coils has complex images; use 'cg', 'tv', 'lasso-wavelet' or "
                "a prior method."
            )
        from ..operators.mri import FixedPhase, low_resolution_phase

        phase = low_resolution_phase(y, A)
        if getattr(A, "maps", None) is not None:
            # no coil sees outside the maps' support (ESPIRiT zeroes them where there is no
            # signal): the data leave the image free there, and SENSE sets it to 0
            support = (np.abs(A.maps) ** 2).sum(0) > 0
        else:
            support = np.ones(A.shape, dtype=bool)
        phase = (phase, support)
        A = FixedPhase(A, phase[0])
    prior_info = None
    tiling = {k: options.pop(k) for k in ("overlap", "max_batch") if k in options}
    if m.needs_prior:
        prior, prior_info = _check_prior(prior, A, method, **tiling)
    elif tiling:
        raise TypeError(f"method {method!r} uses no prior, so it takes no {sorted(tiling)}.")
    if isinstance(restarts, bool) or not isinstance(restarts, (int, np.integer)) or restarts < 1:
        raise ValueError(f"restarts must be a positive integer, got {restarts!r}.")
    if restarts != 1 and not m.takes_restarts:
        raise ValueError(f"method {method!r} runs a single start; use restarts=1.")
    if restarts > 10_000:
        raise ValueError(f"restarts={restarts} is more than anyone needs; use at most 10000.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer, got {seed!r}.")
    if (
        isinstance(preview_every, bool)
        or not isinstance(preview_every, (int, np.integer))
        or preview_every < 1
    ):
        raise ValueError(f"preview_every must be a positive integer, got {preview_every!r}.")
    accepted = _parameters(m.solver)
    if steps is not None:
        if not m.iterative:
            steps = None  # a direct method: nothing to count
        elif isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}.")
        else:
            options["steps"] = int(steps)
    if "preview_every" in accepted:
        options["preview_every"] = int(preview_every)
    unknown = sorted(set(options) - (set(accepted) - {"problem"}))
    if unknown:
        allowed = sorted(set(accepted) - {"problem"})
        raise TypeError(f"method {method!r} does not take option(s) {unknown}; it takes {allowed}.")
    dev = resolve_device(device)
    weigh = cam is not None and cam["poisson"] and m.name in WEIGHTED and A.kind == "blur"
    precision = noise_precision(y, cam) if weigh else None
    run = run_method(y, A, m, dev, int(seed), options, prior, int(restarts), prior_info, precision)
    if cam is not None:
        run = _in_layer_units(run, cam)
    return run if phase is None else _with_phase(run, phase)


#: ``camera="auto"`` fits a camera to images of at least this many pixels (fewer: no camera;
#: on a 16x16 image with Gaussian noise the fit read a spurious gain).
AUTO_CAMERA_PIXELS = 64 * 64
#: Operators whose measurements are light intensities a camera records (the camera model
#: applies): with ``camera="auto"``, a blur's is estimated from its noise.
CAMERA_KINDS = ("blur", "denoise", "inpaint", "downsample")


#: Methods whose least-squares fit weighs each entry by its inverse noise variance when the
#: camera is modelled (Richardson-Lucy's Poisson likelihood does so by itself).
WEIGHTED = ("tv", "lasso-dct", "lasso-wavelet", "csgm", "twist", "sparse-gen", "ia")


def _camera(y: np.ndarray, A: Operator, camera: Any) -> dict[str, Any] | None:
    """The camera behind ``y`` (:mod:`napari_genprior.solvers.camera`), or None where there is
    none to model: ``camera=None``, or ``"auto"`` for an operator other than ``blur``."""
    auto = isinstance(camera, str) and camera == "auto"
    if camera is None or (auto and (A.kind != "blur" or y.size < AUTO_CAMERA_PIXELS)):
        return None  # (too few pixels to tell photon counts from Gaussian noise)
    if isinstance(camera, str) and not auto:
        raise ValueError(f"camera must be 'auto', None or a dict, got {camera!r}.")
    if A.kind not in CAMERA_KINDS or A.complex_measurements or np.iscomplexobj(y):
        raise ValueError(
            f"camera= models a camera recording intensities ({', '.join(CAMERA_KINDS)}); "
            f"the {A.kind!r} operator's measurements are not that."
        )
    observed = A.observed()
    data = y if observed is None else np.where(observed, y, np.median(y[observed]))
    try:
        return estimate_camera(data, None if auto else camera)
    except ValueError:
        if not auto:
            raise
        return None  # too small an image to fit a camera to: the data as they are


def _previews_mapped(
    run: Generator[Update, bool | None, Reconstruction],
    image_map: Callable[[np.ndarray], np.ndarray],
) -> Generator[Update, bool | None, Reconstruction]:
    """``run``'s updates passed on (and replies passed back) with ``image_map`` applied to
    every preview; returns ``run``'s result as it is."""
    reply = None
    try:
        while True:
            u = run.send(reply)
            if u.image is not None:
                u = Update(
                    u.step, u.total, u.loss, image_map(u.image), plane=u.plane, planes=u.planes
                )
            reply = yield u
    except StopIteration as stop:
        return stop.value


def _in_layer_units(
    run: Generator[Update, bool | None, Reconstruction], cam: dict[str, Any]
) -> Generator[Update, bool | None, Reconstruction]:
    """A run in photoelectrons, its previews and result put back into the layer's units
    (``offset + gain * x``), the camera recorded in ``params["camera"]``."""
    offset, gain = cam["offset"], cam["gain"]
    rec = yield from _previews_mapped(run, lambda image: (offset + gain * image).astype(np.float32))
    rec.image = (offset + gain * rec.image).astype(np.float32)
    if rec.spread is not None:
        rec.spread = (gain * rec.spread).astype(np.float32)
    rec.params["camera"] = dict(cam)
    return rec


def _with_phase(
    run: Generator[Update, bool | None, Reconstruction], phase: tuple[np.ndarray, np.ndarray]
) -> Generator[Update, bool | None, Reconstruction]:
    """A magnitude reconstruction made complex with the data's smooth phase (see
    :class:`~napari_genprior.operators.mri.FixedPhase`), and 0 outside the coils' support."""
    rotation = (np.exp(1j * phase[0]) * phase[1]).astype(np.complex64)
    rec = yield from _previews_mapped(run, lambda image: (image * rotation).astype(np.complex64))
    if np.iscomplexobj(rec.image):  # the method refined the phase itself (score)
        rec.image = (rec.image * phase[1]).astype(np.complex64)
        how = "refined from the data as the method went, starting from the centre's"
    else:
        rec.image = (rec.image * rotation).astype(np.complex64)
        how = "from the Hann-windowed fully sampled centre of k-space"
    if rec.spread is not None:
        rec.spread = (rec.spread * phase[1]).astype(np.float32)
    rec.params["phase"] = f"magnitude from the method, phase {how}"
    return rec


def reconstruct(
    y: Any,
    A: Operator,
    method: str | None = None,
    prior: Any = None,
    *,
    restarts: int = 1,
    steps: int | None = None,
    device: Any = "auto",
    seed: int = 0,
    callback: Callback | None = None,
    preview_every: int = 10,
    camera: Any = "auto",
    **options: Any,
) -> Reconstruction:
    """Reconstruct an image from the measurement ``y`` of operator ``A``.

    Parameters
    ----------
    y : ndarray
        The measurement, of shape ``A.measurement_shape`` (as returned by ``A.measure``). From
        a napari layer, take ``(y, A) = measurement_from_layer(layer.data, layer.metadata)``:
        an MRI or ``cs`` layer shows a picture of the measurement (log-magnitude k-space), not
        the measurement itself, and its metadata holds the operator.
    A : Operator
        The forward operator (:func:`make_operator`).
    method : str, optional
        One of :func:`list_methods`; None (default): the method recommended for ``A`` and
        ``prior`` (README "Which method when", :func:`napari_genprior.advice.recommend`: e.g.
        ``tv`` for a noisy, blurred or incomplete image or MRI k-space without a prior,
        Richardson-Lucy for a 3D stack, ``csgm`` with a prior, ``score`` with a score prior).
        With a trained prior: ``"csgm"`` (latent search, Bora et
        al.), ``"twist"`` (subgradient descent with the sign-flip twist), ``"sparse-gen"``
        (G(z) plus a sparse deviation), ``"ia"`` (image-adaptive: the latent search, then the
        prior's weights fitted to this image), and with a score (diffusion) prior ``"score"``
        (annealed denoising steps pulled back to the measurements). Without one: ``"dip"`` (Deep Image Prior, an
        untrained network stopped on held-out measurements), the classical ``"tv"``,
        ``"lasso-dct"``, ``"lasso-wavelet"`` (weights chosen on held-out measurements),
        ``"richardson-lucy"`` (deconvolution; iteration count by held-out measurements),
        ``"cg"`` (least squares by conjugate gradients, SENSE for multi-coil MRI; iteration
        count by held-out measurements), ``"adjoint"`` (the back-projection), and for ``phase`` the ``"twf"``, ``"sparta"``,
        ``"copram"`` baselines. README "Which method when" says which to use.
    prior : optional
        The trained generator for ``csgm``, ``twist``, ``sparse-gen`` and ``ia``: a name of
        :func:`list_priors` (``"nuclei-vae"``, ``"mri-vae"``, ``"digits-vae"``,
        ``"digits-conv"``), a ``.safetensors`` path, or a loaded prior. An image larger than
        its patches is reconstructed as a mosaic of patches; a 3D stack as a mosaic per
        plane, every plane with its own codes, all fitted together against the 3D operator.
        For ``score``, a score prior (``"mri-score"``, ``"nuclei-score"``), which denoises any
        image size whole.
    restarts : int
        Random starts optimised together (methods with a trained prior); with more than one,
        ``.spread`` is the per-pixel standard deviation over them.
    steps : int, optional
        Maximum iterations (the method's default when None).
    device : str
        ``"auto"`` (CUDA, else MPS, else CPU), ``"cpu"``, ``"cuda:N"``, ``"mps"``.
    seed : int
        Seeds every random choice of the method; same seed, same result on the same device.
    callback : callable, optional
        ``callback(step, loss, image)`` after every step; ``image`` is a preview every
        ``preview_every`` steps and None otherwise. Returning False stops the run cleanly: the
        best result so far is returned with ``cancelled=True``.
    camera : "auto", None or dict
        The camera that recorded ``y`` (:mod:`napari_genprior.solvers.camera`): ``{"offset":
        ADU at zero light, "gain": ADU per photoelectron, "read_noise": electrons rms}``, any
        key left out fitted from the image's noise. ``"auto"`` (default) fits all three for a
        ``blur`` (deconvolution of a microscope image, uint16 counts with an offset and all)
        and models no camera for other operators; None models none. The method then works in
        photoelectrons (Richardson-Lucy's Poisson likelihood needs them) and the result comes
        back in the layer's units, ``offset + gain * x``; ``params["camera"]`` says what was
        used and which values were fitted.
    **options
        Method options (e.g. ``lr``, ``channels``, ``patience`` for ``"dip"``).

    Returns
    -------
    Reconstruction
        ``.image`` (float32, ``A.shape``; complex64 for multi-coil ``mri``), ``.spread``, ``.history``, ``.seconds``,
        ``.method``, ``.params``, ``.cancelled``.

    Raises
    ------
    ValueError, TypeError
        With a sentence naming the argument at fault.

    Examples
    --------
    Inpaint half of the pixels of scikit-image's camera man with total variation, then with a
    learned prior: compressed sensing of a digit from 200 random projections (the digit here is
    one the prior makes; see the benchmarks for held-out real data):

    >>> import numpy as np, torch
    >>> import napari_genprior as ngp
    >>> from skimage import data, transform
    >>> x = transform.resize(data.camera(), (64, 64), anti_aliasing=True)
    >>> A = ngp.make_operator("inpaint", shape=x.shape, fraction=0.5, seed=0)
    >>> y = A.measure(x, noise_std=0.01, seed=0)
    >>> rec = ngp.reconstruct(y, A, method="tv", device="cpu")
    >>> rec.image.shape, rec.method, rec.cancelled
    ((64, 64), 'tv', False)
    >>> ngp.metrics.psnr(x, rec.image) > ngp.metrics.psnr(x, y) + 15  # than the holes
    True
    >>> ngp.reconstruct(y, A, device="cpu").method  # no method given: the recommended one
    'tv'
    >>> G = ngp.load_prior("digits-vae")
    >>> with torch.no_grad():
    ...     digit = G(torch.zeros(1, G.latent_dim))[0].numpy()
    >>> A = ngp.make_operator("cs", shape=G.image_shape, m=200, seed=0)
    >>> y = A.measure(digit, noise_std=0.01, seed=0)
    >>> rec = ngp.reconstruct(y, A, method="csgm", prior=G, restarts=4, steps=300,
    ...                       device="cpu", seed=0)
    >>> rec.spread.shape, ngp.metrics.psnr(digit, rec.image) > 30
    ((28, 28), True)
    >>> len(rec.history) == rec.params["stopped_at"] < 300  # csgm stops on a plateau
    True

    A callback sees every step and can stop the run (here after step 10); the best image so
    far comes back:

    >>> rec = ngp.reconstruct(y, A, method="csgm", prior=G, steps=300, device="cpu",
    ...                       callback=lambda step, loss, image: step < 10)
    >>> rec.cancelled, len(rec.history)
    (True, 10)
    """
    run = iter_reconstruct(
        y,
        A,
        method,
        prior,
        restarts=restarts,
        steps=steps,
        device=device,
        seed=seed,
        preview_every=preview_every,
        camera=camera,
        **options,
    )
    if callback is None:
        return drive(run, lambda u: None)
    return drive(run, lambda u: callback(u.step, u.loss, u.image))


def measurement_from_layer(data: Any, metadata: dict | None) -> tuple[np.ndarray, Operator]:
    """``(y, A)`` from a napari measurement layer's ``data`` and ``metadata``.

    For layers made by this plugin (Simulate, the samples, the HDF5 reader): the operator is
    rebuilt from ``metadata["genprior"]["operator"]`` and the exact measurement is taken from the
    metadata where the layer only shows a picture of it (complex k-space, ``cs`` vectors). A
    k-space volume gives a stack of slices (for :func:`reconstruct_stack`). Raises ValueError
    when the layer carries no operator or its data no longer fit it.

    Examples
    --------
    A layer as Simulate makes it (``measurement_layer`` is what Simulate calls), read back:

    >>> import numpy as np
    >>> import napari_genprior as ngp
    >>> from napari_genprior._layerdata import measurement_layer
    >>> A = ngp.make_operator("mri", shape=(32, 32), acceleration=4, seed=0)
    >>> y = A.measure(np.ones((32, 32)), noise_std=0.01, seed=0)
    >>> data, kwargs, kind = measurement_layer(y, A, "k-space")
    >>> y2, A2 = ngp.measurement_from_layer(data, kwargs["metadata"])
    >>> np.array_equal(y2, y), A2.spec() == A.spec()
    (True, True)
    >>> ngp.measurement_from_layer(np.zeros((32, 32)), {})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: ...
    """
    from .._layerdata import measurement_planes

    return measurement_planes(data, metadata)
