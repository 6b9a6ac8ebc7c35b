"""Kill and resume: log.jsonl never runs ahead of the checkpoint (no step logged twice, none lost); what
--resume may change in a run's config and what it refuses; a killed dataset build or Inception feature pass
rerun to a complete, readable result with no temporary file left."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from speechvision.cli import main
from speechvision.core.checkpoint import load_checkpoint
from speechvision.core.run import PENDING_LOG, RunFolder
from speechvision.s2igan.config import ConfigError, apply_overrides, preset
from speechvision.s2igan.gan_loop import GANLoop
from speechvision.s2igan.train_gan import train_gan
from speechvision.s2igan.train_sen import train_sen

TINY = ["sen.speech.rnn_hidden=16", "sen.speech.attention_dim=8", "sen.speech.embedding_dim=32",
        "sen.image.embedding_dim=32", "sen.image.kind=cnn", "sen.batch_size=8", "sen.epochs=2",
        "sen.eval_every_epochs=1", "sen.lr_step_epochs=1", "gan.generator.ngf=8", "gan.discriminator.ndf=8",
        "gan.batch_size=8", "gan.iterations=6", "gan.generator.embedding_dim=32", "gan.relation.embedding_dim=32",
        "gan.rs=false", "gan.log_every=1", "gan.snapshot_every=100", "gan.checkpoint_every=2"]


def tiny_cfg(*extra: str):
    return apply_overrides(preset("spoken-fashion"), TINY + list(extra))


def read_log(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]


def steps(log: list[dict], key: str = "step") -> list[int]:
    return [e[key] for e in log if key in e]


def without_times(log: list[dict]) -> list[dict]:
    return [{k: v for k, v in e.items() if k not in ("iterations_per_second", "epoch_seconds",
                                                     "utterances_per_second")} for e in log]


@pytest.fixture(scope="module")
def sen_run(tmp_path_factory, tiny_spoken_fashion):
    out = tmp_path_factory.mktemp("sen") / "run"
    train_sen(tiny_spoken_fashion, out, tiny_cfg("sen.epochs=1"), progress=False)
    return out


@pytest.fixture(scope="module")
def gan_full(tmp_path_factory, tiny_spoken_fashion, sen_run):
    out = tmp_path_factory.mktemp("gan") / "full"
    train_gan(tiny_spoken_fashion, sen_run, out, tiny_cfg(), device="cpu", progress=False)
    return out


def test_log_lines_wait_for_their_checkpoint(tmp_path, monkeypatch):
    """The run folder holds a step's log line back until the checkpoint after it; a kill between the
    checkpoint and its lines loses none (the resume appends them once); lines of a checkpoint never written
    are dropped."""
    run = RunFolder(tmp_path / "r", "gan")
    run.log({"step": 1})
    run.log({"step": 2})
    assert not (tmp_path / "r" / "log.jsonl").exists()
    run.checkpoint({"step": 2})
    assert steps(read_log(tmp_path / "r")) == [1, 2] and not (tmp_path / "r" / PENDING_LOG).exists()

    run.log({"step": 3})
    run.log({"step": 4})
    monkeypatch.setattr(RunFolder, "_append", lambda self, text: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):  # killed after checkpoint.pt, before its lines
        run.checkpoint({"step": 4})
    monkeypatch.undo()
    assert steps(read_log(tmp_path / "r")) == [1, 2] and (tmp_path / "r" / PENDING_LOG).is_file()
    assert RunFolder(tmp_path / "r", "gan").start(resume=True)["step"] == 4
    assert steps(read_log(tmp_path / "r")) == [1, 2, 3, 4] and not (tmp_path / "r" / PENDING_LOG).exists()

    (tmp_path / "r" / PENDING_LOG).write_text(json.dumps({"step": 4, "lines": '{"step": 3}\n{"step": 4}\n'}))
    RunFolder(tmp_path / "r", "gan").start(resume=True)  # killed after the lines, before the pending file went
    (tmp_path / "r" / PENDING_LOG).write_text(json.dumps({"step": 6, "lines": '{"step": 5}\n{"step": 6}\n'}))
    RunFolder(tmp_path / "r", "gan").start(resume=True)  # killed before checkpoint 6 was written
    assert steps(read_log(tmp_path / "r")) == [1, 2, 3, 4] and not (tmp_path / "r" / PENDING_LOG).exists()


def test_gan_kill_between_log_and_checkpoint_logs_each_step_once(tmp_path, tiny_spoken_fashion, sen_run, gan_full,
                                                                 monkeypatch):
    """Killed after step 3's log line but before the checkpoint of step 4, then resumed from step 2's
    checkpoint: the log equals the uninterrupted run's (each step once, the same values), and so do the weights."""
    step = GANLoop.training_step

    def killed_at_step_3(self, i):
        if i == 3:
            raise KeyboardInterrupt
        step(self, i)

    monkeypatch.setattr(GANLoop, "training_step", killed_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        train_gan(tiny_spoken_fashion, sen_run, tmp_path / "cut", tiny_cfg(), device="cpu", progress=False)
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "cut", "gan")["step"] == 2 and steps(read_log(tmp_path / "cut")) == [1, 2]
    train_gan(tiny_spoken_fashion, None, tmp_path / "cut", tiny_cfg(), device="cpu", progress=False, resume=True)
    full, cut = read_log(gan_full), read_log(tmp_path / "cut")
    assert steps(full) == steps(cut) == [1, 2, 3, 4, 5, 6]
    assert without_times(cut) == without_times(full)
    a, b = load_checkpoint(gan_full, "gan"), load_checkpoint(tmp_path / "cut", "gan")
    for k in a["G_ema"]:
        torch.testing.assert_close(a["G_ema"][k], b["G_ema"][k], rtol=0, atol=0)


