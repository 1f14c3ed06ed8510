"""Generators G: latent z -> image, and the encoders that go with VAE decoders.

Every generator is a :class:`Generator`: a ``torch.nn.Module`` mapping ``(B, latent_dim)`` to
``(B, *image_shape)``, with ``latent_dim``, ``image_shape`` and ``card`` (a dict that says what
it is, what it was trained on and how images are normalised for it). ``save(path)`` writes
safetensors weights with the card (see :mod:`.io`).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import nn

from ._write import save_prior

#: How data relate to a prior's outputs. ``minmax`` with low/high: prior output p stands for data
#: ``low + p * (high - low)``; ``per_image`` True: each training image was rescaled on its own
#: (percentiles), so the gain and offset of a measured image are unknown and get fitted.
DEFAULT_NORMALISATION = {"kind": "minmax", "low": 0.0, "high": 1.0, "per_image": False}


class Generator(nn.Module):
    """Base class of every prior; subclasses set :attr:`architecture` and build their layers."""

    architecture: ClassVar[str] = ""

    def __init__(self, latent_dim: int, image_shape: tuple[int, ...], **config: Any):
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.image_shape = tuple(int(s) for s in image_shape)
        if self.latent_dim < 1 or not self.image_shape or min(self.image_shape) < 1:
            raise ValueError(
                f"a prior needs latent_dim >= 1 and a non-empty image shape of "
                f"positive sizes, got {latent_dim!r} and {image_shape!r}."
            )
        self.config = {
            "latent_dim": self.latent_dim,
            "image_shape": list(self.image_shape),
            **config,
        }
        self.card: dict[str, Any] = {
            "architecture": self.architecture,
            "config": self.config,
            "latent_dim": self.latent_dim,
            "image_shape": list(self.image_shape),
            "normalisation": dict(DEFAULT_NORMALISATION),
            "data": "untrained",
        }

    @property
    def n_pixels(self) -> int:
        return int(math.prod(self.image_shape))

    def sample_latent(
        self, n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
    ) -> torch.Tensor:
        """``n`` latent vectors from the prior N(0, I)."""
        return torch.randn((n, self.latent_dim), generator=generator).to(device)

    def save(self, path) -> None:
        """Write safetensors weights with the card embedded, plus a ``.json`` card beside them."""
        save_prior(self, path)


class FCDecoder(Generator):
    """Fully connected VAE decoder, the seed's MNIST setting: latent 20 -> 500 -> 500 -> 784.

    Output through a sigmoid (images in [0, 1]) unless ``output="linear"``.
    """

    architecture = "fc-decoder"

    def __init__(
        self,
        latent_dim: int = 20,
        image_shape: tuple[int, ...] = (28, 28),
        hidden: tuple[int, ...] = (500, 500),
        output: str = "sigmoid",
    ):
        super().__init__(latent_dim, image_shape, hidden=list(hidden), output=output)
        layers: list[nn.Module] = []
        width = latent_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.Softplus()]
            width = h
        layers.append(nn.Linear(width, self.n_pixels))
        self.net = nn.Sequential(*layers)
        self.output = output

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.net(z)
        if self.output == "sigmoid":
            out = torch.sigmoid(out)
        return out.reshape(*z.shape[:-1], *self.image_shape)


class FCEncoder(nn.Module):
    """Fully connected VAE encoder (image -> mean and log-variance of the latent)."""

    def __init__(
        self,
        latent_dim: int = 20,
        image_shape: tuple[int, ...] = (28, 28),
        hidden: tuple[int, ...] = (500, 500),
    ):
        super().__init__()
        n = int(math.prod(image_shape))
        layers: list[nn.Module] = []
        width = n
        for h in hidden:
            layers += [nn.Linear(width, h), nn.Softplus()]
            width = h
        self.net = nn.Sequential(*layers)
        self.mu = nn.Linear(width, latent_dim)
        self.logvar = nn.Linear(width, latent_dim)
        self.image_shape = tuple(image_shape)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.net(x.reshape(*x.shape[: x.ndim - len(self.image_shape)], -1))
        return self.mu(h), self.logvar(h)


def _up_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(cin, cout, 3, padding=1),
        nn.BatchNorm2d(cout),
        nn.LeakyReLU(0.2),
    )


def conv_levels(image_shape: tuple[int, ...]) -> tuple[int, int]:
    """``(base, levels)`` of a square side ``base * 2**levels`` with ``base`` from 4 to 7:
    64 -> (4, 4), 28 -> (7, 2), 128 -> (4, 5). Raises ValueError for other shapes."""
    side = int(image_shape[-1])
    levels = 0
    while side % 2 == 0 and side // 2 >= 4:
        side //= 2
        levels += 1
    if len(image_shape) != 2 or image_shape[0] != image_shape[-1] or not 4 <= side <= 7:
        raise ValueError(
            f"conv-decoder makes square patches of b * 2**k pixels (b from 4 to "
            f"7: 28, 32, 64, 128...), got {tuple(image_shape)}."
        )
    return side, levels


class ConvDecoder(Generator):
    """Convolutional VAE decoder for square patches of ``b * 2**n`` pixels (b from 4 to 7:
    28x28 digits, 64x64 patches...).

    latent -> linear -> (channels * 2**(n-1), b, b) -> n upsampling conv blocks halving the
    width -> 1 channel, sigmoid (or linear) output.
    """

    architecture = "conv-decoder"

    def __init__(
        self,
        latent_dim: int = 32,
        image_shape: tuple[int, ...] = (64, 64),
        channels: int = 16,
        output: str = "sigmoid",
    ):
        super().__init__(latent_dim, image_shape, channels=channels, output=output)
        self.base, n_up = conv_levels(tuple(image_shape))
        widths = [channels * 2 ** max(0, n_up - 1 - i) for i in range(n_up)]
        self.first = widths[0] * 2 if n_up else channels
        self.fc = nn.Linear(latent_dim, self.first * self.base**2)
        blocks, cin = [], self.first
        for w in widths:
            blocks.append(_up_block(cin, w))
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Conv2d(cin, 1, 3, padding=1)
        self.output = output

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        batch = z.shape[:-1]
        h = self.fc(z.reshape(-1, self.latent_dim)).reshape(-1, self.first, self.base, self.base)
        out = self.head(self.blocks(nn.functional.leaky_relu(h, 0.2)))
        if self.output == "sigmoid":
            out = torch.sigmoid(out)
        return out.reshape(*batch, *self.image_shape)


class ConvEncoder(nn.Module):
    """Convolutional VAE encoder matching :class:`ConvDecoder`."""

    def __init__(
        self, latent_dim: int = 32, image_shape: tuple[int, ...] = (64, 64), channels: int = 16
    ):
        super().__init__()
        base, n_down = conv_levels(tuple(image_shape))
        layers, cin = [], 1
        for i in range(n_down):
            w = channels * 2 ** min(i, 3)
            layers += [
                nn.Conv2d(cin, w, 4, stride=2, padding=1),
                nn.BatchNorm2d(w),
                nn.LeakyReLU(0.2),
            ]
            cin = w
        self.net = nn.Sequential(*layers)
        self.mu = nn.Linear(cin * base**2, latent_dim)
        self.logvar = nn.Linear(cin * base**2, latent_dim)
        self.image_shape = tuple(image_shape)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch = x.shape[: x.ndim - 2]
        h = self.net(x.reshape(-1, 1, *self.image_shape)).flatten(1)
        return self.mu(h).reshape(*batch, -1), self.logvar(h).reshape(*batch, -1)


class DCGANGenerator(Generator):
    """DCGAN generator (Radford et al.): transposed convolutions with batch norm and ReLU.

    latent -> (ngf * 2**(n-1), 4, 4) -> n stride-2 transposed convolutions -> 1 channel,
    sigmoid output (images in [0, 1]).
    """

    architecture = "dcgan"

    def __init__(
        self, latent_dim: int = 64, image_shape: tuple[int, ...] = (64, 64), ngf: int = 32
    ):
        super().__init__(latent_dim, image_shape, ngf=ngf)
        side = image_shape[-1]
        n_up = int(round(math.log2(side / 4)))
        if len(image_shape) != 2 or image_shape[0] != side or 4 * 2**n_up != side or n_up < 1:
            raise ValueError(
                f"dcgan makes square patches of 4 * 2**k pixels (k >= 1), got {image_shape}."
            )
        c = ngf * 2 ** (n_up - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, c, 4, 1, 0, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(True),
        ]
        for _ in range(n_up - 1):
            layers += [
                nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(c // 2),
                nn.ReLU(True),
            ]
            c //= 2
        layers += [nn.ConvTranspose2d(c, 1, 4, 2, 1, bias=False), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        batch = z.shape[:-1]
        out = self.net(z.reshape(-1, self.latent_dim, 1, 1))
        return out.reshape(*batch, *self.image_shape)


class RandomReLU(Generator):
    """Expansive ReLU network with i.i.d. Gaussian weights and no biases (Hand-Voroninski).

    ``G(z) = relu(W_d ... relu(W_1 z))`` with ``W_i`` of shape ``(n_i, n_{i-1})`` and entries
    N(0, 1/n_i). The output (``widths[-1]`` values) is shaped as ``image_shape`` (default
    ``(1, widths[-1])``).
    """

    architecture = "random-relu"

    def __init__(
        self,
        latent_dim: int = 10,
        widths: tuple[int, ...] = (250, 600),
        image_shape: tuple[int, ...] | None = None,
        seed: int = 0,
    ):
        widths = tuple(int(w) for w in widths)
        shape = tuple(image_shape) if image_shape is not None else (1, widths[-1])
        if math.prod(shape) != widths[-1]:
            raise ValueError(f"image_shape {shape} must hold widths[-1] = {widths[-1]} values.")
        super().__init__(latent_dim, shape, widths=list(widths), seed=int(seed))
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        self.layers = nn.ModuleList()
        cin = latent_dim
        for w in widths:
            lin = nn.Linear(cin, w, bias=False)
            with torch.no_grad():
                lin.weight.copy_(torch.randn((w, cin), generator=gen) / math.sqrt(w))
            self.layers.append(lin)
            cin = w
        self.card.update(
            data="random Gaussian weights (untrained)",
            normalisation={"kind": "none", "per_image": False},
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = z
        for lin in self.layers:
            h = torch.relu(lin(h))
        return h.reshape(*z.shape[:-1], *self.image_shape)


ARCHITECTURES: dict[str, type[Generator]] = {
    cls.architecture: cls for cls in (FCDecoder, ConvDecoder, DCGANGenerator, RandomReLU)
}
ENCODERS: dict[str, type[nn.Module]] = {"fc-decoder": FCEncoder, "conv-decoder": ConvEncoder}
