"""The forward-operator base class: one measurement process, in torch, batched, on any device."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch


def as_image_shape(shape: Any) -> tuple[int, ...]:
    """Validate an image shape argument: a tuple of 2 or 3 positive ints."""
    try:
        out = tuple(int(s) for s in shape)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"shape must be 2D or 3D, a tuple of ints such as (128, 128), "
                         f"got {shape!r}.") from exc
    if len(out) not in (2, 3) or any(s < 1 for s in out):
        raise ValueError(f"shape must be 2D or 3D with positive sizes, got {shape!r}.")
    return out


class Operator:
    """A forward model ``y = A(x)`` acting on images of shape :attr:`shape`.

    Tensors carry any number of leading batch dimensions: ``forward`` maps ``(..., *shape)`` to
    ``(..., *measurement_shape)`` and ``adjoint`` maps back. Subclasses implement
    :meth:`forward`, :meth:`adjoint` (when linear), :meth:`_params` and keep their tensors in
    :attr:`_buffers` so that :meth:`to` moves them.
    """

    kind: ClassVar[str] = ""
    linear: ClassVar[bool] = True
    complex_measurements: ClassVar[bool] = False

    def __init__(self, shape: Any):
        self.shape = as_image_shape(shape)
        self.device = torch.device("cpu")
        self._buffers: dict[str, torch.Tensor] = {}

    # -- what subclasses provide -------------------------------------------------------------
    @property
    def measurement_shape(self) -> tuple[int, ...]:
        return self.shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError(f"operator {self.kind!r} is not linear and has no adjoint.")

    def _params(self) -> dict[str, Any]:
        """JSON-serialisable keyword arguments that rebuild this operator (besides shape)."""
        return {}

    # -- shared behaviour --------------------------------------------------------------------
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)

    def spec(self) -> dict[str, Any]:
        """A JSON-serialisable dict from which :func:`operators.from_spec` rebuilds this operator."""
        return {"kind": self.kind, "shape": list(self.shape), **self._params()}

    def to(self, device: str | torch.device) -> "Operator":
        """Move the operator's tensors to ``device`` (in place) and return it."""
        self.device = torch.device(device)
        for name, buf in self._buffers.items():
            self._buffers[name] = buf.to(self.device)
        return self

    def copy(self) -> "Operator":
        """A shallow copy whose :meth:`to` leaves this operator where it is."""
        import copy

        out = copy.copy(self)
        out._buffers = dict(self._buffers)
        return out

    def _buffer(self, name: str, like: torch.Tensor) -> torch.Tensor:
        """Buffer ``name`` on the device and in the real dtype of ``like``."""
        buf = self._buffers[name]
        dtype = like.real.dtype if like.is_complex() else like.dtype
        if buf.device != like.device or (buf.is_floating_point() and buf.dtype != dtype):
            buf = buf.to(device=like.device, dtype=dtype if buf.is_floating_point() else buf.dtype)
        return buf

    def check_image(self, x: np.ndarray, name: str = "x") -> np.ndarray:
        """Validate a numpy image for this operator; return it as float64."""
        x = np.asarray(x)
        if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
            raise TypeError(f"{name} must be a numeric array, got dtype {x.dtype}.")
        if np.iscomplexobj(x):
            raise TypeError(f"{name} must be a real image, got a complex array.")
        if x.shape != self.shape:
            raise ValueError(f"{name} has shape {x.shape}, but the {self.kind!r} operator was made "
                             f"for images of shape {self.shape}.")
        x = x.astype(np.float64)
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{name} contains NaN or infinite values; replace them before measuring.")
        return x

    def measure(self, x: np.ndarray, noise_std: float = 0.0, seed: int | None = None) -> np.ndarray:
        """Simulate a measurement ``y = A(x) + noise`` of a numpy image.

        Parameters
        ----------
        x : ndarray
            Clean image of shape :attr:`shape` (any real dtype).
        noise_std : float
            Standard deviation of additive white Gaussian noise, in the units of ``x``.
        seed : int, optional
            Seed of the noise; the same seed gives the same measurement.

        Returns
        -------
        ndarray
            float32 array of shape :attr:`measurement_shape`.
        """
        x = self.check_image(x)
        noise_std = float(noise_std)
        if not np.isfinite(noise_std) or noise_std < 0:
            raise ValueError(f"noise_std must be a finite number >= 0, got {noise_std}.")
        with torch.no_grad():
            y = self.forward(torch.from_numpy(x).to(self.device)).cpu().numpy()
        if noise_std > 0:
            rng = np.random.default_rng(seed)
            noise = noise_std * rng.standard_normal(y.shape)
            observed = self.observed()
            y = y + (noise if observed is None else noise * observed)
        return y.astype(np.float32)

    def observed(self) -> np.ndarray | None:
        """Boolean array over :attr:`measurement_shape`: the entries that carry data.

        None means all of them. Entries outside it (missing pixels when inpainting) are zero in
        every measurement, and solvers neither fit them nor hold them out for validation.
        """
        return None

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self._params().items() if k != "mask")
        return f"{type(self).__name__}(shape={self.shape}{', ' if params else ''}{params})"
