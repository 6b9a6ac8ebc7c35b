"""Markdown rows of expressive-dialogue results over seeds: mean ± 95 % t-interval (per seed in brackets).

    python scripts/dialogue_table.py perceiver=evals/dialogue-perceiver,evals/dialogue-perceiver-s1,evals/dialogue-perceiver-s2 \
        speech-only=evals/dialogue-speech-only,evals/dialogue-speech-only-s1,evals/dialogue-speech-only-s2

Each argument is NAME=comma-separated folders of `speechvision avlm evaluate-dialogue`. After the rows it
prints, for every model after the first, the seed-paired gain over the first in reply emotion (both judges).
"""

import json
import sys
from pathlib import Path

from speechvision.avlm.train import t_interval


def _fmt(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    m, h = t_interval([v * scale for v in values])
    return f"{m:.{digits}f} ± {h:.{digits}f}"


def _ambiguous(ms: list[dict]) -> str:
    """Recognition accuracy on ambiguous-audio clips, or "—" when the evaluated clips had none."""
    acc = [m["recognition_ambiguous"]["accuracy"] for m in ms if m.get("recognition_ambiguous")]
    return f"{_fmt(acc)} %" if len(acc) == len(ms) else "—"


def main() -> None:
    groups = {}
    for arg in sys.argv[1:]:
        name, _, dirs = arg.partition("=")
        if not dirs:
            raise SystemExit(f"{arg}: expected NAME=DIR[,DIR...]")
        groups[name] = [json.loads((Path(d) / "metrics.json").read_text()) for d in dirs.split(",")]
    print("| model | recognition acc. (all) | (ambiguous audio) | reply emotion, raw judge | reply emotion, "
          "speaker-normalised judge | reply WER | reply DNSMOS |")
    print("|---|---|---|---|---|---|---|")
    for name, ms in groups.items():
        rec = [m["recognition"]["accuracy"] for m in ms]
        norm = [m["replies"]["emotion_accuracy_speaker_normalised"] for m in ms]
        print(f"| {name} | {_fmt(rec)} % ({', '.join(f'{100 * v:.1f}' for v in rec)}) "
              f"| {_ambiguous(ms)} "
              f"| {_fmt([m['replies']['emotion_accuracy'] for m in ms])} % "
              f"| {_fmt(norm)} % ({', '.join(f'{100 * v:.1f}' for v in norm)}) "
              f"| {_fmt([m['replies']['wer'] for m in ms])} % "
              f"| {_fmt([m['replies']['dnsmos_ovrl'] for m in ms], 1.0, 2)} |")
    ref = next(iter(groups.values()))[0]
    for kind in ("reference_resynth", "reference_real"):
        r = ref[kind]
        print(f"| *ceiling: {kind}* | — | — | {100 * r['emotion_accuracy']:.1f} % "
              f"| {100 * r['emotion_accuracy_speaker_normalised']:.1f} % | {100 * r['wer']:.1f} % | {r['dnsmos_ovrl']:.2f} |")
    names = list(groups)
    for name in names[1:]:
        for key in ("emotion_accuracy_speaker_normalised", "emotion_accuracy"):
            gain = [a["replies"][key] - b["replies"][key] for a, b in zip(groups[name], groups[names[0]])]
            print(f"gain of {name} over {names[0]}, {key}: {_fmt(gain)} points")


if __name__ == "__main__":
    main()
