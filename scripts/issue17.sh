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
# Environment: FRONTENDS (default "logmel whisper"; one name skips the choice), GANS (default "run run-attr": the
# GAN on the embedding alone and the compositional one that also reads the factored heads' posteriors) and
# GAN_OPTIONS (overrides every GAN repeats, e.g. "--set gan.generator.embedding_scale=8").
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
FRONTENDS=${FRONTENDS:-logmel whisper}
GANS=${GANS:-run run-attr}
GAN_OPTIONS=${GAN_OPTIONS:-}
for name in $FRONTENDS; do
  step "sen-$name"
  case $name in
    logmel) train_sen logmel ;;
    whisper) train_sen whisper --set audio.frontend=whisper --set sen.speech.n_mels=384 ;;
    *) echo "FRONTENDS: unknown front end $name (logmel, whisper)" >&2; exit 2 ;;
  esac
done

SPLITS="val test test_unseen"
ROBUST="flite flite_degraded phrasing phrasing_degraded test_degraded test_unseen_degraded"
for name in $FRONTENDS; do
  test -f "$OUT/sen-$name-val.json" || $S evaluate sen --checkpoint "$OUT/sen-$name" --data "$OUT/data" \
    --splits $SPLITS --out "$OUT/sen-$name-val.json"
  test -f "$OUT/sen-$name-robust.json" || $S evaluate sen --checkpoint "$OUT/sen-$name" --data "$OUT/robust" \
    --splits $ROBUST --out "$OUT/sen-$name-robust.json"
done

step choose-front-end
NAME=$($PY - "$OUT" $FRONTENDS <<'EOF'
import json, sys
from pathlib import Path
scores = {n: json.loads((Path(sys.argv[1]) / f"sen-{n}-val.json").read_text())["val"]["mAP"] for n in sys.argv[2:]}
print(scores, file=sys.stderr)
print(max(scores, key=scores.get))
EOF
)
echo "chosen on validation mAP: $NAME"
SEN="$OUT/sen-$NAME"

test -n "$JUDGES" || { test -f "$OUT/judges/classifier.pt" || $S train classifier --data "$OUT/data" \
  --out "$OUT/judges" --epochs 10 --no-progress; JUDGES=$OUT/judges; }
for run in $GANS; do
  step "gan $run"
  case $run in
    run) extra="" ;;
    run-attr) extra="--set gan.attribute_condition=true" ;;
    *) echo "GANS: unknown run $run (run, run-attr)" >&2; exit 2 ;;
  esac
  $S pipeline --out "$OUT/$run" --data "$OUT/data" --sen "$SEN" --steps "$STEPS" --judges "$JUDGES" \
    --no-progress $GAN_OPTIONS $extra
done

step robustness-table
for run in $GANS; do
  test -f "$OUT/robustness-$run.json" || $PY "$HERE/robustness_table.py" --checkpoint "$OUT/$run/bundle.pt" \
    --data "$OUT/data" --robust "$OUT/robust" --classifier "$JUDGES" --limit 250 --rows direct \
    --json "$OUT/robustness-$run.json"
done
