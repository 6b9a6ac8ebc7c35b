import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from speechvision.core.checkpoint import CheckpointError, load_checkpoint
from speechvision.s2igan.config import apply_overrides, preset
from speechvision.s2igan.discriminator import Discriminator
from speechvision.s2igan.dsg import DSG, DSGConfig, init_weights
from speechvision.s2igan.losses import S2IGANLoss, kl_loss
from speechvision.s2igan.relation import DIFFERENT, SAME, SIMILAR, RelationSupervisor
from speechvision.s2igan.train_gan import GANBatches, train_gan
from speechvision.s2igan.train_sen import train_sen


@pytest.mark.parametrize("name, sizes", [("cub", [64, 128, 256]), ("spoken-fashion", [16, 32, 64])])
def test_generator_and_discriminator_shapes(name, sizes):
    gc = preset(name).gan.generator
    assert gc.sizes_px == sizes
    G = DSG(gc).eval()
    init_weights(G)
    imgs, mu, logvar = G(torch.randn(2, 1024), torch.randn(2, 100))
    assert [tuple(i.shape) for i in imgs] == [(2, 3, s, s) for s in sizes]
    assert mu.shape == logvar.shape == (2, 128)
    assert all(i.min() >= -1 and i.max() <= 1 for i in imgs)
    for s, img in zip(sizes, imgs):
        D = Discriminator(s, preset(name).gan.discriminator).eval()
        cond, uncond = D(img, mu)
        assert cond.shape == uncond.shape == (2,)


def test_dense_switch_changes_the_stacking_only():
    dense, plain = DSG(DSGConfig(ngf=16, base_size_px=16)), DSG(
        DSGConfig(ngf=16, base_size_px=16, dense=False))
    assert dense.next_stages[0].up[1].in_channels == 2 * 16 and plain.next_stages[0].up[1].in_channels == 16
    out = plain.eval()(torch.randn(1, 1024), torch.randn(1, 100))[0]
    assert [o.shape[-1] for o in out] == [16, 32, 64]


def test_kl_matches_closed_form():
    mu, logvar = torch.tensor([[0.5, -1.0]]), torch.tensor([[0.2, -0.3]])
    ref = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).mean()
    assert kl_loss(mu, logvar).item() == pytest.approx(ref.item())
    assert kl_loss(torch.zeros(3, 4), torch.zeros(3, 4)).item() == 0


def _tiny_loss():
    cfg = apply_overrides(preset("spoken-fashion"), ["gan.generator.ngf=8", "gan.discriminator.ndf=8",
                                                     "gan.generator.embedding_dim=16", "gan.relation.embedding_dim=16"])
    gc = cfg.gan
    G, Ds = DSG(gc.generator), torch.nn.ModuleList([Discriminator(s, gc.discriminator) for s in gc.generator.sizes_px])
    RS = RelationSupervisor(gc.relation)
    head = torch.nn.Linear(3 * 64 * 64, 16)
    loss = S2IGANLoss(G, Ds, RS, lambda x: torch.nn.functional.normalize(head(x.flatten(1)), dim=-1), gc)
    B = 4
    batch = {"real": [torch.rand(B, 3, s, s) * 2 - 1 for s in gc.generator.sizes_px],
             "wrong": [torch.rand(B, 3, s, s) * 2 - 1 for s in gc.generator.sizes_px],
             "embedding": torch.randn(B, 16), "z": torch.randn(B, 100), "eps": torch.randn(B, 128),
             **{k: torch.nn.functional.normalize(torch.randn(B, 16), dim=-1) for k in ("anchor", "similar", "different")}}
    return loss, batch, G, Ds, RS


def test_relation_labels_follow_the_official_code():
    loss, batch, *_ = _tiny_loss()
    fake = torch.randn(4, 16)
    anchor, others, labels = loss._relation_batch(batch, fake)
    assert labels.tolist() == [SAME] * 4 + [SIMILAR] * 4 + [SIMILAR] * 4 + [DIFFERENT] * 4
    torch.testing.assert_close(others[:4], batch["anchor"])
    torch.testing.assert_close(others[8:12], fake)
    torch.testing.assert_close(anchor[12:], batch["anchor"])


def test_phases_touch_only_their_modules():
    loss, batch, G, Ds, RS = _tiny_loss()
    loss.prepare(batch)
    assert loss.phases == ("D", "RS", "G")
    loss.accumulate_gradients("D", batch)
    assert all(p.grad is None for p in G.parameters()) and any(p.grad is not None for p in Ds.parameters())
    loss.accumulate_gradients("RS", batch)
    assert all(p.grad is None for p in G.parameters()) and all(p.grad is not None for p in RS.parameters())
    stats = loss.accumulate_gradients("G", batch)
    assert all(p.grad is not None for p in G.ca.parameters())
    assert {"G0", "G1", "G2", "KL", "G_RS"} <= set(stats)


