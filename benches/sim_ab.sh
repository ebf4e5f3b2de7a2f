#!/usr/bin/env bash
# Two builds of the simulator against each other, same machine, same run, alternating:
#
#   benches/sim_ab.sh BIN_A BIN_B [ROUNDS=3]   (env: STATE_ROOT, default /dev/shm; PARTS="refusals imap")
#
# For each round and each build: refusal load (benches/sim_refusals.py, one transaction at a
# time and 10 pipelined, every transaction refused at RCPT TO and traced by the SMTP session),
# then IMAP load (benches/sim_imap_poll.py on a qa1 INBOX filled with 5,000 messages by
# smtp-source). The acceptance throughput of each build is benches/sim_throughput.sh with
# MAILHARNESS_BIN=... (it runs smtp-sink alongside).
set -euo pipefail
A=$1; B=$2; ROUNDS=${3:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE_ROOT=${STATE_ROOT:-/dev/shm}
PARTS=${PARTS:-refusals imap}
SIM_PID=""
cleanup() { [[ -n "$SIM_PID" ]] && kill -TERM "$SIM_PID" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT
export SIM_PASSWORD="bench-$RANDOM-$RANDOM"

start() { # bin tenant -> sets SIM_PID, SMTP, IMAP, WORK
  WORK=$(mktemp -d "$STATE_ROOT/sim-ab.XXXXXX")
  "$1" sim --config "$2" --state-dir "$WORK/state" >"$WORK/sim.out" 2>&1 &
  SIM_PID=$!
  for _ in $(seq 100); do grep -q "admin API" "$WORK/sim.out" 2>/dev/null && break; sleep 0.1; done
  SMTP=$(awk '/smtp \(STARTTLS\)/ {print $3}' "$WORK/sim.out")
  IMAP=$(awk '/imap \(STARTTLS\)/ {print $3}' "$WORK/sim.out")
  [[ -n "$SMTP" ]] || { cat "$WORK/sim.out"; exit 1; }
}
stop() { kill -TERM "$SIM_PID"; wait "$SIM_PID" || true; SIM_PID=""; rm -rf "$WORK"; }

for r in $(seq "$ROUNDS"); do
  for name in A B; do
    bin=$A; [[ $name == B ]] && bin=$B
    if [[ " $PARTS " == *" refusals "* ]]; then
      start "$bin" "$ROOT/benches/sim_refusals_tenant.toml"
      d1=$(PID=$SIM_PID python3 "$ROOT/benches/sim_refusals.py" "$SMTP" 20 500 1)
      d10=$(PID=$SIM_PID python3 "$ROOT/benches/sim_refusals.py" "$SMTP" 20 500 10)
      stop
      echo "round $r $name refusals depth 1: $d1"
      echo "round $r $name refusals depth 10: $d10"
    fi
    [[ " $PARTS " == *" imap "* ]] || continue
    start "$bin" "$ROOT/benches/sim_imap_tenant.toml"
    smtp-source -d -s 20 -m 5000 -f bench@platform.example -t qa1@contoso.example "$SMTP" >/dev/null
    sleep 1
    kill -TERM "$SIM_PID"; wait "$SIM_PID" || true
    # A fresh server on the filled Maildir: the cold SELECT indexes all 5,000 files.
    "$bin" sim --config "$ROOT/benches/sim_imap_tenant.toml" --state-dir "$WORK/state" >"$WORK/sim.out" 2>&1 &
    SIM_PID=$!
    for _ in $(seq 100); do grep -q "admin API" "$WORK/sim.out" 2>/dev/null && break; sleep 0.1; done
    SMTP=$(awk '/smtp \(STARTTLS\)/ {print $3}' "$WORK/sim.out")
    IMAP=$(awk '/imap \(STARTTLS\)/ {print $3}' "$WORK/sim.out")
    im=$(PID=$SIM_PID python3 "$ROOT/benches/sim_imap_poll.py" "$IMAP" "$SMTP" 4 200)
    stop
    echo "round $r $name imap: $im"
  done
done
