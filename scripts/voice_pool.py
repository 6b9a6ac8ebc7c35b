"""Write ``src/speechvision/assets/voice_pool.json``: the broad training voices the offline ASR understands.

Every candidate of :func:`speechvision.core.tts.broad_voice_pool` speaks ``--probes`` captions of the training
grammar; the offline Whisper (:func:`speechvision.core.asr.transcribe`) writes them down, and a voice is kept
when its word error rate over them is at most ``--max-wer`` (issue 17: "keep those the offline ASR still
understands"). The file records each kept voice with its WER, and the rejected ones.

    python scripts/voice_pool.py --max-wer 0.5
    python scripts/voice_pool.py --max-wer 0.5 --reuse   # re-split the recorded WERs by another threshold
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from tqdm import tqdm

from speechvision.avlm.judges import word_error_rate
from speechvision.core.asr import transcribe
from speechvision.core.tts import VOICE_POOL_FILE, broad_voice_pool, synthesize
from speechvision.data.captions import COLOURS, FASHION_CLASSES, caption


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--probes", type=int, default=3)
    ap.add_argument("--max-wer", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reuse", action="store_true", help="re-split the WERs already in the file (no synthesis)")
    args = ap.parse_args()
    if args.reuse:
        old = json.loads(VOICE_POOL_FILE.read_text())
        voices = sorted(old["voices"] + old["rejected"], key=lambda v: v["id"])
        kept = [v for v in voices if v["wer"] <= args.max_wer]
        rejected = [v for v in voices if v["wer"] > args.max_wer]
        write(args, kept, rejected, old["probes"], old["seed"])
        return
    rng = np.random.default_rng(args.seed)
    kept, rejected = [], []
    for voice in tqdm(broad_voice_pool(seed=args.seed), desc="voices", unit="voice"):
        texts = [caption(int(rng.integers(24)), FASHION_CLASSES[int(rng.integers(10))], 0,
                         COLOURS[int(rng.integers(8))]) for _ in range(args.probes)]
        heard = []
        for t in texts:
            wave, rate = synthesize(t, voice)
            heard.append(transcribe(wave, rate))
        wer = word_error_rate(texts, heard)
        (kept if wer <= args.max_wer else rejected).append({**voice.to_dict(), "wer": round(wer, 3)})
    write(args, kept, rejected, args.probes, args.seed)


def write(args, kept: list[dict], rejected: list[dict], probes: int, seed: int) -> None:
    VOICE_POOL_FILE.write_text(json.dumps({"max_wer": args.max_wer, "probes": probes, "seed": seed,
                                           "voices": kept, "rejected": rejected}, indent=1) + "\n")
    print(f"kept {len(kept)} of {len(kept) + len(rejected)} voices -> {VOICE_POOL_FILE}")


if __name__ == "__main__":
    main()