def test_batches_pair_the_right_classes():
    gc = apply_overrides(preset("spoken-fashion"), ["gan.batch_size=6"]).gan
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    b = GANBatches(torch.zeros(8, 3, 64, 64, dtype=torch.uint8), labels, [[0, 1]] * 8, torch.randn(2, 8),
                   torch.arange(8.0)[:, None], gc, "cpu")
    x = b.get(0)
    idx = x["index"]
    sim, diff = x["similar"].flatten().long(), x["different"].flatten().long()
    assert (labels[sim] == labels[idx]).all() and (sim != idx).all()
    assert (labels[diff] != labels[idx]).all()
    y = b.get(0)
    torch.testing.assert_close(x["z"], y["z"])  # step randomness is a function of (seed, step)
    assert not torch.equal(b.get(1)["z"], x["z"])


def _tiny_cfg(**extra):
    over = ["sen.speech.rnn_hidden=16", "sen.speech.attention_dim=8", "sen.speech.embedding_dim=32",
            "sen.image.embedding_dim=32", "sen.batch_size=8", "sen.epochs=1", "gan.generator.ngf=8",
            "gan.discriminator.ndf=8", "gan.batch_size=8", "gan.iterations=4", "gan.generator.embedding_dim=32",
            "gan.relation.embedding_dim=32", "gan.log_every=2", "gan.snapshot_every=2", "gan.checkpoint_every=2"]
    return apply_overrides(preset("spoken-fashion"), over + [f"{k}={v}" for k, v in extra.items()])


@pytest.fixture(scope="module")
def tiny_sen(tmp_path_factory, tiny_spoken_fashion):
    out = tmp_path_factory.mktemp("sen") / "run"
    train_sen(tiny_spoken_fashion, out, _tiny_cfg(), progress=False)
    return out


