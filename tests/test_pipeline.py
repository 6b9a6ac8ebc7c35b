"""`speechvision pipeline`: every stage end to end on a tiny dataset, killed after the SEN and resumed."""

import json

import pytest

from speechvision.cli import main
from speechvision.s2igan.train_all import STAGES, PipelineError, PipelineOptions, run_pipeline


@pytest.mark.slow
def test_pipeline_runs_every_stage_and_resumes_after_a_kill(tmp_path, tiny_spoken_fashion, capsys):
    sets = ["sen.epochs=1", "sen.batch_size=16", "gan.batch_size=8", "gan.log_every=1", "gan.checkpoint_every=1"]
    opts = PipelineOptions(data=str(tiny_spoken_fashion), steps=2, judge_epochs=1, overrides=sets)
    out = tmp_path / "run"
    first = run_pipeline(out, opts, progress=False, stop_after="sen")  # as a kill after the SEN stage
    assert list(first["stage_seconds"]) == ["data", "features", "sen"]
    with pytest.raises(PipelineError, match="started with other options"):
        run_pipeline(out, PipelineOptions(data=str(tiny_spoken_fashion), steps=3), progress=False)
    sen_mtime = (out / "sen" / "checkpoint.pt").stat().st_mtime_ns
    argv = ["pipeline", "--out", str(out), "--data", str(tiny_spoken_fashion), "--steps", "2", "--judge-epochs", "1",
            "--no-progress"] + [a for s in sets for a in ("--set", s)]
    assert main(argv) == 0  # the same run, resumed from the command line
    assert "| **total** |" in capsys.readouterr().out
    done = run_pipeline(out, opts, progress=False)  # finished: nothing reruns
    assert list(done["stage_seconds"]) == list(STAGES)
    assert (out / "sen" / "checkpoint.pt").stat().st_mtime_ns == sen_mtime  # the finished SEN is not retrained
    assert json.loads((out / "pipeline.json").read_text())["config"]["gan"]["iterations"] == 2
    m = done["metrics"]
    assert m["fid"] > 0 and m["is"] >= 1 and 0 <= m["map"] <= 1
    assert 0 <= m["garment"] <= 1 and 0 <= m["colour"] <= 1
    summary = (out / "summary.md").read_text()
    assert "| gan |" in summary and "matmul peak" in summary and done["matmul_peak_gflops"] > 0
    assert (out / "bundle.pt").is_file() and (out / "eval" / "grid.png").is_file()

    # an ablation row: the same data, SEN and judges, another GAN (w/o RS); only the GAN stages run
    variant = tmp_path / "no-rs"
    v_opts = PipelineOptions(data=str(tiny_spoken_fashion), steps=2, judge_epochs=1, overrides=sets + ["gan.rs=false"],
                             sen=str(out / "sen"), judges=str(out / "judges"))
    v = run_pipeline(variant, v_opts, progress=False)
    assert not (variant / "sen").exists() and not (variant / "judges").exists()
    assert (variant / "gan" / "checkpoint.pt").is_file() and 0 <= v["metrics"]["colour"] <= 1
    assert (out / "sen" / "checkpoint.pt").stat().st_mtime_ns == sen_mtime
    from speechvision.core.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="nowhere"):  # refused before any stage runs
        run_pipeline(tmp_path / "bad", PipelineOptions(data=str(tiny_spoken_fashion), steps=2,
                                                       sen=str(tmp_path / "nowhere")), progress=False)
    assert not (tmp_path / "bad").exists()


def test_the_features_stage_computes_the_front_end_of_a_shared_sen(tmp_path, monkeypatch):
    """A GAN-only run over a shared Whisper-front-end SEN caches Whisper features, not log-mels nothing reads."""
    from speechvision.core import checkpoint
    from speechvision.s2igan import sen_data
    from speechvision.s2igan.config import apply_overrides, preset
    from speechvision.s2igan.train_all import PipelineState, stage_features

    whisper = apply_overrides(preset("spoken-fashion"), ["audio.frontend=whisper", "sen.speech.n_mels=384"])
    monkeypatch.setattr(checkpoint, "load_checkpoint", lambda path, kind: {"config": whisper.to_dict()})
    monkeypatch.setattr("speechvision.data.manifest.load_dataset", lambda path: path)
    seen = []
    monkeypatch.setattr(sen_data.SENInputs, "load", staticmethod(
        lambda ds, cfg, progress: seen.append((cfg.audio.frontend, cfg.sen.speech.n_mels))))
    for name, sen in (("shared", "elsewhere/sen"), ("own", None)):
        (tmp_path / name).mkdir()
        state = PipelineState(tmp_path / name, PipelineOptions(data="d", sen=sen))
        stage_features(tmp_path / name, state, False)
    assert seen == [("whisper", 384), ("logmel", 40)]
    assert state.config.audio.frontend == "logmel"  # the run's own config is left as it was


