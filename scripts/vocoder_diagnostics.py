"""Where the resynthesis WER is lost: unit durations, the vocoder's envelope, or WORLD itself.

    python scripts/vocoder_diagnostics.py --tokens runs/tokens --vocoder runs/vocoder --split test -n 30

Prints the offline Whisper's WER on the first N utterances of a split for
- ``original``: the recordings;
- ``world_copy``: WORLD analysis + synthesis of the recordings themselves (F0, coded envelope, aperiodicity):
  the ceiling of any vocoder that ends in WORLD;
- ``mean`` / ``predicted`` / ``oracle``: the unit vocoder (in ``--voice`` when it is voice-conditioned)
  decoding the utterance's tokens with each unit's
  corpus-mean run length, the duration predictor's, or the true run lengths of the encoded frames.
"""

import json

import numpy as np
from common_args import resynthesis_parser

from speechvision.avlm.corpus import load_encoded, read_wave
from speechvision.avlm.judges import transcribe, word_error_rate
from speechvision.avlm.vocabulary import collapse
from speechvision.avlm.vocoder import UnitVocoder, world_synthesize, world_targets


def main() -> None:
    ap = resynthesis_parser(__doc__, n=30)
    ap.add_argument("--voice", default=None, help="training voice a voice-conditioned vocoder renders "
                    "(default: the speaker's own, else the one with the nearest mean F0)")
    args = ap.parse_args()
    speaker = UnitVocoder.load(args.tokens, args.vocoder)
    tok, voc = speaker.tok, speaker.vocoder
    rows = load_encoded(args.tokens, args.split)[:args.n]
    predictor, split_streams = voc.duration, tok.split_streams
    hyps: dict = {k: [] for k in ("original", "world_copy", "mean", "predicted", "oracle")}
    for r in rows:
        wave = read_wave(r["audio"])
        hyps["original"].append(transcribe(wave))
        f0, coded = world_targets(wave, 16000, voc.config)
        hyps["world_copy"].append(transcribe(world_synthesize(f0, coded, voc.config)))
        voc.duration = predictor
        hyps["predicted"].append(transcribe(speaker.decode(r["tokens"], r["speaker"], voice=args.voice)))
        voc.duration = None
        hyps["mean"].append(transcribe(speaker.decode(r["tokens"], r["speaker"], voice=args.voice)))
        _, starts = collapse(np.asarray(r["unit_frames"]))
        runs = np.diff(np.append(starts, len(r["unit_frames"])))

        def oracle(tokens, runs=runs):
            streams = split_streams(tokens)
            streams["unit_frames"] = runs.astype(np.int64)
            return streams

        tok.split_streams = oracle
        hyps["oracle"].append(transcribe(speaker.decode(r["tokens"], r["speaker"], voice=args.voice)))
        tok.split_streams = split_streams
    refs = [r["text"] for r in rows]
    print(json.dumps({"split": args.split, "n": len(rows), **{k: round(word_error_rate(refs, v), 4)
                                                              for k, v in hyps.items()}}))


if __name__ == "__main__":
    main()
