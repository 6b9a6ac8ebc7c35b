"""The bad-input catalogue: every case runs the CLI in-process and gets exactly one line on stderr that names
the option or the file, the documented exit code (2: a usage error the parser catches; 1: any other error),
no traceback, no "looks like a bug" line, and no change on disk. After it, the behaviour the checks must not
break: a resumed build, --force, the same-config rerun. What is checked: docs/errors.md."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import free_port, sine

from speechvision.cli import main

PNG = bytes.fromhex("89504e470d0a1a0a")  # enough of a PNG for "an existing file"


def write_png(path: Path, seed: int = 0) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(path)


def make_bundles(w: Path) -> None:
    """mismatch.pt: a config of half the generator's channels over the bundled weights; nogen.pt: no generator."""
    import copy

    from speechvision.core.checkpoint import checkpoint_state, load_checkpoint, save_checkpoint
    from speechvision.s2igan.pipeline import BUNDLED

    state = checkpoint_state(load_checkpoint(BUNDLED, "s2igan"))
    mismatch = copy.deepcopy(state)
    mismatch["config"]["gan"]["generator"]["ngf"] //= 2
    save_checkpoint(w / "mismatch.pt", "s2igan", mismatch)
    save_checkpoint(w / "nogen.pt", "s2igan", {k: v for k, v in state.items() if k != "generator"})


@pytest.fixture(scope="module")
def world(tmp_path_factory, fake_fashion_mnist):
    """One folder with every input the cases name: audio, image folders, existing outputs, bundles, a run
    folder and a small dataset (no audio). The cases must leave it exactly as it is."""
    from speechvision.data.spoken_fashion import BuildConfig, build_spoken_fashion

    w = tmp_path_factory.mktemp("world")
    sf.write(w / "good.wav", sine(1.0), 22050)
    (w / "dir").mkdir()
    sf.write(w / "dir" / "good.wav", sine(1.0), 22050)
    (w / "file.txt").write_text("a file, not a folder\n")
    (w / "exists.png").write_bytes(PNG)
    (w / "exists.wav").write_bytes(b"RIFF")
    (w / "empty.wav").write_bytes(b"")
    write_png(w / "images1" / "a.png")
    for i in range(3):
        write_png(w / "images3" / f"{i}.png", i)
    write_png(w / "gen_out" / "good-seed0000.png")
    (w / "eval_out").mkdir()
    (w / "eval_out" / "metrics.json").write_text("{}")
    (w / "run").mkdir()
    (w / "run" / "config.json").write_text("{}")
    (w / "run" / "checkpoint.pt").write_bytes(b"x")
    (w / "clf").mkdir()
    (w / "clf" / "classifier.pt").write_bytes(b"x")
    make_bundles(w)
    build_spoken_fashion(w / "ds", fashion_mnist=fake_fashion_mnist, progress=False,
                         config=BuildConfig(images=12, unseen_images=8, synthesize=False))
    return w


