"""The speech encoder distilled into a bundle's embedding space (issue 17): centroids, loss, exact resume, bundle."""

import json
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from speechvision.core.checkpoint import CheckpointError, load_checkpoint
from speechvision.data.manifest import DatasetError
from speechvision.s2igan.config import ConfigError
from speechvision.s2igan.sen_distill import DistillConfig, class_centroids, distill_loss, distill_speech_encoder


def test_centroids_leave_out_rows_nearer_another_class():
    g = torch.Generator().manual_seed(0)
    a, b = F.normalize(torch.randn(2, 16, generator=g), dim=-1)
    rows = torch.stack([F.normalize(v + 0.05 * torch.randn(16, generator=g), dim=0)
                        for v in [a] * 9 + [b] * 10 + [b]])  # the last row sits at b but is labelled a
    labels = torch.tensor([0] * 9 + [1] * 10 + [0])
    plain, kept_all = class_centroids(rows, labels, 2, refine_rounds=0)
    refined, kept = class_centroids(rows, labels, 2, refine_rounds=2)
    assert kept_all == 1.0 and kept == pytest.approx(19 / 20)
    assert float(refined[0] @ a) > float(plain[0] @ a) > 0.9  # the mislabelled row no longer pulls class 0
    assert torch.allclose(refined.norm(dim=1), torch.ones(2))
    with pytest.raises(DatasetError, match="class index 2 has no training caption"):
        class_centroids(rows, labels, 3, refine_rounds=1)


def test_loss_is_lowest_at_the_own_centroid():
    c = F.normalize(torch.randn(4, 8), dim=-1)
    labels = torch.tensor([0, 1, 2, 3])
    dc = DistillConfig()
    at = distill_loss(c, labels, c, dc)
    off = distill_loss(c, labels.roll(1), c, dc)
    assert float(at["cosine"]) == pytest.approx(0.0, abs=1e-6) and float(off["cosine"]) > 0.5
    assert float(at["loss"]) < float(off["loss"])
    with pytest.raises(ValueError, match="epochs 0"):
        DistillConfig(epochs=0)


def test_distillation_resumes_exactly_and_writes_a_bundle_that_generates(tmp_path, tiny_spoken_fashion):
    from speechvision.s2igan.pipeline import S2IGANPipeline

    dc = DistillConfig(epochs=2, batch_size=16, speech_augment=False)
    whole = distill_speech_encoder(tiny_spoken_fashion, tmp_path / "whole", None, dc, progress=False)
    distill_speech_encoder(tiny_spoken_fashion, tmp_path / "split", None, dc, progress=False, stop_after_epoch=1)
    assert not (tmp_path / "split" / "bundle.pt").exists()
    with pytest.raises(CheckpointError, match="a run already exists"):
        distill_speech_encoder(tiny_spoken_fashion, tmp_path / "split", None, dc, progress=False)
    with pytest.raises(ConfigError, match="own batch_size \\(batch_size=16\\); only the epochs may change"):
        distill_speech_encoder(tiny_spoken_fashion, tmp_path / "split", None, replace(dc, batch_size=8),
                               progress=False, resume=True)
    with pytest.raises(ConfigError, match="distils the bundled model, not"):
        distill_speech_encoder(tiny_spoken_fashion, tmp_path / "split", tmp_path / "other.pt", progress=False,
                               resume=True)
    resumed = distill_speech_encoder(tiny_spoken_fashion, tmp_path / "split", None, None, progress=False, resume=True)
    assert resumed == whole and 0 <= whole["accuracy"] <= 1
    a, b = (load_checkpoint(tmp_path / r / "checkpoint.pt", "sen-distill") for r in ("whole", "split"))
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    log = [json.loads(line) for line in (tmp_path / "whole" / "log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in log] == [0, 1, 2] and log[0]["note"] == "the teacher itself"

    teacher, student = S2IGANPipeline.load(None), S2IGANPipeline.load(tmp_path / "whole" / "bundle.pt")
    t_sd, s_sd = teacher.generator.state_dict(), student.generator.state_dict()
    assert all(torch.equal(t_sd[k], s_sd[k]) for k in t_sd)  # the teacher's generator, unchanged
    changed = [k for k, v in teacher.speech_encoder.state_dict().items()
               if v.is_floating_point() and not torch.equal(v, student.speech_encoder.state_dict()[k])]
    assert changed  # the speech encoder was trained
    wav = next(tiny_spoken_fashion.rglob("*.wav"))
    images = student.speech_to_images([wav], seed=3)
    assert images[-1].shape[0] == 1 and torch.isfinite(images[-1]).all()


def test_a_student_with_its_own_front_end_starts_fresh_and_its_bundle_reads_that_front_end(tmp_path,
                                                                                          tiny_spoken_fashion):
    from speechvision.s2igan.pipeline import S2IGANPipeline

    dc = DistillConfig(epochs=1, batch_size=16, speech_augment=False, lr=1e-3)
    over = ["audio.frontend=whisper", "sen.speech.n_mels=384", "sen.speech.rnn_hidden=32"]
    distill_speech_encoder(tiny_spoken_fashion, tmp_path / "w", None, dc, overrides=over, progress=False)
    cfg = json.loads((tmp_path / "w" / "config.json").read_text())
    assert cfg["student"] == "fresh, its own front end"
    log = [json.loads(line) for line in (tmp_path / "w" / "log.jsonl").read_text().splitlines()]
    assert log[0]["val"]["accuracy"] > 0.5  # the teacher, on its own log-mels, agrees with its centroids

    student = S2IGANPipeline.load(tmp_path / "w" / "bundle.pt")
    assert student.config.audio.frontend == "whisper" and student.speech_encoder.config.rnn_hidden == 32
    teacher = S2IGANPipeline.load(None)
    t_sd, s_sd = teacher.generator.state_dict(), student.generator.state_dict()
    assert all(torch.equal(t_sd[k], s_sd[k]) for k in t_sd)
    wav = next(tiny_spoken_fashion.rglob("*.wav"))
    assert student.embed([wav]).shape == (1, 1024)
