#!/usr/bin/env bash
# Send engine benchmark (issue 5): mailharness vs Postfix's smtp-source against smtp-sink, same run.
#
#   benches/send_throughput.sh [MESSAGES] [ROUNDS]
#
# 1. plain, 20 connections, connection reuse: `mailharness send` (full transcripts in
#    attempts.jsonl) vs `smtp-source -d -s 20 -m MESSAGES`, both against one smtp-sink, alternating
#    ROUNDS times; bar: mailharness >= 1.0x smtp-source msgs/s.
# 2. STARTTLS vs plain against `mailharness sim` (smtp-sink has no TLS) with a bench tenant whose
#    connector exempts 127.0.0.2 from throttling and the TLS rule; bar: STARTTLS >= 0.5x plain.
# 3. a scripted 100 msgs/s burst (1,000 messages) to smtp-sink; bar: achieved rate within 1%,
#    p99 lateness of sends against the schedule < 5 ms.
# 4. peak RSS (/usr/bin/time -v) of a 100,000-message burst to smtp-sink; bar: < 64 MiB.
set -euo pipefail

MESSAGES=${1:-20000}
ROUNDS=${2:-3}
SIZE=${SIZE:-1024}           # body bytes for both tools (smtp-source -l)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/send-bench.XXXXXX")
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN="$TARGET_DIR/release/mailharness"
SINK_PID=""; SIM_PID=""

