#!/usr/bin/env bash
# libherald.so.0 exports the C ABI and nothing else, under its SONAME.
#   check_exports.sh <libherald.so> <herald.h>
set -euo pipefail
lib=$1 header=$2
soname=$(objdump -p "$lib" | awk '$1 == "SONAME" {print $2}')
[[ "$soname" == "libherald.so.0" ]] || { echo "SONAME is '$soname'"; exit 1; }
# Defined dynamic symbols, without the version node itself (type A).
exported=$(nm -D --defined-only "$lib" | awk '$2 != "A" {print $3}' | sed 's/@.*//' | sort -u)
stray=$(grep -v '^herald_' <<<"$exported" || true)
if [[ -n "$stray" ]]; then
  echo "symbols outside herald_*:"; echo "$stray" | head -20; exit 1
fi
# Every function the header declares is exported, and nothing it does not declare.
declared=$(grep -oE '\bherald_[a-z_]+\(' "$header" | tr -d '(' | sort -u)
missing=$(comm -23 <(echo "$declared") <(echo "$exported"))
extra=$(comm -13 <(echo "$declared") <(echo "$exported"))
[[ -z "$missing" ]] || { echo "declared but not exported: $missing"; exit 1; }
[[ -z "$extra" ]] || { echo "exported but not declared: $extra"; exit 1; }
echo "check_exports: $(wc -l <<<"$exported") herald_* symbols, SONAME $soname"
