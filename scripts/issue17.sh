#!/bin/sh
# Issue 17's retrain, end to end: the broad-voice grammar-v2 dataset with augmented speech, the robust test
# splits, the two SEN front ends (log-mel and frozen Whisper) chosen between on validation mAP, the chosen SEN's
# GAN through `speechvision pipeline`, and the robustness table. Every step resumes when the script is rerun.
#
#     sh scripts/issue17.sh OUT [STEPS] [JUDGES]
#
# OUT: a run folder outside the repo. STEPS: GAN iterations (default 6000, what fits a 2-core session beside the
# data build). JUDGES: attribute classifiers already trained on the same images (e.g. a full run's judges);
# without it the pipeline trains its own. flite speaks only in the robust test splits and is never used to choose.
set -eu
OUT=${1:?usage: sh scripts/issue17.sh OUT [STEPS] [JUDGES]}
STEPS=${2:-6000}
JUDGES=${3:-}
S=${SPEECHVISION:-speechvision}
PY=${PYTHON:-python}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
done_() { test -f "$OUT/.done-$1"; }
mark() { touch "$OUT/.done-$1"; }
step() { echo "== $1 ($(date -u +%H:%M:%S))"; }

sh "$HERE/issue17_data.sh" "$OUT"

SEN_COMMON="--set sen.factored=garment,colour --set data.speech_augment.enabled=true --no-progress"
train_sen() {  # NAME [--set ...]
  name=$1; shift
  done_ "sen-$name" && return 0
  resume=""; test -f "$OUT/sen-$name/checkpoint.pt" && resume="--resume"
  $S train sen --data "$OUT/data" --out "$OUT/sen-$name" $SEN_COMMON $resume "$@"
  mark "sen-$name"
}
step sen-logmel
train_sen logmel
step sen-whisper
train_sen whisper --set audio.frontend=whisper --set sen.speech.n_mels=384

SPLITS="val test test_unseen"
ROBUST="flite flite_degraded phrasing phrasing_degraded test_degraded test_unseen_degraded"
for name in logmel whisper; do
  test -f "$OUT/sen-$name-val.json" || $S evaluate sen --checkpoint "$OUT/sen-$name" --data "$OUT/data" \
    --splits $SPLITS --out "$OUT/sen-$name-val.json"
  test -f "$OUT/sen-$name-robust.json" || $S evaluate sen --checkpoint "$OUT/sen-$name" --data "$OUT/robust" \
    --splits $ROBUST --out "$OUT/sen-$name-robust.json"
done

step choose-front-end
NAME=$($PY - "$OUT" <<'EOF'
import json, sys
from pathlib import Path
scores = {n: json.loads((Path(sys.argv[1]) / f"sen-{n}-val.json").read_text())["val"]["mAP"] for n in ("logmel", "whisper")}
print(scores, file=sys.stderr)
print(max(scores, key=scores.get))
EOF
)
echo "chosen on validation mAP: $NAME"
SEN="$OUT/sen-$NAME"

step gan
JUDGE_ARG=""; test -n "$JUDGES" && JUDGE_ARG="--judges $JUDGES"
$S pipeline --out "$OUT/run" --data "$OUT/data" --sen "$SEN" --steps "$STEPS" $JUDGE_ARG --no-progress
step gan-attribute-condition
test -n "$JUDGES" || JUDGE_ARG="--judges $OUT/run/judges"
$S pipeline --out "$OUT/run-attr" --data "$OUT/data" --sen "$SEN" --steps "$STEPS" $JUDGE_ARG --no-progress \
  --set gan.attribute_condition=true

step robustness-table
for run in run run-attr; do
  test -f "$OUT/robustness-$run.json" || $PY "$HERE/robustness_table.py" --checkpoint "$OUT/$run/bundle.pt" \
    --data "$OUT/data" --robust "$OUT/robust" --classifier "${JUDGES:-$OUT/run/judges}" --limit 250 \
    --json "$OUT/robustness-$run.json"
done
