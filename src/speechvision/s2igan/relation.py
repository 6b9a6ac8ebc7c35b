"""Relation supervisor (RS) of S2IGAN (Sec. 2.3; official ``MD_NET``).

Two image embeddings (B, D) each, from the SEN's frozen image encoder -> concatenated (B, 2D) ->
Linear(2D -> 128) + BN + ReLU + Linear(128 -> 4) -> relation logits (B, 4).
Labels (official code): 0 = (real, same real), 1 = (real, other real of the same class) and
(real, generated from its caption), 2 = (real, other class); 3 is unused.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

SAME, SIMILAR, DIFFERENT = 0, 1, 2


@dataclass
class RelationConfig:
    """Attributes: embedding_dim (D = 1024), hidden (128), classes (4)."""

    embedding_dim: int = 1024
    hidden: int = 128
    classes: int = 4


class RelationSupervisor(nn.Module):
    def __init__(self, config: RelationConfig = RelationConfig()):
        super().__init__()
        self.config = config
        self.net = nn.Sequential(nn.Linear(2 * config.embedding_dim, config.hidden), nn.BatchNorm1d(config.hidden),
                                 nn.ReLU(inplace=True), nn.Linear(config.hidden, config.classes))

    def forward(self, anchor: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        """anchor, other (B, D) -> logits (B, 4)."""
        return self.net(torch.cat([anchor, other], dim=1))
