import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from speechvision.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from speechvision.core.inception import InceptionFeatures
from speechvision.metrics.retrieval import mean_average_precision, median_rank, recall_at_k
from speechvision.s2igan.config import apply_overrides, preset
from speechvision.s2igan.evaluate_sen import evaluate_sen
from speechvision.s2igan.image_encoder import ImageEncoder, ImageEncoderConfig, SmallCNNEncoder
from speechvision.s2igan.losses import distinctive_loss, matching_loss
from speechvision.s2igan.speech_encoder import SpeechEncoder, SpeechEncoderConfig
from speechvision.s2igan.train_sen import train_sen

SMALL = SpeechEncoderConfig(rnn_hidden=16, attention_dim=8, embedding_dim=32)


def test_speech_encoder_shapes_and_lengths():
    enc = SpeechEncoder(SpeechEncoderConfig(rnn_hidden=512)).eval()
    x = torch.randn(3, 120, 40)
    y = enc(x, torch.tensor([120, 90, 40]))
    assert y.shape == (3, 1024)
    torch.testing.assert_close(y.norm(dim=-1), torch.ones(3))
    assert enc.output_lengths(torch.tensor([120])).item() == (((120 - 6) // 2 + 1) - 6) // 2 + 1
    with pytest.raises(ValueError, match="shorter"):
        enc(torch.randn(1, 10, 40), torch.tensor([10]))


def test_padding_never_changes_an_embedding():
    torch.manual_seed(0)
    enc = SpeechEncoder(SMALL).eval()
    utt = torch.randn(1, 57, 40)
    alone = enc(utt, torch.tensor([57]))
    batch = torch.zeros(3, 200, 40)
    batch[0] = torch.randn(200, 40)
    batch[1, :57] = utt[0]
    batch[1, 57:] = 5.0  # garbage in the padding must be ignored too
    batch[2, :100] = torch.randn(100, 40)
    together = enc(batch, torch.tensor([200, 57, 100]))
    torch.testing.assert_close(together[1:2], alone, atol=1e-5, rtol=1e-5)


def _naive_matching(speech, image, labels, gamma):
    B, total = len(labels), 0.0
    for direction in (0, 1):
        for i in range(B):
            logits = []
            for j in range(B):
                s = gamma * float((speech[i] @ image[j]) if direction == 0 else (image[i] @ speech[j]))
                logits.append(float("-inf") if (j != i and labels[i] == labels[j]) else s)
            logits = np.array(logits)
            total += -(logits[i] - np.log(np.exp(logits[np.isfinite(logits)]).sum())) / B
    return total


def test_losses_match_naive_reference():
    torch.manual_seed(1)
    speech, image = F.normalize(torch.randn(6, 8), dim=-1), F.normalize(torch.randn(6, 8), dim=-1)
    labels = torch.tensor([0, 1, 0, 2, 1, 3])
    got = matching_loss(speech, image, labels, gamma=10.0).item()
    assert got == pytest.approx(_naive_matching(speech, image, labels, 10.0), rel=1e-5)
    head = torch.nn.Linear(8, 4)
    ref = F.cross_entropy(head(speech), labels) + F.cross_entropy(head(image), labels)
    assert distinctive_loss(head, speech, image, labels).item() == pytest.approx(ref.item())


def test_image_encoders():
    assert ImageEncoder()(torch.randn(4, 2048)).shape == (4, 1024)
    assert SmallCNNEncoder(ImageEncoderConfig(kind="cnn", embedding_dim=32))(torch.randn(2, 3, 64, 64)).shape == (2, 32)
    x = InceptionFeatures().preprocess(torch.full((1, 3, 64, 64), 255, dtype=torch.uint8))
    assert x.shape == (1, 3, 299, 299) and x.max().item() == pytest.approx(0.9921875)


def test_inception_features_batch_independent():
    net = InceptionFeatures()
    imgs = torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8)
    a = net(imgs)
    b = torch.cat([net(imgs[:1]), net(imgs[1:])])
    assert a.shape == (3, 2048)
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_retrieval_metrics_known_values():
    scores = np.array([[0.9, 0.8, 0.1], [0.1, 0.2, 0.9]])
    rel = np.array([[True, False, True], [False, True, False]])
    # query 0: hits at ranks 1 and 3 -> (1/1 + 2/3) / 2; query 1: hit at rank 2 -> 1/2
    assert mean_average_precision(scores, rel) == pytest.approx(((1 + 2 / 3) / 2 + 0.5) / 2)
    assert recall_at_k(scores, rel, (1, 2)) == {"R@1": 0.5, "R@2": 1.0}
    assert median_rank(scores, np.array([0, 1])) == 1.5


def test_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "x.pt", "sen")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(tmp_path / "bad.pt", "sen")
    save_checkpoint(tmp_path / "g.pt", "gan", {"x": 1})
    with pytest.raises(CheckpointError, match="a 'gan' checkpoint"):
        load_checkpoint(tmp_path / "g.pt", "sen")
    ck = torch.load(tmp_path / "g.pt", weights_only=True)
    ck["format_version"] = 0
    torch.save(ck, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match="format 0"):
        load_checkpoint(tmp_path / "old.pt", "gan")


