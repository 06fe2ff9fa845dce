#!/usr/bin/env bash
# cmake --install puts the package where the interpreter finds it under the prefix; it imports
# and works from there (no build tree on the path).
#   installed.sh <python> <herald build dir> <work dir> <install dir relative to the prefix>
set -euo pipefail
python=$1 binary=$2 work=$3 reldir=$4
rm -rf "$work"
cmake --install "$binary" --prefix "$work/prefix" >/dev/null
site="$work/prefix/$reldir"
for f in __init__.py compat.py _types.py _herald.pyi py.typed; do
  [[ -f "$site/herald/$f" ]] || { echo "missing $site/herald/$f"; exit 1; }
done
cd "$work"
PYTHONPATH="$site" "$python" - "$site" <<'PY'
import sys
import herald, herald.compat
assert herald.__file__.startswith(sys.argv[1]), herald.__file__
with herald.Kernel() as k:
    h = k.register(debug_hint="installed")
    with k.subscribe(h) as s:
        assert k.notify(h, 5) == (1, 1, 0, 0)
        assert s.try_recv() == (1, 5)
print("installed package OK:", herald.__file__)
PY
