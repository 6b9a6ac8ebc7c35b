"""Does the microphone cleanup help, and does it hurt clean speech? (issue 17, item 4)

A judge-free check on the speech side only: the bundled model's SEN speech encoder embeds spoken captions;
each test caption's garment and colour are predicted as the nearest class prototype (the mean embedding of
``--train`` train captions of that garment, or of that colour, embedded without cleanup, as in training).
Test captions are scored as they are ("clean") and as a phone recording ("phone": 2 s of quiet noise
before and after, 50 Hz mains hum with harmonics, white noise at 20 dB SNR over the speech), each with and
without the cleanup of :mod:`speechvision.core.cleanup`. The degradation is seeded (``--seed``).

    python scripts/cleanup_check.py --data /work/runs/sf-full/data --test 600 --train 2000

Prints a markdown table; ``--json`` also writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from speechvision.core.audio import load_audio
from speechvision.core.cleanup import NO_CLEANUP, Cleanup
from speechvision.data.manifest import load_dataset
from speechvision.s2igan.pipeline import S2IGANPipeline, embed_wavs


def phone_recording(wave: np.ndarray, rate: int, rng: np.random.Generator, snr_db: float = 20.0) -> np.ndarray:
    """2 s of quiet noise, the speech, 2 s again; mains hum (50 Hz + 2 harmonics) and white noise throughout."""
    pad = np.zeros(2 * rate, np.float32)
    x = np.concatenate([pad, wave, pad])
    t = np.arange(len(x)) / rate
    speech_rms = float(np.sqrt(np.mean(wave ** 2)))
    hum = sum(a * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) for f, a in ((50, 1.0), (100, 0.5), (150, 0.25)))
    hum *= 0.3 * speech_rms / np.sqrt(np.mean(hum ** 2))
    noise = rng.standard_normal(len(x)) * speech_rms / 10 ** (snr_db / 20)
    return (x + hum + noise).astype(np.float32)


def embed(pipe, paths, cleanup, batch=64):
    enc, audio = pipe.speech_encoder, pipe.config.audio
    return torch.cat([embed_wavs(enc, paths[s:s + batch], audio, cleanup=cleanup) for s in range(0, len(paths), batch)])


def accuracy(emb, labels, protos) -> float:
    keys = sorted(protos)
    P = torch.nn.functional.normalize(torch.stack([protos[k] for k in keys]), dim=-1)
    pred = (torch.nn.functional.normalize(emb, dim=-1) @ P.T).argmax(1)
    return float(np.mean([keys[i] == y for i, y in zip(pred.tolist(), labels)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--checkpoint", type=Path, default=None, help="bundle or GAN run (default: the bundled model)")
    ap.add_argument("--test", type=int, default=600, help="test captions (caption 0 of the first N test images)")
    ap.add_argument("--train", type=int, default=2000, help="train captions for the prototypes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    ds = load_dataset(args.data)
    pipe = S2IGANPipeline.load(args.checkpoint, cleanup=NO_CLEANUP)
    train = [r for r in ds.split("train")][: args.train]
    test = [r for r in ds.split("test")][: args.test]
    tr_emb = embed(pipe, [ds.path(r.captions[0].audio) for r in train], NO_CLEANUP)
    protos = {}
    for attr in ("garment", "colour"):
        vals = [r.attributes[attr] for r in train]
        protos[attr] = {v: tr_emb[[i for i, x in enumerate(vals) if x == v]].mean(0) for v in sorted(set(vals))}
    rng = np.random.default_rng(args.seed)
    rows, out = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        clean_paths = [ds.path(r.captions[0].audio) for r in test]
        phone_paths = []
        for i, p in enumerate(clean_paths):
            rate = pipe.config.audio.sample_rate_hz
            q = Path(tmp) / f"phone{i}.wav"
            sf.write(q, phone_recording(load_audio(p, sample_rate_hz=rate), rate, rng), rate)
            phone_paths.append(q)
        for cond, paths in (("clean", clean_paths), ("phone", phone_paths)):
            for name, cu in (("no cleanup", NO_CLEANUP), ("cleanup", Cleanup())):
                emb = embed(pipe, paths, cu)
                acc = {a: accuracy(emb, [r.attributes[a] for r in test], protos[a]) for a in ("garment", "colour")}
                out[f"{cond}, {name}"] = acc
                rows.append(f"| {cond} | {name} | {acc['garment']:.3f} | {acc['colour']:.3f} |")
    print(f"{len(test)} test captions, prototypes from {len(train)} train captions\n\n"
          "| input | front end | garment (nearest prototype) | colour |\n|---|---|---|---|\n" + "\n".join(rows))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
