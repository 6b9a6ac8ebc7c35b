"""Typed configuration: presets per dataset, overridable with ``--set section.key=value``.

A resolved config is written as JSON into every run directory (``config.json``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path

from speechvision.core.audio import LogMelConfig
from speechvision.core.errors import MAX_SEED, SpeechvisionError
from speechvision.s2igan.discriminator import DiscriminatorConfig
from speechvision.s2igan.dsg import DSGConfig
from speechvision.s2igan.image_encoder import ImageEncoderConfig
from speechvision.s2igan.relation import RelationConfig
from speechvision.s2igan.speech_encoder import SpeechEncoderConfig


class ConfigError(SpeechvisionError, ValueError):
    """An unknown preset, an unknown key or a value of the wrong type."""


@dataclass
class SENConfig:
    """Speech embedding network and its training (S2IGAN Sec. 2.1; official ``cfg/SEN``).

    Attributes:
        speech, image: the two encoders' configs (paper sizes by default).
        gamma: scale of cosine similarities in the matching loss (GAMMA3 = 10).
        matching_loss / distinctive_loss: switches for the paper's ablation; weights 1.0 each.
        epochs, batch_size, lr, betas, weight_decay: Adam setting of the official code.
        lr_step_epochs, lr_gamma: lr x ``lr_gamma`` every ``lr_step_epochs`` epochs.
        eval_every_epochs: validation (model selection on the val split, never test) period.
        seed: random seed (official: 200).
        factored: comma-separated dataset attributes (e.g. ``garment,colour``) that get distinctive heads of
            their own beside the class head, on both embeddings (issue 17: an unseen garment-colour
            combination should embed where its garment and its colour say; not in the paper: "" = off).
        factored_weight: weight of the summed attribute terms.
    """

    speech: SpeechEncoderConfig = field(default_factory=SpeechEncoderConfig)
    image: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)
    gamma: float = 10.0
    matching_loss: bool = True
    distinctive_loss: bool = True
    matching_weight: float = 1.0
    distinctive_weight: float = 1.0
    epochs: int = 150
    batch_size: int = 128
    lr: float = 1e-3
    betas: tuple[float, float] = (0.95, 0.999)
    weight_decay: float = 1e-3
    lr_step_epochs: int = 50
    lr_gamma: float = 0.1
    eval_every_epochs: int = 5
    seed: int = 200
    factored: str = ""
    factored_weight: float = 1.0


@dataclass
class GANConfig:
    """The generator stage of S2IGAN (Sec. 2.2-2.3; official ``cfg/train_bird.yml``).

    Attributes:
        generator, discriminator, relation: model configs (paper sizes by default).
        batch_size: 24 in the paper (2 GPUs).
        iterations: total generator updates (paper: 600 epochs of CUB = 220,800 at batch 24).
        lr_g, lr_d, lr_rs, betas: Adam for G, every D and the RS (2e-4, (0.5, 0.999)).
        kl_weight: weight of the CA KL term (2.0); uncond_weight: unconditional D/G terms (1.0);
        rs_weight: RS term of the generator (1.0, last stage only).
        rs: use the relation supervisor (False = "w/o RS"); end_to_end: train the SEN speech
            encoder jointly instead of freezing it; sen_pretrained: start it from the SEN run's weights
            (False, with end_to_end: from a fresh seeded initialisation, the paper's "end-to-end" row
            without a pretrained SEN; the SEN run then only gives the architecture and the image head).
        rs_image_size_px: Inception input side of the RS's image encoder (299: the paper; 75..299).
        rs_bf16: the RS's Inception pass under bfloat16 autocast (paper: off).
        rs_every: the RS phases every k-th step, its generator term with ``rs_weight`` there (paper: 1).
            The three are the CPU levers of :mod:`speechvision.s2igan.relation_encoder` (docs/fidelity.md).
        attribute_condition: the generator's CA also reads the SEN's attribute posteriors (needs a SEN
            trained with ``sen.factored``; issue 17's compositional conditioning, not in the paper; see
            :mod:`speechvision.s2igan.dsg`). Sets ``generator.attribute_sizes`` from the SEN at training.
        ema_decay: EMA of the generator weights used for generation (0.999).
        snapshot_every, checkpoint_every, log_every: in iterations.
        seed: random seed; every step's randomness is derived from (seed, step).
    """

    generator: DSGConfig = field(default_factory=DSGConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    relation: RelationConfig = field(default_factory=RelationConfig)
    batch_size: int = 24
    iterations: int = 220800
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    lr_rs: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    kl_weight: float = 2.0
    uncond_weight: float = 1.0
    rs_weight: float = 1.0
    rs: bool = True
    rs_image_size_px: int = 299
    rs_bf16: bool = False
    rs_every: int = 1
    end_to_end: bool = False
    sen_pretrained: bool = True
    attribute_condition: bool = False
    ema_decay: float = 0.999
    snapshot_every: int = 2000
    checkpoint_every: int = 1000
    log_every: int = 100
    seed: int = 100


@dataclass
class AugmentConfig:
    """Real-image augmentation of the SEN's image encoder and of the GAN's real and wrong images.

    The official S2IGAN code, every epoch: resize to 76/64 of the final size, random crop back to the
    final size, random horizontal flip (``transforms.Resize(int(imsize * 76 / 64))``, ``RandomCrop``,
    ``RandomHorizontalFlip``). On CPU the Inception features of ``views`` augmented views per image are
    cached once and each epoch draws one view per image (seeded).

    Attributes:
        enabled: augment at all (the paper presets: on; spoken-fashion: off unless measured better).
        resize_ratio: resize factor before the crop (76 / 64).
        hflip: random horizontal flips.
        max_shift_px: instead of the resize+crop, a random shift of at most this many pixels (0 = the
            official resize+crop; the spoken-fashion option).
        views: K cached augmented views per image (view 0 is the plain image).
        seed: seeds the views and the per-epoch draws.
        on_the_fly: the GAN draws a fresh crop and flip of every real, wrong, similar and different image each
            epoch and encodes the RS's real embeddings as batches are drawn, as the official code does (for a
            GPU: on 2 CPU cores the Inception pass per step is slow). The SEN, which trains on the CPU, still
            reads the K cached views.
    """

    enabled: bool = False
    resize_ratio: float = 76 / 64
    hflip: bool = True
    max_shift_px: int = 0
    views: int = 4
    seed: int = 0
    on_the_fly: bool = False


@dataclass
class SpeechAugmentConfig:
    """Augmented training speech for the SEN (issue 17; not in the paper): each epoch shows each train caption
    clean with probability ``p_clean``, else one of its ``copies`` augmented copies
    (:mod:`speechvision.data.speech_augment`, made once by ``speechvision data speech-augment``).

    Attributes: enabled, copies, p_clean, seed (the per-epoch draw).
    """

    enabled: bool = False
    copies: int = 3
    p_clean: float = 0.25
    seed: int = 0


@dataclass
class DataConfig:
    """Dataset-level settings.

    Attributes:
        name: dataset kind (spoken-fashion, cub, oxford, flickr8k).
        image_size_px: side of the largest generated image (64 for spoken-fashion, 256 for the paper).
        captions_per_image: 10 (CUB, Oxford, spoken-fashion) or 5 (Flickr8k).
        class_relevance: retrieval relevance is "same class" (False for Flickr8k: each image its own class).
        augment: real-image augmentation (:class:`AugmentConfig`).
        speech_augment: augmented training speech for the SEN (:class:`SpeechAugmentConfig`).
    """

    name: str = "spoken-fashion"
    image_size_px: int = 64
    captions_per_image: int = 10
    class_relevance: bool = True
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    speech_augment: SpeechAugmentConfig = field(default_factory=SpeechAugmentConfig)


@dataclass
class Config:
    preset: str = "spoken-fashion"
    data: DataConfig = field(default_factory=DataConfig)
    audio: LogMelConfig = field(default_factory=LogMelConfig)
    sen: SENConfig = field(default_factory=SENConfig)
    gan: GANConfig = field(default_factory=GANConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))


PRESETS: dict[str, typing.Callable[[], Config]] = {
    # spoken-fashion: a smaller GRU and fewer epochs so the SEN trains on 2 CPU cores in < 30 minutes;
    # a 16/32/64 generator with fewer channels; the RS's Inception at 96 px every 2nd step, which costs
    # 1.35x a step without the RS instead of 9.8x (benchmarks/bench_rs_cost.py, docs/fidelity.md).
    "spoken-fashion": lambda: Config(
        preset="spoken-fashion",
        sen=SENConfig(speech=SpeechEncoderConfig(rnn_hidden=256), epochs=8, lr_step_epochs=6, eval_every_epochs=2),
        gan=GANConfig(generator=DSGConfig(ngf=32, base_size_px=16), discriminator=DiscriminatorConfig(ndf=32),
                      batch_size=32, iterations=20000, snapshot_every=1000, checkpoint_every=500,
                      rs_image_size_px=96, rs_every=2)),
    # the paper presets: the official real-image augmentation (resize 76/64, random crop, flip)
    "cub": lambda: Config(preset="cub", data=DataConfig(name="cub", image_size_px=256,
                                                        augment=AugmentConfig(enabled=True))),
    "oxford": lambda: Config(preset="oxford", data=DataConfig(name="oxford", image_size_px=256,
                                                              augment=AugmentConfig(enabled=True))),
    "flickr8k": lambda: Config(preset="flickr8k",
                               data=DataConfig(name="flickr8k", image_size_px=256, captions_per_image=5,
                                               class_relevance=False, augment=AugmentConfig(enabled=True)),
                               sen=SENConfig(lr=1e-4, batch_size=32, epochs=120, distinctive_loss=False)),
}


def preset(name: str) -> Config:
    try:
        return PRESETS[name]()
    except KeyError:
        raise ConfigError(f"unknown preset '{name}' (choose from {', '.join(PRESETS)})") from None


def _coerce(value: str, typ, key: str):
    origin = typing.get_origin(typ)
    if typ is bool:
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key}: expected true/false, got '{value}'")
    if origin is tuple:
        parts = [p for p in value.strip("()[] ").split(",") if p.strip()]
        args = typing.get_args(typ)
        if len(parts) != len(args):
            raise ConfigError(f"{key}: expected {len(args)} comma-separated values, got '{value}'")
        return tuple(_coerce(p.strip(), a, key) for a, p in zip(args, parts))
    try:
        return typ(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: cannot read '{value}' as {getattr(typ, '__name__', typ)}") from None


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    """Apply ``section.key=value`` strings (e.g. ``sen.epochs=5``) in place and return ``cfg``."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}': expected section.key=value")
        key, value = item.split("=", 1)
        obj, parts, parent = cfg, key.strip().split("."), None
        for p in parts[:-1]:
            if not dataclasses.is_dataclass(obj) or not hasattr(obj, p):
                raise ConfigError(f"override '{item}': unknown section '{p}'")
            parent, obj = obj, getattr(obj, p)
        fields = {f.name: f for f in dataclasses.fields(obj)} if dataclasses.is_dataclass(obj) else {}
        if parts[-1] not in fields:
            raise ConfigError(f"override '{item}': unknown key '{parts[-1]}' (known: {', '.join(fields)})")
        hints = typing.get_type_hints(type(obj))
        new = _coerce(value.strip(), hints[parts[-1]], key)
        if getattr(type(obj), "__dataclass_params__").frozen:
            if parent is None or getattr(type(parent), "__dataclass_params__").frozen:
                raise ConfigError(f"override '{item}': section is read-only")
            setattr(parent, parts[-2], dataclasses.replace(obj, **{parts[-1]: new}))  # a frozen section: a new copy
        else:
            setattr(obj, parts[-1], new)
    check_config(cfg)
    check_consistency(cfg)
    return cfg


