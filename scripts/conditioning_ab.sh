#!/bin/sh
# Issue 16: which RS lever holds the generator's conditioning back. 1,500-step GAN runs on a finished pipeline
# run's data, SEN and judges, then the CA's colour spread (scripts/condition_spread.py) and garment/colour accuracy
# on 200 test images. Rerun to resume; finished variants are skipped.
#   usage: sh scripts/conditioning_ab.sh FULL_RUN OUT      (FULL_RUN: a `speechvision pipeline --out` folder)
set -e
R=${1:?FULL_RUN}; A=${2:?OUT}
PY=${PYTHON:-.venv/bin/python}
one() {
  name=$1; shift
  if [ ! -f "$A/$name/done" ]; then
    resume=""; [ -f "$A/$name/checkpoint.pt" ] && resume=--resume
    $PY -m speechvision train gan --data "$R/data" --sen "$R/sen/best.pt" --out "$A/$name" --device cpu --no-progress \
      --set gan.iterations=1500 --set gan.snapshot_every=500 "$@" $resume
    touch "$A/$name/done"
  fi
  [ -f "$A/$name/spread.md" ] || $PY scripts/condition_spread.py "$A/$name" > "$A/$name/spread.md"
  [ -f "$A/$name/eval.json" ] || $PY -m speechvision evaluate gan --checkpoint "$A/$name" --data "$R/data" \
    --classifier "$R/judges" --splits test --limit 200 --out "$A/$name/eval.json"
}
mkdir -p "$A"
one preset
one no-rs --no-rs
one rs-every-1 --set gan.rs_every=1
one rs-every-2-weight-1 --set gan.rs_weight=0.5
cat "$A"/*/spread.md