@pytest.fixture(scope="module")
def busy_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def snapshot(root: Path) -> dict:
    """Every path under ``root``: (is a folder, size, mtime in ns)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.stat()
            out[str(p.relative_to(root))] = (p.is_dir(), st.st_size if p.is_file() else 0, st.st_mtime_ns)
    return out


AV = "--tokens @dir --lm @dir --av @dir"
LM = "--lm @dir --tokens @dir --vocoder @dir --prompt @good.wav"
RESPOND = "--model @nogen.pt --tokens @dir --vocoder @dir --video @good.wav --audio @good.wav"
SF = "data spoken-fashion --fashion-mnist {fm} --no-audio"
GEN = "generate --speech @good.wav --out @new"
GAN = "train gan --data @ds --sen @run --out @new"
DIALOGUE = "--model @nogen.pt --av @dir --tokens @dir --vocoder @dir --speech @dir"
SPEECH = "--data @ds --tokens @dir --vocoder @dir"

# One case a line: id, exit code, what the one line must name, the command line (@: the world folder, {fm}: the
# fake Fashion-MNIST, {busy}: a port in use, {free}: a free port; {av}, {lm}, {respond}, {sf}, {gen}, {gan},
# {dialogue}, {speech}: the command lines above).
CATALOGUE = """
# generate: counts, seeds, durations in the parser; outputs, bundles and names before any work
generate-n-0                    2 --n-per-speech  {gen} --n-per-speech 0
generate-n-negative             2 --n-per-speech  {gen} --n-per-speech -2
generate-seed-huge              2 --seed          {gen} --seed 100000000000000000000000
generate-seed-negative          2 --seed          {gen} --seed -1
generate-seed-fraction          2 --seed          {gen} --seed 1.5
generate-seed-past-range        1 --seed          {gen} --seed 9223372036854775807 --n-per-speech 2
generate-duration-nan           2 --max-duration-s {gen} --max-duration-s nan
generate-duration-inf           2 --max-duration-s {gen} --max-duration-s inf
generate-duration-0             2 --max-duration-s {gen} --max-duration-s 0
generate-out-is-file            1 file.txt        generate --speech @good.wav --out @file.txt
generate-out-under-file         1 file.txt        generate --speech @good.wav --out @file.txt/images
generate-image-exists           1 good-seed0000.png generate --speech @good.wav --out @gen_out
generate-bundle-mismatch        1 mismatch.pt     {gen} --checkpoint @mismatch.pt
generate-bundle-no-generator    1 nogen.pt        {gen} --checkpoint @nogen.pt
generate-same-stems             1 good.wav        generate --speech @good.wav @dir/good.wav --out @new
generate-missing-audio          1 missing.wav     generate --speech @missing.wav --out @new
generate-speech-is-folder       1 dir             generate --speech @dir --out @new
generate-empty-audio            1 empty.wav       generate --speech @empty.wav --out @new
# say
say-out-is-folder               1 dir             say coat --out @dir
say-out-exists                  1 exists.png      say coat --out @exists.png
say-seed-negative               2 --seed          say coat --out @new.png --seed -3
# evaluate: sizes before any Inception pass, outputs before any work
evaluate-real-1-image           1 images1         evaluate --real @images1 --fake @images3
evaluate-fake-1-image           1 images1         evaluate --real @images3 --fake @images1
evaluate-real-is-file           1 file.txt        evaluate --real @file.txt --fake @images3
evaluate-out-is-file            1 file.txt        evaluate --real @images3 --fake @images3 --out @file.txt
evaluate-out-exists             1 metrics.json    evaluate --data @ds --metrics fid --out @eval_out
evaluate-split-too-small        1 ds              evaluate --data @ds --metrics fid
evaluate-limit-0                2 --limit         evaluate --data @ds --limit 0
evaluate-captions-0             2 --captions-per-image evaluate --data @ds --captions-per-image 0
evaluate-sen-out-is-folder      1 dir             evaluate sen --checkpoint @run --data @ds --out @dir
evaluate-gan-limit-negative     2 --limit         evaluate gan --data @ds --classifier @clf --limit -3
# train: config values after --set, run folders, counts
train-sen-epochs-negative       1 sen.epochs      train sen --data @ds --out @new --set sen.epochs=-1
train-sen-batch-0               1 sen.batch_size  train sen --data @ds --out @new --set sen.batch_size=0
train-gan-lr-nan                1 gan.lr_g        {gan} --set gan.lr_g=nan
train-sen-out-is-file           1 file.txt        train sen --data @ds --out @file.txt
train-sen-run-exists            1 run             train sen --data @ds --out @run
train-sen-resume-and-force      2 --resume        train sen --data @ds --out @run --resume --force
train-sen-no-data               1 --data          train sen --data @nowhere --out @new
train-gan-minutes-0             2 --max-minutes   {gan} --max-minutes 0
train-gan-inputs-exist          1 exists.png      {gan} --save-inputs @exists.png
train-classifier-epochs-0       2 --epochs        train classifier --data @ds --out @new --epochs 0
train-classifier-out-exists     1 classifier.pt   train classifier --data @ds --out @clf
train-classifier-recolour-p-2   2 --recolour-p    train classifier --data @ds --out @new --recolour-p 2
# data: a complete build is never replaced, counts in the parser
data-sf-other-options           1 ds              {sf} --out @ds --images 15 --unseen-images 8
data-sf-out-is-file             1 file.txt        {sf} --out @file.txt --images 12
data-sf-foreign-folder          1 dir             {sf} --out @dir --images 12
data-sf-workers-negative        2 --workers       {sf} --out @new --workers -1
data-sf-images-0                2 --images        {sf} --out @new --images 0
data-sf-seed-huge               2 --seed          {sf} --out @new --seed 1e30
data-sf-captions-per-combo-2    1 --captions-per-combo {sf} --out @new --images 12 --captions-per-combo 2
data-cub-workers-0              2 --workers       data cub --root @dir --out @new --workers 0
data-emotion-dialogues-0        2 --dialogues     data spoken-emotion --out @new --dialogues 0
data-emotion-out-is-file        1 file.txt        data spoken-emotion --out @file.txt --dialogues 2
data-emotion-over-spoken-fashion 1 ds              data spoken-emotion --out @ds --dialogues 2
data-av-fraction                2 --ambiguous-fraction data av-emotion --speech @ds --out @new --ambiguous-fraction 1.5
data-av-fraction-nan            2 --ambiguous-fraction data av-emotion --speech @ds --out @new --ambiguous-fraction nan
# export
export-out-exists               1 exists.png      export --gan @run --out @exists.png
export-out-is-folder            1 dir             export --gan @run --out @dir
export-no-run                   1 nowhere         export --gan @nowhere --out @new.pt
# retrieve
retrieve-k-0                    2 -k              retrieve --checkpoint @run --speech @good.wav --data @ds -k 0
retrieve-bundle-for-sen         1 nogen.pt        retrieve --checkpoint @nogen.pt --speech @good.wav --data @ds
# serve: the port and the model before anything is served
serve-port-0                    2 --port          serve --port 0
serve-port-70000                2 --port          serve --port 70000
serve-concurrency-0             2 --concurrency   serve --concurrency 0
serve-port-in-use               1 --port          serve --port {busy}
serve-bad-bundle                1 nogen.pt        serve --checkpoint @nogen.pt --port {free}
serve-data-without-sen          2 --sen           serve --data @ds --port {free}
serve-sen-without-data          2 --data          serve --sen @run --port {free}
# speechlm
speechlm-tokenize-units-0       2 --units         speechlm tokenize --data @ds --out @new --units 0
speechlm-tokenize-out-not-empty 1 dir             speechlm tokenize --data @ds --out @dir
speechlm-vocoder-steps-0        2 --steps         speechlm vocoder --tokens @dir --out @new --steps 0
speechlm-train-lr-nan           2 --lr            speechlm train --tokens @dir --out @new --lr nan
speechlm-train-resume-and-force 2 --resume        speechlm train --tokens @dir --out @run --resume --force
speechlm-continue-out-exists    1 exists.wav      speechlm continue {lm} --out @exists.wav
speechlm-continue-top-p-0       2 --top-p         speechlm continue {lm} --out @new.wav --top-p 0
speechlm-continue-temp-negative 2 --temperature   speechlm continue {lm} --out @new.wav --temperature -1
speechlm-evaluate-out-is-file   1 file.txt        speechlm evaluate {speech} --out @file.txt
# avlm
avlm-train-batch-0              2 --batch-size    avlm train {av} --out @new --batch-size 0
avlm-train-out-is-file          1 file.txt        avlm train {av} --out @file.txt
avlm-train-seed-negative        2 --seed          avlm train {av} --out @new --seed -5
avlm-compare-seed-word          2 --seeds         avlm compare {av} --out @new --seeds 1 x
avlm-compare-out-is-file        1 file.txt        avlm compare {av} --out @file.txt
avlm-respond-out-is-folder      1 dir             avlm respond {respond} --out @dir
avlm-respond-tokens-0           2 --max-tokens    avlm respond {respond} --out @new.wav --max-tokens 0
avlm-dialogue-out-not-empty     1 dir             avlm evaluate-dialogue {dialogue} --out @dir
# the speech tools and config
features-duration-nan           2 --max-duration-s features @good.wav --max-duration-s nan
synth-out-is-folder             1 dir             synth coat --out @dir
config-epochs-0                 1 sen.epochs      config --set sen.epochs=0
config-frontend-width           1 sen.speech.n_mels config --set audio.frontend=whisper
config-e2e-from-scratch         1 gan.end_to_end  config --set gan.sen_pretrained=false
# pipeline variants, the AVLM demo and tab: shared parts and stacks before any work
pipeline-sen-missing            1 nowhere         pipeline --out @new --data @ds --sen @nowhere
pipeline-judges-missing         1 nowhere         pipeline --out @new --data @ds --judges @nowhere
pipeline-unknown-set            1 gan.nope        pipeline --out @new --data @ds --set gan.nope=3
avlm-demo-no-stack              1 bundle.json     avlm demo --out @new --stack @dir
serve-avlm-stack-missing        1 bundle.json     serve --avlm-stack @dir --port {free}
data-emotion-grammar            2 --grammar       data spoken-emotion --out @new --grammar v3
speechlm-tokenize-levels-neg    2 --level-bins    speechlm tokenize --data @ds --out @new --level-bins -1
"""
SHORT = {"av": AV, "lm": LM, "respond": RESPOND, "sf": SF, "gen": GEN, "gan": GAN, "dialogue": DIALOGUE,
         "speech": SPEECH, "fm": "{fm}", "busy": "{busy}", "free": "{free}"}
CASES = [(cid, line.format(**SHORT), int(code), named)
         for cid, code, named, line in (row.split(maxsplit=3) for row in CATALOGUE.strip().splitlines()
                                        if not row.startswith("#"))]


def run_cli(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as e:  # the parser's usage errors
        return e.code


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, world, busy_port, fake_fashion_mnist, capfd):
    _, line, code, named = case
    argv = [a.replace("@", f"{world}/").format(fm=fake_fashion_mnist, busy=busy_port, free=free_port())
            for a in line.split()]
    before = snapshot(world)
    got = run_cli(argv)
    err = capfd.readouterr().err
    assert got == code, err
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert named in err, err
    assert "Traceback" not in err and "looks like a bug" not in err, err
    assert snapshot(world) == before, f"{line}: changed files on disk"


def test_the_catalogue_covers_every_command():
    commands = {line.split()[0] for _, line, _, _ in CASES}
    assert {"generate", "say", "evaluate", "train", "data", "export", "retrieve", "serve", "speechlm",
            "avlm"} <= commands
    assert len(CASES) >= 40 and len({c[0] for c in CASES}) == len(CASES)


def test_every_numeric_option_is_checked_in_the_parser():
    """No command takes a plain int or float: each count, duration, rate, seed and port goes through one of
    the checking types of cli/common.py (or a fixed list of choices)."""
    import argparse

    from speechvision.cli import build_parser
    from speechvision.cli.common import COMMANDS

    for path in COMMANDS:
        parser = build_parser()
        try:
            parser.parse_args([*path, "--help"])
        except SystemExit:
            pass
        node = parser
        for name in path:  # the sub-parser of this command
            sub = next(a for a in node._actions if isinstance(a, argparse._SubParsersAction))
            node = sub.choices[name]
        for action in node._actions:
            assert action.type not in (int, float) or action.choices, (path, action.option_strings)


def test_say_too_long_names_the_limit_not_a_flag(tmp_path, monkeypatch, capfd):
    from speechvision.core import tts

    monkeypatch.setattr(tts, "synthesize", lambda text, voice=None: (np.full(40 * 22050, 0.1, np.float32), 22050))
    assert run_cli(["say", "a very long description", "--out", str(tmp_path / "x.png")]) == 1
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "40.0 s" in err and "30 s" in err and "--max-duration-s" not in err, err
    assert "say.wav" not in err and list(tmp_path.iterdir()) == []


def test_the_installed_entry_point_gives_the_same_one_line():
    """As a subprocess (``python -m speechvision.cli``): a usage error and a runtime error, one line each."""
    for args, code, named in ((["generate", "--speech", "x.wav", "--out", "o", "--n-per-speech", "0"], 2,
                               "--n-per-speech"),
                              (["config", "--set", "gan.batch_size=0"], 1, "gan.batch_size")):
        out = subprocess.run([sys.executable, "-m", "speechvision.cli", *args], capture_output=True, text=True,
                             check=False)
        assert out.returncode == code and out.stderr.count("\n") == 1 and named in out.stderr, out.stderr


# ---- what the checks must not break --------------------------------------------------------------------------


def test_data_build_resumes_same_options_and_force_replaces(tmp_path, fake_fashion_mnist, capfd):
    out = tmp_path / "sf"
    args = ["data", "spoken-fashion", "--fashion-mnist", str(fake_fashion_mnist), "--no-audio", "--out", str(out),
            "--images", "12", "--unseen-images", "8"]
    assert run_cli(args) == 0
    (out / "dataset.json").unlink()  # as if killed before the end
    (out / "images" / "000003.png").unlink()
    assert run_cli(args) == 0  # the same options: resumed
    assert (out / "dataset.json").is_file() and (out / "images" / "000003.png").is_file()
    assert run_cli(args) == 0  # a complete build of the same options: repaired in place, nothing lost
    other = [*args[:-4], "--images", "15", "--unseen-images", "8"]
    assert run_cli(other) == 1 and "--force" in capfd.readouterr().err
    assert run_cli([*other, "--force"]) == 0
    from speechvision.data.manifest import load_dataset

    assert sum(load_dataset(out).meta["splits"].values()) == 15 + 8


def test_force_replaces_outputs(tmp_path, capfd):
    wav = tmp_path / "good.wav"
    sf.write(wav, sine(1.0), 22050)
    args = ["generate", "--speech", str(wav), "--out", str(tmp_path / "img")]
    assert run_cli(args) == 0
    first = (tmp_path / "img" / "good-seed0000.png").stat().st_mtime_ns
    assert run_cli(args) == 1 and "--force" in capfd.readouterr().err
    assert run_cli([*args, "--seed", "1"]) == 0  # other names: no clash
    assert run_cli([*args, "--force"]) == 0
    assert (tmp_path / "img" / "good-seed0000.png").stat().st_mtime_ns >= first


def test_train_force_removes_only_the_earlier_run(tmp_path, capfd):
    from speechvision.cli.s2igan_train import remove_earlier_run

    run = tmp_path / "run"
    (run / "snapshots").mkdir(parents=True)
    for name in ("checkpoint.pt", "config.json", "log.jsonl", "notes.md"):
        (run / name).write_text("x")
    args = ["train", "sen", "--data", str(tmp_path / "nowhere"), "--out", str(run)]
    assert run_cli(args) == 1 and "--resume" in capfd.readouterr().err  # --out is checked first
    assert run_cli([*args, "--resume"]) == 1 and "nowhere" in capfd.readouterr().err  # then --data
    assert run_cli([*args, "--force"]) == 1 and "nowhere" in capfd.readouterr().err
    assert (run / "checkpoint.pt").is_file()  # a bad --data: nothing removed
    remove_earlier_run(run, force=False)
    assert (run / "checkpoint.pt").is_file()
    remove_earlier_run(run, force=True)
    assert sorted(p.name for p in run.iterdir()) == ["notes.md"]
