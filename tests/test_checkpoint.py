"""Checkpoints: atomic writes, and every unreadable file refused in one line that names it."""

import os
import pickle

import pytest
import torch

from speechvision.core.atomic import atomic_path, atomic_write_text
from speechvision.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


class Boom:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


@pytest.mark.parametrize("make, problem", [
    (lambda p: p.write_bytes(b""), "is empty (0 bytes)"),
    (lambda p: p.write_bytes(pickle.dumps({"a": 1}, protocol=4)), "not weights-only"),
    (lambda p: p.write_bytes(pickle.dumps(Boom())), "not weights-only"),
    (lambda p: torch.save({"x": Boom()}, p), "not weights-only"),
    (lambda p: p.write_bytes(b"PK\x03\x04 truncated zip"), "corrupt, truncated or not a checkpoint"),
    (lambda p: torch.save({"weights": torch.zeros(2)}, p), "not a speechvision checkpoint"),
])
def test_unreadable_checkpoints_are_refused_in_one_line(tmp_path, capfd, monkeypatch, make, problem):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.pt"
    make(bad)
    capfd.readouterr()
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(bad, "gan")
    msg = str(err.value)
    assert str(bad) in msg and problem in msg and "\n" not in msg
    assert capfd.readouterr().err == ""  # torch's pickle warnings are kept off the terminal
    assert not (tmp_path / "pwned").exists()


def test_save_is_atomic_and_round_trips(tmp_path):
    save_checkpoint(tmp_path / "c.pt", "gan", {"step": 3, "w": torch.ones(2)})
    ck = load_checkpoint(tmp_path / "c.pt", "gan")
    assert ck["step"] == 3 and torch.equal(ck["w"], torch.ones(2)) and ck["kind"] == "gan"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]  # no temporary file left
    with pytest.raises(CheckpointError, match="a 'gan' checkpoint, expected 'sen'"):
        load_checkpoint(tmp_path / "c.pt", "sen")


def test_atomic_write_leaves_the_old_file_on_error(tmp_path):
    target = tmp_path / "manifest.jsonl"
    atomic_write_text(target, "old\n")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["manifest.jsonl"]
