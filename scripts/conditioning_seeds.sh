#!/bin/sh
# Issue 16: does the generator learn to use the speech for every seed? Short GAN runs over several seeds, with
# the official CA input (the unit-norm embedding) and with it scaled by sqrt(1024) = 32
# (gan.generator.embedding_scale), on a finished pipeline run's data and SEN; then each run's KL term and CA mu
# spread over the snapshot captions (ca_mu_spread) at every log line. Rerun to resume; finished runs are skipped.
#   usage: sh scripts/conditioning_seeds.sh FULL_RUN OUT [STEPS] [SEEDS]
#   e.g.   sh scripts/conditioning_seeds.sh /work/runs/sf-seed1 /work/runs/cond 500 "101 1 2"
set -e
R=${1:?FULL_RUN}; A=${2:?OUT}; STEPS=${3:-500}; SEEDS=${4:-101 1 2}
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$A"
[ -f "$A/inputs.safetensors" ] || $PY -m speechvision train gan --data "$R/data" --sen "$R/sen/best.pt" \
  --out "$A/unused" --save-inputs "$A/inputs.safetensors"
one() {
  name=$1; shift
  [ -f "$A/$name/done" ] && return 0
  resume=""; [ -f "$A/$name/checkpoint.pt" ] && resume=--resume
  $PY -m speechvision train gan --data "$A/inputs.safetensors" --sen "$R/sen/best.pt" --out "$A/$name" \
    --device cpu --no-progress --set gan.iterations="$STEPS" --set gan.snapshot_every="$STEPS" "$@" $resume
  touch "$A/$name/done"
}
for seed in $SEEDS; do
  one "scale1-seed$seed" --set gan.seed="$seed"
  one "scale32-seed$seed" --set gan.seed="$seed" --set gan.generator.embedding_scale=32
done
$PY - "$A" <<'PY'
import json, sys
from pathlib import Path
print("| run | step | KL | ca_mu_spread | ca_sigma |\n|---|---|---|---|---|")
for log in sorted(Path(sys.argv[1]).glob("*/log.jsonl")):
    for e in map(json.loads, log.read_text().splitlines()):
        if "KL" in e:
            print(f"| {log.parent.name} | {e['step']} | {e['KL']:.4f} | {e['ca_mu_spread']:.2f} | {e['ca_sigma']:.3f} |")
PY
