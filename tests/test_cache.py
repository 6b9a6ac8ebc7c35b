import numpy as np
import soundfile as sf
from conftest import sine

from speechvision.core.audio import file_log_mel
from speechvision.data.cache import LogMelCache, cached_array


def test_logmel_cache_round_trip_equals_direct_features(tmp_path):
    names = []
    for i, freq in enumerate((180.0, 260.0, 420.0)):
        sf.write(tmp_path / f"{i}.wav", sine(0.5 + 0.3 * i, freq=freq), 22050)
        names.append(f"{i}.wav")
    built = LogMelCache.build(tmp_path, names, workers=1, progress=False)
    loaded = LogMelCache.build(tmp_path, names, workers=1, progress=False)  # second call reads the file
    assert len(list((tmp_path / "cache").glob("logmel-*.safetensors"))) == 1
    for n in names:
        direct = file_log_mel(tmp_path / n).astype(np.float16).astype(np.float32)
        np.testing.assert_array_equal(built.get(n), direct)
        np.testing.assert_array_equal(loaded.get(n), direct)
    sf.write(tmp_path / "0.wav", sine(0.6, freq=300.0), 22050)  # content changed -> new cache
    LogMelCache.build(tmp_path, names, workers=1, progress=False)
    assert len(list((tmp_path / "cache").glob("logmel-*.safetensors"))) == 2


def test_cached_array_keeps_fortran_arrays_intact(tmp_path):
    (tmp_path / "f").write_text("x")
    arr = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4))
    calls = []
    first = cached_array(tmp_path, "t", [tmp_path / "f"], {}, lambda: calls.append(1) or arr)
    again = cached_array(tmp_path, "t", [tmp_path / "f"], {}, lambda: calls.append(1) or arr)
    np.testing.assert_array_equal(first, arr)
    np.testing.assert_array_equal(again, arr)
    assert calls == [1]