def _tiny_cfg(**over):
    cfg = apply_overrides(preset("spoken-fashion"), [
        "sen.speech.rnn_hidden=16", "sen.speech.attention_dim=8", "sen.speech.embedding_dim=32",
        "sen.image.embedding_dim=32", "sen.image.kind=cnn", "sen.batch_size=8", "sen.epochs=2",
        "sen.eval_every_epochs=1", "sen.lr_step_epochs=1"] + [f"{k}={v}" for k, v in over.items()])
    return cfg


def test_run_folder(tmp_path):
    """The run folder both trainings share: resume or refuse, config.json, log.jsonl, checkpoints; only
    the main process writes."""
    from speechvision.core.run import RunFolder

    run = RunFolder(tmp_path / "r", "sen")
    assert run.start(resume=False) is None
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        run.start(resume=True)
    run.write_config({"a": 1})
    run.append_log({"epoch": 1})
    run.append_log({"epoch": 2})
    run.save_checkpoint({"epoch": 2})
    assert json.loads((tmp_path / "r" / "config.json").read_text()) == {"a": 1}
    assert [json.loads(x)["epoch"] for x in (tmp_path / "r" / "log.jsonl").read_text().splitlines()] == [1, 2]
    stale = tmp_path / "r" / "checkpoint.tmp999999999.pt"  # a save killed half-way (its writer is gone)
    stale.write_bytes(b"half a checkpoint")
    assert run.start(resume=True)["epoch"] == 2
    assert not stale.exists()  # a resume clears it
    with pytest.raises(CheckpointError, match="already exists"):
        run.start(resume=False)
    with pytest.raises(CheckpointError, match="a 'sen' checkpoint"):
        RunFolder(tmp_path / "r", "gan").start(resume=True)
    other = RunFolder(tmp_path / "o", "sen", main=False)
    other.write_config({"a": 1})
    other.append_log({"epoch": 1})
    other.save_checkpoint({"epoch": 1})
    assert not (tmp_path / "o").exists()


