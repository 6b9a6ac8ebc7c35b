"""How much a generator's images of one spoken caption vary with the noise seed.

    python scripts/seed_diversity.py --checkpoint RUN_OR_BUNDLE --data DATA --out OUT [--captions 24 --seeds 8]

Takes the first caption of evenly spaced test items (distinct file names), generates ``--seeds`` images of
each with `speechvision generate` (seeds 0..), and prints the mean over captions of the per-pixel standard
deviation across the seeds (RGB, 0-255, final stage). A generator that ignores the noise scores near 0; one
that ignores the speech varies with the noise alone and scores high. Images already in OUT are reused.
"""

import argparse
import json
import pathlib
import subprocess
import sys

import numpy as np
from PIL import Image


def test_captions(data: pathlib.Path, n: int) -> list[str]:
    rows = [json.loads(x) for x in (data / "manifest.jsonl").read_text().splitlines()]
    test = [r for r in rows if r["split"] == "test"]
    by_stem = {}
    for r in test[:: max(1, len(test) // (2 * n))]:
        audio = data / r["captions"][0]["audio"]
        by_stem.setdefault(audio.stem, str(audio))
    if len(by_stem) < n:
        raise SystemExit(f"{data}: only {len(by_stem)} distinct test captions, --captions asks for {n}")
    return list(by_stem.values())[:n]


def pixel_std(out: pathlib.Path) -> tuple[float, int]:
    groups: dict[str, list[np.ndarray]] = {}
    for p in sorted(out.glob("*-seed*.png")):
        groups.setdefault(p.stem.rsplit("-seed", 1)[0], []).append(np.asarray(Image.open(p).convert("RGB"), float))
    stds = [np.stack(g).std(axis=0).mean() for g in groups.values() if len(g) > 1]
    return float(np.mean(stds)), len(stds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="GAN run folder or bundle ('bundled' = the bundled model)")
    ap.add_argument("--data", required=True, type=pathlib.Path, help="spoken-fashion data folder")
    ap.add_argument("--out", required=True, type=pathlib.Path, help="image folder (reused when it exists)")
    ap.add_argument("--captions", type=int, default=24)
    ap.add_argument("--seeds", type=int, default=8)
    args = ap.parse_args()
    if args.captions < 1 or args.seeds < 2:
        ap.error("--captions must be >= 1 and --seeds >= 2")
    if not args.out.exists():
        cmd = [sys.executable, "-m", "speechvision", "generate", "--speech", *test_captions(args.data, args.captions),
               "--out", str(args.out), "--seed", "0", "--n-per-speech", str(args.seeds)]
        if args.checkpoint != "bundled":
            cmd += ["--checkpoint", args.checkpoint]
        subprocess.run(cmd, check=True)
    std, n = pixel_std(args.out)
    print(json.dumps({"checkpoint": args.checkpoint, "captions": n, "seeds": args.seeds,
                      "pixel_std_across_seeds": round(std, 2)}))


if __name__ == "__main__":
    main()
