import librosa
import numpy as np
import pytest
import soundfile as sf
from conftest import sine

from speechvision.core.audio import (
    AudioChecks,
    AudioError,
    LogMelConfig,
    check_waveform,
    file_log_mel,
    load_audio,
    log_mel,
)


def test_logmel_matches_librosa_reference():
    wave = sine(1.3)
    cfg = LogMelConfig()
    assert (cfg.n_fft, cfg.hop_length) == (551, 220)
    ref = librosa.feature.melspectrogram(y=wave, sr=22050, n_fft=551, hop_length=220, win_length=551, n_mels=40)
    ref = np.log(ref + 1e-6).T
    ref = (ref - ref.mean(0)) / (ref.std(0) + 1e-5)
    got = log_mel(wave, cfg)
    assert got.shape == (1 + len(wave) // 220, 40) and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    # CMVN: each band has zero mean and unit variance
    np.testing.assert_allclose(got.mean(0), 0, atol=1e-4)


def test_load_downmixes_and_resamples(tmp_path):
    stereo = np.stack([sine(1.0, 16000), sine(1.0, 16000, freq=330)], axis=1)
    sf.write(tmp_path / "s.flac", stereo, 16000)
    wave = load_audio(tmp_path / "s.flac")
    assert wave.ndim == 1 and abs(len(wave) - 22050) <= 2


@pytest.mark.parametrize("make, problem", [
    (lambda p: p.write_bytes(b"this is not audio at all" * 10), "not a readable audio file"),
    (lambda p: p.write_bytes(open(p.with_name("good.wav"), "rb").read()[:30]), "not a readable audio file"),
    (lambda p: sf.write(p, np.zeros(0, np.float32), 22050), "empty"),
    (lambda p: sf.write(p, np.zeros(22050, np.float32), 22050), "silent"),
    (lambda p: sf.write(p, np.full(22050, np.nan, np.float32), 22050, subtype="FLOAT"), "NaN"),
    (lambda p: sf.write(p, sine(31.0), 22050), "too long"),
    (lambda p: p.write_bytes(open(p.with_name("good.wav"), "rb").read()[:20000]), "truncated"),
    (lambda p: sf.write(p, np.full(22050, 0.5, np.float32), 22050), "constant (DC-only)"),
    (lambda p: p.write_bytes(b""), "the file is empty (0 bytes)"),
    (lambda p: p.mkdir(), "is a folder, not an audio file"),
])
def test_bad_input_errors_name_the_file(tmp_path, make, problem):
    sf.write(tmp_path / "good.wav", sine(1.0), 22050)
    bad = tmp_path / "bad.wav"
    make(bad)
    with pytest.raises(AudioError) as err:
        file_log_mel(bad)
    msg = str(err.value)
    assert str(bad) in msg and problem in msg and "\n" not in msg


def test_missing_file_and_duration_cap(tmp_path):
    with pytest.raises(AudioError, match="no such audio file"):
        load_audio(tmp_path / "nope.wav")
    check_waveform(sine(31.0), 22050, checks=AudioChecks(max_duration_s=40))


def test_a_text_file_named_mp3_gives_one_line_and_no_decoder_chatter(tmp_path, capfd):
    bad = tmp_path / "notes.mp3"
    bad.write_text("hello, this is not audio\n" * 40)
    with pytest.raises(AudioError, match="not a readable audio file") as err:
        load_audio(bad)
    assert "does not exist" not in str(err.value)
    assert capfd.readouterr().err == ""  # libmpg123's resync notes go to /dev/null
