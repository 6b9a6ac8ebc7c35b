"""AVLM: each fusion's shapes, the perceiver prefix layout, speech-token masking, the emotion metrics, and a
tiny end-to-end train on a fixture audio-visual set."""

import json
import math

import numpy as np
import pytest
import torch

pytest.importorskip("transformers", reason="the expressive extra is not installed")

from speechvision.avlm.lm import SpeechLMConfig, build_lm  # noqa: E402
from speechvision.avlm.model import (  # noqa: E402
    AVLM,
    FUSIONS,
    AVLMConfig,
    ConcatFusion,
    PerceiverResampler,
    mask_speech_tokens,
    n_queries,
)
from speechvision.avlm.vocabulary import Vocabulary

V = Vocabulary(n_units=8, n_styles=4)


def _model(fusion, encoder="landmark-conv", seed=0):
    torch.manual_seed(seed)
    lm = build_lm(SpeechLMConfig(vocab_size=V.size, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                                 dropout=0.0))
    return AVLM(lm, V, AVLMConfig(fusion=fusion, visual_encoder=encoder, heads=2)).eval()


def _batch(encoder="landmark-conv"):
    ids = torch.tensor([[1, 3, V.style(0), V.pitch(2), V.unit(1), V.unit(2), V.pitch(5), V.unit(3), 2],
                        [1, 3, V.unit(0), V.pitch(1), V.unit(3), 2, 0, 0, 0]])
    am = torch.tensor([[1] * 9, [1] * 6 + [0] * 3])
    g = torch.Generator().manual_seed(0)
    vis = torch.randn(2, 23, 136, generator=g) if encoder == "landmark-conv" else \
        torch.randint(0, 255, (2, 23, 32, 32), dtype=torch.uint8, generator=g)
    vm = torch.ones(2, 23, dtype=torch.bool)
    vm[1, 11:] = False
    return ids, am, vis, vm


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("encoder", ["landmark-conv", "crop-cnn"])
def test_each_fusion_gives_logits_loss_and_emotion_logits_of_the_right_shape(fusion, encoder):
    m = _model(fusion, encoder)
    ids, am, vis, vm = _batch(encoder)
    labels = torch.where(am.bool(), ids, torch.full_like(ids, -100))
    out = m(ids, am, vis, vm, labels=labels)
    extra = 2 + 5 if fusion == "perceiver" else 0  # ceil(23 / 5) = 5 queries for the longest clip
    assert out["logits"].shape == (2, 9 + extra, V.size) and out["prefix"] == extra
    assert out["emotion_logits"].shape == (2, 4) and torch.isfinite(out["loss"])
    out["loss"].backward()
    if fusion == "perceiver":  # (concat and cross-attention start as the identity: no visual gradient yet)
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.resampler.parameters())


def test_visual_input_changes_the_output_only_where_fusion_reads_it():
    ids, am, vis, vm = _batch()
    other = vis.flip(0)
    base = _model("speech-only")
    assert torch.equal(base(ids, am)["logits"], base(ids, am, other, vm)["logits"])
    q = _model("perceiver")
    assert not torch.allclose(q(ids, am, vis, vm)["logits"], q(ids, am, other, vm)["logits"])
    with pytest.raises(ValueError, match="needs visual input"):
        q(ids, am)
    # concat and cross-attention start as the identity (speech LM unchanged), then depend on the face
    for fusion in ("concat", "cross-attention"):
        m = _model(fusion)
        assert torch.allclose(m(ids, am, vis, vm)["logits"], m(ids, am, other, vm)["logits"])
        with torch.no_grad():
            if fusion == "concat":
                m.concat.proj.weight.add_(0.1)
            else:
                for x in m.xattn:
                    x.gate_attn.fill_(1.0)
        assert not torch.allclose(m(ids, am, vis, vm)["logits"], m(ids, am, other, vm)["logits"])


def test_qformer_prefix_layout_and_query_count():
    m = _model("perceiver")
    ids, am, vis, vm = _batch()
    x = m.build_inputs(ids, am, vis, vm)
    emb = m.lm.model.embed_tokens
    # <bos> <start_of_visual> [5 queries] <start_of_audio> [Speech] ...
    assert torch.equal(x["embeds"][0, 0], emb.weight[1])
    assert torch.equal(x["embeds"][0, 1], emb.weight[V.special("<start_of_visual>")])
    assert torch.equal(x["embeds"][0, 7], emb.weight[V.special("<start_of_audio>")])
    assert torch.equal(x["embeds"][0, 8], emb.weight[V.special("[Speech]")])
    # the second clip has 11 frames: 3 queries, the other 2 are masked out
    assert x["query_mask"][0].sum() == 5 and x["query_mask"][1].sum() == 3
    assert x["attention_mask"][1, 2:7].tolist() == [1, 1, 1, 0, 0]
    assert [n_queries(t) for t in (1, 5, 6, 125, 10_000)] == [1, 1, 2, 25, 128]
    r = PerceiverResampler(16, 1, 2, 5, 128)
    assert r.n_queries(torch.tensor([0, 23, 700])).tolist() == [1, 5, 128]


