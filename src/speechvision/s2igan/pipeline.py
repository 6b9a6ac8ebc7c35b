"""The main job: spoken descriptions in, images out.

:class:`S2IGANPipeline` holds the SEN speech encoder and the EMA generator. It loads from a bundle
(``checkpoints/spoken-fashion.pt``: fp16 weights + config, read with ``weights_only=True``) or from a
GAN run folder (whose checkpoint names its SEN). Image ``i`` of a call uses seed ``seed + i`` for
its noise z and its conditioning-augmentation epsilon, so the same seed gives the same image.

Every input utterance first goes through the microphone cleanup of :mod:`speechvision.core.cleanup`
(high-pass against hum, silero-vad trim of leading and trailing non-speech, loudness), unless the
pipeline is loaded with ``cleanup=NO_CLEANUP`` (``--no-cleanup``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from speechvision.core.audio import AudioChecks, AudioError, LogMelConfig, load_audio, speech_features
from speechvision.core.checkpoint import CheckpointError, load_checkpoint
from speechvision.core.cleanup import Cleanup, clean
from speechvision.core.errors import InputError, check_seed_range, one_line
from speechvision.s2igan.config import Config, config_from_dict
from speechvision.s2igan.dsg import DSG
from speechvision.s2igan.speech_encoder import SpeechEncoder

BUNDLED = Path(__file__).resolve().parents[1] / "assets" / "spoken-fashion.pt"


class S2IGANPipeline:
    def __init__(self, speech_encoder: SpeechEncoder, generator: DSG, config: Config, cleanup: Cleanup = Cleanup()):
        # channels_last: 1.3x faster generation on CPU (benchmarks/bench_suite.py, docs/performance.md)
        self.speech_encoder, self.config, self.cleanup = speech_encoder.eval(), config, cleanup
        self.generator = generator.eval().to(memory_format=torch.channels_last)

    @staticmethod
    def load(checkpoint: str | Path | None = None, device: str = "cpu",
             sen_checkpoint: str | Path | None = None, cleanup: Cleanup = Cleanup()) -> "S2IGANPipeline":
        """From a bundle file, a GAN run folder or checkpoint; ``None`` = the bundled spoken-fashion model.
        ``sen_checkpoint`` overrides the SEN a GAN run names (e.g. a run trained on another machine).
        ``cleanup``: the microphone cleanup of every input (:class:`~speechvision.core.cleanup.Cleanup`).

        Raises:
            CheckpointError: missing or incompatible checkpoint: no config, a config that builds no model,
                missing weights, or weights that do not fit the config (strict loading; names the file).
        """
        path = Path(checkpoint) if checkpoint is not None else BUNDLED
        ck = load_checkpoint(path, ("s2igan", "gan"))
        where = ck["path"]
        cfg = config_of(ck)
        if ck["kind"] == "s2igan":
            enc = build_model(SpeechEncoder, cfg.sen.speech, where, "speech encoder")
            gen = build_model(DSG, cfg.gan.generator, where, "generator")
            load_weights(enc, ck, "speech_encoder", "speech encoder")
            load_weights(gen, ck, "generator", "generator")
            return S2IGANPipeline(enc.to(device), gen.to(device), cfg, cleanup)
        from speechvision.s2igan.sen import load_sen

        if not sen_checkpoint and not ck.get("sen_checkpoint"):
            raise CheckpointError(f"{where}: the GAN checkpoint names no SEN; give one with --sen")
        if not sen_checkpoint and not Path(ck["sen_checkpoint"]).exists():
            raise CheckpointError(f"{where}: the SEN it names, {ck['sen_checkpoint']}, does not exist (a relative path "
                                  "is read from the current folder); export a bundle with `speechvision export "
                                  "--gan RUN --sen SEN` and use that")
        sen, sen_cfg, _ = load_sen(sen_checkpoint or ck["sen_checkpoint"])
        enc = sen.speech_encoder
        if "speech_encoder" in ck:  # end-to-end runs train the speech encoder too
            load_weights(enc, ck, "speech_encoder", "speech encoder")
        cfg.sen, cfg.audio = sen_cfg.sen, sen_cfg.audio
        gen = build_model(DSG, cfg.gan.generator, where, "generator")
        load_weights(gen, ck, "G_ema", "EMA generator")
        return S2IGANPipeline(enc.to(device), gen.to(device), cfg, cleanup)

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    def embed(self, wavs: list[str | Path], checks: AudioChecks = AudioChecks(), batch_size: int = 64) -> torch.Tensor:
        """Speech embeddings (B, E) of audio files, in batches; errors as :func:`embed_wavs`."""
        return torch.cat([embed_wavs(self.speech_encoder, wavs[s:s + batch_size], self.config.audio, checks,
                                     self.cleanup)
                          for s in range(0, len(wavs), batch_size)])

    @torch.no_grad()
    def generate(self, embeddings: torch.Tensor, seeds: list[int]) -> list[torch.Tensor]:
        """Images for (B, E) embeddings, one seed per image -> list per stage of (B, 3, S, S) in [-1, 1]."""
        gc = self.config.gan.generator
        for s in {min(seeds), max(seeds)} if seeds else ():
            check_seed_range(s)
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        z = torch.stack([torch.randn(gc.noise_dim, generator=g) for g in gens])
        eps = torch.stack([torch.randn(gc.condition_dim, generator=g) for g in gens])
        images, _, _ = self.generator(embeddings, z.to(self.device), eps.to(self.device))
        return images

    def speech_to_images(self, wavs: list[str | Path], *, seed: int = 0, n_per_speech: int = 1,
                         checks: AudioChecks = AudioChecks(), batch_size: int = 64) -> list[torch.Tensor]:
        """Every wav ``n_per_speech`` times; image ``i`` (wav ``i // n``, sample ``i % n``) has seed ``seed + i``.

        Raises:
            InputError: ``n_per_speech`` below 1, or seeds outside the generator's range (before any work).
            AudioError: as :func:`embed_wavs`.
        """
        if n_per_speech < 1:
            raise InputError(f"n_per_speech {n_per_speech}: give 1 or more images per utterance")
        check_seed_range(seed, len(wavs) * n_per_speech)
        emb = self.embed(wavs, checks).repeat_interleave(n_per_speech, dim=0)
        seeds = [seed + i for i in range(len(emb))]
        outs = [self.generate(emb[s:s + batch_size], seeds[s:s + batch_size]) for s in range(0, len(emb), batch_size)]
        return [torch.cat([o[k] for o in outs]) for k in range(len(outs[0]))]


def config_of(ck: dict) -> Config:
    """The :class:`Config` a loaded checkpoint holds.

    Raises:
        CheckpointError: no config, or one that is not a speechvision config (names the file).
    """
    if not isinstance(ck.get("config"), dict):
        raise CheckpointError(f"{ck['path']}: holds no config; export the bundle or train the run again")
    try:
        return config_from_dict(ck["config"])
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise CheckpointError(f"{ck['path']}: its config is not a speechvision config ({one_line(e)})") from None


def build_model(cls, config, where: str, name: str) -> torch.nn.Module:
    """``cls(config)``; a config that builds no model is a :class:`CheckpointError` naming ``where``."""
    try:
        return cls(config)
    except (TypeError, ValueError, KeyError, RuntimeError) as e:
        raise CheckpointError(f"{where}: its config does not build the {name} ({one_line(e)})") from None


def load_weights(module: torch.nn.Module, ck: dict, key: str, name: str) -> None:
    """Load ``ck[key]`` into ``module`` strictly (fp16 bundles are cast to the module's float type).

    Raises:
        CheckpointError: naming the file: no ``key`` in it, or weights that do not fit the module its config
            builds (the first missing, unexpected or mis-shaped tensor, and how many there are).
    """
    where, state = ck["path"], ck.get(key)
    if not isinstance(state, dict):
        raise CheckpointError(f"{where}: holds no {name} weights ('{key}'); export the bundle again")
    own = module.state_dict()
    foreign = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if foreign:
        raise CheckpointError(f"{where}: the {name} weights hold a non-tensor entry ({foreign[0]}); export the "
                              "bundle again")
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(getattr(state[k], "shape", ())) != tuple(own[k].shape)]
    problems = ([f"{len(missing)} missing, e.g. {missing[0]}"] if missing else []) + (
        [f"{len(unexpected)} unexpected, e.g. {unexpected[0]}"] if unexpected else []) + (
        [f"{len(shapes)} of another shape, e.g. {shapes[0]} {tuple(state[shapes[0]].shape)} where the config "
         f"wants {tuple(own[shapes[0]].shape)}"] if shapes else [])
    if problems:
        raise CheckpointError(f"{where}: the {name} weights do not fit its config ({'; '.join(problems)}); the "
                              "config and the weights come from different models")
    module.load_state_dict({k: v.to(own[k].dtype) if v.is_floating_point() else v for k, v in state.items()})


def pad_to(wave: np.ndarray, samples: int) -> np.ndarray:
    """``wave`` centred in silence to at least ``samples`` samples (a short word left by the silence trim, or
    a front end whose encoder needs a longer input than the log-mel one); longer waves are unchanged."""
    missing = samples - len(wave)
    if missing <= 0:
        return wave
    return np.pad(wave, (missing // 2, missing - missing // 2))


@torch.no_grad()
def embed_wavs(encoder: SpeechEncoder, wavs: list[str | Path], audio: LogMelConfig,
               checks: AudioChecks = AudioChecks(), cleanup: Cleanup = Cleanup()) -> torch.Tensor:
    """Audio files -> (B, E) embeddings with ``encoder`` (eval mode; padding does not change them), each
    waveform cleaned by ``cleanup`` before its (T, F) front-end features (log-mel or Whisper).

    Raises:
        AudioError: unreadable, silent, too long or too short audio (names the file).
    """
    sr = audio.input_rate_hz
    shortest_s = (encoder.min_frames + 2) / audio.frames_per_s  # the encoder's shortest input, and a margin
    feats = [torch.from_numpy(speech_features(pad_to(clean(load_audio(w, sample_rate_hz=sr, checks=checks), sr,
                                                           cleanup), int(shortest_s * sr)), audio))
             for w in wavs]
    for w, f in zip(wavs, feats):
        if len(f) < encoder.min_frames:
            raise AudioError(f"{w}: too short for the speech encoder (needs {shortest_s:.2f} s of audio)")
    device = next(encoder.parameters()).device
    lengths = torch.tensor([len(f) for f in feats])
    batch = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
    return encoder.eval()(batch.to(device), lengths)
