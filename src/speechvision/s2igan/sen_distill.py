"""A robust speech encoder for a trained generator (issue 17): the speech branch of a bundle re-trained on new
voices, phrasings and augmented speech *into the bundle's own embedding space*, so that the bundle's generator
draws from it unchanged and no GAN is retrained.

Not the paper's SEN training (Wang et al. 2020, section 2.1 trains speech and image encoders together with the
matching and distinctive losses); a deviation listed in docs/fidelity.md. The teacher is the bundle's speech
encoder. Its target for a training class (a garment-colour combination) is the class centroid: the mean of the
teacher's embeddings of that class's clean training captions, L2-normalised, recomputed ``refine_rounds`` times
over only the captions whose nearest centroid is their own class (so that voices the teacher mishears do not
pull the target). The student starts from the teacher's weights and learns, on every voice and augmented copy:

* cross-entropy over cosine logits against every centroid at ``temperature`` (its class must be nearest);
* ``cosine_weight`` x (1 - cosine to its own centroid) (it must sit where the generator saw that class).

A student with another front end (``--set audio.frontend=whisper --set sen.speech.n_mels=384``, issue 17
item 6) or another speech-encoder shape cannot start from the teacher's weights: it starts from a fresh
initialisation (seeded by ``seed``) and reads its own features, while the centroids still come from the teacher
on the teacher's own features. The bundle then carries the student's config, so ``generate`` computes the
student's features.

Run folder: ``config.json``, ``log.jsonl``, ``checkpoint.pt`` (``--resume``), ``best.pt`` (best val mean cosine to
the own centroid), and at the end ``bundle.pt``: the best student with the teacher's generator and config.
Randomness of epoch ``e`` comes from ``(seed, e)``, so a resumed run gives the numbers of an uninterrupted one.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from speechvision.core.checkpoint import load_checkpoint
from speechvision.core.run import RunFolder
from speechvision.data.manifest import Dataset, DatasetError, load_dataset
from speechvision.s2igan.config import ConfigError, apply_overrides
from speechvision.s2igan.export import write_bundle
from speechvision.s2igan.pipeline import S2IGANPipeline
from speechvision.s2igan.sen_data import SENInputs, embed_audio
from speechvision.s2igan.speech_encoder import SpeechEncoder


@dataclass
class DistillConfig:
    """Attributes: epochs; batch_size (utterances); lr (Adam); temperature (of the cosine logits);
    cosine_weight; refine_rounds (of the centroids); seed; speech_augment (read the augmented copies made by
    ``speechvision data speech-augment``; the teacher config's ``data.speech_augment`` settings apply)."""

    epochs: int = 6
    batch_size: int = 64
    lr: float = 1e-4
    temperature: float = 0.05
    cosine_weight: float = 1.0
    refine_rounds: int = 2
    seed: int = 0
    speech_augment: bool = True

    def __post_init__(self):
        for name in ("epochs", "batch_size", "refine_rounds"):
            if getattr(self, name) < (0 if name == "refine_rounds" else 1):
                raise ValueError(f"{name} {getattr(self, name)}: must be at least "
                                 f"{0 if name == 'refine_rounds' else 1}")
        if self.lr <= 0 or self.temperature <= 0 or self.cosine_weight < 0:
            raise ValueError("lr and temperature must be > 0 and cosine_weight >= 0")


def captions_of(ds: Dataset, split: str, classes: list[int]) -> tuple[list[str], torch.Tensor]:
    """The audio files of every caption of ``split`` whose class is in ``classes``, and (N,) their class
    indices into ``classes``."""
    index = {c: i for i, c in enumerate(classes)}
    pairs = [(c.audio, index[r.class_id]) for r in ds.split(split) if r.class_id in index for c in r.captions]
    return [a for a, _ in pairs], torch.tensor([y for _, y in pairs], dtype=torch.long)


def class_centroids(emb: torch.Tensor, labels: torch.Tensor, n_classes: int, refine_rounds: int) -> tuple:
    """(K, D) L2-normalised class means of (N, D) ``emb``, each round recomputed over only the rows whose
    nearest centroid (cosine) is their own class; returns (centroids, the fraction of rows kept).

    Raises:
        DatasetError: a class with no row at all.
    """
    counts = torch.bincount(labels, minlength=n_classes)
    if (counts == 0).any():
        raise DatasetError(f"class index {int((counts == 0).nonzero()[0])} has no training caption")
    keep = torch.ones(len(labels), dtype=torch.bool)
    for round_ in range(refine_rounds + 1):
        sums = torch.zeros(n_classes, emb.shape[1]).index_add_(0, labels[keep], emb[keep])
        centroids = F.normalize(sums, dim=-1)
        if round_ == refine_rounds:
            break
        nearest = (emb @ centroids.T).argmax(dim=1) == labels
        # a class the teacher never gets right keeps all its rows rather than none
        for k in range(n_classes):
            rows = labels == k
            if not nearest[rows].any():
                nearest[rows] = True
        keep = nearest
    return centroids, float(keep.float().mean())


def distill_loss(student: torch.Tensor, labels: torch.Tensor, centroids: torch.Tensor,
                 dc: DistillConfig) -> dict[str, torch.Tensor]:
    """Losses of (B, D) unit ``student`` embeddings against (K, D) ``centroids`` for (B,) ``labels``:
    ``classify`` (cross-entropy of cosine / temperature), ``cosine`` (1 - cosine to the own centroid) and
    their sum ``loss`` (cosine weighted by ``cosine_weight``)."""
    cos = student @ centroids.T
    classify = F.cross_entropy(cos / dc.temperature, labels)
    own = 1 - cos.gather(1, labels[:, None]).mean()
    return {"loss": classify + dc.cosine_weight * own, "classify": classify, "cosine": own}


@torch.no_grad()
def agreement(encoder: SpeechEncoder, inputs: SENInputs, audio: list[str], labels: torch.Tensor,
              centroids: torch.Tensor) -> dict[str, float]:
    """``accuracy`` (nearest centroid is the own class) and ``cosine`` (mean cosine to the own centroid) of
    ``encoder`` on clean ``audio`` (eval mode)."""
    was = encoder.training
    encoder.eval()
    emb = torch.from_numpy(embed_audio(encoder, inputs, audio))
    encoder.train(was)
    cos = emb @ centroids.T
    return {"accuracy": round(float((cos.argmax(1) == labels).float().mean()), 4),
            "cosine": round(float(cos.gather(1, labels[:, None]).mean()), 4)}


def distill_speech_encoder(data: str | Path, out: str | Path, teacher: str | Path | None = None,
                           dc: DistillConfig | None = None, *, epochs: int | None = None,
                           overrides: list[str] | tuple[str, ...] = (),
                           resume: bool = False, progress: bool = True,
                           stop_after_epoch: int | None = None) -> dict:
    """Distil the speech encoder of bundle ``teacher`` (None: the bundled model) on ``data`` into run folder
    ``out`` (module docstring); returns the best val ``{"accuracy", "cosine", "epoch"}``. ``dc``: the settings
    (None: the defaults of a new run, the run's own on ``resume``, where a given ``dc`` may differ from them
    only in ``epochs``); ``epochs`` replaces its epochs. A resumed run keeps its own teacher and overrides.
    ``overrides`` (``section.key=value``) apply to the teacher's config, e.g.
    ``data.speech_augment.copies=3``. ``stop_after_epoch`` ends after that epoch as a kill would (for tests).

    Raises:
        DatasetError: no train or val captions, or fewer train captions than one batch.
        CheckpointError: an unreadable teacher, ``resume`` without a run, or a new run where one exists.
        ConfigError: a bad override; on ``resume``, settings other than ``epochs`` or a teacher unlike the run's.
    """
    folder = RunFolder(out, "sen-distill", counter="epoch")
    ckpt = folder.start(resume)
    if ckpt is not None:
        if teacher is not None and str(teacher) != ckpt["teacher"]:
            raise ConfigError(f"{ckpt['path']}: the run distils {ckpt['teacher'] or 'the bundled model'}, "
                              f"not {teacher}")
        dc, overrides, teacher = resumed_settings(ckpt, dc), ckpt["overrides"], ckpt["teacher"]
    dc = replace(dc or DistillConfig(), **({"epochs": epochs} if epochs is not None else {}))
    pipe = S2IGANPipeline.load(teacher)
    cfg = apply_overrides(copy.deepcopy(pipe.config), list(overrides))
    cfg.data.speech_augment.enabled = dc.speech_augment
    ds = load_dataset(data)
    inputs = SENInputs.load(ds, cfg, progress=progress, views=True, images=False)
    classes = sorted({r.class_id for r in ds.split("train")})
    train_audio, train_y = captions_of(ds, "train", classes)
    val_audio, val_y = captions_of(ds, "val", classes)
    if len(train_audio) < dc.batch_size or not val_audio:
        raise DatasetError(f"{ds.root}: {len(train_audio)} train and {len(val_audio)} val captions; the "
                           f"distillation needs one batch ({dc.batch_size}) of train and some val captions")
    fresh = own_front_end(pipe.config, cfg)
    student = new_student(pipe.speech_encoder, cfg, dc.seed, fresh).train()
    opt = torch.optim.Adam(student.parameters(), lr=dc.lr)
    if ckpt is None:
        pipe.speech_encoder.eval()
        teacher_inputs = teacher_features(ds, pipe.config, cfg, progress) if fresh else inputs
        emb = torch.from_numpy(embed_audio(pipe.speech_encoder, teacher_inputs, train_audio))
        centroids, kept = class_centroids(emb, train_y, len(classes), dc.refine_rounds)
        epoch, best = 0, {"cosine": -2.0}
        folder.write_config({"distill": asdict(dc), "overrides": list(overrides), "config": cfg.to_dict(),
                             "teacher": str(teacher or "bundled"), "dataset": str(Path(data).resolve()),
                             "train_classes": classes, "centroid_rows_kept": round(kept, 4),
                             "student": "fresh, its own front end" if fresh else "the teacher's weights"})
        folder.append_log({"epoch": 0, "val": agreement(pipe.speech_encoder, teacher_inputs, val_audio, val_y,
                                                         centroids), "note": "the teacher itself"})
    else:
        centroids, epoch, best = ckpt["centroids"], ckpt["epoch"], ckpt["best"]
        student.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])

    def state() -> dict:
        return {"distill": asdict(dc), "overrides": list(overrides), "teacher": str(teacher) if teacher else None,
                "config": cfg.to_dict(), "epoch": epoch,
                "model": student.state_dict(), "optimizer": opt.state_dict(), "centroids": centroids,
                "best": best, "train_classes": classes}

    for epoch_ in range(epoch, dc.epochs):
        sums, seconds = distill_epoch(student, opt, inputs, train_audio, train_y, centroids, dc, epoch_, progress)
        epoch = epoch_ + 1
        val = agreement(student, inputs, val_audio, val_y, centroids)
        if val["cosine"] > best["cosine"]:
            best = {**val, "epoch": epoch}
            folder.save_checkpoint(state(), "best.pt")
        folder.log({"epoch": epoch, **sums, "val": val, "epoch_seconds": round(seconds, 1)})
        folder.checkpoint(state())
        if progress:
            print(f"epoch {epoch}: loss {sums['loss']:.3f} val accuracy {val['accuracy']:.3f} "
                  f"cosine {val['cosine']:.3f} ({seconds:.0f} s)", flush=True)
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            return best
    if not (Path(out) / "bundle.pt").is_file():
        write_distilled_bundle(pipe, Path(out), cfg, f"{teacher or 'bundled'} + speech encoder distilled on {data}")
    return best


