#!/usr/bin/env bash
# The project's test command (README "Run all tests"; .ci/run calls exactly this).
#
# On a fresh Debian machine it installs what the tests need, starts the loopback test bed of real
# mail servers (Postfix, Dovecot, dnsmasq), runs the lint gates and every test, and stops the test
# bed again, whatever happened.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

tests/testbed.sh install
# The HTML report is checked in headless Chromium (Debian's package; no browser download).
if ! command -v chromium >/dev/null 2>&1; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
fi

# The JSON Schemas in schemas/ are checked with Python's jsonschema (tests/report_schemas.rs,
# tests/cli_json.rs): pip
# where Python allows it, else Debian's package.
if ! python3 -c 'import jsonschema' >/dev/null 2>&1; then
    python3 -m pip install -q jsonschema || {
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-jsonschema
    }
fi

export MH_TESTBED_DIR="${MH_TESTBED_DIR:-$PWD/tests/.testbed}"
trap 'tests/testbed.sh down || true' EXIT
tests/testbed.sh up
# shellcheck disable=SC1091
. "${MH_TESTBED_DIR}/env"

# A run from a clean checkout gains nothing from incremental state, which would add about 2 GB
# of disk across the test binaries. Set CARGO_INCREMENTAL=1 to keep it while iterating.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
if cargo tree --locked -i aws-lc-sys >/dev/null 2>&1; then
    echo "error: aws-lc-sys is in the dependency graph; rustls must use the ring provider only" >&2
    exit 1
fi
cargo test --all-targets --locked
