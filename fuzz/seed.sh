#!/usr/bin/env bash
# Fills fuzz/corpus/<target>/ with seeds: the committed RFC examples in fuzz/seeds/ and the
# project's own test data (published replies and bounces, scenarios, malformed files).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
ROOT=..
mkdir -p corpus/{smtp_reply,bounce,imap_command,imap_response,scenario}
cp -n seeds/smtp_reply/* corpus/smtp_reply/ 2>/dev/null || true
cp -n seeds/imap_command/* corpus/imap_command/ 2>/dev/null || true
cp -n seeds/imap_response/* corpus/imap_response/ 2>/dev/null || true
# Every published reply of the corpus, one file each.
python3 - "$ROOT" <<'PY'
import hashlib, pathlib, sys, tomllib
root = pathlib.Path(sys.argv[1])
out = pathlib.Path("corpus/smtp_reply")
for f in sorted((root / "tests/data/replies").glob("*.toml")):
    data = tomllib.loads(f.read_text())
    for case in data.get("case", []):
        text = case["input"].encode()
        (out / hashlib.sha1(text).hexdigest()[:16]).write_bytes(text)
PY
cp -n "$ROOT"/tests/data/replies/bounces/*.eml "$ROOT"/tests/data/*.eml corpus/bounce/ 2>/dev/null || true
cp -n "$ROOT"/scenarios/*.toml "$ROOT"/scenarios/targets/*.toml corpus/scenario/ 2>/dev/null || true
find "$ROOT"/tests/malformed -name '*.toml' -exec cp -n {} corpus/scenario/ \; 2>/dev/null || true
for t in corpus/*; do printf '%s: %s seeds\n' "$(basename "$t")" "$(ls "$t" | wc -l)"; done
