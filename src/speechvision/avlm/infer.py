"""Inference with a trained AVLM: a face video and its audio in; emotion probabilities (``recognize``) or a
spoken reply in the perceived emotion (``respond``) out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from speechvision.avlm.data.spoken_emotion import EMOTIONS
from speechvision.avlm.tokens import active_level_db, f0_track


def clip_batch(model, tok, frames: np.ndarray, wave: np.ndarray, analyzer=None) -> tuple[list[int], dict, object]:
    """(speech tokens, ``collate`` batch, FaceTrack) of one clip through the model's front-ends.

    Args:
        frames: (T, H, W, 3) uint8 RGB video frames at 25 fps (``face.read_video``).
        wave: (N,) float waveform at the tokenizer's rate.
        analyzer: a ``FaceAnalyzer`` to reuse (dlib loads its weights once).
    Returns:
        The batch holds ids and attention_mask (1, L), visual (1, Tv, ...) and visual_mask (1, Tv): dlib
        landmarks at 25 fps, frames without a face masked.
    Raises:
        FaceError: no face in any frame. TokenizerError: audio shorter than one unit frame.
    """
    from speechvision.avlm.face import FaceAnalyzer
    from speechvision.avlm.model import collate
    from speechvision.avlm.visual import visual_input

    track = (analyzer or FaceAnalyzer()).track(frames)
    visual = visual_input(model.config.visual_encoder, track.landmarks, frames, track.has_face,
                          model.config.crop_size_px)
    tokens = tok.encode(wave).tokens
    b = collate([{"tokens": tokens, "visual": visual, "emotion": 0}], tok.vocab)
    b["visual_mask"][0, :len(visual)] = torch.from_numpy(np.asarray(track.has_face))
    return tokens, b, track


def _inputs(model, tok, video, audio) -> tuple[list[int], dict]:
    """(speech tokens, ``collate`` batch) of a face video file and an audio file (see :func:`clip_batch`)."""
    from speechvision.avlm.corpus import read_wave
    from speechvision.avlm.face import read_video

    tokens, b, _ = clip_batch(model, tok, read_video(video), read_wave(audio, tok.config.sample_rate_hz))
    return tokens, b


@torch.no_grad()
def reply_to_clip(model, speaker, tokens: list[int], batch: dict, *, emotion: str | None = None,
                  voice: str | None = None, temperature: float = 0.8, top_p: float = 0.95, max_tokens: int = 150,
                  seed: int = 0) -> dict:
    """The dialogue model's answer to one clip (``clip_batch``): emotion probabilities, the emotion used (the
    most probable one, or ``emotion``), the reply's speech tokens and its waveform (``speaker``, a
    ``UnitVocoder``, in ``voice``; 0.1 s of silence when the reply holds no unit).

    Returns:
        {"probabilities": {emotion: p}, "emotion", "tokens", "wave" (N,) float32, "sample_rate_hz"}.
    """
    from speechvision.avlm.model import predict_emotion, sample_response

    tok = speaker.tok
    probs = predict_emotion(model, tok.vocab, tokens, batch["visual"], batch["visual_mask"])
    used = emotion or EMOTIONS[int(probs.argmax())]
    new = sample_response(model, tok.vocab, tokens, used, batch["visual"], batch["visual_mask"],
                          max_new_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed)
    rate = tok.config.sample_rate_hz
    has_unit = any(tok.vocab.kind(t) == "unit" for t in new)
    wave = speaker.decode(new, voice) if has_unit else np.zeros(rate // 10, np.float32)
    return {"probabilities": {e: float(x) for e, x in zip(EMOTIONS, probs)}, "emotion": used, "tokens": new,
            "wave": wave, "sample_rate_hz": rate}


@torch.no_grad()
def recognize(model_path: str | Path, tokens_dir: str | Path, video: str | Path, audio: str | Path) -> dict:
    """{emotion: probability} for a speaker's face video (any OpenCV format, resampled to 25 fps, dlib
    landmarks) and speech (tokenized with the model's tokenizer).

    Raises:
        FaceError: unreadable video or no face in any frame. AudioError: bad audio. AVLMError: bad checkpoint.
    """
    from speechvision.avlm.model import load_avlm
    from speechvision.avlm.tokens import ExpressiveTokenizer

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
    from speechvision.avlm.model import load_avlm
    from speechvision.avlm.vocoder import UnitVocoder
    from speechvision.core.tts import write_wav_atomic

    if emotion is not None and emotion not in EMOTIONS:
        raise ValueError(f"unknown emotion {emotion!r}; choose one of {', '.join(EMOTIONS)}")
    speaker = UnitVocoder.load(tokens_dir, vocoder_dir)
    model = load_avlm(model_path, speaker.tok.vocab)
    question, b = _inputs(model, speaker.tok, video, audio)
    r = reply_to_clip(model, speaker, question, b, emotion=emotion, voice=voice, temperature=temperature,
                      top_p=top_p, max_tokens=max_tokens, seed=seed)
    write_wav_atomic(Path(out_wav), r["wave"], r["sample_rate_hz"])
    return {"emotion": r["emotion"], "probabilities": r["probabilities"], "new_tokens": len(r["tokens"]),
            "seconds": round(len(r["wave"]) / r["sample_rate_hz"], 2)}


def prompt_ids(vocab, tokens: list[int], next_turn: bool = True) -> list[int]:
    """``<bos> [Speech] prompt`` and, for ``next_turn``, the ``[Speech]`` that opens the next turn (training
    sequences are ``<bos> [Speech] question [Speech] response <eos>``: after a whole utterance the LM expects
    a turn boundary, which the speech-only sampler could not emit itself)."""
    return [vocab.special("<bos>"), vocab.special("[Speech]")] + list(tokens) + (
        [vocab.special("[Speech]")] if next_turn else [])


def carry_state(vocab, prompt_tokens: list[int]) -> list[int]:
    """The last style, level and pitch token of the prompt, so a continuation decodes with the prompt's state."""
    last = {}
    for t in prompt_tokens:
        k = vocab.kind(t)
        if k in ("style", "level", "pitch"):
            last[k] = t
    return [last[k] for k in ("style", "level", "pitch") if k in last]


def continue_tokens(model, config, tok, prompt_tokens: list[int], *, next_turn: bool = True, **kw) -> list[int]:
    """New speech tokens after a prompt utterance: the next dialogue turn (default), or, with
    ``next_turn=False``, more of the same utterance. ``kw`` go to ``models.speech_lm.sample``."""
    from speechvision.avlm.lm import sample

    return sample(model, tok.vocab, prompt_ids(tok.vocab, prompt_tokens, next_turn), offset=config.offset, **kw)


def continue_speech(lm_dir, tokens_dir, vocoder_dir, prompt_wav, out_wav, *, max_new_tokens=300,
                    temperature=0.8, top_p=0.95, seed=0, next_turn: bool = True) -> dict:
    """Encode a prompt wav, continue it with the speech LM (the next turn, or with ``next_turn=False`` the
    same utterance), write prompt resynthesis + continuation."""
    from speechvision.avlm.corpus import read_wave
    from speechvision.avlm.lm import load_lm
    from speechvision.avlm.vocoder import UnitVocoder
    from speechvision.core.tts import write_wav_atomic

    speaker = UnitVocoder.load(tokens_dir, vocoder_dir)
    model, config = load_lm(lm_dir)
    wave = read_wave(prompt_wav, speaker.tok.config.sample_rate_hz)
    enc = speaker.tok.encode(wave)
    mean = speaker.tok.speaker_mean(None, f0_track(wave, speaker.tok.config.sample_rate_hz))
    new = continue_tokens(model, config, speaker.tok, enc.tokens, max_new_tokens=max_new_tokens,
                          temperature=temperature, top_p=top_p, seed=seed, next_turn=next_turn)
    rate = speaker.tok.config.sample_rate_hz
    level = active_level_db(wave, speaker.tok.config.sample_rate_hz)
    a = speaker.decode(enc.tokens, speaker_log2_f0=mean, speaker_level_db=level)
    b = speaker.decode(carry_state(speaker.tok.vocab, enc.tokens) + new, speaker_log2_f0=mean,
                       speaker_level_db=level) if any(
        speaker.tok.vocab.kind(t) == "unit" for t in new) else np.zeros(0, np.float32)
    write_wav_atomic(Path(out_wav), np.concatenate([a, np.zeros(rate // 5, np.float32), b]), rate)
    return {"prompt_s": len(a) / rate, "continuation_s": len(b) / rate, "new_tokens": len(new)}
