"""The main job: spoken descriptions in, images out.

:class:`S2IGANPipeline` holds the SEN speech encoder and the EMA generator. It loads from a bundle
(``checkpoints/spoken-fashion.pt``: fp16 weights + config, read with ``weights_only=True``) or from a
GAN run folder (whose checkpoint names its SEN). Image ``i`` of a call uses seed ``seed + i`` for
its noise z and its conditioning-augmentation epsilon, so the same seed gives the same image.
"""

from __future__ import annotations

from pathlib import Path

import torch

from speechvision.core.audio import AudioChecks, AudioError, LogMelConfig, file_log_mel
from speechvision.core.checkpoint import load_checkpoint
from speechvision.s2igan.config import Config, config_from_dict
from speechvision.s2igan.dsg import DSG
from speechvision.s2igan.speech_encoder import SpeechEncoder

BUNDLED = Path(__file__).resolve().parents[1] / "assets" / "spoken-fashion.pt"


class S2IGANPipeline:
    def __init__(self, speech_encoder: SpeechEncoder, generator: DSG, config: Config):
        # channels_last: 1.3x faster generation on CPU (benchmarks/bench_suite.py, docs/performance.md)
        self.speech_encoder, self.config = speech_encoder.eval(), config
        self.generator = generator.eval().to(memory_format=torch.channels_last)

    @staticmethod
    def load(checkpoint: str | Path | None = None, device: str = "cpu",
             sen_checkpoint: str | Path | None = None) -> "S2IGANPipeline":
        """From a bundle file, a GAN run folder or checkpoint; ``None`` = the bundled spoken-fashion model.
        ``sen_checkpoint`` overrides the SEN a GAN run names (e.g. a run trained on another machine).

        Raises:
            CheckpointError: missing or incompatible checkpoint.
        """
        path = Path(checkpoint) if checkpoint is not None else BUNDLED
        ck = load_checkpoint(path, ("s2igan", "gan"))
        cfg = config_from_dict(ck["config"])
        if ck["kind"] == "s2igan":
            enc, gen = SpeechEncoder(cfg.sen.speech), DSG(cfg.gan.generator)
            enc.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ck["speech_encoder"].items()})
            gen.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ck["generator"].items()})
            return S2IGANPipeline(enc.to(device), gen.to(device), cfg)
        from speechvision.s2igan.sen import load_sen

        sen, sen_cfg, _ = load_sen(sen_checkpoint or ck["sen_checkpoint"])
        enc = sen.speech_encoder
        if "speech_encoder" in ck:  # end-to-end runs train the speech encoder too
            enc.load_state_dict(ck["speech_encoder"])
        cfg.sen, cfg.audio = sen_cfg.sen, sen_cfg.audio
        gen = DSG(cfg.gan.generator)
        gen.load_state_dict(ck["G_ema"])
        return S2IGANPipeline(enc.to(device), gen.to(device), cfg)

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    def embed(self, wavs: list[str | Path], checks: AudioChecks = AudioChecks(), batch_size: int = 64) -> torch.Tensor:
        """Speech embeddings (B, E) of audio files, in batches; errors as :func:`embed_wavs`."""
        return torch.cat([embed_wavs(self.speech_encoder, wavs[s:s + batch_size], self.config.audio, checks)
                          for s in range(0, len(wavs), batch_size)])

    @torch.no_grad()
    def generate(self, embeddings: torch.Tensor, seeds: list[int]) -> list[torch.Tensor]:
        """Images for (B, E) embeddings, one seed per image -> list per stage of (B, 3, S, S) in [-1, 1]."""
        gc = self.config.gan.generator
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        z = torch.stack([torch.randn(gc.noise_dim, generator=g) for g in gens])
        eps = torch.stack([torch.randn(gc.condition_dim, generator=g) for g in gens])
        images, _, _ = self.generator(embeddings, z.to(self.device), eps.to(self.device))
        return images

    def speech_to_images(self, wavs: list[str | Path], *, seed: int = 0, n_per_speech: int = 1,
                         checks: AudioChecks = AudioChecks(), batch_size: int = 64) -> list[torch.Tensor]:
        """Every wav ``n_per_speech`` times; image ``i`` (wav ``i // n``, sample ``i % n``) has seed ``seed + i``."""
        emb = self.embed(wavs, checks).repeat_interleave(n_per_speech, dim=0)
        seeds = [seed + i for i in range(len(emb))]
        outs = [self.generate(emb[s:s + batch_size], seeds[s:s + batch_size]) for s in range(0, len(emb), batch_size)]
        return [torch.cat([o[k] for o in outs]) for k in range(len(outs[0]))]


@torch.no_grad()
def embed_wavs(encoder: SpeechEncoder, wavs: list[str | Path], audio: LogMelConfig,
               checks: AudioChecks = AudioChecks()) -> torch.Tensor:
    """Audio files -> (B, E) embeddings with ``encoder`` (eval mode; padding does not change them).

    Raises:
        AudioError: unreadable, silent, too long or too short audio (names the file).
    """
    feats = [torch.from_numpy(file_log_mel(w, audio, checks)) for w in wavs]
    for w, f in zip(wavs, feats):
        if len(f) < encoder.min_frames:
            raise AudioError(f"{w}: too short for the speech encoder (needs about 0.3 s of speech)")
    device = next(encoder.parameters()).device
    lengths = torch.tensor([len(f) for f in feats])
    batch = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
    return encoder.eval()(batch.to(device), lengths)
