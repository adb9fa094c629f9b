#!/usr/bin/env bash
# Regenerate every reference entry of the board from the benchmark builds, from the repository root:
#   bash leaderboard/make_reference.sh            (WORKERS=N for the pools, REUSE_BUILDS=1 to keep built ones)
# 1. builds each paper recipe at its benchmark size (`defectbench build NAME --benchmark`, the recipe's
#    [source] benchmark, into datasets/bench/NAME; a few minutes each on 2 cores) and records the builds
#    as the board's reference builds (fingerprints.json);
# 2. the classical entries: SigClick (paper framing, and `-o edges=true` on the click recipes) on the three
#    music recipes, essentia-classic on video-artifacts;
# 3. the neural entries with the shipped weights (`defectbench run --model hooknet|cnn6` with no
#    --checkpoint): where the weights are not shipped yet, the step says so and the script goes on;
# 4. compares the builds with tests/golden/benchmark.json (`python -m defectbench.golden --check`; after
#    an intended change: `python -m defectbench.golden --write --note WHY`, a changelog line), then
#    records them as the reference builds and renders the board.
# Re-run it whenever the engine, a recipe or a detector changes (the fingerprints change with them).
set -euo pipefail
WORKERS="${WORKERS:-2}"
MUSIC="fma-clicks fma-clicks-post fma-mp3-glitch"
RECORD=()
for recipe in $MUSIC video-artifacts; do
  if [[ "${REUSE_BUILDS:-0}" == 1 && -f "datasets/bench/$recipe/manifest.json" ]]; then
    echo "reusing datasets/bench/$recipe"
  else
    defectbench build "$recipe" --benchmark --workers "$WORKERS" --overwrite --quiet
  fi
  RECORD+=(--record "datasets/bench/$recipe")
done

# score MODEL RECIPE NAME [defectbench run options...]: score on the benchmark build and submit as NAME
score() {
  local model="$1" recipe="$2" name="$3"
  shift 3
  defectbench run --model "$model" --dataset "datasets/bench/$recipe" --out "results/bench/$recipe/$name.json" \
    --workers "$WORKERS" --quiet "$@"
  defectbench submit "results/bench/$recipe/$name.json" --name "$name" --overwrite
}

for recipe in $MUSIC; do
  score sigclick "$recipe" sigclick
done
score sigclick fma-clicks sigclick-edges -o edges=true
score sigclick fma-clicks-post sigclick-edges -o edges=true
score essentia-classic video-artifacts essentia-classic

# neural NAME MODEL RECIPE: the shipped weights (models/weights/), or a note that they are not there yet
neural() {
  local model="$1" recipe="$2"
  if [[ ! -d models/weights ]] || ! score "$model" "$recipe" "$model"; then
    echo "note: no $model entry on $recipe: no shipped weights for $model yet (models/weights/); going on" >&2
  fi
}
for recipe in $MUSIC; do
  neural hooknet "$recipe"
done
neural cnn6 video-artifacts

# the builds against the golden values (a difference is reported, not fatal: regenerate on purpose)
"${PYTHON:-python}" -m defectbench.golden --check || echo "note: the benchmark builds differ from \
tests/golden/benchmark.json; if that is intended: python -m defectbench.golden --write --note WHY" >&2

# fingerprints.json holds the benchmark builds; the board re-scores every submission and renders
defectbench leaderboard "${RECORD[@]}" --quiet
