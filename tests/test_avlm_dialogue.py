"""AVLM expressive dialogue: the prompt layout (with the perceiver prefix after the instruction token), the
loss positions, constrained reply sampling and a tiny dialogue train."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("transformers", reason="the expressive extra is not installed")

from speechvision.avlm.lm import SpeechLMConfig, build_lm  # noqa: E402
from speechvision.avlm.model import AVLM, AVLMConfig, dialogue_prompt  # noqa: E402
from speechvision.avlm.vocabulary import Vocabulary

V = Vocabulary(n_units=8, n_styles=4)
Q = [V.style(1), V.pitch(3), V.unit(2), V.unit(5), V.pitch(4), V.unit(1)]
R = [V.style(0), V.unit(7), V.pitch(9), V.unit(3)]


def _model(fusion="perceiver", seed=0):
    torch.manual_seed(seed)
    lm = build_lm(SpeechLMConfig(vocab_size=V.size, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                                 dropout=0.0))
    return AVLM(lm, V, AVLMConfig(fusion=fusion, heads=2)).eval()


def _item(emotion=1, frames=12, seed=0):
    g = np.random.default_rng(seed)
    return {"question": Q, "response": R, "visual": g.standard_normal((frames, 136)).astype(np.float32),
            "emotion": emotion}


def test_dialogue_prompt_layout():
    s = V.special
    assert dialogue_prompt(V, Q) == [s("<bos>"), s("<start_of_text>"), s("[Speech]")] + Q
    assert dialogue_prompt(V, Q, "happy") == dialogue_prompt(V, Q) + [s("<emotion:happy>"), s("<response>"), s("[Speech]")]
    full = dialogue_prompt(V, Q, "sad", R)
    assert full == dialogue_prompt(V, Q, "sad") + R + [s("<eos>")]
    with pytest.raises(ValueError, match="unknown emotion"):
        dialogue_prompt(V, Q, "bored")
    with pytest.raises(ValueError, match="needs its emotion"):
        dialogue_prompt(V, Q, None, R)


def test_qformer_prefix_follows_the_instruction_and_loss_starts_at_the_emotion():
    from speechvision.avlm.dialogue import collate_dialogues, dialogue_loss

    m = _model("perceiver")
    b = collate_dialogues([_item(1, 12), _item(3, 23, seed=1)], V)
    first = 3 + len(Q)
    assert (b["labels"][:, :first] == -100).all()
    assert b["labels"][0, first] == V.special("<emotion:happy>") and b["labels"][1, first] == V.special("<emotion:sad>")
    x = m.build_inputs(b["ids"], b["attention_mask"], b["visual"], b["visual_mask"])
    emb = m.lm.model.embed_tokens.weight
    nq = 5  # ceil(23 / 5) for the longer clip
    # <bos> <start_of_text> <start_of_visual> [5 queries] <start_of_audio> [Speech] question ...
    assert x["insert_at"] == 2 and x["prefix"] == nq + 2
    for pos, name in ((1, "<start_of_text>"), (2, "<start_of_visual>"), (3 + nq, "<start_of_audio>"), (4 + nq, "[Speech]")):
        assert torch.equal(x["embeds"][0, pos], emb[V.special(name)]), name
    assert x["query_mask"][0, 3:3 + nq].tolist() == [True, True, True, False, False]  # 12 frames: 3 queries
    loss, parts = dialogue_loss(m, b, V)
    assert torch.isfinite(loss) and parts["emotion_ce"] > 0
    loss.backward()
    assert all(p.grad is not None for p in m.resampler.parameters())


def test_concat_aligns_the_face_with_the_question_only():
    """In a dialogue sequence concat spreads the clip's frames over the question's speech tokens alone: the
    question's fused embeddings are the same for the prompt and for the whole dialogue (training and
    generation agree), and the response's tokens keep their plain embeddings."""
    m = _model("concat")
    with torch.no_grad():
        m.concat.proj.weight.normal_()  # let the visual half matter (it starts as the identity)
    it = _item(2, 12)
    vis, vmask = torch.from_numpy(it["visual"])[None], torch.ones(1, 12, dtype=torch.bool)
    prompt = torch.tensor([dialogue_prompt(V, Q)])
    full = torch.tensor([dialogue_prompt(V, Q, "angry", R)])
    a = m.build_inputs(prompt, torch.ones_like(prompt), vis, vmask)["embeds"]
    b = m.build_inputs(full, torch.ones_like(full), vis, vmask)["embeds"]
    n = prompt.shape[1]
    assert torch.allclose(a[0], b[0, :n], atol=1e-6)
    emb = m.lm.model.embed_tokens(full)
    assert not torch.allclose(b[0, 3:n], emb[0, 3:n])  # the question is fused
    assert torch.equal(b[0, n:], emb[0, n:])  # the response is not


