#!/usr/bin/env bash
# Import benchmark (issue #2): `national-server import-registry` on SQLite and PostgreSQL against
# the anchors PostgreSQL COPY (table with the same primary key, one transaction) and the sqlite3
# CLI's .import (table with the same primary key, default pragmas), on the same synthetic file,
# in the same run, on this machine.
#
#   bash server/bench/import.sh                 # 3,000,000 rows
#   ROWS=300000 bash server/bench/import.sh     # smaller
#   ROUNDS=1 bash server/bench/import.sh        # one round instead of three
#   BEFORE_BIN=/path/to/older/national-server bash server/bench/import.sh
#                                               # also the older build's SQLite initial load, same rounds
#
# Every method runs once per round, the rounds interleave the methods (so a slow minute of the
# machine hits all of them), and the table shows each method's median over the rounds.
#
# Environment: ROWS (3000000), ROUNDS (3), BEFORE_BIN (unset), DATA (/tmp/ncf-bench, generated files and databases),
# BENCH_PG_URL (postgres://postgres@127.0.0.1:5432/postgres: a server where a database may be
# created), CARGO_TARGET_DIR (where the release build goes). Needs sqlite3 and psql (installed
# from Debian's packages when missing).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ROWS=${ROWS:-3000000}
DATA=${DATA:-/tmp/ncf-bench}
PG_ADMIN=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/national-server

need=()
command -v sqlite3 >/dev/null || need+=(sqlite3)
command -v psql >/dev/null || need+=(postgresql-client)
if [ ${#need[@]} -gt 0 ]; then
  apt-get -o DPkg::Lock::Timeout=900 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq "${need[@]}" >/dev/null
fi

(cd "$ROOT" && cargo build --release -q -p national-server)
mkdir -p "$DATA"
CSV=$DATA/registry-$ROWS.csv
if [ ! -f "$CSV" ]; then
  "$BIN" generate-synthetic --nurses "$ROWS" --out "$DATA/gen-$ROWS" >/dev/null
  mv "$DATA/gen-$ROWS/registry.csv" "$CSV"
  rm -rf "$DATA/gen-$ROWS"
fi
export NATIONAL_SECRET_FILE=$DATA/bench-secret.key RUST_LOG=warn

ROUNDS=${ROUNDS:-3}
now() { date +%s.%N; }
declare -A times
order=()
record() {
  [ -n "${times[$1]:-}" ] || order+=("$1")
  times[$1]="${times[$1]:-} $2"
  printf '  %-50s %8.2f s\n' "$1" "$2" >&2
}
# Before each timed step the machine settles: PostgreSQL's dirty buffers written (CHECKPOINT) and
# its autovacuum done with the tables an earlier step loaded (it vacuums and analyzes 3 million
# fresh rows for many seconds, on one of the two cores), then the OS's dirty pages flushed.
settle() {
  local i
  for i in $(seq 120); do
    [ "$(psql "$PG_ADMIN" -XAtc "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker' AND state = 'active'")" = 0 ] && break
    sleep 1
  done
  psql "$PG_ADMIN" -Xqc "CHECKPOINT"
  sync
}
timed() { local t0 t1; settle; t0=$(now); "$@" >/dev/null; t1=$(now); echo "$t1 - $t0" | bc -l; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "# import benchmark: $CSV ($ROWS rows, $(du -m "$CSV" | cut -f1) MiB); $(nproc) cores; $ROUNDS round(s)" >&2
echo "# $(sqlite3 --version | cut -d' ' -f1-2); $(psql "$PG_ADMIN" -XAtc 'SHOW server_version')" >&2

DB=ncf_bench_$$
trap 'psql "$PG_ADMIN" -Xqc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
PG_URL=${PG_ADMIN%/*}/$DB
COLS_PG="qualification text NOT NULL, registration_number text NOT NULL, registered_on date NOT NULL,
  my_number text NOT NULL, family_name text NOT NULL, given_name text NOT NULL, family_name_kana text NOT NULL,
  given_name_kana text NOT NULL, birth_date date NOT NULL, sex smallint NOT NULL, status text NOT NULL,
  PRIMARY KEY (qualification, registration_number)"
copy_pg() {
  psql "$PG_URL" -Xq -v ON_ERROR_STOP=1 <<SQL
BEGIN;
CREATE TABLE registry_copy ($COLS_PG);
\copy registry_copy FROM '$CSV' (FORMAT csv, HEADER true)
COMMIT;
SQL
}
COLS_SQ=$(echo "$COLS_PG" | sed -e 's/text/TEXT/g; s/date/TEXT/g; s/smallint/INTEGER/g')
import_sqlite() {
  sqlite3 "$DATA/anchor.db" <<SQL
BEGIN;
.import --csv --skip 1 $CSV registry_copy
COMMIT;
SQL
}

for round in $(seq "$ROUNDS"); do
  echo "# round $round" >&2
  rm -f "$DATA"/ncf.db*
  export DATABASE_URL=sqlite://$DATA/ncf.db
  "$BIN" migrate >/dev/null
  record "national-server SQLite (initial load)" "$(timed "$BIN" import-registry "$CSV")"
  record "national-server SQLite (re-import, unchanged)" "$(timed "$BIN" import-registry "$CSV")"
  rm -f "$DATA"/ncf.db*
  if [ -n "${BEFORE_BIN:-}" ]; then
    "$BEFORE_BIN" migrate >/dev/null
    record "BEFORE_BIN SQLite (initial load)" "$(timed "$BEFORE_BIN" import-registry "$CSV")"
    rm -f "$DATA"/ncf.db*
  fi

  psql "$PG_ADMIN" -Xqc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
  export DATABASE_URL=$PG_URL
  "$BIN" migrate >/dev/null
  record "national-server PostgreSQL (initial load)" "$(timed "$BIN" import-registry "$CSV")"
  record "national-server PostgreSQL (re-import, unchanged)" "$(timed "$BIN" import-registry "$CSV")"

  record "PostgreSQL COPY (anchor)" "$(timed copy_pg)"

  rm -f "$DATA/anchor.db"
  sqlite3 "$DATA/anchor.db" "CREATE TABLE registry_copy ($COLS_SQ);"
  record "sqlite3 .import (anchor)" "$(timed import_sqlite)"
  rows_sqlite=$(sqlite3 "$DATA/anchor.db" "SELECT count(*) FROM registry_copy")
  rm -f "$DATA/anchor.db"
  [ "$rows_sqlite" = "$ROWS" ] || { echo "sqlite3 .import loaded $rows_sqlite rows, expected $ROWS" >&2; exit 1; }
done

copy_s=$(echo "${times["PostgreSQL COPY (anchor)"]}" | median)
printf '\n%-50s %9s %12s %14s   %s\n' "method ($ROWS rows, median of $ROUNDS)" "seconds" "rows/s" "vs COPY rate" "every round (s)"
for name in "${order[@]}"; do
  s=$(echo "${times[$name]}" | median)
  printf '%-50s %9.2f %12.0f %13.2fx  %s\n' "$name" "$s" "$(echo "$ROWS / $s" | bc -l)" "$(echo "$copy_s / $s" | bc -l)" \
    "$(for t in ${times[$name]}; do printf '%.2f ' "$t"; done)"
done
