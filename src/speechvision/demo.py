"""``speechvision demo``: the main job on the bundled example.

Until the generator lands (issue 4) the demo runs the front half of the pipeline: it speaks a
caption with the bundled Piper voice and prints the log-mel shape the SEN consumes.
"""

from __future__ import annotations


def run_demo() -> None:
    from .audio import MODEL_SAMPLE_RATE_HZ, check_waveform, log_mel, resample
    from .tts import DEFAULT_VOICE, synthesize

    text = "a red sneaker on a white background"
    wave, rate = synthesize(text, DEFAULT_VOICE)
    wave = check_waveform(wave, rate, source=f"synthesised '{text}'")
    feats = log_mel(resample(wave, rate, MODEL_SAMPLE_RATE_HZ))
    print(f"spoke {text!r} with {DEFAULT_VOICE.id}: {len(wave) / rate:.2f} s at {rate} Hz")
    print(f"log-mel features (T, F) = {tuple(feats.shape)}")
