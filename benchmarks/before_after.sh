#!/bin/sh
# serving.py and load.py on an older commit and on HEAD, side by side: one harness (HEAD's scripts,
# copied into the older tree), the same data and settings, interleaved (the order alternates per
# round), ROUNDS rounds. serving.py measures the default and item_knn in one run; load.py runs once
# per strategy; "lt0" is HEAD with long_term_weight = 0 (the query an older tree builds). A round
# starts only if it can end within BUDGET_S (the last round's length); REQUESTS 0 runs load.py only
# (a shorter window run). Hold the bench lock around it:
#   flock /tmp/bench.lock sh benchmarks/before_after.sh 9f5a0c7 /tmp/before-after [3] [1000] [6] [480]
#   python benchmarks/before_after_table.py /tmp/before-after
set -e
OLD_COMMIT=$1; OUT=$2; ROUNDS=${3:-3}; REQ=${4:-1000}; SECS=${5:-6}; BUDGET=${6:-480}
REPO=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
ML=${PULSEREC_MOVIELENS:-/work/shared/data/ml-latest-small}
PY=${PYTHON:-python}
TREES=$(mktemp -d /tmp/pulserec-before-after.XXXXXX)
OLD=$TREES/old; NEW=$TREES/new
mkdir -p "$OUT" "$OLD" "$NEW"
git -C "$REPO" archive HEAD | tar -x -C "$NEW"
git -C "$REPO" archive "$OLD_COMMIT" | tar -x -C "$OLD"
for f in _common.py serving.py load.py; do cp "$NEW/benchmarks/$f" "$OLD/benchmarks/$f"; done
if [ ! -f "$OLD/src/pulserec/runtime/process.py" ]; then  # before runtime/ existed (9f5a0c7)
  sed -i 's/from pulserec.runtime.process import/from pulserec.serving.process import/' "$OLD/benchmarks/load.py"
fi
echo "old=$(git -C "$REPO" rev-parse --short "$OLD_COMMIT") new=$(git -C "$REPO" rev-parse --short HEAD)" > "$OUT/COMMITS"
# The server must not train `auto` in the background while it is measured (HEAD; older trees lack the job).
export PULSEREC_AUTO_TRAIN_MIN_EVENTS=0 PULSEREC_MOVIELENS="$ML"
T0=$(date +%s)
stamp() { echo "$1 $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"; }
serving() {  # tag tree [VAR=value]
  (stamp start; cd "$2/benchmarks" && env PYTHONPATH="$2/src" $3 timeout 150 $PY serving.py --movielens "$ML" \
     --requests "$REQ" --strategy default,item_knn; stamp end) > "$OUT/serving-$1-$i.txt" 2>&1 || true
}
load() {  # tag tree strategy [VAR=value]
  opt=""; [ "$3" = default ] || opt="--strategy $3"
  (stamp start; cd "$2/benchmarks" && env PYTHONPATH="$2/src" $4 timeout 150 $PY load.py --movielens "$ML" \
     --seconds "$SECS" --warmup 2 --workers 1 --client python $opt; stamp end) > "$OUT/load-$3-$1-$i.txt" 2>&1 || true
}
LAST=0
for i in $(seq 1 "$ROUNDS"); do
  R0=$(date +%s)
  if [ $((R0 - T0 + LAST)) -gt "$BUDGET" ]; then stamp "budget: round $i would end past $BUDGET s" >> "$OUT/DONE"; break; fi
  if [ $((i % 2)) = 1 ]; then A=old; AT=$OLD; B=new; BT=$NEW; else A=new; AT=$NEW; B=old; BT=$OLD; fi
  if [ "$REQ" -gt 0 ]; then  # REQUESTS 0: load.py only
    serving $A "$AT"; serving $B "$BT"; serving lt0 "$NEW" PULSEREC_LONG_TERM_WEIGHT=0
  fi
  for s in default item_knn; do load $A "$AT" $s; load $B "$BT" $s; done
  load lt0 "$NEW" item_knn PULSEREC_LONG_TERM_WEIGHT=0
  LAST=$(($(date +%s) - R0)); stamp "round $i took $LAST s" >> "$OUT/DONE"
done
stamp "done after $(($(date +%s) - T0)) s" >> "$OUT/DONE"
rm -rf "$TREES"
