"""Export the AVLM stack that the package bundles (issue 20 item 4): tokenizer, vocoder and one dialogue
model, plus one demo clip per emotion from the av-emotion test split (a real face photo animated by the
clip's synthetic landmarks, with the clip's speech).

    python scripts/build_avlm_bundle.py --runs RUNS --dialogue RUNS/dialogue-perceiver-s0/dialogue.pt --force

RUNS is the folder of `sh scripts/avlm_rebuild.sh RUNS`. The output defaults to the package's
src/speechvision/assets/avlm; the stack is refused over 40 MB. Which dialogue model is bundled is the
caller's choice, made before looking at test numbers (docs/avlm.md says which and why).
"""

import argparse
import json
import tempfile
from pathlib import Path

from speechvision.avlm.bundle import bundled_stack_dir, demo_clips, export_stack


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, required=True, help="folder of scripts/avlm_rebuild.sh")
    ap.add_argument("--dialogue", type=Path, required=True, help="the dialogue.pt to bundle")
    ap.add_argument("--out", type=Path, default=bundled_stack_dir())
    ap.add_argument("--seed", type=int, default=0, help="which test clips are drawn")
    ap.add_argument("--force", action="store_true", help="replace the stack in --out")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        clips = demo_clips(args.runs / "av-emotion", tmp, seed=args.seed)
        meta = export_stack(args.runs / "tokens", args.runs / "vocoder", args.dialogue, args.out, clips=clips,
                            force=args.force, sources={
                                "runs": str(args.runs), "dialogue": str(args.dialogue),
                                "recipe": "sh scripts/avlm_rebuild.sh RUNS; python scripts/build_avlm_bundle.py"})
    print(json.dumps({"out": str(args.out), "megabytes": meta["megabytes"], "clips": len(meta["clips"])}))


if __name__ == "__main__":
    main()
