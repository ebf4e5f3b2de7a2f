#!/usr/bin/env bash
# The floor of storing one message as a Maildir file, in C, on tmpfs (or DIR):
#   benches/store_floor.sh [COUNT=50000] [DIR=/dev/shm]
# Needs gcc and AT_EMPTY_PATH linkat (root, or Linux >= 6.10 for files one created oneself).
set -euo pipefail
COUNT=${1:-50000}
BASE=${2:-/dev/shm}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "$BASE/store-floor.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
gcc -O2 -o "$WORK/store_floor" "$ROOT/benches/store_floor.c"
for mode in tmpfile rename; do
  mkdir -p "$WORK/$mode/tmp" "$WORK/$mode/new"
  "$WORK/store_floor" "$WORK/$mode" "$COUNT" "$mode"
done
