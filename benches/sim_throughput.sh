#!/usr/bin/env bash
# Simulator acceptance throughput vs Postfix's smtp-sink, same machine, same run.
#
#   benches/sim_throughput.sh [MESSAGES] [ROUNDS]        (env: STATE_ROOT, SESSIONS, MSGLEN)
#
# Runs `smtp-source -d -s 20 -m MESSAGES` (plain text, 20 sessions, connections reused) against
# smtp-sink and against `mailharness sim` (release build, bench tenant: connector for 127.0.0.1 so
# no throttling, every message stored in its Maildir and traced), alternating ROUNDS times, and
# prints msgs/s for both (best and median), the ratio, the simulator's peak RSS, and checks that
# every accepted message ended up as exactly one Maildir file and one trace record.
set -euo pipefail

MESSAGES=${1:-20000}
ROUNDS=${2:-3}
SESSIONS=${SESSIONS:-20}
MSGLEN=${MSGLEN:-}            # optional smtp-source -l (bytes); default: smtp-source's own
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# Where the simulator's Maildirs go. Default: $TMPDIR (a disk). STATE_ROOT=/dev/shm measures
# without the file system (see benches/README.md for why ext4 can be slow right after deletions).
STATE_ROOT=${STATE_ROOT:-${TMPDIR:-/tmp}}
WORK=$(mktemp -d "$STATE_ROOT/sim-bench.XXXXXX")
BIN=${MAILHARNESS_BIN:-"$ROOT/target/release/mailharness"}   # MAILHARNESS_BIN=... skips the build
SINK_PID=""; SIM_PID=""; TIME_PID=""

cleanup() {
  [[ -n "$SINK_PID" ]] && kill "$SINK_PID" 2>/dev/null || true
  [[ -n "$SIM_PID" ]] && kill -INT "$SIM_PID" 2>/dev/null || true
  [[ -n "$TIME_PID" ]] && wait "$TIME_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

for tool in smtp-source smtp-sink curl python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool (tests/testbed.sh install)" >&2; exit 2; }
done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }

if [[ -z "${MAILHARNESS_BIN:-}" ]]; then
  echo "== building release binary"
  (cd "$ROOT" && cargo build --release --quiet --bin mailharness)
fi

SRC_ARGS=(-d -s "$SESSIONS" -m "$MESSAGES" -f bench@platform.example -t qa1@contoso.example)
[[ -n "$MSGLEN" ]] && SRC_ARGS+=(-l "$MSGLEN")

# --- smtp-sink ---------------------------------------------------------------------------
SINK_PORT=$(free_port)
SINK_USER=()
[[ $(id -u) -eq 0 ]] && SINK_USER=(-u nobody)
smtp-sink "${SINK_USER[@]}" -c "127.0.0.1:$SINK_PORT" 1000 >"$WORK/sink.out" 2>&1 &
SINK_PID=$!

# --- simulator (under /usr/bin/time -v for the peak RSS) -----------------------------------
SIM_STATE="$WORK/sim-state"
TIME_BIN=()
[[ -x /usr/bin/time ]] && TIME_BIN=(/usr/bin/time -v -o "$WORK/time.txt")
"${TIME_BIN[@]}" "$BIN" sim --config "$ROOT/benches/sim_bench_tenant.toml" --state-dir "$SIM_STATE" \
  >"$WORK/sim.out" 2>&1 &