def check_consistency(cfg) -> None:
    """Settings that must agree across sections.

    Raises:
        ConfigError: an unknown ``audio.frontend``, or ``sen.speech.n_mels`` other than the front end's
            feature width (40 log-mel bands by default; 384 for the Whisper encoder).
    """
    from speechvision.core.audio import FRONTENDS

    audio, speech = getattr(cfg, "audio", None), getattr(getattr(cfg, "sen", None), "speech", None)
    if audio is None or speech is None:
        return
    if audio.frontend not in FRONTENDS:
        raise ConfigError(f"audio.frontend={audio.frontend}: choose one of {', '.join(FRONTENDS)}")
    gan = getattr(cfg, "gan", None)
    if gan is not None and gan.attribute_condition and gan.end_to_end:
        raise ConfigError("gan.attribute_condition=true does not go with gan.end_to_end=true (the generator's copy "
                          "of the SEN's attribute heads is frozen while the speech encoder would change)")
    if gan is not None and not gan.sen_pretrained and not gan.end_to_end:
        raise ConfigError("gan.sen_pretrained=false needs gan.end_to_end=true (a fresh speech encoder that is not "
                          "trained would give the generator noise)")
    if speech.n_mels != audio.feature_dim:
        raise ConfigError(f"sen.speech.n_mels={speech.n_mels} but audio.frontend={audio.frontend} gives "
                          f"{audio.feature_dim} features per frame; set sen.speech.n_mels={audio.feature_dim}")


