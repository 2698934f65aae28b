#!/usr/bin/env bash
# Rematch benchmark (issue #7): `national-server rematch` on a 3,000,000-person synthetic data set
# of which 1,000,000 people are linked to nodes with consents and notices, on SQLite and on
# PostgreSQL, against the anchor: the same decision (registry × residents × latest notice by
# effective date × consents) as one plain SQL statement in PostgreSQL, in the same run.
#
#   bash server/bench/rematch.sh                        # 3,000,000 people, 1,000,000 linked
#   PEOPLE=300000 LINKED=100000 bash server/bench/rematch.sh
#
# Prints wall time and peak RSS (GNU time) of each rematch — the first (every status and routing
# state recorded, every node told) and a second one over unchanged data — and the anchor's time,
# and checks that the anchor and rematch count the same latent people.
#
# Environment: PEOPLE, LINKED, BACKENDS ("sqlite postgres"; the anchor runs either way), DATA
# (/tmp/ncf-bench), BENCH_PG_URL
# (postgres://postgres@127.0.0.1:5432/postgres: a server where a database may be created),
# CARGO_TARGET_DIR. Needs psql and GNU time (installed from Debian's packages when missing).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PEOPLE=${PEOPLE:-3000000}
BACKENDS=${BACKENDS:-sqlite postgres}
LINKED=${LINKED:-1000000}
DATA=${DATA:-/tmp/ncf-bench}
PG_ADMIN=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/national-server
SEED=$TARGET/release/examples/seed_links

need=()
command -v psql >/dev/null || need+=(postgresql-client)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  apt-get -o DPkg::Lock::Timeout=900 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq "${need[@]}" >/dev/null
fi

(cd "$ROOT" && cargo build --release -q -p national-server && cargo build --release -q -p ncf-tests --example seed_links)
mkdir -p "$DATA"
GEN=$DATA/gen-$PEOPLE
if [ ! -f "$GEN/residents.csv" ]; then
  "$BIN" generate-synthetic --nurses "$PEOPLE" --out "$GEN" >/dev/null
fi
export NATIONAL_SECRET_FILE=$DATA/rematch-secret.key RUST_LOG=warn

results=()
# One rematch: "seconds peak-KiB" from GNU time; the command's own summary goes to stderr.
rematch() {
  local out
  out=$( { /usr/bin/time -f 'TIME %e %M' "$BIN" rematch >&2; } 2>&1 )
  echo "$out" | grep -v '^TIME' >&2
  echo "$out" | grep '^TIME' | cut -d' ' -f2-
}
record() { results+=("$1|$2|$3"); printf '  %-52s %8.2f s %8.0f MiB\n' "$1" "$2" "$(echo "$3 / 1024" | bc -l)" >&2; }

prepare() {
  "$BIN" migrate >/dev/null
  "$BIN" import-registry "$GEN/registry.csv" >/dev/null
  "$BIN" import-residents "$GEN/residents.csv" >/dev/null
  "$SEED" "$DATABASE_URL" "$NATIONAL_SECRET_FILE" "$LINKED" >&2
}

echo "# rematch benchmark: $PEOPLE people, $LINKED linked; $(nproc) cores; $(psql "$PG_ADMIN" -XAtc 'SHOW server_version')" >&2

