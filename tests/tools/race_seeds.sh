#!/usr/bin/env bash
# Runs the race-injection stress binary once per seed: each seed drives both the tests' random
# choices (HERALD_SEED) and the kernel's injected yields and sleeps (HERALD_RACE_SEED).
set -euo pipefail
binary=$1
seeds=${2:-12}
for ((seed = 1; seed <= seeds; ++seed)); do
  if ! HERALD_SEED=$seed HERALD_RACE_SEED=$seed HERALD_STRESS_MS=${HERALD_RACE_STRESS_MS:-150} \
      "$binary" --minimal; then
    echo "race injection: seed $seed failed (rerun: HERALD_SEED=$seed HERALD_RACE_SEED=$seed $binary)"
    exit 1
  fi
done
echo "race injection: $seeds seeds passed"