TIME_PID=$!
for _ in $(seq 100); do grep -q "admin API" "$WORK/sim.out" 2>/dev/null && break; sleep 0.1; done
SIM_SMTP=$(awk '/smtp \(STARTTLS\)/ {print $3}' "$WORK/sim.out")
SIM_ADMIN=$(awk '/admin API/ {print $3}' "$WORK/sim.out")
[[ -n "$SIM_SMTP" ]] || { echo "simulator did not start:"; cat "$WORK/sim.out"; exit 1; }
if [[ ${#TIME_BIN[@]} -gt 0 ]]; then SIM_PID=$(pgrep -P "$TIME_PID" | head -1); else SIM_PID=$TIME_PID; fi
sleep 0.3

ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }   # user+system CPU of a process, in 1/100 s
run() { # name host:port -> msgs/s
  local t0 t1
  t0=$(now)
  smtp-source "${SRC_ARGS[@]}" "$2" >/dev/null 2>"$WORK/$1.err" || { echo "smtp-source vs $1 failed:" >&2; cat "$WORK/$1.err" >&2; exit 1; }
  t1=$(now)
  python3 -c "print(f'{$MESSAGES/($t1-$t0):.0f}')"
}
us_per_msg() { python3 -c "print(f'{($2-$1)*10000/$MESSAGES:.1f}')"; }

health() { curl -s --max-time 10 "$SIM_ADMIN/health"; }
stat_of() { python3 -c "import json,sys; print(json.load(sys.stdin)['stats']['$1'])"; }

echo "== smtp-source ${SRC_ARGS[*]} : $ROUNDS rounds, alternating; simulator state in $WORK ($(df -T "$WORK" | awk 'NR==2 {print $2}'))"
echo "   load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
SINK_RATES=(); SIM_RATES=(); DRAIN=()
for r in $(seq "$ROUNDS"); do
  a=$(ticks "$SINK_PID"); s=$(run sink "127.0.0.1:$SINK_PORT"); b=$(ticks "$SINK_PID"); SINK_RATES+=("$s")
  SINK_CPU=$(us_per_msg "$a" "$b")
  c=$(ticks "$SIM_PID"); m=$(run sim "$SIM_SMTP"); SIM_RATES+=("$m")
  # Wait until every accepted message is stored and traced (the delivery delay is 200 ms).
  t0=$(now)
  while :; do
    h=$(health); acc=$(echo "$h" | stat_of accepted); del=$(echo "$h" | stat_of delivered)
    [[ "$acc" == "$del" ]] && break
    sleep 0.05
  done
  DRAIN+=("$(python3 -c "print(f'{$(now)-$t0:.2f}')")")
  d=$(ticks "$SIM_PID"); SIM_CPU=$(us_per_msg "$c" "$d")
  printf '  round %d: smtp-sink %6s msgs/s (%5s us CPU/msg)   simulator %6s msgs/s (%5s us CPU/msg incl. storing; all stored %ss after the last 250)\n' \
    "$r" "$s" "$SINK_CPU" "$m" "$SIM_CPU" "${DRAIN[-1]}"
done

RSS_KB=$(awk '/VmHWM/ {print $2}' "/proc/$SIM_PID/status" 2>/dev/null || echo "")
h=$(health)
ACCEPTED=$(echo "$h" | stat_of accepted); DELIVERED=$(echo "$h" | stat_of delivered)
kill -INT "$SIM_PID"; SIM_PID=""
wait "$TIME_PID" || true; TIME_PID=""
FILES=$(find "$SIM_STATE/maildir" -path '*/new/*' -type f | wc -l)
TRACED=$(grep -c '"decision":"accepted"' "$SIM_STATE/trace.jsonl" || true)
if [[ -f "$WORK/time.txt" ]]; then
  RSS_KB=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time.txt")
fi

python3 - "$MESSAGES" "$ROUNDS" "$RSS_KB" "$ACCEPTED" "$DELIVERED" "$FILES" "$TRACED" "${SINK_RATES[*]}" "${SIM_RATES[*]}" <<'PY'
import statistics, sys
msgs, rounds, rss, acc, dl, files, traced = sys.argv[1:8]
sink = [float(x) for x in sys.argv[8].split()]
sim = [float(x) for x in sys.argv[9].split()]
expected = int(msgs) * int(rounds)
print()
print(f"smtp-sink : best {max(sink):8.0f} msgs/s   median {statistics.median(sink):8.0f} msgs/s")
print(f"simulator : best {max(sim):8.0f} msgs/s   median {statistics.median(sim):8.0f} msgs/s")
print(f"ratio     : best/best {max(sim)/max(sink):.2f}x   median/median {statistics.median(sim)/statistics.median(sink):.2f}x   (bar: >= 1.0x)")
print(f"peak RSS  : {int(rss)/1024:.1f} MiB" if rss else "peak RSS  : unknown")
print(f"stored    : accepted {acc}, delivered {dl}, Maildir files {files}, accepted trace records {traced}, expected {expected}")
ok = int(acc) == int(dl) == int(files) == int(traced) == expected
print("integrity :", "OK (no message lost)" if ok else "MISMATCH")
sys.exit(0 if ok else 1)
PY
