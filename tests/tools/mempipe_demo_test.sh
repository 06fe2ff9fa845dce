#!/usr/bin/env bash
# The demo reassembles N piped lines exactly in every reader, with its prompt and endings.
set -euo pipefail
demo=$1
lines=${2:-100000}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
seq 1 "$lines" | "$demo" > "$out"
expected=$(seq 1 "$lines" | tr -d '\n')
[[ $(head -n 1 "$out") == "Enter text (empty line to quit):" ]] || { echo "no prompt"; exit 1; }
for r in r1 r2 r3; do
  got=$(grep "^($r): " "$out" | cut -c7- | tr -d '\n')
  if [[ "$got" != "$expected" ]]; then
    echo "$r reassembled ${#got} bytes, expected ${#expected}"
    exit 1
  fi
  grep -qx "($r) EOF" "$out" || { echo "$r: no EOF"; exit 1; }
done
grep -qx "Writer closed" "$out" || { echo "no 'Writer closed'"; exit 1; }
[[ $(tail -n 1 "$out") == "All tasks completed" ]] || { echo "no 'All tasks completed'"; exit 1; }
echo "demo: $lines lines reassembled by r1, r2, r3"
