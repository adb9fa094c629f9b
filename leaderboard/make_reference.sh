#!/usr/bin/env bash
# Rebuild the board's reference entries from the repository root:
#   bash leaderboard/make_reference.sh
# `defectbench demo` (the README's main job) builds fma-clicks from the built-in synth corpus, scores
# SigClick, trains and scores a small Hook-Net, and records the build's fingerprint; then SigClick on
# fma-clicks-post from the same corpus. Re-run it whenever the engine or a recipe changes (the
# fingerprints change with them).
set -euo pipefail
defectbench demo
defectbench build fma-clicks-post --out datasets/fma-clicks-post --overwrite --quiet
defectbench run --model sigclick --dataset datasets/fma-clicks-post --out results/fma-clicks-post/sigclick.json --quiet
defectbench submit results/fma-clicks-post/sigclick.json --name sigclick --overwrite
defectbench leaderboard --record datasets/fma-clicks-post
# The MP3-glitch task (SigClick as a baseline there too: glitches are not clicks, which the board shows)
# and the 5-way video task (the classical Essentia baseline), on synth.
defectbench build fma-mp3-glitch --out datasets/fma-mp3-glitch --overwrite --quiet
defectbench run --model sigclick --dataset datasets/fma-mp3-glitch --out results/fma-mp3-glitch/sigclick.json --quiet
defectbench submit results/fma-mp3-glitch/sigclick.json --name sigclick --overwrite
defectbench build video-artifacts --out datasets/video-artifacts --overwrite --quiet
defectbench run --model essentia-classic --dataset datasets/video-artifacts --out results/video-artifacts/essentia-classic.json --quiet
defectbench submit results/video-artifacts/essentia-classic.json --name essentia-classic --overwrite
defectbench leaderboard --record datasets/fma-mp3-glitch --record datasets/video-artifacts
