#!/usr/bin/env bash
# Observation benchmark (not a timed test): `mailharness observe` vs Python's imaplib correlating
# 10,000 run messages in a Dovecot mailbox of 50,000, on a private loopback Dovecot instance.
# Needs root (it starts that Dovecot) and the test bed's packages (tests/testbed.sh install).
# Figures go to benches/README.md, section "Observation".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --locked --bin mailharness
exec python3 benches/observe_bench.py --bin "${CARGO_TARGET_DIR}/release/mailharness" "$@"
