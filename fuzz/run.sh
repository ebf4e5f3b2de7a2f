#!/usr/bin/env bash
# Builds the fuzz targets and runs each for a while on its seeded corpus.
#
#   fuzz/run.sh [SECONDS] [TARGET...]    default: 600 s for every target
#
# Prints executions and findings per target; exits 1 when any target found a crash (its input
# is in fuzz/artifacts/<target>/). cargo fuzz wants nightly rustc flags: the nightly toolchain
# when one is installed, else the stable one with RUSTC_BOOTSTRAP=1. No sanitizer: the project is
# safe Rust, so what a fuzzer finds here is a panic, a hang or runaway memory.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
SECONDS_EACH="${1:-600}"
shift || true
TARGETS=("$@")
[[ ${#TARGETS[@]} -gt 0 ]] || TARGETS=(smtp_reply bounce imap_command imap_response scenario sim_smtp)

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    cargo install --locked cargo-fuzz >&2
fi
if cargo +nightly --version >/dev/null 2>&1; then
    FUZZ=(cargo +nightly fuzz)
else
    export RUSTC_BOOTSTRAP=1
    FUZZ=(cargo fuzz)
fi
./seed.sh >/dev/null
"${FUZZ[@]}" build -s none >&2
status=0
for t in "${TARGETS[@]}"; do
    mkdir -p "corpus/${t}" "artifacts/${t}"
    log="artifacts/${t}/last-run.log"
    # -rss_limit_mb: an input that makes a parser hold on to memory is a finding too.
    if "${FUZZ[@]}" run -s none "${t}" "corpus/${t}" -- \
        -max_total_time="${SECONDS_EACH}" -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 \
        >"${log}" 2>&1; then
        result="no crash"
    else
        result="FINDING (see ${log} and fuzz/artifacts/${t}/)"
        status=1
    fi
    execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "${log}" | grep -o '[0-9]*$' | tail -1)"
    printf '%-14s %6ss  %12s executions  corpus %5s  %s\n' "${t}" "${SECONDS_EACH}" "${execs:-?}" \
        "$(ls "corpus/${t}" | wc -l)" "${result}"
done
exit "${status}"
