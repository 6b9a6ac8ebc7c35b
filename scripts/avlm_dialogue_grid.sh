#!/bin/sh
# Issue 20 item 3 on the bundled stack's tokenizer and vocoder: encode a spoken-emotion corpus with the bundled
# tokenizer (so the bundled vocoder renders its tokens; no tokenizer fit or vocoder training), train the speech
# LM, then dialogue fine-tuning and evaluation for every fusion and seeds 0-2, two jobs at a time on one thread
# each (a 2-core machine). Every step is skipped when its output exists, so rerunning resumes it (and
# scripts/avlm_rebuild.sh runs it after fitting its own tokenizer, vocoder and speech LM). The corpus and av
# set come first (the steps `corpus` and `av` of scripts/avlm_rebuild.sh):
#
#     sh scripts/avlm_dialogue_grid.sh RUNS     # RUNS holds spoken-emotion/ and av-emotion/
#     python scripts/dialogue_table.py speech-only=OUT/eval-dialogue-speech-only-s0,...-s1,...-s2 perceiver=...
#
# The order puts speech-only and perceiver at seeds 0-2 (the face-fusion gain) first, then concat and
# cross-attention, each fusion a lane of train-then-evaluate per seed. FINETUNE_STEPS sets the dialogue
# fine-tuning steps (default 2000; every 100 the validation reply loss is checked and the best step kept;
# the first runs of 2026-12-06 used 400, `FINETUNE_STEPS=400`); OUT the folder of the dialogue runs and
# evaluations (default RUNS); LIMIT the test question clips of each evaluation (default 160); SV the command
# (default speechvision), PY the Python that has speechvision (default python). Step times go to
# RUNS/steps.jsonl, logs to OUT/log-*.
set -eu
R=${1:?usage: sh scripts/avlm_dialogue_grid.sh RUNS_FOLDER}
LIMIT=${LIMIT:-160}
FINETUNE_STEPS=${FINETUNE_STEPS:-2000}
OUT=${OUT:-$R}
SV=${SV:-speechvision}
PY=${PY:-python}
. "$(dirname "$0")/steps.sh"  # step NAME OUTPUT COMMAND...
for need in spoken-emotion/dataset.json av-emotion/dataset.json; do
  [ -e "$R/$need" ] || { echo "$R/$need: missing; run the corpus and av steps of scripts/avlm_rebuild.sh" >&2; exit 2; }
done
# Whisper encoding uses both cores (CTranslate2's threads); the rest one thread per job
step tokens "$R/tokens/encoded.jsonl" $SV speechlm tokenize --data "$R/spoken-emotion" --out "$R/tokens" \
  --tokenizer bundled
mkdir -p "$R/vocoder"
# a copy of the bundled vocoder: the evaluations cache the test references beside it
[ -e "$R/vocoder/vocoder.pt" ] || $PY -c "import shutil, sys; from speechvision.avlm.bundle import bundled_stack_dir
shutil.copyfile(bundled_stack_dir() / 'vocoder.pt', sys.argv[1])" "$R/vocoder/vocoder.pt"
export OMP_NUM_THREADS=1
step speechlm "$R/speechlm/best.pt" $SV speechlm train --tokens "$R/tokens" --out "$R/speechlm" --hidden 128 \
  --layers 2 --steps 400 --eval-every 100
train() { # train FUSION SEED
  run="$OUT/dialogue-$1-s$2"
  step "dialogue $1 s$2 ft$FINETUNE_STEPS" "$run/dialogue.pt" $SV avlm train --task dialogue --av "$R/av-emotion" --tokens "$R/tokens" \
    --lm "$R/speechlm" --fusion "$1" --finetune-steps "$FINETUNE_STEPS" --eval-every 100 --seed "$2" --out "$run" \
    --no-progress > "$OUT/log-train-$1-s$2.txt" 2>&1
}
evaluate() { # evaluate FUSION SEED
  step "evaluate $1 s$2 ft$FINETUNE_STEPS" "$OUT/eval-dialogue-$1-s$2/metrics.json" $SV avlm evaluate-dialogue \
    --model "$OUT/dialogue-$1-s$2/dialogue.pt" --av "$R/av-emotion" --tokens "$R/tokens" --vocoder "$R/vocoder" \
    --speech "$R/spoken-emotion" --limit "$LIMIT" --seed "$2" --out "$OUT/eval-dialogue-$1-s$2" \
    --no-progress > "$OUT/log-eval-$1-s$2.txt" 2>&1
}
lane() { # lane FUSION SEED...: train then evaluate each seed in turn
  fusion=$1; shift
  for s in "$@"; do train "$fusion" "$s"; evaluate "$fusion" "$s"; done
}
mkdir -p "$OUT"
# the first evaluation measures the shared test references and the judge's features alone (both are cached)
train perceiver 0 & train speech-only 0 & wait
evaluate perceiver 0 & train perceiver 1 & wait
# speech-only and perceiver at seeds 0-2 first (the face-fusion gain), then concat and cross-attention
lane perceiver 1 2 & lane speech-only 0 1 2 & wait
lane concat 0 1 2 & lane cross-attention 0 1 2 & wait
echo "== grid done"
