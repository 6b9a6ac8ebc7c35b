#!/bin/sh
# Issue 17 without a GAN retrain: the bundled generator kept, its speech encoder distilled on the broad-voice,
# grammar-v2, augmented data into its own embedding space (`speechvision train distill`), then the robustness
# table of the bundled model and of the distilled bundle, judged by the same attribute classifiers.
# Every step resumes when the script is rerun.
#
#     sh scripts/issue17_distill.sh OUT [EPOCHS]
#
# TEACHER (default: the bundled model): the bundle whose generator is kept. The bundle since 2026-12-05 is itself
# the result of this script; to remake it, teach the one before it:
#     git show 971a733:src/speechvision/assets/spoken-fashion.pt > /work/runs/bundle-v1.pt
#     TEACHER=/work/runs/bundle-v1.pt sh scripts/issue17_distill.sh /work/runs/i17d 2
# OUT: a run folder outside the repo. flite (the held-out engine) speaks only in the robust test splits; the
# distillation selects its epoch on the val split of the training voices.
set -eu
OUT=${1:?usage: sh scripts/issue17_distill.sh OUT [EPOCHS]}
EPOCHS=${2:-6}
S=${SPEECHVISION:-speechvision}
PY=${PYTHON:-python}
HERE=$(cd "$(dirname "$0")" && pwd)
sh "$HERE/issue17_data.sh" "$OUT"
echo "== judges ($(date -u +%H:%M:%S))"
test -f "$OUT/judges/classifier.pt" || $S train classifier --data "$OUT/data" --out "$OUT/judges" --epochs 10
echo "== distill ($(date -u +%H:%M:%S))"
if [ ! -f "$OUT/distill/bundle.pt" ]; then
  # a resumed run keeps its own settings: only --epochs may be given again
  if [ -f "$OUT/distill/checkpoint.pt" ]; then
    set -- --resume
  else
    set -- --set data.speech_augment.copies=3
    if [ -n "${TEACHER:-}" ]; then set -- "$@" --teacher "$TEACHER"; fi
  fi
  $S train distill --data "$OUT/data" --out "$OUT/distill" --epochs "$EPOCHS" --no-progress "$@"
fi
echo "== robustness tables ($(date -u +%H:%M:%S))"
test -f "$OUT/robustness-distilled.json" || $PY "$HERE/robustness_table.py" --checkpoint "$OUT/distill/bundle.pt" \
  --data "$OUT/data" --robust "$OUT/robust" --classifier "$OUT/judges" --limit 250 --rows direct \
  --json "$OUT/robustness-distilled.json"
test -f "$OUT/robustness-bundled.json" || $PY "$HERE/robustness_table.py" ${TEACHER:+--checkpoint "$TEACHER"} \
  --data "$OUT/data" --robust "$OUT/robust" --classifier "$OUT/judges" --limit 250 --rows direct \
  --json "$OUT/robustness-bundled.json"
echo "== done ($(date -u +%H:%M:%S))"
