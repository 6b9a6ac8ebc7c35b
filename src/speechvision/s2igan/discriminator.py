"""One discriminator per scale with an unconditional and a conditional logit (StackGAN-v2 ``D_NET64/128/256``).

Image (B, 3, S, S) -> conv4x4 s2 down to 4x4 (channels ndf, 2ndf, 4ndf, 8ndf, 16ndf, ...; no BN on the
first), conv3x3 reductions back to at most 8ndf -> code (B, Cd, 4, 4).
Unconditional logit: conv4x4 s4 on the code. Conditional logit: [code, mu tiled at 4x4] -> conv3x3 +
BN + LeakyReLU -> conv4x4 s4. Logits are returned raw (the loss uses BCE-with-logits, which equals the
official sigmoid + BCE).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from einops import repeat
from torch import nn


@dataclass
class DiscriminatorConfig:
    """Attributes: ndf (64 in the paper), condition_dim (128, the size of mu)."""

    ndf: int = 64
    condition_dim: int = 128


def _lrelu() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.2, inplace=True)


class Discriminator(nn.Module):
    def __init__(self, size_px: int, config: DiscriminatorConfig = DiscriminatorConfig()):
        super().__init__()
        n_down = int(math.log2(size_px // 4))
        if 4 * 2 ** n_down != size_px:
            raise ValueError(f"image size must be 4 x a power of two, got {size_px}")
        ndf, layers, ch = config.ndf, [], 3
        for i in range(n_down):
            out = ndf * 2 ** i
            layers += [nn.Conv2d(ch, out, 4, 2, 1, bias=False)] + ([nn.BatchNorm2d(out)] if i else []) + [_lrelu()]
            ch = out
        while ch > 8 * ndf:
            layers += [nn.Conv2d(ch, ch // 2, 3, 1, 1, bias=False), nn.BatchNorm2d(ch // 2), _lrelu()]
            ch //= 2
        self.encode = nn.Sequential(*layers)
        self.uncond = nn.Conv2d(ch, 1, 4, 4)
        self.joint = nn.Sequential(nn.Conv2d(ch + config.condition_dim, ch, 3, 1, 1, bias=False),
                                   nn.BatchNorm2d(ch), _lrelu())
        self.cond = nn.Conv2d(ch, 1, 4, 4)

    def forward(self, images: torch.Tensor, mu: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images (B, 3, S, S), mu (B, C) -> (conditional logits (B,), unconditional logits (B,))."""
        code = self.encode(images)
        tiled = repeat(mu, "b c -> b c h w", h=code.shape[2], w=code.shape[3])
        cond = self.cond(self.joint(torch.cat([code, tiled], dim=1)))
        return cond.flatten(), self.uncond(code).flatten()
