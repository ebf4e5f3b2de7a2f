#!/usr/bin/env bash
# The simulator against a real MTA that also stores every message: Postfix smtpd -> cleanup ->
# queue -> virtual(8) Maildir delivery, as run by the test bed (tests/testbed.sh, brought up and
# down here). Same load on both: `smtp-source -d -s 20 -m MESSAGES`, plain text, alternating rounds.
#
#   benches/sim_vs_postfix.sh [MESSAGES=5000] [ROUNDS=3]  (env: MAILHARNESS_BIN, STATE_ROOT, SIM_FSYNC=1)
#
# Prints, for both, the acceptance rate (until smtp-source's last 250) and the end-to-end rate
# (until the last message is a file in its Maildir), and checks that every message was stored.
# Postfix keeps its defaults, including fsync of each queue file; the simulator keeps its own
# (no fsync; SIM_FSYNC=1 runs it with `delivery.fsync = true`, durable as Postfix is).
# Needs root (the test bed), like tests/run.sh.
set -euo pipefail

MESSAGES=${1:-5000}
ROUNDS=${2:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${MAILHARNESS_BIN:-"$ROOT/target/release/mailharness"}
STATE_ROOT=${STATE_ROOT:-${TMPDIR:-/tmp}}
WORK=$(mktemp -d "$STATE_ROOT/sim-vs-postfix.XXXXXX")
chmod 755 "$WORK"   # the test bed's daemons run as their own users
export MH_TESTBED_DIR="$WORK/testbed"
SIM_PID=""

cleanup() {
  [[ -n "$SIM_PID" ]] && kill -INT "$SIM_PID" 2>/dev/null && wait "$SIM_PID" 2>/dev/null || true
  "$ROOT/tests/testbed.sh" down >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

if [[ -z "${MAILHARNESS_BIN:-}" ]]; then
  echo "== building release binary"
  (cd "$ROOT" && cargo build --release --quiet --bin mailharness)
fi
echo "== starting the test bed's Postfix and the simulator"
"$ROOT/tests/testbed.sh" up >/dev/null
# shellcheck disable=SC1091
. "$MH_TESTBED_DIR/env"
PF_NEW="$MH_TESTBED_MAILDIR_ROOT/qa1/new"

TENANT="$ROOT/benches/sim_bench_tenant.toml"
if [[ -n "${SIM_FSYNC:-}" ]]; then
  TENANT="$WORK/tenant-fsync.toml"
  { cat "$ROOT/benches/sim_bench_tenant.toml"; printf '\n[delivery]\nfsync = true\n'; } >"$TENANT"
fi
"$BIN" sim --config "$TENANT" --state-dir "$WORK/sim" >"$WORK/sim.out" 2>&1 &
SIM_PID=$!
for _ in $(seq 100); do grep -q "admin API" "$WORK/sim.out" 2>/dev/null && break; sleep 0.1; done
SIM_SMTP=$(awk '/smtp \(STARTTLS\)/ {print $3}' "$WORK/sim.out")
SIM_ADMIN=$(awk '/admin API/ {print $3}' "$WORK/sim.out")
[[ -n "$SIM_SMTP" ]] || { echo "simulator did not start:"; cat "$WORK/sim.out"; exit 1; }
SIM_NEW="$WORK/sim/maildir/contoso.example/qa1/new"

now() { date +%s.%N; }
count() { find "$1" -maxdepth 1 -type f 2>/dev/null | wc -l; }
# name host:port recipient maildir-new -> "accept_rate e2e_rate"
run() {
  local before t0 t1 t2 deadline
  before=$(count "$4")
  t0=$(now)
  smtp-source -d -s 20 -m "$MESSAGES" -f bench@platform.example -t "$3" "$2" >/dev/null 2>"$WORK/$1.err" \
    || { echo "smtp-source vs $1 failed:" >&2; cat "$WORK/$1.err" >&2; exit 1; }
  t1=$(now)
  deadline=$(( $(date +%s) + 300 ))
  until [[ $(count "$4") -ge $((before + MESSAGES)) ]]; do
    [[ $(date +%s) -lt $deadline ]] || { echo "$1: only $(( $(count "$4") - before )) of $MESSAGES stored after 300 s" >&2; exit 1; }
    sleep 0.05
  done
  t2=$(now)
  [[ $(count "$4") -eq $((before + MESSAGES)) ]] || { echo "$1: more files than messages" >&2; exit 1; }
  python3 -c "print(f'{$MESSAGES/($t1-$t0):.0f} {$MESSAGES/($t2-$t0):.0f}')"
}

echo "== smtp-source -d -s 20 -m $MESSAGES: $ROUNDS rounds, alternating"
PF_A=(); PF_E=(); SIM_A=(); SIM_E=()
for r in $(seq "$ROUNDS"); do
  read -r a e < <(run postfix "$MH_TESTBED_SMTP_HOST:$MH_TESTBED_SMTP_PORT" qa1@testbed.example "$PF_NEW")
  PF_A+=("$a"); PF_E+=("$e")
  read -r sa se < <(run sim "$SIM_SMTP" qa1@contoso.example "$SIM_NEW")
  SIM_A+=("$sa"); SIM_E+=("$se")
  printf '  round %d: Postfix accepts %6s msgs/s, stores %6s msgs/s   simulator accepts %6s msgs/s, stores %6s msgs/s\n' \
    "$r" "$a" "$e" "$sa" "$se"
done
curl -s --max-time 10 "$SIM_ADMIN/health" >"$WORK/health.json"

python3 - "${PF_A[*]}" "${PF_E[*]}" "${SIM_A[*]}" "${SIM_E[*]}" <<'PY'
import statistics as st, sys
pa, pe, sa, se = ([float(x) for x in a.split()] for a in sys.argv[1:5])
m = st.median
print()
print(f"acceptance (until the last 250): Postfix {m(pa):7.0f} msgs/s, simulator {m(sa):7.0f} msgs/s, ratio {m(sa)/m(pa):.1f}x")
print(f"end to end (until the last file): Postfix {m(pe):7.0f} msgs/s, simulator {m(se):7.0f} msgs/s, ratio {m(se)/m(pe):.1f}x")
print("every message stored as one Maildir file on both")
PY
