"""The issue-17 table: colour and garment accuracy of generated images per split, for a model and baselines.

Rows: the direct model with the microphone cleanup, without it, and the cascade baseline (Whisper ASR ->
keywords -> canonical caption -> the same generator). Columns: the spoken-fashion test and test_unseen
splits (``--data``) and the robustness set's test-only splits (``--robust``: held-out engine flite, held-out
phrasings, and degraded copies; ``speechvision data spoken-fashion-robust``). The attribute judges
(``--classifier``, ``speechvision train classifier``) judge every image; caption 0 of the first ``--limit``
images of each split, seed = position.

    python scripts/robustness_table.py --data D --robust R --classifier J --limit 250 --json out.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from speechvision.core.cleanup import NO_CLEANUP, Cleanup
from speechvision.s2igan.evaluate import evaluate_generator

SPLITS = {"data": ("test", "test_unseen"),
          "robust": ("flite", "flite_degraded", "phrasing", "phrasing_degraded", "test_degraded",
                     "test_unseen_degraded")}
ROWS = {"direct": dict(cleanup=Cleanup()), "direct, no cleanup": dict(cleanup=NO_CLEANUP),
        "cascade": dict(cleanup=Cleanup(), cascade=True)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, default=None, help="bundle or GAN run (default: the bundled model)")
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--robust", required=True, type=Path)
    ap.add_argument("--classifier", required=True, type=Path)
    ap.add_argument("--limit", type=int, default=250)
    ap.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    out = {}
    for row in args.rows:
        out[row] = {}
        for key, splits in SPLITS.items():
            rep = evaluate_generator(args.checkpoint, getattr(args, key), args.classifier, splits=splits,
                                     limit=args.limit, work_dir=Path("/tmp/robustness-swap"), **ROWS[row])
            out[row].update({s: rep[s] for s in splits})
            out[row][f"colour_swap ({key})"] = rep["colour_swap"]
            out[row][f"colour_swap_degraded ({key})"] = rep["colour_swap_degraded"]
        if args.json:
            args.json.write_text(json.dumps(out, indent=2))
    cols = [s for splits in SPLITS.values() for s in splits]
    print("colour / garment accuracy of the generated images (attribute judges), "
          f"{args.limit} images per split\n\n| row | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols))
    for row, res in out.items():
        print(f"| {row} | " + " | ".join(f"{res[c]['colour_accuracy']:.2f} / {res[c]['garment_accuracy']:.2f}"
                                         for c in cols) + " |")
    print("\ncolour-keyword swap, fraction of images in the spoken colour (clean / degraded)\n")
    for row, res in out.items():
        print(f"- {row}: {res['colour_swap (data)']['colour_follows_word']:.2f} / "
              f"{res['colour_swap_degraded (data)']['colour_follows_word']:.2f}")


if __name__ == "__main__":
    main()
