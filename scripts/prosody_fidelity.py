"""Which emotion cues survive resynthesis: per emotion, the mean of each prosodic cue of the originals and
of their resynthesis (encode, then decode with the unit vocoder).

    python scripts/prosody_fidelity.py --tokens runs/tokens --vocoder runs/vocoder -n 80

Cues (the spoken-emotion corpus's emotion profile): median F0 relative to the voice's mean (semitones),
F0 range (std of log2 F0 over voiced frames, semitones), loudness (RMS level, dB re full scale) and duration
(seconds). An emotion cue survives when the spread across emotions is kept.
"""

import json

import numpy as np
from common_args import resynthesis_parser

from speechvision.avlm.corpus import load_encoded, read_wave
from speechvision.avlm.tokens import f0_track
from speechvision.avlm.vocoder import UnitVocoder


def cues(wave: np.ndarray, voice_log2_f0: float) -> dict:
    f = f0_track(wave, 16000)
    lf = np.log2(f[f > 0]) if (f > 0).any() else np.array([voice_log2_f0])
    return {"f0_st": float(12 * (np.median(lf) - voice_log2_f0)), "f0_range_st": float(12 * lf.std()),
            "level_db": float(20 * np.log10(np.sqrt(np.mean(wave ** 2)) + 1e-9)), "duration_s": len(wave) / 16000}


def main() -> None:
    args = resynthesis_parser(__doc__, n=80).parse_args()
    speaker = UnitVocoder.load(args.tokens, args.vocoder)
    rows = load_encoded(args.tokens, args.split)[:args.n]
    table: dict = {}
    for r in rows:
        mean = speaker.tok.speaker_mean(r["speaker"])
        for name, wave in (("original", read_wave(r["audio"])), ("resynth", speaker.decode(r["tokens"], r["speaker"]))):
            for k, v in cues(wave, mean).items():
                table.setdefault(r["emotion"], {}).setdefault(name, {}).setdefault(k, []).append(v)
    print(json.dumps({e: {n: {k: round(float(np.mean(v)), 2) for k, v in c.items()} for n, c in t.items()}
                      for e, t in sorted(table.items())}, indent=1))


if __name__ == "__main__":
    main()