# Numbers that may be 0 (weights, seeds, a shift); every other number of a config must be above 0.
MAY_BE_ZERO = ("matching_weight", "distinctive_weight", "factored_weight", "weight_decay", "kl_weight",
               "uncond_weight", "rs_weight",
               "max_shift_px", "seed")
UNIT_INTERVAL = ("betas", "ema_decay", "p_clean")  # in [0, 1)
AT_LEAST_ONE = ("resize_ratio",)  # resize, then crop back: never below the final size


def _check_number(key: str, name: str, value, shown) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if not math.isfinite(value):
        raise ConfigError(f"{key}={shown}: not a finite number")
    if name in UNIT_INTERVAL:
        ok, want = 0 <= value < 1, "in [0, 1)"
    elif name in AT_LEAST_ONE:
        ok, want = value >= 1, "at least 1"
    elif name == "rs_image_size_px":  # Inception-v3's smallest input .. its native side
        ok, want = 75 <= value <= 299, "in 75..299"
    elif name == "seed":
        ok, want = 0 <= value <= MAX_SEED, f"in 0..{MAX_SEED}"
    elif name in MAY_BE_ZERO:
        ok, want = value >= 0, "0 or more"
    else:
        ok, want = value > 0, "above 0"
    if not ok:
        raise ConfigError(f"{key}={shown}: must be {want}" + (" (each value)" if shown != value else ""))


def check_config(cfg, prefix: str = "") -> None:
    """Check every number of a config (a dataclass, walked recursively): finite; counts, sizes, epochs,
    iterations, batch sizes, periods and learning rates above 0; weights and seeds 0 or more; ``betas`` and
    ``ema_decay`` in [0, 1).

    Raises:
        ConfigError: naming the first bad key (``section.key=value``).
    """
    for f in dataclasses.fields(cfg):
        value, key = getattr(cfg, f.name), f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            check_config(value, f"{key}.")
        shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
        for v in value if isinstance(value, tuple) else (value,):
            _check_number(key, f.name, v, shown)


def _from_dict(cls, d: dict):
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in d:
            continue
        v, t = d[f.name], hints[f.name]
        if dataclasses.is_dataclass(t):
            v = _from_dict(t, v)
        elif typing.get_origin(t) is tuple:
            v = tuple(v)
        kwargs[f.name] = v
    return cls(**kwargs)


def config_from_dict(d: dict) -> Config:
    """Rebuild a :class:`Config` from its JSON form (as stored in runs and checkpoints)."""
    return _from_dict(Config, d)
