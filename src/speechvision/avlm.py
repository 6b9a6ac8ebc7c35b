"""Inference with a trained AVLM: a video and its audio in, emotion probabilities out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .data.spoken_emotion import EMOTIONS


@torch.no_grad()
def recognize(model_path: str | Path, tokens_dir: str | Path, video: str | Path, audio: str | Path) -> dict:
    """{emotion: probability} for a speaker's face video (any OpenCV format, resampled to 25 fps, dlib
    landmarks) and speech (tokenized with the model's tokenizer).

    Raises:
        FaceError: unreadable video or no face in any frame. AudioError: bad audio. AVLMError: bad checkpoint.
    """
    from .expressive import read_wave
    from .face import FaceAnalyzer, expression_features, face_crops, read_video
    from .speech_tokens import ExpressiveTokenizer
    from .training.avlm import collate, load_avlm

    tok = ExpressiveTokenizer.load(tokens_dir)
    model = load_avlm(model_path, tok.vocab)
    frames = read_video(video)
    track = FaceAnalyzer().track(frames)
    if model.config.visual_encoder == "crop-cnn":
        visual = face_crops(frames, track.landmarks, size=model.config.crop_size_px)
    else:
        visual = expression_features(track.landmarks, track.has_face)
    tokens = tok.encode(read_wave(audio, tok.config.sample_rate_hz)).tokens
    b = collate([{"tokens": tokens, "visual": visual, "emotion": 0}], tok.vocab)
    b["visual_mask"][0, :len(visual)] = torch.from_numpy(np.asarray(track.has_face))
    p = model(b["ids"], b["attention_mask"], b["visual"], b["visual_mask"])["emotion_logits"].softmax(-1)[0]
    return {e: float(x) for e, x in zip(EMOTIONS, p)}
