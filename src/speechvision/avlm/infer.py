"""Inference with a trained AVLM: a face video and its audio in; emotion probabilities (``recognize``) or a
spoken reply in the perceived emotion (``respond``) out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from speechvision.avlm.data.spoken_emotion import EMOTIONS


def _inputs(model, tok, video, audio) -> tuple[list[int], dict]:
    """(speech tokens, ``collate`` batch of the clip: ids, attention_mask, visual (1, Tv, ...), visual_mask
    (1, Tv)) of a face video and its audio, through the model's visual front-end (dlib landmarks at 25 fps;
    frames without a face masked)."""
    from speechvision.avlm.train_vocoder import read_wave
    from speechvision.avlm.face import FaceAnalyzer, read_video
    from speechvision.avlm.train import collate, visual_input

    frames = read_video(video)
    track = FaceAnalyzer().track(frames)
    visual = visual_input(model.config.visual_encoder, track.landmarks, frames, track.has_face,
                          model.config.crop_size_px)
    tokens = tok.encode(read_wave(audio, tok.config.sample_rate_hz)).tokens
    b = collate([{"tokens": tokens, "visual": visual, "emotion": 0}], tok.vocab)
    b["visual_mask"][0, :len(visual)] = torch.from_numpy(np.asarray(track.has_face))
    return tokens, b


@torch.no_grad()
def recognize(model_path: str | Path, tokens_dir: str | Path, video: str | Path, audio: str | Path) -> dict:
    """{emotion: probability} for a speaker's face video (any OpenCV format, resampled to 25 fps, dlib
    landmarks) and speech (tokenized with the model's tokenizer).

    Raises:
        FaceError: unreadable video or no face in any frame. AudioError: bad audio. AVLMError: bad checkpoint.
    """
    from speechvision.avlm.tokens import ExpressiveTokenizer
    from speechvision.avlm.train import load_avlm

    tok = ExpressiveTokenizer.load(tokens_dir)
    model = load_avlm(model_path, tok.vocab)
    _, b = _inputs(model, tok, video, audio)
    p = model(b["ids"], b["attention_mask"], b["visual"], b["visual_mask"])["emotion_logits"].softmax(-1)[0]
    return {e: float(x) for e, x in zip(EMOTIONS, p)}


def respond(model_path: str | Path, tokens_dir: str | Path, vocoder_dir: str | Path, video: str | Path,
            audio: str | Path, out_wav: str | Path, *, emotion: str | None = None, voice: str | None = None,
            temperature: float = 0.8, top_p: float = 0.95, max_tokens: int = 150, seed: int = 0) -> dict:
    """Expressive dialogue: a spoken reply to a speaker's face video and question, in the emotion the model
    perceives (or ``emotion``, forced), written to ``out_wav`` (16 kHz). ``model_path`` is the
    ``dialogue.pt`` of ``speechvision avlm train --task dialogue``; ``voice`` is a speaker the tokenizer
    knows (its mean F0; default: the mean over known speakers).

    Returns {"emotion", "probabilities", "new_tokens", "seconds"}.

    Raises:
        FaceError, AudioError, AVLMError as ``recognize``; ValueError: an unknown emotion.
    """
    from speechvision.avlm.train_vocoder import Speaker
    from speechvision.avlm.train import load_avlm
    from speechvision.avlm.dialogue import predict_emotion, sample_response
    from speechvision.core.tts import write_wav_atomic

    if emotion is not None and emotion not in EMOTIONS:
        raise ValueError(f"unknown emotion {emotion!r}; choose one of {', '.join(EMOTIONS)}")
    speaker = Speaker.load(tokens_dir, vocoder_dir)
    tok = speaker.tok
    model = load_avlm(model_path, tok.vocab)
    question, b = _inputs(model, tok, video, audio)
    probs = predict_emotion(model, tok.vocab, question, b["visual"], b["visual_mask"])
    used = emotion or EMOTIONS[int(probs.argmax())]
    new = sample_response(model, tok.vocab, question, used, b["visual"], b["visual_mask"], max_new_tokens=max_tokens,
                          temperature=temperature, top_p=top_p, seed=seed)
    rate = tok.config.sample_rate_hz
    wave = speaker.decode(new, voice) if any(tok.vocab.kind(t) == "unit" for t in new) else np.zeros(rate // 10, np.float32)
    write_wav_atomic(Path(out_wav), wave, rate)
    return {"emotion": used, "probabilities": {e: float(x) for e, x in zip(EMOTIONS, probs)}, "new_tokens": len(new),
            "seconds": round(len(wave) / rate, 2)}
