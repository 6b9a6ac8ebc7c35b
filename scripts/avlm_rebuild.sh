#!/bin/sh
# The AVLM recipe of issue 20, from nothing to the numbers of docs/avlm.md and docs/expressive-speech.md and
# an exported stack. Every step is skipped when its output exists, so rerunning the script resumes it
# (the corpus build also resumes inside itself). Run it from the repository root:
#
#     sh scripts/avlm_rebuild.sh RUNS          # e.g. /work/runs/avlm20; keep it outside the repository
#
# Each command uses one thread (OMP_NUM_THREADS=1), as the timings in the docs do. LIMIT sets the test
# question clips each dialogue evaluation uses (default 160 of the 480); SV the command (default speechvision),
# PY the Python that has speechvision (default python), e.g. a frozen clone's:
#     SV="env PYTHONPATH=CLONE/src .venv/bin/python -m speechvision" PY="env PYTHONPATH=CLONE/src .venv/bin/python"
set -eu
R=${1:?usage: sh scripts/avlm_rebuild.sh RUNS_FOLDER}
LIMIT=${LIMIT:-160}
SV=${SV:-speechvision}
PY=${PY:-python}
export OMP_NUM_THREADS=1
mkdir -p "$R"
. "$(dirname "$0")/steps.sh"  # step NAME OUTPUT COMMAND...
# the corpus build resumes by itself; dataset.json is written last
step corpus "$R/spoken-emotion/dataset.json" $SV data spoken-emotion --out "$R/spoken-emotion"
step av "$R/av-emotion/dataset.json" $SV data av-emotion --speech "$R/spoken-emotion" --out "$R/av-emotion"
step tokens "$R/tokens/encoded.jsonl" $SV speechlm tokenize --data "$R/spoken-emotion" --out "$R/tokens" \
  --unit-features whisper --units 500
step vocoder "$R/vocoder/vocoder.pt" $SV speechlm vocoder --tokens "$R/tokens" --out "$R/vocoder" --steps 3000
step speechlm "$R/speechlm/best.pt" $SV speechlm train --tokens "$R/tokens" --out "$R/speechlm" --hidden 128 \
  --layers 2 --steps 400 --eval-every 100
step resynthesis "$R/eval-expressive/metrics.json" $SV speechlm evaluate --data "$R/spoken-emotion" \
  --tokens "$R/tokens" --vocoder "$R/vocoder" --lm "$R/speechlm" --out "$R/eval-expressive"
step prosody "$R/prosody.txt" sh -c "$PY scripts/prosody_fidelity.py --tokens '$R/tokens' --vocoder '$R/vocoder' -n 240 > '$R/prosody.txt'"
# dialogue fine-tuning (400 steps, as this recipe always ran) and evaluation, 4 fusions x 3 seeds: the grid
# script, which finds the tokens, vocoder and speech LM above in place and skips its own steps for them
FINETUNE_STEPS=400 LIMIT="$LIMIT" SV="$SV" PY="$PY" sh "$(dirname "$0")/avlm_dialogue_grid.sh" "$R"
echo "== done: python scripts/dialogue_table.py NAME=$R/eval-dialogue-NAME-s0,... (docs/avlm.md)"
