"""Speech encoder of the SEN (S2IGAN Sec. 2.1; official ``models.AudioModels.SED``).

log-mel (B, T, F) -> two strided Conv1d + BatchNorm (no nonlinearity, as the official code) ->
2-layer bidirectional GRU over the packed sequence -> self-attention pooling (softmax over time,
per dimension, padded frames masked) -> L2-normalised embedding (B, D).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


@dataclass
class SpeechEncoderConfig:
    """Attributes (paper values): n_mels 40, conv_channels (64, 128), kernel 6, stride 2,
    rnn_hidden 512 per direction, rnn_layers 2, attention_dim 128, embedding_dim 1024 (= 2 x rnn_hidden)."""

    n_mels: int = 40
    conv_channels: tuple[int, int] = (64, 128)
    kernel: int = 6
    stride: int = 2
    rnn_hidden: int = 512
    rnn_layers: int = 2
    attention_dim: int = 128
    embedding_dim: int = 1024


class SpeechEncoder(nn.Module):
    """(B, T, F) log-mels with lengths (B,) in frames -> (B, D) unit-norm embeddings."""

    def __init__(self, config: SpeechEncoderConfig = SpeechEncoderConfig()):
        super().__init__()
        c = self.config = config
        c1, c2 = c.conv_channels
        self.conv = nn.Sequential(
            nn.Conv1d(c.n_mels, c1, c.kernel, c.stride), nn.BatchNorm1d(c1),
            nn.Conv1d(c1, c2, c.kernel, c.stride), nn.BatchNorm1d(c2))
        self.rnn = nn.GRU(c2, c.rnn_hidden, num_layers=c.rnn_layers, batch_first=True, bidirectional=True)
        self.attention = nn.Sequential(nn.Linear(2 * c.rnn_hidden, c.attention_dim), nn.Tanh(),
                                       nn.Linear(c.attention_dim, 2 * c.rnn_hidden))
        self.out = (nn.Linear(2 * c.rnn_hidden, c.embedding_dim) if c.embedding_dim != 2 * c.rnn_hidden
                    else nn.Identity())

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frames after the two convolutions: l <- floor((l - kernel) / stride) + 1, twice."""
        for _ in range(2):
            lengths = torch.div(lengths - self.config.kernel, self.config.stride, rounding_mode="floor") + 1
        return lengths

    @property
    def min_frames(self) -> int:
        k, s = self.config.kernel, self.config.stride
        return k + s * (k - 1)  # the shortest input that leaves one frame after both convolutions

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Args: feats (B, T, F) float, lengths (B,) valid frames. Returns (B, D), L2-normalised.

        Raises:
            ValueError: an utterance shorter than :attr:`min_frames` (about 0.3 s).
        """
        if int(lengths.min()) < self.min_frames:
            raise ValueError(f"utterance of {int(lengths.min())} frames is shorter than the "
                             f"{self.min_frames} frames the speech encoder needs")
        x = self.conv(feats.transpose(1, 2)).transpose(1, 2)  # (B, T', C)
        out_len = self.output_lengths(lengths).clamp(max=x.shape[1])
        packed = pack_padded_sequence(x, out_len.cpu(), batch_first=True, enforce_sorted=False)
        h, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=x.shape[1])  # (B, T', 2H)
        scores = self.attention(h)  # (B, T', 2H)
        pad = torch.arange(h.shape[1], device=h.device)[None, :] >= out_len.to(h.device)[:, None]  # (B, T')
        weights = scores.masked_fill(pad[..., None], float("-inf")).softmax(dim=1)
        pooled = (weights * h).sum(dim=1)  # (B, 2H)
        return F.normalize(self.out(pooled), dim=-1)
