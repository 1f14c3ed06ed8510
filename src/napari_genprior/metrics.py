"""Image-quality metrics. PSNR and SSIM are scikit-image's; the data range is the reference's.

All functions take the reference (ground truth) first, as scikit-image does.

Examples
--------
>>> import numpy as np
>>> from napari_genprior import metrics
>>> x = np.zeros((32, 32)); x[8:24, 8:24] = 1.0
>>> noisy = x + np.random.default_rng(0).normal(0, 0.1, x.shape)
>>> round(metrics.psnr(x, noisy), 1), round(metrics.ssim(x, noisy), 2)
(20.2, 0.57)
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

__all__ = ["data_consistency", "data_range", "nmse", "psnr", "ssim"]


def _pair(reference, image) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(reference)
    img = np.asarray(image)
    if ref.shape != img.shape:
        raise ValueError(f"reference has shape {ref.shape} but image has shape {img.shape}.")
    if ref.size == 0:
        raise ValueError("cannot compare empty images.")
    if np.iscomplexobj(ref) or np.iscomplexobj(img):
        ref, img = np.abs(ref), np.abs(img)
    ref, img = ref.astype(np.float64), img.astype(np.float64)
    if not (np.all(np.isfinite(ref)) and np.all(np.isfinite(img))):
        raise ValueError("images to compare contain NaN or infinite values.")
    return ref, img


def data_range(reference) -> float:
    """max - min of the reference (1.0 for a constant reference).

    Examples
    --------
    >>> data_range([[0.0, 2.0], [1.0, 0.5]]), data_range([[3.0, 3.0]])
    (2.0, 1.0)
    """
    ref = np.asarray(reference, dtype=np.float64)
    rng = float(ref.max() - ref.min())
    return rng if rng > 0 else 1.0


def psnr(reference, image, data_range_: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB, with the reference's range unless given.

    Parameters
    ----------
    reference : array_like
        The ground truth (complex images are compared by magnitude).
    image : array_like
        The image to score, of the reference's shape.
    data_range_ : float, optional
        The peak value range; default the reference's ``max - min``.

    Returns
    -------
    float
        10 log10(range^2 / MSE); ``inf`` for identical images.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.linspace(0, 1, 100).reshape(10, 10)
    >>> round(psnr(x, x + 0.01), 6)  # MSE 1e-4 over a range of 1
    40.0
    >>> psnr(x, x[:5])
    Traceback (most recent call last):
    ...
    ValueError: reference has shape (10, 10) but image has shape (5, 10).
    """
    ref, img = _pair(reference, image)
    dr = data_range(ref) if data_range_ is None else float(data_range_)
    return float(peak_signal_noise_ratio(ref, img, data_range=dr))


def ssim(reference, image, data_range_: float | None = None) -> float:
    """Structural similarity (scikit-image), with the reference's range unless given.

    The window is 7 pixels a side, or the image's odd size if smaller (at least 3).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.zeros((32, 32)); x[8:24, 8:24] = 1.0
    >>> ssim(x, x)
    1.0
    >>> ssim(x, 1.0 - x) < 0  # an inverted image is anti-correlated
    True
    """
    ref, img = _pair(reference, image)
    dr = data_range(ref) if data_range_ is None else float(data_range_)
    win = min(7, *(s if s % 2 else s - 1 for s in ref.shape))
    if win < 3:
        raise ValueError(
            f"images of shape {ref.shape} are too small for SSIM (need >= 3 pixels a side)."
        )
    return float(structural_similarity(ref, img, data_range=dr, win_size=win))


def nmse(reference, image) -> float:
    """Normalised mean squared error ||image - reference||^2 / ||reference||^2.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.ones((4, 4))
    >>> round(nmse(x, 1.1 * x), 6)
    0.01
    """
    ref, img = _pair(reference, image)
    denom = float(np.sum(ref**2))
    if denom == 0:
        raise ValueError("nmse is undefined for an all-zero reference.")
    return float(np.sum((img - ref) ** 2) / denom)


def _misfit(y, A, image):
    """``(y, op, r)``: checked inputs, ``A`` on the CPU and the misfit ``r = y - A(image)``
    (a float64 or complex128 tensor), for :func:`data_consistency` and :func:`residual_image`."""
    import torch

    y = np.asarray(y)
    complex_image = np.iscomplexobj(image) and getattr(A, "complex_images", False)
    img = np.asarray(image, dtype=np.complex128 if complex_image else np.float64)
    if img.shape != tuple(A.shape):
        raise ValueError(
            f"image has shape {img.shape}, but the {A.kind!r} operator acts on "
            f"images of shape {tuple(A.shape)}."
        )
    if y.shape != tuple(A.measurement_shape):
        raise ValueError(
            f"y has shape {y.shape}, but the {A.kind!r} operator makes measurements "
            f"of shape {tuple(A.measurement_shape)}."
        )
    if not (np.all(np.isfinite(img)) and np.all(np.isfinite(y))):
        raise ValueError("data consistency needs finite values in the image and the measurement.")
    if not np.any(y):
        raise ValueError("data consistency is undefined for an all-zero measurement.")
    op = A.copy().to("cpu")
    with torch.no_grad():
        r = torch.from_numpy(y.astype(np.complex128 if np.iscomplexobj(y) else np.float64)) - op(
            torch.from_numpy(img)
        )
    return y, op, r


def data_consistency(y, A, image) -> float:
    """Relative misfit ||A(image) - y|| / ||y|| of an image to the measurement ``y`` of ``A``.

    Needs no ground truth: it says how well a reconstruction explains the data (near the noise
    level relative to the signal is good; much lower means the noise is being fitted).

    Examples
    --------
    >>> import numpy as np
    >>> import napari_genprior as ngp
    >>> x = np.zeros((32, 32)); x[8:24, 8:24] = 1.0
    >>> A = ngp.make_operator("blur", shape=x.shape, sigma=2.0)
    >>> y = A.measure(x, noise_std=0.0)
    >>> data_consistency(y, A, x) < 1e-6  # the truth explains noise-free data exactly
    True
    >>> round(data_consistency(y, A, np.zeros_like(x)), 6)  # an empty image explains none
    1.0
    """
    y, _, r = _misfit(y, A, image)
    return float(np.linalg.norm(r.numpy()) / np.linalg.norm(y))


def residual_image(y, A, image) -> np.ndarray:
    """The measurement misfit of ``image`` as a picture on the image grid.

    ``y - A(image)`` when the measurement is a real image of the same shape (denoise, inpaint,
    blur: what the reconstruction left out, e.g. the removed noise); otherwise the
    back-projected misfit ``A^T(y - A(image))`` (real part; its magnitude for an operator with
    complex images, multi-coil MRI), which shows where in the image the data are not explained.
    """
    import torch

    _, op, r = _misfit(y, A, image)
    if r.shape == tuple(A.shape) and not r.is_complex():
        return r.numpy().astype(np.float32)
    if not A.linear:
        raise ValueError(
            f"the {A.kind!r} operator is not linear: its misfit has no picture on the image grid."
        )
    with torch.no_grad():
        back = op.adjoint(r)
    if back.is_complex():  # complex images (multi-coil MRI): the magnitude; else the real part
        back = back.abs() if getattr(A, "complex_images", False) else back.real
    return back.numpy().astype(np.float32)
