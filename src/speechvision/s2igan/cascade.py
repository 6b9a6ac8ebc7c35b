"""The cascade baseline of the main job (issue 17, item 7): speech -> text -> keywords -> canonical speech -> image.

1. the offline Whisper ASR (:func:`speechvision.core.asr.transcribe`) writes down what was said;
2. a keyword lookup finds the garment and the colour in the transcript: the training grammar's colour words
   and garment nouns (:data:`~speechvision.data.captions.SYNONYMS`, singular and plural; never the held-out
   synonyms), the last mention of each;
3. the canonical caption ("a red sneaker", the first grammar template) is spoken by the default Piper voice;
4. the same generator draws it (:class:`~speechvision.s2igan.pipeline.S2IGANPipeline`).

A transcript without a garment or colour word takes the most common one of the grammar ("t-shirt", "black"):
the cascade always draws something, as the direct model does. :class:`CascadePipeline` has the
``speech_to_images`` of the direct pipeline, so every evaluation runs on either.
"""

from __future__ import annotations

import re
import tempfile
from functools import lru_cache
from pathlib import Path

import torch

from speechvision.core.audio import AudioChecks, load_audio
from speechvision.data.captions import COLOURS, FASHION_CLASSES, SYNONYMS, caption, plural


@lru_cache(maxsize=1)
def keyword_table() -> tuple[tuple[str, str], ...]:
    """(spoken word(s), garment class) from the training grammar's nouns in the singular and the plural,
    longest first (so "ankle boot" is matched before "boot"); built once."""
    table = {}
    for garment, nouns in SYNONYMS.items():
        for noun in nouns:
            table[noun.text] = table[plural(noun)] = garment
    return tuple(sorted(table.items(), key=lambda kv: -len(kv[0])))


def _norm(text: str) -> str:
    return " " + re.sub(r"[^a-z ]+", " ", text.lower().replace("-", " ")).strip() + " "


def keywords(transcript: str) -> tuple[str | None, str | None]:
    """(garment, colour) named last in ``transcript`` (longest noun first: "ankle boot" before "boot"), or None."""
    text = _norm(transcript)
    found = []
    for words, garment in keyword_table():
        for m in re.finditer(r"(?<= )" + re.escape(_norm(words).strip()) + r"(?= )", text):
            if not any(s <= m.start() < e for s, e, _ in found):
                found.append((m.start(), m.end(), garment))
    garment = max(found)[2] if found else None
    colours = [(m.start(), c) for c in COLOURS for m in re.finditer(rf"(?<= ){c}(?= )", text)]
    return garment, (max(colours)[1] if colours else None)


class CascadePipeline:
    """ASR -> keywords -> canonical caption by the default voice -> ``pipe``'s generator."""

    def __init__(self, pipe):
        self.pipe, self.config = pipe, pipe.config
        self._tmp = tempfile.TemporaryDirectory()
        self.transcripts: list[str] = []

    def canonical_wav(self, garment: str, colour: str) -> Path:
        """The canonical caption of (garment, colour), spoken once by the default voice and kept."""
        from speechvision.core.tts import DEFAULT_VOICE, synthesize, write_wav_atomic

        path = Path(self._tmp.name) / f"{garment.replace(' ', '_')}-{colour}.wav"
        if not path.is_file():
            wave, rate = synthesize(caption(0, garment, 0, colour), DEFAULT_VOICE)
            write_wav_atomic(path, wave, rate)
        return path

    def speech_to_images(self, wavs: list[str | Path], *, seed: int = 0, n_per_speech: int = 1,
                         checks: AudioChecks = AudioChecks(), batch_size: int = 64) -> list[torch.Tensor]:
        """As :meth:`S2IGANPipeline.speech_to_images`, through the cascade."""
        from speechvision.core.asr import transcribe

        canon = []
        for w in wavs:
            text = transcribe(load_audio(w, sample_rate_hz=16000, checks=checks), 16000)
            self.transcripts.append(text)
            garment, colour = keywords(text)
            canon.append(self.canonical_wav(garment or FASHION_CLASSES[0], colour or "black"))
        return self.pipe.speech_to_images(canon, seed=seed, n_per_speech=n_per_speech, checks=checks,
                                          batch_size=batch_size)
