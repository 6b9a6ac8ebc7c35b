# Sourced by the recipe scripts (scripts/avlm_rebuild.sh, scripts/avlm_dialogue_grid.sh): a resumable step.
# step NAME OUTPUT COMMAND...: run COMMAND unless OUTPUT exists; append its wall time to $R/steps.jsonl
step() {
  name=$1; output=$2; shift 2
  if [ -e "$output" ]; then echo "== $name: done ($output)"; return; fi
  echo "== $name: $*"; t0=$(date +%s)
  "$@"
  echo "{\"step\": \"$name\", \"seconds\": $(( $(date +%s) - t0 ))}" >> "$R/steps.jsonl"
}
