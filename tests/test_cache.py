import os

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


def _dead_pid() -> int:
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                       check=True)
    return int(p.stdout)


def test_a_truncated_cache_file_is_named_and_rebuilt(tmp_path, capsys):
    """Caches are derived data: a cache cut in half (a copy stopped short, a full disk) is named in one
    warning line and computed again in its place; the log-mel cache the same."""
    (tmp_path / "f").write_text("x")
    arr = np.arange(4000, dtype=np.float32).reshape(2, 2000)
    cached_array(tmp_path, "t", [tmp_path / "f"], {}, lambda: arr)
    (path,) = (tmp_path / "cache").glob("t-*.safetensors")
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
    capsys.readouterr()
    np.testing.assert_array_equal(cached_array(tmp_path, "t", [tmp_path / "f"], {}, lambda: arr), arr)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and "warning" in err and "rebuilding" in err
    np.testing.assert_array_equal(cached_array(tmp_path, "t", [tmp_path / "f"], {}, lambda: 1 / 0), arr)
    assert capsys.readouterr().err == ""

    sf.write(tmp_path / "a.wav", sine(0.5), 22050)
    built = LogMelCache.build(tmp_path, ["a.wav"], workers=1, progress=False)
    (path,) = (tmp_path / "cache").glob("logmel-*.safetensors")
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
    again = LogMelCache.build(tmp_path, ["a.wav"], workers=1, progress=False)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err
    np.testing.assert_array_equal(again.get("a.wav"), built.get("a.wav"))


def test_stale_temporaries_are_removed_and_never_read(tmp_path):
    """What a killed writer left (``<stem>.tmp<pid><suffix>`` of a process that is gone) is removed before the
    next cache write; a running process's temporary and other files stay."""
    import os

    from speechvision.core.atomic import remove_stale_temporaries

    cache = tmp_path / "cache"
    cache.mkdir()
    dead, live = cache / f"t-0.tmp{_dead_pid()}.safetensors", cache / f"t-1.tmp{os.getpid()}.safetensors"
    other = cache / "notes.tmp.txt"
    for p in (dead, live, other):
        p.write_bytes(b"half a file")
    (tmp_path / "f").write_text("x")
    cached_array(tmp_path, "t", [tmp_path / "f"], {}, lambda: np.zeros(3, np.float32))
    assert not dead.exists() and live.exists() and other.exists()
    nested = tmp_path / "a" / "b" / f"000001.tmp{_dead_pid()}.png"
    nested.parent.mkdir(parents=True)
    nested.write_bytes(b"")
    assert remove_stale_temporaries(tmp_path) == []
    assert remove_stale_temporaries(tmp_path, recursive=True) == [nested] and not nested.exists()


def test_a_zombie_writer_counts_as_gone(tmp_path):
    """A killed writer that nobody has reaped yet (a zombie) writes nothing more: its temporary is stale."""
    import subprocess
    import time

    from speechvision.core.atomic import process_alive, remove_stale_temporaries

    child = subprocess.Popen(["sleep", "0"])
    time.sleep(0.3)  # exited, not yet waited for: a zombie
    tmp = tmp_path / f"x.tmp{child.pid}.wav"
    tmp.write_bytes(b"half")
    assert not process_alive(child.pid) and process_alive(os.getpid())
    assert remove_stale_temporaries(tmp_path) == [tmp] and not tmp.exists()
    child.wait()


def test_a_killed_feature_build_resumes_from_its_saved_parts(tmp_path, monkeypatch):
    import pytest

    from speechvision.data import cache

    names = []
    for i in range(5):
        sf.write(tmp_path / f"{i}.wav", sine(0.4 + 0.1 * i, freq=200.0 + 50 * i), 22050)
        names.append(f"{i}.wav")
    monkeypatch.setattr(cache, "PART_FILES", 2)
    real, calls = cache._logmel_job, []

    def dies_on_the_fourth(job):
        calls.append(job[0])
        if len(calls) == 4:
            raise KeyboardInterrupt  # a kill in the middle of the second part
        return real(job)

    monkeypatch.setattr(cache, "_logmel_job", dies_on_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        LogMelCache.build(tmp_path, names, workers=1, progress=False)
    assert len(list((tmp_path / "cache").rglob("*.parts/*.safetensors"))) == 1  # the first part was kept
    monkeypatch.setattr(cache, "_logmel_job", lambda job: (calls.append(job[0]), real(job))[1])
    calls.clear()
    built = LogMelCache.build(tmp_path, names, workers=1, progress=False)
    assert len(calls) == 3  # only the files after the saved part
    assert not list((tmp_path / "cache").rglob("*.parts"))  # the parts are gone once the cache is whole
    for n in names:
        np.testing.assert_array_equal(built.get(n), file_log_mel(tmp_path / n).astype(np.float16).astype(np.float32))
