"""Conditioning augmentation (CA) and the densely-stacked generator (DSG) of S2IGAN.

Source: S2IGAN Sec. 2.2 and the official ``models/model.py`` (StackGAN-v2 ``G_NET`` with the dense
connection). Shapes for the paper preset (ngf 64, base 64 px):

    e (B, 1024) --CA--> c (B, 128); [c, z (B, 100)] --stage 1--> h1 (B, 64, 64, 64) -> image (B, 3, 64, 64)
    h1 + tiled c --stage 2--> h2 (B, 32, 128, 128) -> image (B, 3, 128, 128)
    h2 + tiled c --stage 3--> h3 (B, 16, 256, 256) -> image (B, 3, 256, 256)

Stage 2/3: joint conv3x3 + BN + GLU over [h, tiled c], two residual blocks, then (dense) the residual
output concatenated with the stage input h, upsampled (nearest x2, conv3x3, BN, GLU). ``dense=False``
drops the concatenation (plain StackGAN-v2 stacking, the paper's "w/o Dense").

Attribute conditioning (``attribute_sizes``, issue 17; not in the paper): the CA also reads the frozen SEN's
attribute posteriors of the embedding, e.g. garment (10) and colour (8), computed inside the generator by the
SEN's factored heads (kept as buffers, never trained): CA input [e, softmax(W_garment e), softmax(W_colour e)]
(B, E + 18). An unseen garment-colour combination then reaches the generator as two familiar factors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from einops import repeat
from torch import nn


@dataclass
class DSGConfig:
    """Attributes:
        embedding_dim: speech embedding size (1024).
        condition_dim: CA output size (128).
        noise_dim: z size (100).
        ngf: channels at the first stage's output (64 in the paper; stage 1 starts at ngf * base/4).
        base_size_px: first stage resolution (64 in the paper, 16 for spoken-fashion).
        stages: number of stages, each doubling the resolution (3).
        dense: the dense connection of the DSG (False = "w/o Dense").
        res_blocks: residual blocks per later stage (2).
        attribute_sizes: values per attribute of the SEN's factored heads the CA also reads (() = the
            paper: the embedding alone). The heads' weights are buffers, copied from the SEN.
        embedding_scale: the CA reads the (unit L2 norm) speech embedding times this (1.0 = the official
            code). sqrt(embedding_dim) gives each dimension about unit variance, so that at initialisation the
            CA's mean already moves with the speech on the scale of its unit noise (issue 16: at 1.0 the mean
            starts about 0.02 per dimension, and some CPU runs never learned to use it).
    """

    embedding_dim: int = 1024
    condition_dim: int = 128
    noise_dim: int = 100
    ngf: int = 64
    base_size_px: int = 64
    stages: int = 3
    dense: bool = True
    res_blocks: int = 2
    attribute_sizes: tuple[int, ...] = ()
    embedding_scale: float = 1.0

    @property
    def sizes_px(self) -> list[int]:
        return [self.base_size_px * 2 ** i for i in range(self.stages)]


def conv3x3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, 1, 1, bias=False)


class GLU(nn.Module):
    """Gated linear unit over channels: (B, 2C, ...) -> (B, C, ...)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * torch.sigmoid(b)