# SQLite (unless BACKENDS leaves it out).
latent_sqlite=skipped
if [[ " $BACKENDS " == *" sqlite "* ]]; then
rm -f "$DATA"/rematch.db*
export DATABASE_URL=sqlite://$DATA/rematch.db
prepare
read -r s kb < <(rematch); record "rematch, SQLite (first run)" "$s" "$kb"
read -r s kb < <(rematch); record "rematch, SQLite (again, nothing changed)" "$s" "$kb"
latent_sqlite=$(python3 - "$DATA/rematch.db" <<'PY'
import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute("SELECT COUNT(*) FROM person_status WHERE latent").fetchone()[0])
PY
)
rm -f "$DATA"/rematch.db*
fi
# PostgreSQL, in a throw-away database.
DB=ncf_rematch_$$
psql "$PG_ADMIN" -Xqc "CREATE DATABASE $DB"
trap 'psql "$PG_ADMIN" -Xqc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
PG_URL=${PG_ADMIN%/*}/$DB
export DATABASE_URL=$PG_URL
prepare
psql "$PG_URL" -Xqc "VACUUM ANALYZE" >/dev/null

# Anchor: the same decision as one SQL statement, written into a table (as rematch writes
# person_status): latest notice by effective date (left_on, else as_of, else the day filed in
# Japan time; ties to the later filing), consents over her proofed links, licence in force
# (active, no ex-officio deletion), alive, residence prefecture under address_linkage. Simpler than
# rematch in one way: job/training wishes are read over all her links, not her home link only
# (with one link per person here, the same).
anchor() {
  psql "$PG_URL" -Xq -v ON_ERROR_STOP=1 <<'SQL'
CREATE TABLE anchor_status AS
WITH links AS (
  SELECT person_key, prefecture, agency_code FROM identity_links WHERE proofed_at IS NOT NULL
), latest AS (
  SELECT DISTINCT ON (l.person_key) l.person_key,
         (n.body::json ->> 'kind') = 'employment_status' AND (n.body::json ->> 'employed')::boolean AS working
  FROM nurse_notices n JOIN links l ON l.prefecture = n.prefecture AND l.agency_code = n.agency_code
  ORDER BY l.person_key,
           COALESCE((n.body::json ->> 'left_on')::date, (n.body::json ->> 'as_of')::date,
                    (n.filed_at + interval '9 hours')::date) DESC,
           n.filed_at DESC
), wishes AS (
  SELECT l.person_key,
         bool_or(c.scope IN ('job_support', 'training_info') AND c.granted) AS wants,
         bool_or(c.scope = 'address_linkage' AND c.granted) AS linkage
  FROM links l JOIN nurse_consents c ON c.prefecture = l.prefecture AND c.agency_code = l.agency_code
  GROUP BY l.person_key
), in_force AS (
  SELECT li.person_key, bool_or(li.status = 'active' AND d.qualification IS NULL) AS in_force
  FROM licences li
  LEFT JOIN licence_deletions d
         ON d.qualification = li.qualification AND d.registration_number = li.registration_number
  WHERE li.person_key IN (SELECT person_key FROM links)
  GROUP BY li.person_key
)
SELECT w.person_key,
       COALESCE(f.in_force, false) AND r.deceased_on IS NULL AND w.wants AND latest.working = false AS latent,
       CASE WHEN w.linkage THEN left(r.lgcode, 2) END AS residence_prefecture
FROM wishes w
LEFT JOIN in_force f USING (person_key)
LEFT JOIN residents r USING (person_key)
LEFT JOIN latest USING (person_key);
SQL
}
t0=$(date +%s.%N); anchor; t1=$(date +%s.%N)
record "anchor: one SQL statement, PostgreSQL" "$(echo "$t1 - $t0" | bc -l)" 0
latent_anchor=$(psql "$PG_URL" -XAtc "SELECT COUNT(*) FROM anchor_status WHERE latent")
psql "$PG_URL" -Xqc "DROP TABLE anchor_status"
read -r s kb < <(rematch); record "rematch, PostgreSQL (first run)" "$s" "$kb"
read -r s kb < <(rematch); record "rematch, PostgreSQL (again, nothing changed)" "$s" "$kb"
latent_pg=$(psql "$PG_URL" -XAtc "SELECT COUNT(*) FROM person_status WHERE latent")

anchor_s=""
for r in "${results[@]}"; do [ "${r%%|*}" = "anchor: one SQL statement, PostgreSQL" ] && anchor_s=$(echo "$r" | cut -d'|' -f2); done
printf '\n%-52s %9s %10s %12s\n' "($PEOPLE people, $LINKED linked)" "seconds" "peak RSS" "vs anchor"
for r in "${results[@]}"; do
  name=$(echo "$r" | cut -d'|' -f1); s=$(echo "$r" | cut -d'|' -f2); kb=$(echo "$r" | cut -d'|' -f3)
  printf '%-52s %9.2f %7.0f MiB %11.2fx\n' "$name" "$s" "$(echo "$kb / 1024" | bc -l)" "$(echo "$anchor_s / $s" | bc -l)"
done
echo "latent people: rematch SQLite $latent_sqlite, rematch PostgreSQL $latent_pg, anchor $latent_anchor"
{ [ "$latent_sqlite" = skipped ] || [ "$latent_sqlite" = "$latent_anchor" ]; } && [ "$latent_pg" = "$latent_anchor" ] \
  || { echo "the counts differ" >&2; exit 1; }