def test_tiny_end_to_end_train_resume_generate(tmp_path, tiny_spoken_fashion, tiny_sen):
    from speechvision.data.manifest import load_dataset
    from speechvision.s2igan.export import export_bundle
    from speechvision.s2igan.pipeline import S2IGANPipeline

    train_gan(tiny_spoken_fashion, tiny_sen, tmp_path / "full", _tiny_cfg(), device="cpu", progress=False)
    train_gan(tiny_spoken_fashion, tiny_sen, tmp_path / "cut", _tiny_cfg(), device="cpu", progress=False,
              stop_after_step=2)
    train_gan(tiny_spoken_fashion, None, tmp_path / "cut", _tiny_cfg(), device="cpu", progress=False, resume=True)
    a, b = (load_checkpoint(tmp_path / n, "gan") for n in ("full", "cut"))
    assert a["step"] == b["step"] == 4
    for k in a["G_ema"]:
        torch.testing.assert_close(a["G_ema"][k], b["G_ema"][k], rtol=0, atol=0)
    log = [json.loads(x) for x in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [2, 4] and "RS" in log[0]
    assert all(e["ca_mu_spread"] >= 0 and e["ca_sigma"] > 0 for e in log)  # the conditioning's health, logged
    assert (tmp_path / "full" / "snapshots" / "step00000004.png").is_file()

    bundle = export_bundle(tmp_path / "full", tmp_path / "bundle.pt")
    ds = load_dataset(tiny_spoken_fashion)
    wav = ds.path(ds.split("test")[0].captions[0].audio)
    run, packed = S2IGANPipeline.load(tmp_path / "full"), S2IGANPipeline.load(bundle)
    x1, x2 = run.speech_to_images([wav], seed=5)[-1], packed.speech_to_images([wav], seed=5)[-1]
    torch.testing.assert_close(x1, x2, atol=2e-2, rtol=0)  # fp16 bundle
    again = packed.speech_to_images([wav], seed=5)
    torch.testing.assert_close(again[-1], x2, rtol=0, atol=0)
    assert [s.shape[-1] for s in again] == [16, 32, 64]
    assert not torch.equal(packed.speech_to_images([wav], seed=6)[-1], x2)


def test_gan_run_names_its_sen_by_an_absolute_path(tmp_path, tiny_spoken_fashion, tiny_sen, monkeypatch):
    """A run trained with a relative --sen still loads from another folder; a SEN gone since is a one-line
    error naming the run and the SEN, not a bare 'no such checkpoint'."""
    import shutil

    from speechvision.s2igan.pipeline import S2IGANPipeline

    shutil.copytree(tiny_sen, tmp_path / "sen")
    monkeypatch.chdir(tmp_path)
    train_gan(tiny_spoken_fashion, Path("sen"), tmp_path / "run", _tiny_cfg(**{"gan.iterations": 1}),
              device="cpu", progress=False)
    named = load_checkpoint(tmp_path / "run", "gan")["sen_checkpoint"]
    assert Path(named).is_absolute() and Path(named).is_relative_to(tmp_path / "sen")
    monkeypatch.chdir(tiny_sen)
    S2IGANPipeline.load(tmp_path / "run")
    shutil.rmtree(tmp_path / "sen")
    with pytest.raises(CheckpointError, match=r"run/checkpoint.pt: the SEN it names, .*sen/best.pt, does not exist"):
        S2IGANPipeline.load(tmp_path / "run")


def test_no_rs_ablation_and_cli_errors(tmp_path, tiny_spoken_fashion, tiny_sen):
    from speechvision.cli import main

    train_gan(tiny_spoken_fashion, tiny_sen, tmp_path / "norsrun", _tiny_cfg(**{"gan.rs": "false",
                                                                                 "gan.generator.dense": "false"}),
              device="cpu", progress=False)
    ck = load_checkpoint(tmp_path / "norsrun", "gan")
    assert "RS" not in ck and ck["config"]["gan"]["generator"]["dense"] is False
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF0000WAVEjunk")
    out = subprocess.run([sys.executable, "-m", "speechvision.cli", "generate", "--speech", str(bad), "--out",
                          str(tmp_path / "o"), "--checkpoint", str(tmp_path / "norsrun")], capture_output=True, text=True)
    assert out.returncode == 1 and "Traceback" not in out.stderr and str(bad) in out.stderr
    assert out.stderr.strip().count("\n") == 0
    assert main(["train", "gan", "--data", str(tiny_spoken_fashion), "--out", str(tmp_path / "x")]) == 1


def test_end_to_end_updates_the_speech_encoder(tmp_path, tiny_spoken_fashion, tiny_sen):
    cfg = _tiny_cfg(**{"gan.iterations": 2, "gan.end_to_end": "true"})
    train_gan(tiny_spoken_fashion, tiny_sen, tmp_path / "e2e", cfg, device="cpu", progress=False)
    ck, sen = load_checkpoint(tmp_path / "e2e", "gan"), load_checkpoint(tiny_sen, "sen")
    key = "rnn.weight_hh_l0"
    assert not torch.equal(ck["speech_encoder"][key], sen["model"]["speech_encoder." + key])


def test_end_to_end_without_a_pretrained_sen_starts_from_a_seeded_fresh_encoder(tmp_path, tiny_spoken_fashion, tiny_sen):
    """gan.sen_pretrained=false (the paper's end-to-end row): the speech encoder starts from a fresh seeded
    initialisation, not the SEN run's weights; it is refused without end_to_end."""
    from speechvision.s2igan.config import ConfigError
    from speechvision.s2igan.sen import load_sen
    from speechvision.s2igan.train_gan import reinitialise

    with pytest.raises(ConfigError, match="needs gan.end_to_end=true"):
        _tiny_cfg(**{"gan.sen_pretrained": "false"})
    cfg = _tiny_cfg(**{"gan.iterations": 1, "gan.end_to_end": "true", "gan.sen_pretrained": "false"})
    enc = load_sen(tiny_sen)[0].speech_encoder
    pretrained = {k: v.clone() for k, v in enc.state_dict().items()}
    state = torch.random.get_rng_state()
    reinitialise(enc, cfg.gan.seed)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global stream is untouched
    fresh = {k: v.clone() for k, v in enc.state_dict().items()}
    assert not torch.equal(fresh["rnn.weight_hh_l0"], pretrained["rnn.weight_hh_l0"])
    reinitialise(enc, cfg.gan.seed)
    assert all(torch.equal(v, fresh[k]) for k, v in enc.state_dict().items())
    train_gan(tiny_spoken_fashion, tiny_sen, tmp_path / "e2e0", cfg, device="cpu", progress=False)
    ck = load_checkpoint(tmp_path / "e2e0", "gan")
    # one Adam step (lr 2e-4) away from the seeded fresh weights, far from the pretrained ones
    key = "rnn.weight_hh_l0"
    fresh_gap = (ck["speech_encoder"][key] - fresh[key]).abs().max()
    pretrained_gap = (ck["speech_encoder"][key] - pretrained[key]).abs().mean()
    assert fresh_gap < 1e-3 < pretrained_gap, (fresh_gap, pretrained_gap)


def test_bf16_autocast_and_channels_last_train_on_cpu(tmp_path, tiny_spoken_fashion, tiny_sen):
    """The GPU path's switches are device-agnostic: they run (and stay fp32 in the checkpoint) on CPU."""
    import math

    train_gan(tiny_spoken_fashion, tiny_sen, tmp_path / "amp", _tiny_cfg(**{"gan.iterations": 2}), device="cpu",
              progress=False, amp="bf16", channels_last=True)
    ck = load_checkpoint(tmp_path / "amp", "gan")
    assert ck["step"] == 2
    assert all(v.dtype == torch.float32 for v in ck["G"].values() if v.is_floating_point())
    log = [json.loads(x) for x in (tmp_path / "amp" / "log.jsonl").read_text().splitlines()]
    assert all(math.isfinite(e[k]) for e in log for k in ("D0", "G0", "RS"))
    with pytest.raises(ValueError, match="amp"):
        train_gan(tiny_spoken_fashion, tiny_sen, tmp_path / "bad", _tiny_cfg(), device="cpu", progress=False, amp="fp8")


def test_resume_refuses_another_sen_while_the_recorded_one_exists(tmp_path, tiny_spoken_fashion, tiny_sen):
    import shutil

    train_gan(tiny_spoken_fashion, tiny_sen, tmp_path / "run", _tiny_cfg(), device="cpu", progress=False,
              stop_after_step=1)
    other = tmp_path / "other-sen"
    shutil.copytree(tiny_sen, other)
    before = (tmp_path / "run" / "checkpoint.pt").stat().st_mtime_ns
    with pytest.raises(CheckpointError, match="this run was trained with the SEN"):
        train_gan(tiny_spoken_fashion, other, tmp_path / "run", _tiny_cfg(), device="cpu", progress=False, resume=True)
    assert (tmp_path / "run" / "checkpoint.pt").stat().st_mtime_ns == before
    train_gan(tiny_spoken_fashion, tiny_sen, tmp_path / "run", _tiny_cfg(), device="cpu", progress=False, resume=True)
    assert load_checkpoint(tmp_path / "run", "gan")["step"] == 4


def test_attribute_conditioning_reads_the_sens_factored_posteriors(tmp_path, tiny_spoken_fashion, tiny_sen):
    """gan.attribute_condition (issue 17): the CA reads [e, softmax posteriors of the SEN's garment and colour
    heads], the heads copied into the generator as frozen buffers; it trains, resumes and generates through
    the pipeline and the exported bundle; refused without factored heads and with end-to-end training."""
    from speechvision.core.checkpoint import CheckpointError
    from speechvision.data.manifest import load_dataset
    from speechvision.s2igan.config import ConfigError
    from speechvision.s2igan.dsg import DSG
    from speechvision.s2igan.export import export_bundle
    from speechvision.s2igan.pipeline import S2IGANPipeline
    from speechvision.s2igan.sen import load_sen

    with pytest.raises(ConfigError, match="does not go with gan.end_to_end"):
        _tiny_cfg(**{"gan.attribute_condition": "true", "gan.end_to_end": "true"})
    with pytest.raises(CheckpointError, match="needs a SEN trained with sen.factored"):
        train_gan(tiny_spoken_fashion, tiny_sen, tmp_path / "x", _tiny_cfg(**{"gan.attribute_condition": "true"}),
                  device="cpu", progress=False)
    sen_cfg = _tiny_cfg(**{"sen.factored": "garment,colour"})
    train_sen(tiny_spoken_fashion, tmp_path / "sen", sen_cfg, progress=False)
    cfg = _tiny_cfg(**{"sen.factored": "garment,colour", "gan.attribute_condition": "true"})
    train_gan(tiny_spoken_fashion, tmp_path / "sen", tmp_path / "full", cfg, device="cpu", progress=False)
    train_gan(tiny_spoken_fashion, tmp_path / "sen", tmp_path / "cut", cfg, device="cpu", progress=False,
              stop_after_step=2)
    train_gan(tiny_spoken_fashion, None, tmp_path / "cut", cfg, device="cpu", progress=False, resume=True)
    a, b = (load_checkpoint(tmp_path / n, "gan") for n in ("full", "cut"))
    for k in a["G_ema"]:
        torch.testing.assert_close(a["G_ema"][k], b["G_ema"][k], rtol=0, atol=0)
    sen = load_sen(tmp_path / "sen")[0]
    heads = list(sen.attribute_heads.values())
    assert tuple(a["config"]["gan"]["generator"]["attribute_sizes"]) == (10, 8)
    torch.testing.assert_close(a["G_ema"]["attribute_weight"], torch.cat([h.weight for h in heads]))
    g = DSG(dataclasses.replace(cfg.gan.generator, attribute_sizes=(10, 8)))
    g.set_attribute_heads(heads)
    e = torch.nn.functional.normalize(torch.randn(3, 32), dim=-1)
    x = g.condition_input(e)
    assert x.shape == (3, 32 + 18) and torch.equal(x[:, :32], e)
    torch.testing.assert_close(x[:, 32:42].sum(-1), torch.ones(3))
    torch.testing.assert_close(x[:, 42:].sum(-1), torch.ones(3))
    with pytest.raises(ValueError, match="built for"):
        g.set_attribute_heads(heads[:1])
    ds = load_dataset(tiny_spoken_fashion)
    wav = ds.path(ds.split("test")[0].captions[0].audio)
    export_bundle(tmp_path / "full", tmp_path / "b.pt", fp16=False)
    for source in (tmp_path / "full", tmp_path / "b.pt"):
        pipe = S2IGANPipeline.load(source)
        images = pipe.speech_to_images([wav], seed=0, n_per_speech=1)
        assert images[-1].shape[-1] == cfg.gan.generator.sizes_px[-1] and torch.isfinite(images[-1]).all()


def test_condition_spread_reads_how_far_the_ca_mean_moves_with_the_speech():
    from speechvision.s2igan.dsg import condition_spread

    G = DSG(DSGConfig(embedding_dim=32, condition_dim=8, ngf=8)).eval()
    init_weights(G)
    e = torch.nn.functional.normalize(torch.randn(6, 32), dim=1)
    rng = torch.get_rng_state()
    base = condition_spread(G, e)
    assert torch.equal(torch.get_rng_state(), rng)  # draws no noise, so logging it leaves training unchanged
    with torch.no_grad():
        G.ca.fc.weight.mul_(10)  # mu = a * sigmoid(g), a and g both linear in the weight
    assert condition_spread(G, e)["mu_spread"] > 5 * base["mu_spread"]
    with torch.no_grad():
        G.ca.fc.weight.zero_()
        G.ca.fc.bias.fill_(1.0)
    ignored = condition_spread(G, e)  # a CA that ignores the speech: the same mu for every caption
    assert ignored["mu_spread"] < 1e-6 and ignored["mu_norm"] > 0
    with pytest.raises(ValueError, match=">= 2"):
        condition_spread(G, e[:1])


def test_a_run_whose_conditioning_ignores_the_speech_is_warned_about_once(tmp_path, tiny_spoken_fashion, tiny_sen,
                                                                       monkeypatch, capsys):
    from speechvision.s2igan import gan_loop

    monkeypatch.setattr(gan_loop, "UNCONDITIONED_STEP", 2)
    monkeypatch.setattr(gan_loop, "UNCONDITIONED_SPREAD", 1e9)  # any spread counts as too small
    train_gan(tiny_spoken_fashion, tiny_sen, tmp_path / "w", _tiny_cfg(), device="cpu", progress=False)
    err = capsys.readouterr().err
    assert err.count("warning: gan: at step 2 the conditioning hardly depends on the speech") == 1
    monkeypatch.setattr(gan_loop, "UNCONDITIONED_SPREAD", 0.0)  # no spread is too small
    train_gan(tiny_spoken_fashion, tiny_sen, tmp_path / "ok", _tiny_cfg(), device="cpu", progress=False)
    assert "warning: gan" not in capsys.readouterr().err


def test_embedding_scale_multiplies_what_the_ca_reads_and_must_be_positive():
    from speechvision.s2igan.config import ConfigError
    from speechvision.s2igan.dsg import condition_spread

    plain = DSG(DSGConfig(embedding_dim=32, condition_dim=8, ngf=8)).eval()
    init_weights(plain)
    scaled = DSG(DSGConfig(embedding_dim=32, condition_dim=8, ngf=8, embedding_scale=32 ** 0.5)).eval()
    scaled.load_state_dict(plain.state_dict())  # no new weights: old bundles load unchanged
    e = torch.nn.functional.normalize(torch.randn(4, 32), dim=1)
    z, eps = torch.randn(4, 100), torch.randn(4, 8)
    with torch.no_grad():
        a, _, _ = scaled(e, z, eps)
        b, _, _ = plain(e * 32 ** 0.5, z, eps)
    torch.testing.assert_close(a[-1], b[-1])
    assert condition_spread(scaled, e)["mu_spread"] > 2 * condition_spread(plain, e)["mu_spread"]
    with pytest.raises(ConfigError, match="embedding_scale=0"):
        apply_overrides(preset("spoken-fashion"), ["gan.generator.embedding_scale=0"])
