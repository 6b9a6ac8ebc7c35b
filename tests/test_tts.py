import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import needs_espeak, needs_flite

from speechvision.core.tts import (
    ALL_VOICES,
    DEFAULT_VOICE,
    HELDOUT_VOICES,
    TRAIN_VOICES,
    SynthesisJob,
    TTSError,
    Voice,
    synthesize,
    synthesize_many,
)


def test_voice_spec_round_trip_and_pools():
    for v in ALL_VOICES.values():
        assert Voice.from_dict(v.to_dict()) == v
    assert not {v.id for v in TRAIN_VOICES} & {v.id for v in HELDOUT_VOICES}


def test_piper_synthesis():
    wave, rate = synthesize("a blue bag", DEFAULT_VOICE)
    assert rate == 22050 and wave.dtype == np.float32 and 0.3 < len(wave) / rate < 5
    slow, _ = synthesize("a blue bag", Voice("slow", "piper", "en_US-joe-medium", {"length_scale": 1.5}))
    assert len(slow) > 1.2 * len(wave)  # length_scale really changes the duration


def test_pool_workers_run_piper_on_one_thread(monkeypatch):
    import speechvision.core.tts as tts

    default, _ = synthesize("a red coat", DEFAULT_VOICE)
    monkeypatch.setattr(tts, "_PIPER_THREADS", None)
    tts._piper_voice.cache_clear()  # a pool process starts with no voice loaded
    try:
        tts._one_thread_per_worker()  # what each process of synthesize_many's pool runs first
        assert tts._piper_voice("en_US-joe-medium").session.get_session_options().intra_op_num_threads == 1
        one_thread, _ = synthesize("a red coat", DEFAULT_VOICE)
    finally:
        tts._piper_voice.cache_clear()
    # Piper samples its noise, so the two renderings differ; the one-thread session still says the same thing
    assert 0.8 < len(one_thread) / len(default) < 1.25 and np.abs(one_thread).max() > 0.05


@pytest.mark.timeout(300)
def test_a_pool_after_the_parent_loaded_piper_finishes(tmp_path):
    """The CI hang of stop 25: forked pool processes freed the Piper session inherited from a parent that had
    synthesised before, and waited forever on its thread pool's lost threads."""
    synthesize("a red coat", DEFAULT_VOICE)  # the parent now holds a Piper session
    time.sleep(3)  # whose pool threads stop spinning and wait on a condition variable (the hanging state)
    jobs = [SynthesisJob(text, DEFAULT_VOICE, str(tmp_path / f"{i}.flac"))
            for i, text in enumerate(["a red coat", "a blue bag", "a green dress"])]
    assert synthesize_many(jobs, workers=2, chunk=1, progress=False) == 3
    assert all((tmp_path / f"{i}.flac").stat().st_size > 1000 for i in range(3))


@needs_espeak
def test_espeak_pitch_changes_voice():
    low, rate = synthesize("a red coat", Voice("lo", "espeak", "en-us+m1", {"pitch": 10}))
    high, _ = synthesize("a red coat", Voice("hi", "espeak", "en-us+m1", {"pitch": 90}))
    assert rate == 22050
    import librosa
    f_lo = np.nanmedian(librosa.yin(low, fmin=50, fmax=500, sr=rate))
    f_hi = np.nanmedian(librosa.yin(high, fmin=50, fmax=500, sr=rate))
    assert f_hi > 1.2 * f_lo


def test_errors():
    with pytest.raises(TTSError, match="unknown TTS engine"):
        synthesize("x", Voice("x", "tacotron", "x"))
    with pytest.raises(TTSError, match="empty"):
        synthesize("  ", DEFAULT_VOICE)


def test_synthesize_many_is_resumable(tmp_path):
    jobs = [SynthesisJob(f"number {i}", DEFAULT_VOICE, str(tmp_path / f"{i}.wav")) for i in range(3)]
    assert synthesize_many(jobs, workers=1, progress=False) == 3
    assert synthesize_many(jobs, workers=1, progress=False) == 0
    Path(jobs[1].out_path).unlink()
    assert synthesize_many(jobs, workers=1, progress=False) == 1
    wave, rate = sf.read(jobs[1].out_path)
    assert rate == 22050 and len(wave) > 1000
    assert not list(tmp_path.glob("*.tmp*"))


@needs_flite
def test_flite_is_the_held_out_engine_for_test_sets_only(tmp_path, fake_fashion_mnist):
    from speechvision.core.tts import ALL_VOICES, FLITE_VOICES, TTSError, check_training_voices
    from speechvision.data.spoken_fashion import BuildConfig, build_spoken_fashion

    wave, rate = synthesize("a pair of blue trousers", ALL_VOICES["flite-slt"])
    assert rate == 16000 and 0.5 < len(wave) / rate < 4 and wave.std() > 1e-3
    assert len(FLITE_VOICES) == 5
    with pytest.raises(TTSError, match="flite-kal: flite is the held-out test engine"):
        check_training_voices([ALL_VOICES["piper-joe"], ALL_VOICES["flite-kal"]])
    with pytest.raises(TTSError, match="flite-awb: flite is the held-out test engine"):
        build_spoken_fashion(tmp_path / "sf", fashion_mnist=fake_fashion_mnist,
                             config=BuildConfig(images=48, train_voices=("piper-joe", "flite-awb")), progress=False)
    assert not (tmp_path / "sf" / "dataset.json").exists()


def test_pool_voices_are_found_by_id():
    from speechvision.core.tts import TTSError, voice_by_id, voice_pool

    first = voice_pool()[0]
    assert voice_by_id(first.id) == first
    with pytest.raises(TTSError, match="pool-nope"):
        voice_by_id("pool-nope")
