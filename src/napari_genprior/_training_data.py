"""The images a prior is trained on: checked, normalised as the card records, cut into patches."""

from __future__ import annotations

from typing import Any

import numpy as np

#: How :func:`normalise` scales images into [0, 1] (see :func:`napari_genprior.train_prior`).
NORMALISATIONS = ("percentile", "global", "none")


def as_image_list(images: Any) -> list[np.ndarray]:
    if (
        isinstance(images, np.ndarray)
        or hasattr(images, "__array__")
        and not isinstance(images, (list, tuple))
    ):
        arr = np.asarray(images)
        if arr.ndim == 2:
            out = [arr]
        elif arr.ndim == 3:
            out = list(arr)
        else:
            raise ValueError(
                f"images must be a 2D image, a (N, H, W) stack or a list of 2D images; "
                f"got an array of shape {arr.shape}."
            )
    elif isinstance(images, (list, tuple)):
        out = [np.asarray(im) for im in images]
    else:
        raise TypeError(
            f"images must be an array or a list of arrays, got {type(images).__name__}."
        )
    if not out:
        raise ValueError("images is empty: there is nothing to train on.")
    for i, im in enumerate(out):
        if im.ndim != 2:
            raise ValueError(f"image {i} has shape {im.shape}; every image must be 2D (grey).")
        if im.dtype == object or np.iscomplexobj(im) or not np.issubdtype(im.dtype, np.number):
            raise TypeError(f"image {i} has dtype {im.dtype}; images must be real numbers.")
        if not np.all(np.isfinite(im)):
            raise ValueError(f"image {i} contains NaN or infinite values.")
    return out


def normalise(images: list[np.ndarray], how: str) -> tuple[list[np.ndarray], dict[str, Any]]:
    if how == "none":
        return [im.astype(np.float32) for im in images], {
            "kind": "minmax",
            "low": 0.0,
            "high": 1.0,
            "per_image": False,
        }
    if how == "global":
        flat = np.concatenate([im.ravel()[:: max(1, im.size // 100_000)] for im in images])
        low, high = (float(v) for v in np.percentile(flat, [0.1, 99.9]))
        high = high if high > low else low + 1.0
        out = [np.clip((im - low) / (high - low), 0, 1).astype(np.float32) for im in images]
        return out, {"kind": "minmax", "low": low, "high": high, "per_image": False}
    out = []
    for im in images:
        low, high = (float(v) for v in np.percentile(im, [1.0, 99.8]))
        high = high if high > low else low + 1.0
        out.append(np.clip((im - low) / (high - low), 0, 1).astype(np.float32))
    return out, {
        "kind": "minmax",
        "low": 0.0,
        "high": 1.0,
        "per_image": True,
        "percentiles": [1.0, 99.8],
    }


class Patches:
    """Random patches of ``size`` from a list of images, with flips and 90-degree rotations."""

    def __init__(self, images: list[np.ndarray], size: tuple[int, int], augment: bool, seed: int):
        self.size, self.augment = size, augment
        self.rng = np.random.default_rng(seed)
        small = [im.shape for im in images if im.shape[0] < size[0] or im.shape[1] < size[1]]
        if small:
            raise ValueError(
                f"patch_size {size} is larger than image(s) of shape {small[0]}; "
                "choose a smaller patch_size."
            )
        self.whole = all(im.shape == size for im in images)
        if self.whole:
            self.stack = np.stack(images)
        self.images = images
        self.weights = np.array(
            [(im.shape[0] - size[0] + 1) * (im.shape[1] - size[1] + 1) for im in images],
            dtype=np.float64,
        )
        self.weights /= self.weights.sum()

    def sample(self, n: int) -> np.ndarray:
        if self.whole:
            out = self.stack[self.rng.integers(0, len(self.stack), n)]
        else:
            which = self.rng.choice(len(self.images), n, p=self.weights)
            out = np.empty((n, *self.size), np.float32)
            for i, w in enumerate(which):
                im = self.images[w]
                r = self.rng.integers(0, im.shape[0] - self.size[0] + 1)
                c = self.rng.integers(0, im.shape[1] - self.size[1] + 1)
                out[i] = im[r : r + self.size[0], c : c + self.size[1]]
        if self.augment:
            out = out.copy()
            flip = self.rng.random(n) < 0.5
            out[flip] = out[flip, :, ::-1]
            if self.size[0] == self.size[1]:
                k = self.rng.integers(0, 4, n)
                for j in range(1, 4):
                    out[k == j] = np.rot90(out[k == j], j, axes=(1, 2))
        return np.ascontiguousarray(out)
