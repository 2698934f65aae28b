#!/usr/bin/env bash
# Import benchmark (issue #2): `national-server import-registry` on SQLite and PostgreSQL against
# the anchors PostgreSQL COPY (table with the same primary key, one transaction) and the sqlite3
# CLI's .import (table with the same primary key, default pragmas), on the same synthetic file,
# in the same run, on this machine.
#
#   bash server/bench/import.sh                 # 3,000,000 rows
#   ROWS=300000 bash server/bench/import.sh     # smaller
#
# Environment: ROWS (3000000), DATA (/tmp/ncf-bench, generated files and databases),
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

now() { date +%s.%N; }
results=()
record() { results+=("$1|$2"); printf '  %-46s %8.2f s\n' "$1" "$2" >&2; }
# Dirty pages of the previous step are flushed first (untimed), so no run pays for another's writes.
timed() { local t0 t1; sync; t0=$(now); "$@" >/dev/null; t1=$(now); echo "$t1 - $t0" | bc -l; }

echo "# import benchmark: $CSV ($ROWS rows, $(du -m "$CSV" | cut -f1) MiB); $(nproc) cores" >&2
echo "# $(sqlite3 --version | cut -d' ' -f1-2); $(psql "$PG_ADMIN" -XAtc 'SHOW server_version')" >&2

# national-server on SQLite (migrations untimed): initial load, then the same file again.
rm -f "$DATA"/ncf.db*
export DATABASE_URL=sqlite://$DATA/ncf.db
"$BIN" migrate >/dev/null
record "national-server SQLite (initial load)" "$(timed "$BIN" import-registry "$CSV")"
record "national-server SQLite (re-import, unchanged)" "$(timed "$BIN" import-registry "$CSV")"
rm -f "$DATA"/ncf.db*

# national-server on PostgreSQL, in a throw-away database.
DB=ncf_bench_$$
psql "$PG_ADMIN" -Xqc "CREATE DATABASE $DB"
trap 'psql "$PG_ADMIN" -Xqc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
PG_URL=${PG_ADMIN%/*}/$DB
export DATABASE_URL=$PG_URL
"$BIN" migrate >/dev/null
record "national-server PostgreSQL (initial load)" "$(timed "$BIN" import-registry "$CSV")"
record "national-server PostgreSQL (re-import, unchanged)" "$(timed "$BIN" import-registry "$CSV")"

# Anchor: PostgreSQL COPY into a table with the same primary key, one transaction.
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
psql "$PG_URL" -Xqc "CHECKPOINT"
record "PostgreSQL COPY (anchor)" "$(timed copy_pg)"

# Anchor: sqlite3 .import into a table with the same primary key (default pragmas).
COLS_SQ=$(echo "$COLS_PG" | sed -e 's/text/TEXT/g; s/date/TEXT/g; s/smallint/INTEGER/g')
import_sqlite() {
  sqlite3 "$DATA/anchor.db" <<SQL
BEGIN;
.import --csv --skip 1 $CSV registry_copy
COMMIT;
SQL
}
rm -f "$DATA/anchor.db"
sqlite3 "$DATA/anchor.db" "CREATE TABLE registry_copy ($COLS_SQ);"
record "sqlite3 .import (anchor)" "$(timed import_sqlite)"
rows_sqlite=$(sqlite3 "$DATA/anchor.db" "SELECT count(*) FROM registry_copy")
rm -f "$DATA/anchor.db"
[ "$rows_sqlite" = "$ROWS" ] || { echo "sqlite3 .import loaded $rows_sqlite rows, expected $ROWS" >&2; exit 1; }

copy_s=""
for r in "${results[@]}"; do [ "${r%%|*}" = "PostgreSQL COPY (anchor)" ] && copy_s=${r##*|}; done
printf '\n%-50s %9s %12s %14s\n' "method ($ROWS rows)" "seconds" "rows/s" "vs COPY rate"
for r in "${results[@]}"; do
  name=${r%%|*}; s=${r##*|}
  printf '%-50s %9.2f %12.0f %13.2fx\n' "$name" "$s" "$(echo "$ROWS / $s" | bc -l)" "$(echo "$copy_s / $s" | bc -l)"
done
