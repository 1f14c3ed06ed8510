"""The Deep Image Prior network (Ulyanov, Vedaldi, Lempitsky 2018): an untrained prior.

An encoder-decoder with skip connections maps a fixed random input to an image; fitted to the
measurements of ONE image, its structure prefers natural images over noise long enough for early
stopping to return a clean image. No training data and no model file are needed.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, padding_mode="reflect"),
        nn.BatchNorm2d(cout),
        nn.LeakyReLU(0.2, inplace=True),
    )


class DIPNet(nn.Module):
    """DIP "skip" architecture: ``depth`` stride-2 down blocks, bilinear up blocks, 1x1 skips.

    Parameters
    ----------
    in_channels : int
        Channels of the fixed noise input.
    out_channels : int
        Channels of the image (1 for grey images).
    channels : int
        Width of every encoder and decoder block.
    skip_channels : int
        Width of the skip connections.
    depth : int
        Number of scales. Any input size works (the decoder resizes to each skip's size), as
        long as the coarsest scale keeps at least 2x2 pixels: see :func:`dip_depth`.
    """

    def __init__(
        self,
        in_channels: int = 32,
        out_channels: int = 1,
        channels: int = 64,
        skip_channels: int = 4,
        depth: int = 4,
    ):
        super().__init__()
        self.depth = depth
        self.down = nn.ModuleList()
        self.skip = nn.ModuleList()
        self.up = nn.ModuleList()
        cin = in_channels
        for _ in range(depth):
            self.skip.append(_conv(cin, skip_channels) if skip_channels else nn.Identity())
            self.down.append(
                nn.Sequential(_conv(cin, channels, stride=2), _conv(channels, channels))
            )
            cin = channels
        for _ in range(depth):
            self.up.append(
                nn.Sequential(
                    nn.BatchNorm2d(channels + skip_channels),
                    _conv(channels + skip_channels, channels),
                )
            )
        self.head = nn.Conv2d(channels, out_channels, 1)
        self.skip_channels = skip_channels

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        skips = []
        h = z
        for skip, down in zip(self.skip, self.down):
            skips.append(skip(h))
            h = down(h)
        for up, s in zip(self.up, reversed(skips)):
            h = nn.functional.interpolate(
                h, size=s.shape[-2:], mode="bilinear", align_corners=False
            )
            if self.skip_channels:
                h = torch.cat([h, s], dim=1)
            h = up(h)
        return self.head(h)


def dip_depth(shape: tuple[int, ...], max_depth: int = 5) -> int:
    """The number of scales for an image of ``shape``: its coarsest scale keeps >= 4x4 pixels."""
    smallest = min(shape[-2:])
    depth = 0
    while depth < max_depth and smallest // 2 ** (depth + 1) >= 4:
        depth += 1
    return max(depth, 1)
