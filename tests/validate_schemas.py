#!/usr/bin/env python3
"""Validates mailharness output against the JSON Schemas in schemas/, independently of the Rust
types that wrote it (tests/report_schemas.rs runs it).

Usage: validate_schemas.py SCHEMA DATA [SCHEMA DATA ...]
A DATA file ending in .jsonl is validated line by line; any other is one JSON document. Prints
every violation with its file, line and JSON path, and exits 1 if there was one.
"""
import json
import sys

from jsonschema import Draft202012Validator, FormatChecker


def documents(path):
    """(line number, document) of a JSON file (line 1) or of each non-empty JSONL line."""
    with open(path, encoding="utf-8") as f:
        if not path.endswith(".jsonl"):
            yield 1, json.load(f)
            return
        for n, line in enumerate(f, 1):
            if line.strip():
                yield n, json.loads(line)


def main(args):
    if not args or len(args) % 2:
        print(__doc__, file=sys.stderr)
        return 2
    failures = 0
    for schema_path, data_path in zip(args[::2], args[1::2]):
        with open(schema_path, encoding="utf-8") as f:
            schema = json.load(f)
        Draft202012Validator.check_schema(schema)
        # FormatChecker(), not FORMAT_CHECKER: the latter is missing from older jsonschema releases.
        validator = Draft202012Validator(schema, format_checker=FormatChecker())
        count, bad = 0, 0
        for n, doc in documents(data_path):
            count += 1
            for e in sorted(validator.iter_errors(doc), key=lambda e: list(e.path)):
                bad += 1
                where = "/".join(str(p) for p in e.absolute_path)
                print(f"{data_path}:{n}: /{where}: {e.message}")
        failures += bad
        print(f"{'FAIL' if bad else 'ok'}: {count} document(s) of {data_path} against {schema_path}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