def test_reply_sampling_keeps_the_speech_constraints_and_is_seeded():
    from speechvision.avlm.dialogue import collate_dialogues
    from speechvision.avlm.model import predict_emotion, sample_response

    m = _model("cross-attention")
    b = collate_dialogues([_item()], V, with_response=False)
    probs = predict_emotion(m, V, Q, b["visual"], b["visual_mask"])
    assert probs.shape == (4,) and abs(probs.sum() - 1) < 1e-5
    a = sample_response(m, V, Q, "angry", b["visual"], b["visual_mask"], max_new_tokens=40, seed=3, min_units=5)
    assert a == sample_response(m, V, Q, "angry", b["visual"], b["visual_mask"], max_new_tokens=40, seed=3, min_units=5)
    kinds = [V.kind(t) for t in a]
    assert kinds and set(kinds) <= {"unit", "pitch", "style"} and kinds.count("unit") >= 5
    for x, y in zip(kinds, kinds[1:]):
        assert not (x == y and x in ("pitch", "style")) and not (x == "pitch" and y == "style")
    with pytest.raises(ValueError, match="temperature"):
        sample_response(m, V, Q, "angry", b["visual"], b["visual_mask"], temperature=0)


def test_tiny_dialogue_train_writes_a_loadable_checkpoint(tmp_path):
    from test_av_emotion import _speech_corpus

    from speechvision.avlm.data.av_emotion import AVBuildConfig, build_av_emotion
    from speechvision.avlm.dialogue import collate_dialogues, load_dialogues, train_dialogue
    from speechvision.avlm.model import load_avlm, sample_response
    from speechvision.avlm.tokens import ExpressiveTokenizer, TokenizerConfig
    from speechvision.avlm.train_lm import train_speech_lm

    rows = _speech_corpus(tmp_path / "speech")
    build_av_emotion(tmp_path / "speech", tmp_path / "av", AVBuildConfig(), progress=False)
    cfg = TokenizerConfig(n_units=8, n_styles=4)
    ExpressiveTokenizer(cfg, np.zeros((8, 4), np.float32), np.zeros((4, 4), np.float32), np.zeros(4, np.float32),
                        np.ones(4, np.float32), {}).save(tmp_path / "tokens")
    rng = np.random.default_rng(0)
    lines = [json.dumps({"id": r["id"], "split": r["split"], "emotion": r["emotion"], "speaker": r["voice"],
                         "dialogue": r["dialogue"], "role": r["role"], "text": r["text"],
                         "tokens": [V.style(0), V.pitch(int(rng.integers(64)))] + [V.unit(int(u)) for u in rng.integers(0, 8, 10)]})
             for r in rows]
    (tmp_path / "tokens" / "encoded.jsonl").write_text("\n".join(lines) + "\n")
    train_speech_lm(tmp_path / "tokens", tmp_path / "lm", SpeechLMConfig(hidden_size=32, num_layers=2, num_heads=2,
                    intermediate_size=64, dropout=0.0), steps=2, batch_size=4, progress=False, eval_every=2)
    d = load_dialogues(tmp_path / "av", tmp_path / "tokens", "test", "landmark-conv")
    assert d and all(x["question"] and x["response"] and x["response_text"] for x in d)
    for fusion in ("perceiver", "concat", "cross-attention"):
        train_dialogue(tmp_path / "av", tmp_path / "tokens", tmp_path / "lm", tmp_path / fusion,
                       AVLMConfig(fusion=fusion, heads=2), pretrain_steps=2, finetune_steps=3, batch_size=4,
                       eval_every=2, progress=False)
        log = [json.loads(x) for x in (tmp_path / fusion / "log.jsonl").read_text().splitlines()]
        assert log[-1]["step"] == 5 and "emotion_ce" in log[-1]
        checks = [row for row in log if "val_lm" in row]  # every 2nd fine-tuning step and the last
        assert [row["step"] for row in checks] == [4, 5]
        kept = torch.load(tmp_path / fusion / "dialogue.pt", weights_only=True)
        best = min(checks, key=lambda row: row["val_lm"])
        assert (kept["step"], kept["val_lm"]) == (best["step"], best["val_lm"])  # selected on validation
        model = load_avlm(tmp_path / fusion / "dialogue.pt", V)
        assert model.config.fusion == fusion
        b = collate_dialogues(d[:1], V, with_response=False)
        reply = sample_response(model, V, d[0]["question"], "sad", b["visual"], b["visual_mask"], max_new_tokens=12,
                                min_units=2)
        assert reply and all(V.kind(t) in ("unit", "pitch", "style") for t in reply)


def test_respond_rejects_an_unknown_emotion_before_loading_anything(tmp_path):
    from speechvision.avlm.infer import respond

    with pytest.raises(ValueError, match="unknown emotion 'bored'"):
        respond(tmp_path / "missing.pt", tmp_path, tmp_path, tmp_path / "v.mp4", tmp_path / "a.wav",
                tmp_path / "out.wav", emotion="bored")
