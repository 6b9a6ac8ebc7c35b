"""Do the spoken replies answer the question? Markdown rows over `avlm evaluate-dialogue` folders: the share of
the reference reply's content words (who, what, which verb, when, where; ``content_words`` of the answering
grammar, which the question and its reference reply share) that the offline Whisper hears in each reply, and the
share of replies heard as an answer ("yes ..."), beside the same for the reference reply's resynthesis and real
recording (the ceilings). Mean ± 95 % t-interval over the folders of a row. Read from replies.jsonl, so it also
serves evaluations made before `evaluate-dialogue` wrote ``content_recall`` and ``answer_share`` itself.

    python scripts/reply_content.py perceiver=RUNS/eval-dialogue-perceiver-s0,RUNS/eval-dialogue-perceiver-s1 ...
"""

import json
import sys
from pathlib import Path

import numpy as np

from speechvision.avlm.data.spoken_emotion import content_recall, heard_as_answer
from speechvision.avlm.train import t_interval


def measures(folder: Path) -> dict[str, float]:
    rows = [json.loads(x) for x in (folder / "replies.jsonl").read_text().splitlines() if x.strip()]
    out = {}
    for name in ("reply", "resynth", "real"):
        out[f"{name}_recall"] = float(np.mean([content_recall(r["reference"], r[f"{name}_text"]) for r in rows]))
        out[f"{name}_answer"] = float(np.mean([heard_as_answer(r[f"{name}_text"]) for r in rows]))
    return out


def _fmt(values: list[float]) -> str:
    m, h = t_interval([100 * v for v in values])
    return f"{m:.1f} ± {h:.1f} %"


def main() -> None:
    print("| model | content words of the reference heard in the reply | replies heard as \"yes ...\" |")
    print("|---|---|---|")
    first = None
    for arg in sys.argv[1:]:
        name, _, dirs = arg.partition("=")
        if not dirs:
            raise SystemExit(f"{arg}: expected NAME=DIR[,DIR...]")
        ms = [measures(Path(d)) for d in dirs.split(",")]
        first = first or ms[0]
        print(f"| {name} | {_fmt([m['reply_recall'] for m in ms])} | {_fmt([m['reply_answer'] for m in ms])} |")
    for kind, label in (("resynth", "reference reply resynthesised"), ("real", "reference reply, real recording")):
        print(f"| *ceiling: {label}* | {100 * first[f'{kind}_recall']:.1f} % | {100 * first[f'{kind}_answer']:.1f} % |")


if __name__ == "__main__":
    main()
