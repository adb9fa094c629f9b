#!/usr/bin/env bash
# Rebuild the board's reference entries: the small synth builds (recipe default source and seed,
# 2 source items per split), SigClick scored on each, their fingerprints recorded in
# fingerprints.json, and the board rendered. Run from the repository root:
#   bash leaderboard/make_reference.sh
# Re-run it whenever the engine or a recipe changes (the fingerprints change with them). Add the
# neural models here once trained checkpoints exist (`defectbench run --model NAME --checkpoint ...`).
set -euo pipefail
record=()
LIMIT=${LIMIT:-2}
for recipe in fma-clicks fma-clicks-post; do
  defectbench build "$recipe" --limit "$LIMIT" --out "datasets/$recipe" --overwrite --quiet
  defectbench run --model sigclick --dataset "datasets/$recipe" --out "results/$recipe/sigclick.json" --quiet
  defectbench submit "results/$recipe/sigclick.json" --name sigclick --overwrite
  record+=(--record "datasets/$recipe")
done
defectbench leaderboard "${record[@]}"
