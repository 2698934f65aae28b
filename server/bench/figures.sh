#!/usr/bin/env bash
# National figures benchmarks (issue #9), on a 3,000,000-person synthetic data set of which
# 1,000,000 people are linked to nodes with consents and notices (as server/bench/rematch.sh),
# on PostgreSQL:
#
# 1. `national-server figures refresh` against the anchor: the same counts (every figure by
#    municipality or node, by prefecture and for Japan, by month for events) computed by plain
#    SQL GROUP BYs in PostgreSQL and written into a table, in the same run; three rounds,
#    interleaved, medians. The script checks that both produce the same cells.
# 2. The dashboard page (/figures, signed in) under load: the project's load generator
#    (tests/src/bin/load.rs; 64 keep-alive connections for 30 s on loopback, asking for gzip as
#    browsers do) against an actix-web hello-world with the same number of workers, in the same
#    run; then the page once more without gzip, for the record.
#
#   bash server/bench/figures.sh
#   PEOPLE=300000 LINKED=100000 SECONDS_UNDER_LOAD=10 bash server/bench/figures.sh
#
# Environment: PEOPLE, LINKED, ROUNDS (3), SECONDS_UNDER_LOAD (30), CONNECTIONS (64), WORKERS (2),
# DATA (/tmp/ncf-bench), BENCH_PG_URL (postgres://postgres@127.0.0.1:5432/postgres), CARGO_TARGET_DIR.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PEOPLE=${PEOPLE:-3000000}
LINKED=${LINKED:-1000000}
ROUNDS=${ROUNDS:-3}
SECONDS_UNDER_LOAD=${SECONDS_UNDER_LOAD:-30}
CONNECTIONS=${CONNECTIONS:-64}
WORKERS=${WORKERS:-2}
DATA=${DATA:-/tmp/ncf-bench}
PG_ADMIN=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/national-server
SEED=$TARGET/release/examples/seed_links
LOAD=$TARGET/release/load
HELLO=$TARGET/release/hello-world

command -v psql >/dev/null || {
  apt-get -o DPkg::Lock::Timeout=900 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq postgresql-client >/dev/null
}
(cd "$ROOT" && cargo build --release -q -p national-server \
  && cargo build --release -q -p ncf-tests --bin load --bin hello-world --example seed_links)
mkdir -p "$DATA"
GEN=$DATA/gen-$PEOPLE
[ -f "$GEN/residents.csv" ] || "$BIN" generate-synthetic --nurses "$PEOPLE" --out "$GEN" >/dev/null
export NATIONAL_SECRET_FILE=$DATA/figures-secret.key RUST_LOG=warn

