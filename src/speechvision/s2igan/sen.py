"""The speech embedding network (SEN): speech encoder + image encoder + the shared class head.

Source: S2IGAN Sec. 2.1 and the official ``steps/traintest_SEN``: both encoders map into one
D-dimensional unit sphere; a single linear classifier over the training classes is applied to both
embeddings (the distinctive loss).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from speechvision.core.checkpoint import load_checkpoint
from speechvision.s2igan.config import Config, config_from_dict
from speechvision.s2igan.image_encoder import ImageEncoder, ImageEncoderConfig, SmallCNNEncoder
from speechvision.s2igan.speech_encoder import SpeechEncoder, SpeechEncoderConfig


class SEN(nn.Module):
    """Args: speech/image configs, ``n_classes`` (training classes of the distinctive loss) and
    ``attribute_sizes`` ({attribute: number of values}: the factored heads of ``sen.factored``, or None).

    ``image_encoder`` takes (B, 2048) cached Inception pool features when ``image.kind == 'inception'``
    and (B, 3, H, W) images in [-1, 1] when ``image.kind == 'cnn'``.
    """

    def __init__(self, speech: SpeechEncoderConfig, image: ImageEncoderConfig, n_classes: int,
                 attribute_sizes: dict[str, int] | None = None):
        super().__init__()
        if image.embedding_dim != speech.embedding_dim:
            raise ValueError(f"speech and image embedding sizes differ ({speech.embedding_dim} vs {image.embedding_dim})")
        self.speech_encoder = SpeechEncoder(speech)
        self.image_encoder = ImageEncoder(image) if image.kind == "inception" else SmallCNNEncoder(image)
        self.classifier = nn.Linear(speech.embedding_dim, n_classes)
        if attribute_sizes:  # absent otherwise, so earlier checkpoints load strictly
            self.attribute_heads = nn.ModuleDict({k: nn.Linear(speech.embedding_dim, n)
                                                  for k, n in attribute_sizes.items()})

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor, image_inputs: torch.Tensor):
        """Returns (speech (B, D), image (B, D)) unit-norm embeddings."""
        return self.speech_encoder(feats, lengths), self.image_encoder(image_inputs)


def build_sen(cfg: Config, n_classes: int, attributes: dict[str, list[str]] | None = None) -> SEN:
    """The SEN of ``cfg`` over ``n_classes``, with a head per attribute in ``attributes`` ({name: values})."""
    return SEN(cfg.sen.speech, cfg.sen.image, n_classes, {k: len(v) for k, v in (attributes or {}).items()})


def load_sen(checkpoint: str | Path) -> tuple[SEN, Config, dict]:
    """Rebuild a SEN from a checkpoint (run folder or file): (model in eval mode, config, checkpoint)."""
    ckpt = load_checkpoint(checkpoint, "sen")
    cfg = config_from_dict(ckpt["config"])
    model = build_sen(cfg, len(ckpt["train_classes"]), ckpt.get("attributes"))
    model.load_state_dict(ckpt["model"])
    return model.eval(), cfg, ckpt
