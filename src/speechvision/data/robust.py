"""The robustness test set of spoken-fashion (issue 17): voices, phrasings and rooms the model never trains on.

Built from a spoken-fashion dataset (``source``), whose test and test_unseen images it copies; every split
is for testing only (one caption per image):

* ``flite``: the training grammar spoken by the held-out engine flite (:data:`~speechvision.core.tts.FLITE_VOICES`);
* ``phrasing``: the held-out grammar (:data:`~speechvision.data.captions.HELDOUT_TEMPLATES`, half of the
  nouns from :data:`~speechvision.data.captions.HELDOUT_SYNONYMS`) spoken by the source's non-flite voices;
* ``flite_degraded``, ``phrasing_degraded``: the same audio degraded (:mod:`speechvision.data.degrade`);
* ``test_degraded``, ``test_unseen_degraded``: caption 0 of the source's test and test_unseen images, degraded.

Each degraded copy has its own fixed seed (``seed``, the split and the record), so the set is the same on
every build. Babble noise is the sum of 4 train captions of the source (``cache/babble``); rooms are a bank
of simulated impulse responses (``cache/rirs``). Resumable: a
rerun skips the audio already written (:func:`~speechvision.data.spoken_fashion.begin_build`).

    speechvision data spoken-fashion-robust --from data/sf --out data/sf-robust
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from speechvision.core.audio import load_audio
from speechvision.core.tts import (
    FLITE_VOICES,
    HELDOUT_ENGINES,
    SynthesisJob,
    Voice,
    synthesize_many,
    write_wav_atomic,
)
from speechvision.data.captions import (
    HELDOUT_SYNONYMS,
    HELDOUT_TEMPLATES,
    SYNONYMS,
    TEMPLATES,
    caption,
    heldout_caption,
)
from speechvision.data.manifest import Caption, DatasetError, Record, load_dataset, write_dataset
from speechvision.data.spoken_fashion import audio_relpath, begin_build

DEGRADED = {"flite_degraded": "flite", "phrasing_degraded": "phrasing", "test_degraded": "test",
            "test_unseen_degraded": "test_unseen"}


@dataclass
class RobustConfig:
    """Attributes: images (test images per split; None = all), unseen_images (likewise for test_unseen),
    seed, babble_files (sums of 4 train captions), rooms (simulated room impulse responses), workers
    (synthesis processes)."""

    images: int | None = 500
    unseen_images: int | None = 500
    seed: int = 0
    babble_files: int = 32
    rooms: int = 24
    workers: int | None = None


def _degraded_relpath(split: str, key: str) -> str:
    return f"audio/{split}/{hashlib.sha1(key.encode()).hexdigest()[:16]}.wav"


def _spoken_records(recs, split, text_of, voices, rng, out) -> tuple[list[Record], dict]:
    records, jobs = [], {}
    for r in recs:
        text, voice = text_of(r), voices[int(rng.integers(len(voices)))]
        audio = audio_relpath(text, voice)  # as the source dataset names its audio
        jobs[audio] = SynthesisJob(text, voice, str(out / audio))
        records.append(_record(r, split, Caption(text=text, audio=audio, voice=voice.id)))
    return records, jobs


def _record(r: Record, split: str, cap: Caption) -> Record:
    return Record(id=f"{split}-{r.id}", image=f"images/{r.id}.png", split=split, class_id=r.class_id,
                  class_name=r.class_name, attributes=dict(r.attributes), captions=[cap])


def build_robust(source: str | Path, out: str | Path, config: RobustConfig = RobustConfig(), *,
                 progress: bool = True, force: bool = False) -> Path:
    """Build (or finish) the robustness test set of the spoken-fashion dataset ``source`` in ``out``.

    Raises:
        DatasetError: ``source`` is not a spoken-fashion dataset, or ``out`` holds something else (without ``force``).
        speechvision.core.tts.TTSError: flite or another engine is missing.
    """
    from tqdm import tqdm

    from speechvision.data.degrade import (
        DegradeConfig,
        build_chain,
        degrade,
        make_babble,
        make_rirs,
        stable_seed,
    )

    src, out = load_dataset(source), Path(out)
    if src.meta.get("name") != "spoken-fashion":
        raise DatasetError(f"--from {source}: not a spoken-fashion dataset (its name is {src.meta.get('name')!r})")
    begin_build(out, {"dataset": "spoken-fashion-robust", "source": str(Path(source).resolve()),
                      **{k: v for k, v in asdict(config).items() if k != "workers"}},
                force=force, kind="spoken-fashion robustness set")
    rng = np.random.default_rng(config.seed)
    test, unseen = src.split("test")[: config.images], src.split("test_unseen")[: config.unseen_images]
    (out / "images").mkdir(parents=True, exist_ok=True)
    for r in test + unseen:
        if not (out / f"images/{r.id}.png").is_file():
            shutil.copyfile(src.path(r.image), out / f"images/{r.id}.png")
    own = [Voice.from_dict(v) for v in src.meta["voices"] if v["engine"] not in HELDOUT_ENGINES]

    def train_grammar(r):
        g = r.attributes["garment"]
        t, s = int(rng.integers(len(TEMPLATES))), int(rng.integers(len(SYNONYMS[g])))
        return caption(t, g, s, r.attributes["colour"])

    def heldout_grammar(r):
        g, held = r.attributes["garment"], bool(rng.integers(2))
        n = len((HELDOUT_SYNONYMS if held else SYNONYMS)[g])
        return heldout_caption(int(rng.integers(len(HELDOUT_TEMPLATES))), g, int(rng.integers(n)),
                               r.attributes["colour"], heldout_noun=held)

    flite, jobs_f = _spoken_records(test, "flite", train_grammar, list(FLITE_VOICES), rng, out)
    phrasing, jobs_p = _spoken_records(test, "phrasing", heldout_grammar, own, rng, out)
    synthesize_many(list(jobs_f.values()) + list(jobs_p.values()), workers=config.workers, progress=progress)
    records = flite + phrasing
    clean = {"flite": flite, "phrasing": phrasing,
             "test": [_record(r, "test", r.captions[0]) for r in test],
             "test_unseen": [_record(r, "test_unseen", r.captions[0]) for r in unseen]}
    babble = make_babble([src.path(r.captions[0].audio) for r in src.split("train")], out / "cache" / "babble",
                         config.babble_files, rng)
    chain = build_chain(DegradeConfig(), babble,
                        make_rirs(out / "cache" / "rirs", config.rooms, seed=config.seed))
    todo = [(split, r) for split, base in DEGRADED.items() for r in clean[base]]
    for split, r in tqdm(todo, desc="degrading", unit="utt", disable=not progress):
        cap = r.captions[0]
        audio = _degraded_relpath(split, f"{cap.audio}:{r.id}")
        if not (out / audio).is_file():
            where = out if DEGRADED[split] in ("flite", "phrasing") else src.root  # synthesised here, or the source's
            wave = load_audio(Path(where) / cap.audio, sample_rate_hz=22050)
            write_wav_atomic(out / audio, degrade(wave, 22050, stable_seed(config.seed, split, r.id), chain), 22050)
        records.append(Record(id=f"{split}-{r.id.split('-', 1)[1]}", image=r.image, split=split,
                              class_id=r.class_id, class_name=r.class_name, attributes=dict(r.attributes),
                              captions=[Caption(text=cap.text, audio=audio, voice=cap.voice)]))
    meta = {"name": "spoken-fashion", "robust": True, "classes": src.meta["classes"],
            "attributes": src.meta["attributes"], "palette": src.meta.get("palette"),
            "voices": src.meta["voices"] + [v.to_dict() for v in FLITE_VOICES],
            "heldout_voices": [v.id for v in FLITE_VOICES], "image_size": src.meta.get("image_size"),
            "build": {"source": str(Path(source).resolve()), **asdict(config)}}
    write_dataset(out, meta, records)
    return out

