#!/bin/sh
# Issue 17's data, shared by scripts/issue17.sh (retrained SEN + GAN) and scripts/issue17_distill.sh (the
# bundled generator kept): the broad-voice grammar-v2 dataset, its augmented speech and the robust test splits.
# flite speaks only in the robust test splits. Every step resumes when the script is rerun.
#
#     sh scripts/issue17_data.sh OUT          # writes OUT/data and OUT/robust
#
# CAPTIONS (default 24): recordings per garment-colour combination (fewer for a quicker, smaller run).
set -eu
OUT=${1:?usage: sh scripts/issue17_data.sh OUT}
S=${SPEECHVISION:-speechvision}
mkdir -p "$OUT"
echo "== data ($(date -u +%H:%M:%S))"
test -f "$OUT/.done-data" || { $S data spoken-fashion --out "$OUT/data" --grammar v2 --voices broad \
  --captions-per-combo "${CAPTIONS:-24}"; touch "$OUT/.done-data"; }
echo "== speech-augment ($(date -u +%H:%M:%S))"
test -f "$OUT/.done-augment" || { $S data speech-augment --data "$OUT/data" --copies 3; touch "$OUT/.done-augment"; }
echo "== robust-splits ($(date -u +%H:%M:%S))"
test -f "$OUT/.done-robust" || { $S data spoken-fashion-robust --from "$OUT/data" --out "$OUT/robust"; \
  touch "$OUT/.done-robust"; }