def own_front_end(teacher_cfg, student_cfg) -> bool:
    """Whether the student's audio front end or speech-encoder shape differs from the teacher's, so that it
    cannot start from the teacher's weights or share its features."""
    return teacher_cfg.audio != student_cfg.audio or teacher_cfg.sen.speech != student_cfg.sen.speech


def teacher_features(ds: Dataset, teacher_cfg, student_cfg, progress: bool) -> SENInputs:
    """The teacher's own features of the same files as the student's (the same augmented copies too, so that
    a log-mel cache an earlier distillation of this dataset built is read, not rebuilt)."""
    cfg = copy.deepcopy(student_cfg)
    cfg.audio, cfg.sen.speech = teacher_cfg.audio, teacher_cfg.sen.speech
    return SENInputs.load(ds, cfg, progress=progress, views=True, images=False)


def new_student(teacher: SpeechEncoder, cfg, seed: int, fresh: bool) -> SpeechEncoder:
    """A copy of ``teacher``, or (``fresh``) a new :class:`SpeechEncoder` of ``cfg.sen.speech`` initialised
    from ``seed``."""
    if not fresh:
        return copy.deepcopy(teacher)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SpeechEncoder(cfg.sen.speech)


def write_distilled_bundle(pipe: S2IGANPipeline, out: Path, cfg, source: str) -> Path:
    """``out/bundle.pt``: the student of ``out/best.pt`` (of ``cfg.sen.speech``) with ``pipe``'s generator and
    ``cfg``."""
    student = SpeechEncoder(cfg.sen.speech)
    student.load_state_dict(load_checkpoint(out / "best.pt", "sen-distill")["model"])
    pipe.speech_encoder, pipe.config = student.eval(), cfg
    return write_bundle(pipe, out / "bundle.pt", source)