def up_block(cin: int, cout: int) -> nn.Sequential:
    """Nearest x2, conv3x3, BN, GLU: (B, cin, H, W) -> (B, cout, 2H, 2W)."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv3x3(cin, 2 * cout),
                         nn.BatchNorm2d(2 * cout), GLU())


class ResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(conv3x3(ch, 2 * ch), nn.BatchNorm2d(2 * ch), GLU(),
                                  conv3x3(ch, ch), nn.BatchNorm2d(ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ConditioningAugmentation(nn.Module):
    """e (B, E) -> (c (B, C), mu (B, C), logvar (B, C)); c = mu + exp(logvar / 2) * eps.

    Linear(E -> 4C) + GLU gives [mu, logvar] (StackGAN ``CA_NET``).
    """

    def __init__(self, embedding_dim: int, condition_dim: int):
        super().__init__()
        self.fc = nn.Linear(embedding_dim, 4 * condition_dim)
        self.glu = GLU()

    def moments(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """e (B, E) -> (mu (B, C), logvar (B, C)), drawing no noise."""
        return self.glu(self.fc(e)).chunk(2, dim=1)

    def forward(self, e: torch.Tensor, eps: torch.Tensor | None = None):
        mu, logvar = self.moments(e)
        eps = torch.randn_like(mu) if eps is None else eps
        return mu + torch.exp(0.5 * logvar) * eps, mu, logvar


class DSGFirstStage(nn.Module):
    """[c, z] (B, C + Z) -> h (B, ngf, base, base)."""

    def __init__(self, cfg: DSGConfig):
        super().__init__()
        n_up = int(math.log2(cfg.base_size_px // 4))
        if 4 * 2 ** n_up != cfg.base_size_px:
            raise ValueError(f"base_size_px must be 4 x a power of two, got {cfg.base_size_px}")
        self.ch = cfg.ngf * 2 ** n_up
        self.fc = nn.Sequential(nn.Linear(cfg.condition_dim + cfg.noise_dim, self.ch * 4 * 4 * 2, bias=False),
                                nn.BatchNorm1d(self.ch * 4 * 4 * 2), GLU())
        self.ups = nn.Sequential(*[up_block(self.ch // 2 ** i, self.ch // 2 ** (i + 1)) for i in range(n_up)])

    def forward(self, cz: torch.Tensor) -> torch.Tensor:
        h = self.fc(cz).view(-1, self.ch, 4, 4)
        return self.ups(h)


class DSGUpStage(nn.Module):
    """h (B, ngf, R, R) and c (B, C) -> h' (B, ngf / 2, 2R, 2R)."""

    def __init__(self, ngf: int, condition_dim: int, res_blocks: int, dense: bool):
        super().__init__()
        self.dense = dense
        self.joint = nn.Sequential(conv3x3(ngf + condition_dim, 2 * ngf), nn.BatchNorm2d(2 * ngf), GLU())
        self.res = nn.Sequential(*[ResBlock(ngf) for _ in range(res_blocks)])
        self.up = up_block(2 * ngf if dense else ngf, ngf // 2)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        tiled = repeat(c, "b c -> b c h w", h=h.shape[2], w=h.shape[3])
        r = self.res(self.joint(torch.cat([h, tiled], dim=1)))
        return self.up(torch.cat([r, h], dim=1) if self.dense else r)


class DSG(nn.Module):
    """CA + DSG. forward(e (B, E), z (B, Z), eps (B, C) or None) -> (images, mu, logvar), where images
    is a list of (B, 3, S, S) tensors in [-1, 1], one per stage, S in ``config.sizes_px``."""

    def __init__(self, config: DSGConfig = DSGConfig()):
        super().__init__()
        self.config = cfg = config
        n_attr = sum(cfg.attribute_sizes)
        if n_attr:  # the SEN's attribute heads, frozen (buffers: never trained, saved with the generator)
            self.register_buffer("attribute_weight", torch.zeros(n_attr, cfg.embedding_dim))
            self.register_buffer("attribute_bias", torch.zeros(n_attr))
        self.ca = ConditioningAugmentation(cfg.embedding_dim + n_attr, cfg.condition_dim)
        self.init_stage = DSGFirstStage(cfg)
        chans = [cfg.ngf // 2 ** i for i in range(cfg.stages)]
        if chans[-1] < 2:
            raise ValueError(f"ngf {cfg.ngf} is too small for {cfg.stages} stages")
        self.next_stages = nn.ModuleList([DSGUpStage(chans[i], cfg.condition_dim, cfg.res_blocks, cfg.dense)
                                          for i in range(cfg.stages - 1)])
        self.to_image = nn.ModuleList([nn.Sequential(conv3x3(ch, 3), nn.Tanh()) for ch in chans])

    def condition_input(self, e: torch.Tensor) -> torch.Tensor:
        """(B, E) -> the CA's input: s e, or [s e, per-attribute softmax posteriors of e] (B, E + sum(sizes)),
        s = ``embedding_scale``."""
        scaled = e * self.config.embedding_scale  # x 1.0 is exact: the official input bit for bit
        if not self.config.attribute_sizes:
            return scaled
        logits = e @ self.attribute_weight.t() + self.attribute_bias
        probs = [p.softmax(-1) for p in logits.split(list(self.config.attribute_sizes), dim=-1)]
        return torch.cat([scaled] + probs, dim=-1)

    def set_attribute_heads(self, heads: list[nn.Linear]) -> None:
        """Copy the SEN's factored heads (in ``attribute_sizes`` order) into the frozen buffers.

        Raises:
            ValueError: heads whose sizes differ from ``attribute_sizes``.
        """
        sizes = tuple(h.out_features for h in heads)
        if sizes != tuple(self.config.attribute_sizes):
            raise ValueError(f"attribute heads of sizes {sizes} for a generator built for {self.config.attribute_sizes}")
        with torch.no_grad():
            self.attribute_weight.copy_(torch.cat([h.weight for h in heads]))
            self.attribute_bias.copy_(torch.cat([h.bias for h in heads]))

    def forward(self, e: torch.Tensor, z: torch.Tensor, eps: torch.Tensor | None = None):
        c, mu, logvar = self.ca(self.condition_input(e), eps)
        h = self.init_stage(torch.cat([c, z], dim=1))
        images = [self.to_image[0](h)]
        for stage, head in zip(self.next_stages, self.to_image[1:]):
            h = stage(h, c)
            images.append(head(h))
        return images, mu, logvar


def condition_spread(G: DSG, e: torch.Tensor) -> dict[str, float]:
    """How far the CA's mean mu moves with the speech: a health figure of a GAN run (issue 16).

    Args:
        G: the generator; e: (B, E) speech embeddings of B >= 2 different captions.

    Returns:
        ``mu_spread``: the mean L2 distance between the B captions' mu (B, C), over all pairs;
        ``mu_norm``: mean ||mu||; ``sigma``: mean exp(logvar / 2), the CA's noise on top of mu.
        A ``mu_spread`` far below ``sigma`` means the generator draws from its noise, not the speech
        (the CPU runs of docs/results.md that drew colours at chance had 0.08-1.4 against sigma 0.99).

    Raises:
        ValueError: fewer than 2 embeddings.
    """
    if len(e) < 2:
        raise ValueError(f"condition_spread needs >= 2 embeddings, got {len(e)}")
    with torch.no_grad():
        mu, logvar = G.ca.moments(G.condition_input(e))  # no noise drawn: the training's RNG is untouched
    off = ~torch.eye(len(e), dtype=torch.bool, device=mu.device)
    return {"mu_spread": float(torch.cdist(mu, mu)[off].mean()), "mu_norm": float(mu.norm(dim=1).mean()),
            "sigma": float(torch.exp(0.5 * logvar).mean())}


def init_weights(module: nn.Module) -> None:
    """Orthogonal init of conv and linear weights; BatchNorm weights N(1, 0.02), biases 0 (official code)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.orthogonal_(m.weight, 1.0)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
