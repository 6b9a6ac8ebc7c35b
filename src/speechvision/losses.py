"""Losses. SEN: matching + distinctive (S2IGAN Sec. 2.1, official ``steps/traintest_SEN``).

Matching loss: cosine similarities of every speech/image pair in the batch times ``gamma`` (10);
off-diagonal pairs of the same class are masked out (-inf), since they are not negatives;
cross-entropy towards the diagonal in both directions (speech->image and image->speech), summed.
Distinctive loss: one shared linear classifier over the training classes, cross-entropy on the
speech and on the image embedding, summed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def matching_loss(speech: torch.Tensor, image: torch.Tensor, labels: torch.Tensor, gamma: float = 10.0) -> torch.Tensor:
    """speech, image (B, D) unit-norm; labels (B,) class ids. Returns a scalar."""
    scores = gamma * speech @ image.T  # (B, B): row = speech query, column = image
    same = labels[:, None] == labels[None, :]
    off_diag = ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    scores = scores.masked_fill(same & off_diag, float("-inf"))
    target = torch.arange(len(labels), device=labels.device)
    return F.cross_entropy(scores, target) + F.cross_entropy(scores.T, target)


def distinctive_loss(classifier: torch.nn.Module, speech: torch.Tensor, image: torch.Tensor,
                     labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(classifier(speech), labels) + F.cross_entropy(classifier(image), labels)


def sen_loss(model, speech: torch.Tensor, image: torch.Tensor, labels: torch.Tensor, cfg) -> dict[str, torch.Tensor]:
    """The weighted SEN objective; ``cfg`` is a :class:`~speechvision.configs.SENConfig`.

    Returns ``{"loss", "matching", "distinctive"}`` (switched-off terms are 0).
    """
    zero = speech.new_zeros(())
    m = matching_loss(speech, image, labels, cfg.gamma) if cfg.matching_loss else zero
    d = distinctive_loss(model.classifier, speech, image, labels) if cfg.distinctive_loss else zero
    return {"loss": cfg.matching_weight * m + cfg.distinctive_weight * d, "matching": m.detach(),
            "distinctive": d.detach()}