def resumed_settings(ckpt: dict, given: DistillConfig | None) -> DistillConfig:
    """The run's own settings, with ``given.epochs`` when ``given`` (more or fewer epochs to run).

    Raises:
        ConfigError: ``given`` differs from the run's own in anything but ``epochs`` (names them).
    """
    own = DistillConfig(**ckpt["distill"])
    if given is None:
        return own
    changed = [k for k, v in asdict(given).items() if k != "epochs" and v != getattr(own, k)]
    if changed:
        raise ConfigError(f"{ckpt['path']}: --resume continues with the run's own {', '.join(changed)} "
                          f"({', '.join(f'{k}={getattr(own, k)}' for k in changed)}); only the epochs may change")
    return replace(own, epochs=given.epochs)


def distill_epoch(student: SpeechEncoder, opt: torch.optim.Optimizer, inputs: SENInputs, audio: list[str],
                  labels: torch.Tensor, centroids: torch.Tensor, dc: DistillConfig, epoch: int,
                  progress: bool) -> tuple[dict[str, float], float]:
    """One epoch over the train captions in a ``(seed, epoch)``-seeded order, each in its augmented version of
    the epoch; returns the mean loss terms and the seconds it took."""
    from tqdm import tqdm

    gen = torch.Generator().manual_seed(dc.seed * 100003 + epoch)
    perm = torch.randperm(len(audio), generator=gen)
    steps = len(audio) // dc.batch_size
    sums = {"loss": 0.0, "classify": 0.0, "cosine": 0.0}
    t0 = time.time()
    student.train()
    for s in tqdm(range(steps), desc=f"distil epoch {epoch + 1}/{dc.epochs}", unit="step", disable=not progress,
                  leave=False):
        idx = perm[s * dc.batch_size:(s + 1) * dc.batch_size]
        feats, lengths = inputs.speech_batch([audio[i] for i in idx.tolist()], epoch=epoch)
        losses = distill_loss(student(feats, lengths), labels[idx], centroids, dc)
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        opt.step()
        for k in sums:
            sums[k] += float(losses[k].detach())
    return {k: round(v / max(1, steps), 5) for k, v in sums.items()}, time.time() - t0