def test_gan_stop_after_step_and_resume_logs_like_an_uninterrupted_run(tmp_path, tiny_spoken_fashion, sen_run,
                                                                       gan_full):
    """stop_after_step=3 (not a checkpoint step) and --resume: steps strictly increasing, none twice."""
    train_gan(tiny_spoken_fashion, sen_run, tmp_path / "cut", tiny_cfg(), device="cpu", progress=False,
              stop_after_step=3)
    assert steps(read_log(tmp_path / "cut")) == [1, 2, 3]
    train_gan(tiny_spoken_fashion, None, tmp_path / "cut", tiny_cfg(), device="cpu", progress=False, resume=True)
    assert without_times(read_log(tmp_path / "cut")) == without_times(read_log(gan_full))


def run_cli(args: list[str], capfd) -> tuple[int, str]:
    capfd.readouterr()
    code = main(args)
    return code, capfd.readouterr().err


def snapshot_of(folder: Path) -> dict:
    return {p.relative_to(folder): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_gan_resume_applies_what_may_change_and_refuses_the_rest(tmp_path, tiny_spoken_fashion, gan_full, capfd):
    """--resume with --set: more iterations, another lr and log period are applied and recorded (log.jsonl,
    config.json, the checkpoint); an architecture change, an ablation switch or another preset is one line
    naming the key, and nothing on disk changes."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(gan_full, run)
    base = ["train", "gan", "--data", str(tiny_spoken_fashion), "--out", str(run), "--resume", "--device", "cpu",
            "--no-progress"]
    before = snapshot_of(run)
    for extra, key in ((["--set", "gan.generator.ngf=16"], "gan.generator.ngf"), (["--end-to-end"], "gan.end_to_end"),
                       (["--set", "gan.rs=true"], "gan.rs"), (["--preset", "cub"], "preset"),
                       (["--set", "gan.iterations=3"], "gan.iterations")):
        code, err = run_cli(base + extra, capfd)
        assert code == 1 and err.count("\n") == 1 and err.startswith(f"speechvision: error: {key}"), err
        assert "bug" not in err and snapshot_of(run) == before
    code, err = run_cli(base + ["--set", "gan.generator.ngf=8"], capfd)  # the run's own value: nothing changes
    assert code == 0 and read_log(run) == read_log(gan_full)

    code, err = run_cli(base + ["--set", "gan.iterations=8", "--set", "gan.lr_g=1e-4", "--set", "gan.log_every=2",
                                "--preset", "spoken-fashion"], capfd)
    assert code == 0, err
    log = read_log(run)
    assert log[6] == {"resumed_at_step": 6, "overrides": {"gan.iterations": 8, "gan.lr_g": 1e-4, "gan.log_every": 2}}
    assert steps(log) == [1, 2, 3, 4, 5, 6, 8]
    ck = load_checkpoint(run, "gan")
    assert ck["step"] == 8 and ck["config"]["gan"]["iterations"] == 8
    assert ck["opt_G"]["param_groups"][0]["lr"] == 1e-4 and ck["opt_D"]["param_groups"][0]["lr"] == 2e-4
    assert json.loads((run / "config.json").read_text())["config"]["gan"]["lr_g"] == 1e-4


def test_sen_resume_follows_a_new_schedule_and_refuses_other_changes(tmp_path, tiny_spoken_fashion, capfd):
    """The SEN's epochs, lr schedule and eval period may change on --resume (the epochs left follow the new
    schedule); its batch size may not."""
    run = tmp_path / "sen"
    train_sen(tiny_spoken_fashion, run, tiny_cfg(), progress=False, stop_after_epoch=1)
    with pytest.raises(ConfigError, match=r"^sen\.batch_size: the run was trained with 8; start a new --out"):
        train_sen(tiny_spoken_fashion, run, tiny_cfg(), resume=True, progress=False, overrides=["sen.batch_size=4"])
    with pytest.raises(ConfigError, match=r"^sen\.image\.kind: the run was trained with cnn"):
        train_sen(tiny_spoken_fashion, run, tiny_cfg(), resume=True, progress=False,
                  overrides=["sen.image.kind=inception"])
    assert steps(read_log(run), "epoch") == [1]
    code, err = run_cli(["train", "sen", "--data", str(tiny_spoken_fashion), "--out", str(run), "--resume",
                         "--no-progress", "--set", "sen.epochs=3", "--set", "sen.lr_step_epochs=2",
                         "--set", "sen.lr_gamma=0.5"], capfd)
    assert code == 0, err
    log = read_log(run)
    assert log[1] == {"resumed_at_epoch": 1, "overrides": {"sen.epochs": 3, "sen.lr_step_epochs": 2,
                                                           "sen.lr_gamma": 0.5}}
    assert steps(log, "epoch") == [1, 2, 3]
    lr = preset("spoken-fashion").sen.lr
    # after epoch e the schedule gives lr * 0.5 ** (e // 2): 1 -> lr, 2 -> lr / 2, 3 -> lr / 2
    assert [e["lr"] for e in log if "epoch" in e] == pytest.approx([lr * 0.1, lr * 0.5, lr * 0.5])
    assert load_checkpoint(run / "checkpoint.pt", "sen")["config"]["sen"]["epochs"] == 3


def start(args: list[str], **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "speechvision.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True, **kw)


def kill_when(proc: subprocess.Popen, ready, timeout_s: float = 120) -> None:
    """SIGKILL ``proc``'s process group (it and its workers) as soon as ``ready()``; fails if it ended first."""
    t0 = time.time()
    while not ready():
        assert proc.poll() is None, f"ended before the kill: {proc.communicate()[1].decode()[-2000:]}"
        assert time.time() - t0 < timeout_s
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def finished(folder: Path, pattern: str) -> list[Path]:
    """Files under ``folder`` matching ``pattern`` that are complete: not an atomic writer's temporary
    (``<stem>.tmp<pid><suffix>`` matches a pattern such as ``*.wav`` too)."""
    return [p for p in folder.rglob(pattern) if ".tmp" not in p.name] if folder.is_dir() else []


def temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*.tmp*") if p.is_file()]


@pytest.fixture(scope="module")
def killed_build(tmp_path_factory, fake_fashion_mnist):
    """A spoken-fashion build killed (SIGKILL) once it has written some audio, then run again: the rerun's
    result, the folder and a stale temporary planted as a kill during a write leaves one."""
    out = tmp_path_factory.mktemp("killed") / "sf"
    args = ["data", "spoken-fashion", "--out", str(out), "--fashion-mnist", str(fake_fashion_mnist), "--images", "3",
            "--unseen-images", "1"]
    kill_when(start(args), lambda: bool(finished(out / "audio", "*.wav")))
    written = sorted(p for p in (out / "audio").rglob("*.wav") if ".tmp" not in p.name)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    stale = written[0].with_name(f"{written[0].stem}.tmp{int(dead.stdout)}.wav")
    stale.write_bytes(written[0].read_bytes()[:100])
    rerun = subprocess.run([sys.executable, "-m", "speechvision.cli", *args], capture_output=True, text=True,
                           check=False)
    return out, rerun, written, stale


def test_a_killed_dataset_build_resumes_to_a_complete_readable_dataset(killed_build):
    import soundfile as sf
    from PIL import Image

    from speechvision.data.manifest import load_dataset

    out, rerun, written, stale = killed_build
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert written and all(p.is_file() for p in written)  # what the killed run wrote is kept
    ds = load_dataset(out)
    assert [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(ds.records) == 4
    for r in ds.records:
        with Image.open(out / r.image) as im:
            im.load()
        for c in r.captions:
            wave, rate = sf.read(out / c.audio)
            assert rate > 0 and len(wave) > rate // 10
    assert not stale.exists() and temporaries(out) == []


def test_a_killed_inception_pass_leaves_no_corrupt_cache(tmp_path, killed_build):
    """`train sen` killed during its Inception feature pass (after the log-mel cache is written), then the
    same command: it completes, every cache file reads, and no temporary is left."""
    from safetensors.numpy import load_file

    out = killed_build[0]
    args = ["train", "sen", "--data", str(out), "--out", str(tmp_path / "sen"), "--no-progress",
            *[a for o in TINY if o.startswith("sen.") and "kind" not in o for a in ("--set", o)],
            "--set", "sen.batch_size=2", "--set", "sen.epochs=1"]
    kill_when(start(args), lambda: bool(finished(out / "cache", "logmel-*.safetensors")))
    assert not list((out / "cache").glob("inception-*.safetensors"))
    rerun = subprocess.run([sys.executable, "-m", "speechvision.cli", *args], capture_output=True, text=True,
                           check=False)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "warning" not in rerun.stderr
    caches = sorted((out / "cache").glob("*.safetensors"))
    assert [p.name.split("-")[0] for p in caches] == ["inception", "logmel"]
    assert load_file(str(caches[0]))["data"].shape == (4, 2048)
    assert temporaries(out) == []
