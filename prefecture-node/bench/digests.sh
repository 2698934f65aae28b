#!/usr/bin/env bash
# Digest benchmark (issue #8): 20,000 digests planned (intents recorded), rendered (text and
# HTML), sent to postfix's smtp-sink on loopback and marked sent, by the real
# `prefecture-node digest` command on a SQLite node database; run back to back with the anchor,
# ../shared/bench/smtp.sh (smtp-source -> smtp-sink, a connection per message).
#
#   bash prefecture-node/bench/digests.sh
#
# Environment: NURSES (20000), BENCH_DIR (../shared/bench), PORT (52526 for our sink),
# CARGO_TARGET_DIR, WORK (/tmp/ncf-digest-bench), REPEAT (3: best of, anchor and ours).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BENCH_DIR=${BENCH_DIR:-$ROOT/../shared/bench}
NURSES=${NURSES:-20000}
PORT=${PORT:-52526}
REPEAT=${REPEAT:-3}
WORK=${WORK:-/tmp/ncf-digest-bench}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}

[ -f "$BENCH_DIR/smtp.sh" ] || { echo "no comparison benchmarks at $BENCH_DIR (set BENCH_DIR)" >&2; exit 1; }
(cd "$ROOT" && cargo build --release -q -p prefecture-node && cargo build --release -q -p ncf-tests --example digest_seed)

echo "# anchor: $BENCH_DIR/smtp.sh (MSGS=$NURSES, REPEAT=$REPEAT)"
anchor=$(MSGS=$NURSES REPEAT=$REPEAT bash "$BENCH_DIR/smtp.sh" | tee /dev/stderr | sed -n 's|^conn/msg: best .* \([0-9]*\) msg/s$|\1|p')

if ss -ltn | grep -q ":$PORT "; then echo "port $PORT busy" >&2; exit 1; fi
SINKLOG=$(mktemp /tmp/ncf-sink.XXXXXX)
/usr/sbin/smtp-sink -c -u postfix "127.0.0.1:$PORT" 1024 >"$SINKLOG" 2>&1 &
SINK=$!
trap 'kill $SINK 2>/dev/null || true; rm -f "$SINKLOG"' EXIT
for _ in $(seq 50); do ss -ltn | grep -q ":$PORT " && break; sleep 0.1; done

best=999999
for i in $(seq "$REPEAT"); do
  rm -rf "$WORK" && mkdir -p "$WORK"
  "$TARGET/release/examples/digest_seed" "sqlite://$WORK/node.db" "$WORK/node.key" "$NURSES" 2>&1 | sed 's/^/  /' >&2
  out=$(RUST_LOG=${RUST_LOG:-warn} "$TARGET/release/prefecture-node" --database-url "sqlite://$WORK/node.db" digest \
    --cadence weekly --prefecture 14 --public-url https://nc14.example.jp --key-file "$WORK/node.key" \
    --smtp-url "smtp://127.0.0.1:$PORT")
  echo "  run $i: $out" >&2
  sent=$(echo "$out" | sed -n 's/.* \([0-9]*\) sent,.*/\1/p')
  s=$(echo "$out" | sed -n 's/.* in \([0-9.]*\) s$/\1/p')
  [ "$sent" = "$NURSES" ] || { echo "expected $NURSES sent, got $sent" >&2; exit 1; }
  best=$(echo "if ($s < $best) $s else $best" | bc -l)
done
ours=$(echo "$NURSES / $best" | bc -l)
printf 'digests: %d planned, rendered, recorded and sent in %.2f s = %.0f msg/s (best of %d)\n' "$NURSES" "$best" "$ours" "$REPEAT"
printf 'anchor smtp-source conn/msg: %s msg/s; ours / anchor = %.2f (goal >= 0.5)\n' "$anchor" "$(echo "$ours / $anchor" | bc -l)"
