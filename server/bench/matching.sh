#!/usr/bin/env bash
# Radius-matching benchmark (issue #8): the national server's matching code
# (`server/src/matching.rs`, through `server/examples/match_pairs.rs`) against scipy's cKDTree
# (`pyjoin.py --method kdtree`) and, with POSTGIS=1, PostGIS (`postgis.sh`, variant C, the
# fastest exact one; about half an hour), back to back on the same files: the comparison
# benchmarks' 700,000 nurses (a distance each of 5/10/20/30/50 km) and 50,000 postings. A pair is
# (nurse, posting) within the nurse's distance, great-circle on the sphere R = 6,371,008.8 m; the
# reference count on the default files is 599,190,693. Pairs are counted, never stored.
#
#   bash server/bench/matching.sh
#   POSTGIS=1 bash server/bench/matching.sh
#
# Environment: BENCH_DIR (../shared/bench beside this repository: gen.py, pyjoin.py, postgis.sh),
# SHARED_DATA (../shared/data), DATA (/tmp/bench-data, where gen.py writes), REPEAT (3: best of),
# CARGO_TARGET_DIR. Installs numpy and scipy with pip when missing.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BENCH_DIR=${BENCH_DIR:-$ROOT/../shared/bench}
SHARED_DATA=${SHARED_DATA:-$ROOT/../shared/data}
DATA=${DATA:-/tmp/bench-data}
REPEAT=${REPEAT:-3}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}

[ -f "$BENCH_DIR/pyjoin.py" ] || { echo "no comparison benchmarks at $BENCH_DIR (set BENCH_DIR)" >&2; exit 1; }
if ! python3 -c 'import numpy, scipy' 2>/dev/null; then
  pip install -q numpy scipy 2>/dev/null || pip install -q --break-system-packages numpy scipy
fi
if [ ! -f "$DATA/nurses.csv" ] || [ ! -f "$DATA/postings.csv" ]; then
  python3 "$BENCH_DIR/gen.py" --data "$SHARED_DATA" --out "$DATA" >&2
fi
(cd "$ROOT" && cargo build --release -q -p national-server --example match_pairs)

echo "# radius matching: $(tail -n +2 "$DATA/nurses.csv" | wc -l) nurses, $(tail -n +2 "$DATA/postings.csv" | wc -l) postings; $(nproc) cores; best of $REPEAT" >&2
ours=$("$TARGET/release/examples/match_pairs" "$DATA" --repeat "$REPEAT" | tee /dev/stderr | tail -1)
kd=$(python3 "$BENCH_DIR/pyjoin.py" --data "$DATA" --method kdtree --repeat "$REPEAT" | tee /dev/stderr | tail -1)

ours_pairs=$(echo "$ours" | sed -n 's/.*pairs=\([0-9]*\).*/\1/p')
ours_s=$(echo "$ours" | sed -n 's/.*: \([0-9.]*\)s$/\1/p')
kd_pairs=$(echo "$kd" | sed -n 's/.*pairs=\([0-9]*\).*/\1/p')
kd_s=$(echo "$kd" | sed -n 's/.*best_of_[0-9]*=\([0-9.]*\)s.*/\1/p')
rows=("national-server matching (R-tree)|$ours_pairs|$ours_s" "scipy cKDTree (anchor)|$kd_pairs|$kd_s")

if [ "${POSTGIS:-0}" = 1 ]; then
  # Its summary line: "variant C: best 203.12s  pairs=599190693  pairs/s=…".
  pg=$(DATA=$DATA VARIANTS=C REPEAT=1 bash "$BENCH_DIR/postgis.sh" | tee /dev/stderr | grep '^variant C: best' | tail -1)
  pg_pairs=$(echo "$pg" | sed -n 's/.*pairs=\([0-9]*\).*/\1/p')
  pg_s=$(echo "$pg" | sed -n 's/.*best \([0-9.]*\)s.*/\1/p')
  bash "$BENCH_DIR/pgcluster.sh" stop >/dev/null 2>&1 || true
  [ -n "$pg_s" ] && rows+=("PostGIS variant C (anchor)|$pg_pairs|$pg_s")
fi

printf '\n%-40s %12s %9s %14s\n' "method" "pairs" "seconds" "vs cKDTree"
for r in "${rows[@]}"; do
  IFS='|' read -r name pairs s <<<"$r"
  printf '%-40s %12s %9.2f %13.2fx\n' "$name" "$pairs" "$s" "$(echo "$kd_s / $s" | bc -l)"
done
[ "$ours_pairs" = "$kd_pairs" ] || { echo "pair counts differ: $ours_pairs vs $kd_pairs" >&2; exit 1; }