def test_pipeline_refuses_a_paper_preset_without_a_dataset(tmp_path):
    with pytest.raises(PipelineError, match="--preset cub: give --data"):
        run_pipeline(tmp_path / "run", PipelineOptions(preset="cub"), progress=False)
    assert not (tmp_path / "run").exists()


def test_a_wrong_override_fails_before_the_run_folder_is_made(tmp_path, capsys):
    assert main(["pipeline", "--out", str(tmp_path / "run"), "--set", "gan.nope=3", "--no-progress"]) == 1
    assert "unknown key 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_killed_stage_keeps_the_time_it_ran(tmp_path, monkeypatch):
    """A stage's time adds up over its attempts: the seconds so far are saved while it runs."""
    import time

    import speechvision.s2igan.train_all as train_all

    monkeypatch.setattr(train_all, "HEARTBEAT_S", 0.05)
    state = train_all.PipelineState(tmp_path, PipelineOptions(data=str(tmp_path)))

    def dies():
        time.sleep(0.3)
        raise KeyboardInterrupt  # stands in for a kill

    with pytest.raises(KeyboardInterrupt):
        state.run_stage("gan", dies)
    saved = json.loads((tmp_path / "pipeline.json").read_text())
    assert 0.2 <= saved["partial_seconds"]["gan"] <= 0.4 and "gan" not in saved["stage_seconds"]
    again = train_all.PipelineState(tmp_path, PipelineOptions(data=str(tmp_path)))  # the rerun
    again.run_stage("gan", lambda: time.sleep(0.1))
    saved = json.loads((tmp_path / "pipeline.json").read_text())
    assert saved["stage_seconds"]["gan"] >= 0.3 and saved["partial_seconds"] == {}


def test_the_gan_stage_resumes_to_the_runs_own_steps(tmp_path, monkeypatch):
    """A GAN checkpoint copied in from a shorter run trains on to this run's --steps (it stopped at its own)."""
    import speechvision.s2igan.train_gan as train_gan_module
    import speechvision.s2igan.train_all as train_all

    calls = []
    monkeypatch.setattr(train_gan_module, "train_gan", lambda *a, **k: calls.append(k))
    state = train_all.PipelineState(tmp_path, PipelineOptions(data=str(tmp_path), steps=9000))
    train_all.stage_gan(tmp_path, state, False)  # a new GAN: the config's iterations, no override
    (tmp_path / "gan").mkdir()
    (tmp_path / "gan" / "checkpoint.pt").write_bytes(b"")
    train_all.stage_gan(tmp_path, state, False)
    assert [(c["resume"], c["overrides"]) for c in calls] == [(False, []), (True, ["gan.iterations=9000"])]


@pytest.mark.slow
def test_the_compositional_whisper_retrain_of_issue_17_runs_through_the_pipeline(tmp_path, tiny_spoken_fashion):
    """Issue 17 items 5, 6 and 8 in one command: a SEN over the frozen Whisper encoder with factored garment and
    colour heads, and a generator that also reads their posteriors; its bundle generates from a wav."""
    from speechvision.s2igan.pipeline import S2IGANPipeline

    sets = ["sen.epochs=1", "sen.batch_size=16", "gan.batch_size=8", "gan.log_every=1", "gan.checkpoint_every=1",
            "audio.frontend=whisper", "sen.speech.n_mels=384", "sen.factored=garment,colour",
            "gan.attribute_condition=true", "gan.generator.embedding_scale=8"]
    out = tmp_path / "comp"
    done = run_pipeline(out, PipelineOptions(data=str(tiny_spoken_fashion), steps=2, judge_epochs=1, overrides=sets),
                        progress=False)
    assert 0 <= done["metrics"]["garment"] <= 1
    pipe = S2IGANPipeline.load(out / "bundle.pt")
    assert tuple(pipe.generator.config.attribute_sizes) == (10, 8)  # garment and colour posteriors reach the CA
    wav = sorted((tiny_spoken_fashion / "audio").rglob("*.wav"))[0]
    images = pipe.speech_to_images([wav])
    assert images[-1].shape == (1, 3, 64, 64)