def test_concat_resamples_frames_to_speech_tokens():
    speech = torch.tensor([[False, False, True, True, True, True, False]])
    idx = ConcatFusion.frame_index(speech, torch.tensor([8]))
    assert idx[0, 2:6].tolist() == [0, 2, 4, 6]


def test_masking_replaces_only_speech_tokens_and_drops_them_from_the_loss():
    ids = torch.tensor([[1, 3] + [V.unit(k % 8) for k in range(200)] + [2, 0]])
    am = (ids != 0).long()
    am[0, 0] = 1
    out, labels = mask_speech_tokens(ids, am, V, 0.7, torch.Generator().manual_seed(0))
    masked = out == V.special("<speech_mask>")
    assert out[0, :2].tolist() == [1, 3] and out[0, -2:].tolist() == [2, 0]
    assert 0.6 < masked.float().sum().item() / 200 < 0.8
    assert (labels[masked] == -100).all() and torch.equal(labels[~masked & am.bool()], ids[~masked & am.bool()])
    assert labels[0, -1] == -100
    same, lab0 = mask_speech_tokens(ids, am, V, 0.0)
    assert torch.equal(same, ids)
    with pytest.raises(ValueError):
        mask_speech_tokens(ids, am, V, 1.0)


def test_emotion_metrics_match_hand_computed_values():
    from speechvision.avlm.judges import classification_report
    from speechvision.avlm.train import t_interval

    r = classification_report(["a", "a", "a", "b"], ["a", "a", "b", "b"])
    assert r["accuracy"] == 0.75 and math.isclose(r["balanced_accuracy"], (2 / 3 + 1) / 2)
    assert math.isclose(r["macro_f1"], (0.8 + 2 / 3) / 2)
    mean, half = t_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and math.isclose(half, 4.302652729911275 * 1.0 / math.sqrt(3), rel_tol=1e-6)


def test_tiny_train_end_to_end(tmp_path):
    """Fixture AV set + tokens + a tiny speech LM -> train_avlm writes metrics and a loadable checkpoint."""
    from test_av_emotion import _speech_corpus

    from speechvision.avlm.data.av_emotion import AVBuildConfig, build_av_emotion
    from speechvision.avlm.model import load_avlm
    from speechvision.avlm.tokens import ExpressiveTokenizer, TokenizerConfig
    from speechvision.avlm.train import train_avlm
    from speechvision.avlm.train_lm import train_speech_lm

    rows = _speech_corpus(tmp_path / "speech")
    build_av_emotion(tmp_path / "speech", tmp_path / "av", AVBuildConfig(), progress=False)
    cfg = TokenizerConfig(n_units=8, n_styles=4)
    tok = ExpressiveTokenizer(cfg, np.zeros((8, 4), np.float32), np.zeros((4, 4), np.float32), np.zeros(4, np.float32),
                              np.ones(4, np.float32), {})
    tok.save(tmp_path / "tokens")
    rng = np.random.default_rng(0)
    lines = [json.dumps({"id": r["id"], "split": r["split"], "emotion": r["emotion"], "speaker": r["voice"],
                         "dialogue": r["dialogue"], "role": r["role"],
                         "tokens": [V.style(0), V.pitch(int(rng.integers(64)))] + [V.unit(int(u)) for u in rng.integers(0, 8, 10)]})
             for r in rows]
    (tmp_path / "tokens" / "encoded.jsonl").write_text("\n".join(lines) + "\n")
    train_speech_lm(tmp_path / "tokens", tmp_path / "lm", SpeechLMConfig(hidden_size=32, num_layers=2, num_heads=2,
                    intermediate_size=64, dropout=0.0), steps=2, batch_size=4, progress=False, eval_every=2)
    m = train_avlm(tmp_path / "av", tmp_path / "tokens", tmp_path / "lm", tmp_path / "run",
                   AVLMConfig(fusion="perceiver", heads=2), pretrain_steps=3, finetune_steps=3, batch_size=4,
                   progress=False)
    assert m["test"]["n"] == 8 and 0 <= m["test"]["macro_f1"] <= 1 and m["test_perplexity_mask0.7"] > 1
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["fusion"] == "perceiver"
    model = load_avlm(tmp_path / "run" / "avlm.pt", V)
    assert model.config.fusion == "perceiver"
    control = train_avlm(tmp_path / "av", tmp_path / "tokens", tmp_path / "lm", tmp_path / "ctl",
                         AVLMConfig(fusion="concat", heads=2), pretrain_steps=2, finetune_steps=2, batch_size=4,
                         progress=False, shuffle_faces=True)
    assert control["shuffle_faces"] is True


def test_the_legacy_fusion_name_of_old_checkpoints_still_loads():
    """Checkpoints written before the rename store fusion "qformer": it maps to the Perceiver resampler."""
    from speechvision.avlm.model import AVLMConfig

    assert AVLMConfig(fusion="qformer").fusion == "perceiver"
    assert AVLMConfig(**AVLMConfig(fusion="qformer").to_dict()).fusion == "perceiver"