cleanup() {
  [[ -n "$SINK_PID" ]] && kill "$SINK_PID" 2>/dev/null || true
  [[ -n "$SIM_PID" ]] && kill -INT "$SIM_PID" 2>/dev/null && wait "$SIM_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

for tool in smtp-source smtp-sink python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool (tests/testbed.sh install)" >&2; exit 2; }
done
[[ -x /usr/bin/time ]] || { echo "missing /usr/bin/time (apt-get install time)" >&2; exit 2; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }

echo "== building release binary"
(cd "$ROOT" && cargo build --release --quiet --bin mailharness)

SINK_PORT=$(free_port)
SINK_USER=()
[[ $(id -u) -eq 0 ]] && SINK_USER=(-u nobody)
smtp-sink "${SINK_USER[@]}" -c "127.0.0.1:$SINK_PORT" 256 >"$WORK/sink.out" 2>&1 &
SINK_PID=$!
sleep 0.3

PER_CONN=$(( (MESSAGES + 19) / 20 ))
mh() { # out-dir, extra args... -> prints the --json summary line
  local out=$1; shift
  "$BIN" send --server "127.0.0.1:$1" --from-ip 127.0.0.2 --to qa1@contoso.example \
    --size "$SIZE" --out "$out" --json "${@:2}"
}

echo "== 1. plain, 20 connections, reuse: $MESSAGES messages, $ROUNDS rounds, alternating"
SRC=(); MH=()
for r in $(seq "$ROUNDS"); do
  t0=$(now)
  smtp-source -d -s 20 -m "$MESSAGES" -l "$SIZE" -f bench@platform.example -t qa1@contoso.example \
    "127.0.0.1:$SINK_PORT" >/dev/null 2>"$WORK/src.err" || { cat "$WORK/src.err" >&2; exit 1; }
  t1=$(now)
  s=$(python3 -c "print(f'{$MESSAGES/($t1-$t0):.0f}')"); SRC+=("$s")
  rm -rf "$WORK/plain"
  t0=$(now)
  mh "$WORK/plain" "$SINK_PORT" --count "$MESSAGES" --concurrency 20 --per-connection "$PER_CONN" >"$WORK/plain.json"
  t1=$(now)
  m=$(python3 -c "print(f'{$MESSAGES/($t1-$t0):.0f}')"); MH+=("$m")
  acc=$(json 'd["summary"]["by_outcome"].get("accepted",0)' <"$WORK/plain.json")
  lines=$(wc -l <"$WORK/plain/attempts.jsonl")
  [[ "$acc" == "$MESSAGES" && "$lines" == "$MESSAGES" ]] || { echo "round $r: accepted $acc, records $lines" >&2; exit 1; }
  printf '  round %d: smtp-source %6s msgs/s   mailharness %6s msgs/s (wall clock, process start to exit; %s records)\n' "$r" "$s" "$m" "$lines"
done
REC_BYTES=$(python3 -c "import os; print(os.path.getsize('$WORK/plain/attempts.jsonl')//$MESSAGES)")

echo "== 2. STARTTLS vs plain against mailharness sim (bench tenant)"
SIM_STATE="$WORK/sim-state"
"$BIN" sim --config "$ROOT/benches/send_bench_tenant.toml" --state-dir "$SIM_STATE" >"$WORK/sim.out" 2>&1 &
SIM_PID=$!
for _ in $(seq 100); do grep -q "admin API" "$WORK/sim.out" 2>/dev/null && break; sleep 0.1; done
SIM_SMTP=$(awk '/smtp \(STARTTLS\)/ {print $3}' "$WORK/sim.out")
[[ -n "$SIM_SMTP" ]] || { echo "simulator did not start:"; cat "$WORK/sim.out"; exit 1; }
SIM_PORT=${SIM_SMTP##*:}
TLS_N=$(( MESSAGES / 2 ))
TLS_PER=$(( (TLS_N + 19) / 20 ))
PLAIN_SIM=(); TLS_SIM=()
for r in $(seq "$ROUNDS"); do
  for mode in none starttls; do
    rm -rf "$WORK/sim-$mode"
    t0=$(now)
    mh "$WORK/sim-$mode" "$SIM_PORT" --count "$TLS_N" --concurrency 20 --per-connection "$TLS_PER" \
      --tls "$mode" --tls-verify record >"$WORK/sim-$mode.json"
    t1=$(now)
    acc=$(json 'd["summary"]["by_outcome"].get("accepted",0)' <"$WORK/sim-$mode.json")
    [[ "$acc" == "$TLS_N" ]] || { echo "sim $mode: accepted $acc of $TLS_N" >&2; cat "$WORK/sim-$mode.json" >&2; exit 1; }
    v=$(python3 -c "print(f'{$TLS_N/($t1-$t0):.0f}')")
    if [[ $mode == none ]]; then PLAIN_SIM+=("$v"); else TLS_SIM+=("$v"); fi
  done
  printf '  round %d: plain %6s msgs/s   STARTTLS %6s msgs/s\n' "$r" "${PLAIN_SIM[-1]}" "${TLS_SIM[-1]}"
done
TLS_VERSION=$(head -1 "$WORK/sim-starttls/attempts.jsonl" | json 'd["tls"]["version"] + " " + d["tls"]["cipher"]')
kill -INT "$SIM_PID"; wait "$SIM_PID" 2>/dev/null || true; SIM_PID=""

echo "== 3. scripted 100 msgs/s, 1,000 messages, 20 connections x 50"
mh "$WORK/paced" "$SINK_PORT" --count 1000 --rate 100/s --concurrency 20 --per-connection 50 >"$WORK/paced.json"
RATE=$(json 'd["summary"]["send_rate_per_sec"]' <"$WORK/paced.json")
P50=$(json 'd["summary"]["lateness_p50_ms"]' <"$WORK/paced.json")
P99=$(json 'd["summary"]["lateness_p99_ms"]' <"$WORK/paced.json")
LMAX=$(json 'd["summary"]["lateness_max_ms"]' <"$WORK/paced.json")

echo "== 4. peak RSS of a 100,000-message burst (20 connections x 5,000)"
/usr/bin/time -v -o "$WORK/time.txt" "$BIN" send --server "127.0.0.1:$SINK_PORT" --from-ip 127.0.0.2 \
  --to qa1@contoso.example --size "$SIZE" --count 100000 --concurrency 20 --per-connection 5000 \
  --out "$WORK/big" --json >"$WORK/big.json"
RSS_KB=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time.txt")
BIG_LINES=$(wc -l <"$WORK/big/attempts.jsonl")

python3 - "${SRC[*]}" "${MH[*]}" "${PLAIN_SIM[*]}" "${TLS_SIM[*]}" "$RATE" "$P50" "$P99" "$LMAX" "$RSS_KB" "$BIG_LINES" "$REC_BYTES" "$TLS_VERSION" <<'PY'
import statistics, sys
src, mh, ps, ts = ([float(x) for x in a.split()] for a in sys.argv[1:5])
rate, p50, p99, lmax = (float(x) for x in sys.argv[5:9])
rss_kb, lines, rec_bytes, tlsv = int(sys.argv[9]), int(sys.argv[10]), int(sys.argv[11]), sys.argv[12]
med = statistics.median
r1 = med(mh) / med(src)
r2 = med(ts) / med(ps)
ok = []
print()
print(f"1. plain   : smtp-source median {med(src):7.0f} msgs/s, mailharness median {med(mh):7.0f} msgs/s -> {r1:.2f}x (bar >= 1.0x); {rec_bytes} bytes of JSON per record")
ok.append(r1 >= 1.0)
print(f"2. STARTTLS: plain median {med(ps):7.0f} msgs/s, STARTTLS median {med(ts):7.0f} msgs/s -> {r2:.2f}x (bar >= 0.5x); TLS {tlsv}")
ok.append(r2 >= 0.5)
dev = abs(rate - 100.0)
print(f"3. paced   : achieved {rate:.3f} msgs/s ({dev:.3f}% off 100/s, bar 1%), lateness p50 {p50:.3f} ms, p99 {p99:.3f} ms (bar < 5 ms), max {lmax:.3f} ms")
ok.append(dev <= 1.0 and p99 < 5.0)
print(f"4. memory  : peak RSS {rss_kb/1024:.1f} MiB for 100,000 messages (bar < 64 MiB), {lines} records")
ok.append(rss_kb < 64 * 1024 and lines == 100000)
print("result    :", "all bars met" if all(ok) else f"BARS MISSED: {[i+1 for i, o in enumerate(ok) if not o]}")
sys.exit(0 if all(ok) else 1)
PY
