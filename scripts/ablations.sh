#!/bin/sh
# The ablation rows of issue 16 (S2IGAN Table 2 layout) on spoken-fashion, with `speechvision pipeline`, and
# issue 21's spoken-fashion augmentation row.
# Every variant shares the full run's dataset (and its feature caches) and attribute judges; the GAN-only
# variants also share its SEN, so they cost only their GAN and evaluation. Rerun to resume.
#
#     sh scripts/ablations.sh FULL_RUN OUT [STEPS [OPTION...]]
#
# FULL_RUN is a finished `speechvision pipeline --out FULL_RUN --steps STEPS` (the full model, seed 0);
# STEPS must be its GAN iterations (default 10000), and the OPTIONs after it are the full run's own `--set`
# overrides, which every variant repeats (e.g. --set gan.generator.embedding_scale=8). Run one variant at a
# time on a 2-core machine, or two lanes of one thread each, e.g.
#     OMP_NUM_THREADS=1 VARIANTS="augment-shift4 no-rs end-to-end" sh scripts/ablations.sh ... &
#     OMP_NUM_THREADS=1 VARIANTS="no-dense sen-no-distinctive" sh scripts/ablations.sh ... &
# (a 2-thread GAN beside another 2-thread torch job ran at 0.2 steps/s instead of 1.5 on 2026-12-07). SV sets
# the command (default speechvision);
# VARIANTS the variants to run, in order (default: all six).
set -eu
FULL=${1:?usage: sh scripts/ablations.sh FULL_RUN OUT [STEPS [OPTION...]]}
OUT=${2:?usage: sh scripts/ablations.sh FULL_RUN OUT [STEPS [OPTION...]]}
STEPS=${3:-10000}
shift $(( $# < 3 ? $# : 3 ))
FULL_OPTIONS="$*"
SV=${SV:-speechvision}
SHARED="--data $FULL/data --judges $FULL/judges --steps $STEPS --no-progress"
ALL="no-dense no-rs end-to-end sen-no-distinctive full-seed1 augment-shift4"
VARIANTS=${VARIANTS:-$ALL}
run() {
  name=$1; shift; echo "== $name"
  $SV pipeline --out "$OUT/$name" $SHARED $FULL_OPTIONS "$@" > "$OUT/$name.log" 2>&1
}
mkdir -p "$OUT"
for v in $VARIANTS; do
  case $v in
    no-dense) run no-dense --sen "$FULL/sen" --set gan.generator.dense=false ;;
    no-rs) run no-rs --sen "$FULL/sen" --set gan.rs=false ;;
    end-to-end) run end-to-end --sen "$FULL/sen" --set gan.end_to_end=true --set gan.sen_pretrained=false ;;
    sen-no-distinctive) run sen-no-distinctive --set sen.distinctive_loss=false ;;
    full-seed1) run full-seed1 --set sen.seed=201 --set gan.seed=101 ;;
    # issue 21: the spoken-fashion real-image augmentation (flip + up to 4 px shift, a fresh view every epoch)
    augment-shift4) run augment-shift4 --sen "$FULL/sen" --set data.augment.enabled=true \
      --set data.augment.max_shift_px=4 --set data.augment.on_the_fly=true ;;
    *) echo "VARIANTS: unknown variant $v (one of: $ALL)" >&2; exit 2 ;;
  esac
done
for v in $VARIANTS; do echo "== $v"; cat "$OUT/$v/summary.md"; done
