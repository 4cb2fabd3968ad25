#!/bin/sh
# benchmarks/import_apply.py on two trees, interleaved: the session's start (BEFORE, a commit)
# against AFTER (default main), ROUNDS rounds, the load average before each, and whether every array of the
# two states is equal. Run it under `flock /tmp/bench.lock`.
#   SHOP=/tmp/pulserec-scale-cache/shop-1000000-seed17 BEFORE=96f56c7 sh benchmarks/import_apply_side.sh
set -e
SHOP=${SHOP:?a synthetic shop dir}; BEFORE=${BEFORE:?a commit}; AFTER=${AFTER:-main}; ROUNDS=${ROUNDS:-2}
REPO=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
WORK=$(mktemp -d)
for tree in before after; do mkdir -p "$WORK/$tree"; done
git -C "$REPO" archive "$BEFORE" src | tar -x -C "$WORK/before"
git -C "$REPO" archive "$AFTER" src | tar -x -C "$WORK/after"
echo "$AFTER at $(git -C "$REPO" rev-parse --short "$AFTER") against $BEFORE"
for round in $(seq "$ROUNDS"); do
  for tree in before after; do
    echo "== round $round $tree $(date +%H:%M:%S) $(uptime | sed 's/.*load/load/')"
    PYTHONPATH="$WORK/$tree/src" python "$REPO/benchmarks/import_apply.py" --shop "$SHOP" --digest "$WORK/$tree.json"
  done
done
python -c "
import json, sys
a, b = (json.load(open(sys.argv[k])) for k in (1, 2))
print('arrays', len(a), 'differing', [k for k in a if a[k] != b.get(k)])" "$WORK/before.json" "$WORK/after.json"
echo "end $(date +%H:%M:%S) $(uptime | sed 's/.*load/load/')"
rm -rf "$WORK"