def test_resume_is_identical_to_an_uninterrupted_run(tmp_path, tiny_spoken_fashion):
    train_sen(tiny_spoken_fashion, tmp_path / "full", _tiny_cfg(), progress=False)
    train_sen(tiny_spoken_fashion, tmp_path / "cut", _tiny_cfg(), progress=False, stop_after_epoch=1)
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.pt", "sen")["epoch"] == 1
    with pytest.raises(CheckpointError, match="already exists"):
        train_sen(tiny_spoken_fashion, tmp_path / "cut", _tiny_cfg(), progress=False)
    train_sen(tiny_spoken_fashion, tmp_path / "cut", _tiny_cfg(), resume=True, progress=False)
    a = load_checkpoint(tmp_path / "full" / "checkpoint.pt", "sen")
    b = load_checkpoint(tmp_path / "cut" / "checkpoint.pt", "sen")
    assert a["epoch"] == b["epoch"] == 2
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=0)
    log = [json.loads(x) for x in (tmp_path / "cut" / "log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in log] == [1, 2] and "val" in log[0]
    assert json.loads((tmp_path / "full" / "config.json").read_text())["config"]["sen"]["batch_size"] == 8


def test_evaluate_and_retrieve(tmp_path, tiny_spoken_fashion):
    from speechvision.data.manifest import load_dataset
    from speechvision.s2igan.retrieval import retrieve

    train_sen(tiny_spoken_fashion, tmp_path / "run", _tiny_cfg(), progress=False)
    res = evaluate_sen(tmp_path / "run", tiny_spoken_fashion, progress=False)
    assert 0 <= res["test"]["mAP"] <= 1 and res["test"]["queries"] == len(load_dataset(tiny_spoken_fashion).split("test"))
    assert "test_unseen" in res
    ds = load_dataset(tiny_spoken_fashion)
    wav = ds.path(ds.split("test")[0].captions[0].audio)
    hits = retrieve(tmp_path / "run", wav, tiny_spoken_fashion, k=3)
    assert len(hits) == 3 and hits[0][0] >= hits[1][0] >= hits[2][0]


def test_factored_heads_train_garment_and_colour_and_reload(tmp_path, tiny_spoken_fashion):
    """sen.factored=garment,colour: a head per attribute on both embeddings (issue 17), kept in the checkpoint."""
    from speechvision.data.manifest import DatasetError
    from speechvision.s2igan.losses import sen_loss
    from speechvision.s2igan.sen import build_sen, load_sen
    from speechvision.s2igan.train_sen import train_sen

    cfg = _tiny_cfg(**{"sen.factored": "garment,colour", "sen.epochs": 1})
    train_sen(tiny_spoken_fashion, tmp_path / "f", cfg, progress=False)
    model, saved, ck = load_sen(tmp_path / "f")
    assert saved.sen.factored == "garment,colour" and len(ck["attributes"]["colour"]) == 8
    assert model.attribute_heads["garment"].out_features == 10 and model.attribute_heads["colour"].out_features == 8
    log = [json.loads(x) for x in (tmp_path / "f" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["factored"] > 0
    attrs = {"garment": [str(i) for i in range(10)], "colour": [str(i) for i in range(8)]}
    m = build_sen(cfg, 80, attrs)
    s, i = torch.nn.functional.normalize(torch.randn(4, 32), dim=-1), torch.nn.functional.normalize(torch.randn(4, 32), dim=-1)
    y = torch.tensor([0, 1, 2, 3])
    with_f = sen_loss(m, s, i, y, cfg.sen, {"garment": y, "colour": y})
    without = sen_loss(m, s, i, y, cfg.sen)
    assert with_f["factored"] > 0 and without["factored"] == 0
    torch.testing.assert_close(with_f["loss"] - without["loss"], with_f["factored"])
    with pytest.raises(DatasetError, match="no attribute 'size'"):
        train_sen(tiny_spoken_fashion, tmp_path / "bad", _tiny_cfg(**{"sen.factored": "size"}), progress=False)


def test_whisper_front_end_config_features_and_a_tiny_sen(tmp_path, tiny_spoken_fashion):
    """audio.frontend=whisper (issue 17 item 6): the config demands the matching SEN input width, features are
    the frozen Whisper encoder's at 25 Hz, and a SEN trains on them and embeds a file through the pipeline's
    path."""
    pytest.importorskip("faster_whisper", reason="the expressive extra is not installed")
    from speechvision.core.audio import LogMelConfig, speech_features
    from speechvision.data.manifest import load_dataset
    from speechvision.s2igan.config import ConfigError
    from speechvision.s2igan.pipeline import embed_wavs
    from speechvision.s2igan.sen import load_sen

    with pytest.raises(ConfigError, match="set sen.speech.n_mels=384"):
        _tiny_cfg(**{"audio.frontend": "whisper"})
    with pytest.raises(ConfigError, match="audio.frontend=mfcc: choose one of logmel, whisper"):
        _tiny_cfg(**{"audio.frontend": "mfcc"})
    cfg = _tiny_cfg(**{"audio.frontend": "whisper", "sen.speech.n_mels": 384, "sen.epochs": 1})
    assert cfg.audio.frontend == "whisper" and cfg.audio.input_rate_hz == 16000 and cfg.audio.feature_dim == 384
    wave = np.random.default_rng(0).standard_normal(16000 * 3 // 2).astype(np.float32) * 0.1
    f = speech_features(wave, cfg.audio)
    assert f.shape == (38, 384) and np.array_equal(f, speech_features(wave, cfg.audio))  # ceil(1.5 s * 25 Hz)
    assert speech_features(wave, LogMelConfig()).shape[1] == 40
    train_sen(tiny_spoken_fashion, tmp_path / "w", cfg, progress=False)
    model, saved, _ = load_sen(tmp_path / "w")
    assert saved.audio.frontend == "whisper"
    ds = load_dataset(tiny_spoken_fashion)
    wav = ds.path(ds.split("test")[0].captions[0].audio)
    emb = embed_wavs(model.speech_encoder, [wav], saved.audio)
    assert emb.shape == (1, cfg.sen.speech.embedding_dim) and torch.isfinite(emb).all()