DB=ncf_figures_$$
psql "$PG_ADMIN" -Xqc "CREATE DATABASE $DB"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  psql "$PG_ADMIN" -Xqc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
PG_URL=${PG_ADMIN%/*}/$DB
export DATABASE_URL=$PG_URL
echo "# figures benchmark: $PEOPLE people, $LINKED linked; $(nproc) cores; $(psql "$PG_ADMIN" -XAtc 'SHOW server_version')" >&2
"$BIN" migrate >/dev/null
"$BIN" import-registry "$GEN/registry.csv" >/dev/null
"$BIN" import-residents "$GEN/residents.csv" >/dev/null
"$SEED" "$DATABASE_URL" "$NATIONAL_SECRET_FILE" "$LINKED" >&2
"$BIN" rematch >/dev/null 2>&1
psql "$PG_URL" -Xqc "VACUUM ANALYZE" >/dev/null

# The anchor: each figure by plain GROUP BYs (municipality or node, prefecture, Japan), the same
# cells as figure_cells, written into one table.
anchor() {
  psql "$PG_URL" -Xq -v ON_ERROR_STOP=1 <<'SQL'
DROP TABLE IF EXISTS anchor_cells;
CREATE TABLE anchor_cells AS
WITH lic AS (
  SELECT r.lgcode, l.qualification, l.status = 'active' AND d.registration_number IS NULL AS active
  FROM licences l JOIN residents r ON r.person_key = l.person_key
  LEFT JOIN licence_deletions d ON d.qualification = l.qualification AND d.registration_number = l.registration_number
  WHERE r.lgcode IS NOT NULL
), lat AS (
  SELECT r.lgcode, EXISTS (SELECT 1 FROM match_entries m WHERE m.person_key = s.person_key) AS matched
  FROM person_status s JOIN residents r ON r.person_key = s.person_key
  WHERE s.latent AND r.lgcode IS NOT NULL
), cells AS (
  SELECT 'licences_registered' AS figure, lgcode AS area, qualification AS breakdown, COUNT(*) AS value FROM lic GROUP BY lgcode, qualification
  UNION ALL SELECT 'licences_registered', left(lgcode, 2), qualification, COUNT(*) FROM lic GROUP BY left(lgcode, 2), qualification
  UNION ALL SELECT 'licences_registered', '00', qualification, COUNT(*) FROM lic GROUP BY qualification
  UNION ALL SELECT 'licences_active', lgcode, qualification, COUNT(*) FROM lic WHERE active GROUP BY lgcode, qualification
  UNION ALL SELECT 'licences_active', left(lgcode, 2), qualification, COUNT(*) FROM lic WHERE active GROUP BY left(lgcode, 2), qualification
  UNION ALL SELECT 'licences_active', '00', qualification, COUNT(*) FROM lic WHERE active GROUP BY qualification
  UNION ALL SELECT 'opted_in', prefecture, '', COUNT(*) FROM identity_links GROUP BY prefecture
  UNION ALL SELECT 'opted_in', '00', '', COUNT(*) FROM identity_links
  UNION ALL SELECT 'proofed', prefecture, '', COUNT(*) FROM identity_links WHERE proofed_at IS NOT NULL GROUP BY prefecture
  UNION ALL SELECT 'proofed', '00', '', COUNT(*) FROM identity_links WHERE proofed_at IS NOT NULL
  UNION ALL SELECT 'consents', prefecture, scope, COUNT(*) FROM nurse_consents WHERE granted GROUP BY prefecture, scope
  UNION ALL SELECT 'consents', '00', scope, COUNT(*) FROM nurse_consents WHERE granted GROUP BY scope
  UNION ALL SELECT 'latent', lgcode, '', COUNT(*) FROM lat GROUP BY lgcode
  UNION ALL SELECT 'latent', left(lgcode, 2), '', COUNT(*) FROM lat GROUP BY left(lgcode, 2)
  UNION ALL SELECT 'latent', '00', '', COUNT(*) FROM lat
  UNION ALL SELECT 'latent_matched', lgcode, '', COUNT(*) FROM lat WHERE matched GROUP BY lgcode
  UNION ALL SELECT 'latent_matched', left(lgcode, 2), '', COUNT(*) FROM lat WHERE matched GROUP BY left(lgcode, 2)
  UNION ALL SELECT 'latent_matched', '00', '', COUNT(*) FROM lat WHERE matched
  UNION ALL SELECT 'notices', prefecture, kind, COUNT(*) FROM nurse_notices GROUP BY prefecture, kind
  UNION ALL SELECT 'notices', '00', kind, COUNT(*) FROM nurse_notices GROUP BY kind
)
SELECT figure, area, breakdown, value FROM cells WHERE value > 0;
SQL
}
# The refresh's cells of the same figures (notices summed over months, as the anchor counts them).
compare() {
  psql "$PG_URL" -XAt -v ON_ERROR_STOP=1 <<'SQL'
WITH ours AS (
  SELECT figure, area, breakdown, SUM(value) AS value FROM figure_cells
  WHERE figure IN ('licences_registered', 'licences_active', 'opted_in', 'proofed', 'consents', 'latent', 'latent_matched', 'notices')
  GROUP BY figure, area, breakdown
)
SELECT (SELECT COUNT(*) FROM ours), (SELECT COUNT(*) FROM anchor_cells),
       (SELECT COUNT(*) FROM (SELECT * FROM ours EXCEPT SELECT figure, area, breakdown, value FROM anchor_cells) d);
SQL
}

secs() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l; }
ours=(); theirs=()
for round in $(seq "$ROUNDS"); do
  psql "$PG_URL" -Xqc "CHECKPOINT" >/dev/null
  ours+=("$(secs "$BIN" figures refresh)")
  psql "$PG_URL" -Xqc "CHECKPOINT" >/dev/null
  theirs+=("$(secs anchor)")
  echo "  round $round: refresh ${ours[-1]} s, anchor ${theirs[-1]} s" >&2
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
m_ours=$(median "${ours[@]}"); m_theirs=$(median "${theirs[@]}")
read -r n_ours n_anchor n_diff < <(compare | tr '|' ' ')
cells=$(psql "$PG_URL" -XAtc "SELECT COUNT(*) FROM figure_cells")

# The dashboard under load, signed in, against the hello-world.
serve_log=$DATA/figures-serve.log
export NATIONAL_STAFF_PASSWORD="bench password long enough"
"$BIN" staff add --username loader --display-name "負荷試験" >/dev/null
"$BIN" serve --listen 127.0.0.1:0 --workers "$WORKERS" >"$serve_log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q "listening on" "$serve_log" && break; sleep 0.2; done
url=$(grep -o 'http://127[^ ]*' "$serve_log" | head -1)
jar=$DATA/figures-cookies.txt; rm -f "$jar"
csrf=$(curl -s -c "$jar" -b "$jar" "$url/staff/sign-in" | grep -o 'name="csrf" value="[^"]*"' | sed 's/.*value="//; s/"$//')
curl -s -o /dev/null -c "$jar" -b "$jar" --data-urlencode "csrf=$csrf" --data-urlencode username=loader \
  --data-urlencode "password=$NATIONAL_STAFF_PASSWORD" "$url/staff/sign-in"
session=$(awk '$6 == "ncf_national_staff" {print $7}' "$jar")
[ -n "$session" ] || { echo "could not sign in for the load test" >&2; exit 1; }
# Both are asked what Chromium asks: gzip (and more) accepted.
accept="accept-encoding: gzip, deflate, br, zstd"
page_line=$("$LOAD" "$url/figures?figure=latent" --connections "$CONNECTIONS" --seconds "$SECONDS_UNDER_LOAD" \
  --header "cookie: ncf_national_staff=$session" --header "$accept")
# The same page for a client that takes no gzip (the parts joined plain), for the record.
plain_line=$("$LOAD" "$url/figures?figure=latent" --connections "$CONNECTIONS" --seconds "$SECONDS_UNDER_LOAD" \
  --header "cookie: ncf_national_staff=$session")
hello_log=$DATA/hello.log
"$HELLO" --workers "$WORKERS" >"$hello_log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q "listening on" "$hello_log" && break; sleep 0.1; done
hello_url=$(grep -o 'http://127[^ ]*' "$hello_log" | head -1)
hello_line=$("$LOAD" "$hello_url/" --connections "$CONNECTIONS" --seconds "$SECONDS_UNDER_LOAD" --header "$accept")

rps() { echo "$1" | sed -E 's/.*: ([0-9]+) req\/s.*/\1/'; }
echo
echo "figures refresh ($PEOPLE people, $LINKED linked; $cells stored counts), median of $ROUNDS:"
printf '  %-48s %8.2f s  %5.2fx\n' "national-server figures refresh" "$m_ours" "$(echo "$m_theirs / $m_ours" | bc -l)"
printf '  %-48s %8.2f s  1.00x\n' "anchor: plain SQL GROUP BYs, PostgreSQL" "$m_theirs"
echo "  same cells: refresh $n_ours, anchor $n_anchor, differing $n_diff"
echo "dashboard under load ($CONNECTIONS connections, $SECONDS_UNDER_LOAD s, $WORKERS workers):"
echo "  /figures?figure=latent   $page_line"
echo "  actix-web hello-world    $hello_line"
echo "  /figures without gzip    $plain_line"
printf '  ratio of requests/s: %.3fx\n' "$(echo "$(rps "$page_line") / $(rps "$hello_line")" | bc -l)"
[ "$n_diff" = 0 ] && [ "$n_ours" = "$n_anchor" ] || { echo "the refresh and the anchor differ" >&2; exit 1; }
