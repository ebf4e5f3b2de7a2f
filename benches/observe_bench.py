#!/usr/bin/env python3
"""Observation benchmark: correlate 10,000 run messages in a Dovecot mailbox holding 50,000.

Compares `mailharness observe` (the real re-observation path: LIST, EXAMINE INBOX and Junk,
UID SEARCH HEADER, batched UID FETCH of UID/INTERNALDATE/BODY.PEEK[HEADER.FIELDS (...)], header
parsing, matching to attempts.jsonl, writing observations.jsonl) with Python's imaplib doing the
same single UID SEARCH plus batched UID FETCH and matching, in the same run, against a private
Dovecot instance on loopback (its own config, port, user and Maildir: the test bed's mailboxes
are never touched). Wall time and peak RSS of each client process come from wait4().

Usage: benches/observe_bench.py --bin target/release/mailharness [--total 50000] [--run 10000]
       [--reps 3] [--keep]
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

FIELDS = ("Message-ID X-Harness-Run X-Harness-Seq Received X-Forefront-Antispam-Report "
          "X-MS-Exchange-Organization-AuthAs Authentication-Results "
          "X-Microsoft-Antispam-Mailbox-Delivery Date")
CHUNK = 2000  # the same UID batch size as the Rust client (observe::imap::UID_CHUNK)
USER = "bench@bench.example"
PASSWORD = "bench-password"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def write_dovecot(state, port):
    conf = os.path.join(state, "dovecot.conf")
    users = os.path.join(state, "users")
    with open(users, "w") as f:
        f.write(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    shutil.chown(users, "root", "dovecot")
    os.chmod(users, 0o640)
    os.makedirs(os.path.join(state, "run"), exist_ok=True)
    with open(conf, "w") as f:
        f.write(f"""# Private Dovecot instance of the observation benchmark.
instance_name = mailharness-observe-bench
base_dir = {state}/run
state_dir = {state}/state
log_path = {state}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {users}
}}
userdb {{
  driver = static
  args = uid=5000 gid=5000 home={state}/mail/%d/%n
}}
first_valid_uid = 100
mail_location = maildir:{state}/mail/%d/%n
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Junk {{
    special_use = \\Junk
    auto = subscribe
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service submission-login {{
  inet_listener submission {{
    port = 0
  }}
}}
""")
    return conf


def generate(maildir, total, run_n, run_id):
    """Writes `total` messages straight into Maildir new/: `run_n` of them carry this run."""
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(maildir, sub), exist_ok=True)
    attempts = []
    now = time.time()
    stride = total // run_n
    date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(now))
    for i in range(total):
        is_run = i % stride == 0 and len(attempts) < run_n
        if is_run:
            seq = f"before/primary/starttls/{len(attempts)}"
            mid = f"<{run_id}.{len(attempts)}@bench.example>"
            harness = f"X-Harness-Run: {run_id}\r\nX-Harness-Seq: {seq}\r\n"
        else:
            seq = None
            mid = f"<corpus.{i}@elsewhere.example>"
            # Part of the corpus is other runs' mail, so the search must discriminate.
            harness = f"X-Harness-Run: corpus-run-{i % 7}\r\nX-Harness-Seq: x/{i}\r\n" if i % 3 == 0 else ""
        body = (
            f"Received: from mta1.platform.example (192.0.2.1) by mx.bench.example (10.0.0.1)\r\n"
            f" with Microsoft SMTP Server (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384)\r\n"
            f" id 15.20.7897.13 via Frontend Transport; {date}\r\n"
            f"X-MS-Exchange-Organization-AuthAs: Anonymous\r\n"
            f"X-Forefront-Antispam-Report: CIP:192.0.2.1;CTRY:AU;LANG:en;SCL:1;SRV:;IPV:NLI;SFV:NSPM;H:mta1.platform.example;PTR:;CAT:NONE;SFS:;DIR:INB;\r\n"
            f"X-Microsoft-Antispam-Mailbox-Delivery: ucf:0;jmr:0;auth:0;dest:I;ENG:(750127);\r\n"
            f"Authentication-Results: spf=pass (sender IP is 192.0.2.1) smtp.mailfrom=platform.example; dkim=none; dmarc=none action=none; compauth=pass reason=100\r\n"
            f"From: sender@platform.example\r\nTo: {USER}\r\nSubject: message {i}\r\nDate: {date}\r\n"
            f"Message-ID: {mid}\r\n{harness}\r\n"
            + ("Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n" * 20)
        )
        name = f"{int(now)}.M{i}P{os.getpid()}.bench"
        with open(os.path.join(maildir, "new", name), "w") as f:
            f.write(body)
        if is_run:
            attempts.append({"seq": seq, "message_id": mid})
    return attempts


def attempt_record(run_id, a, finished):
    return {
        "schema": 1, "run_id": run_id, "seq": a["seq"], "attempt_id": a["seq"] + "#1",
        "attempt": 1, "phase": "before", "burst": "b0", "index": 0, "sender": "primary",
        "source_ip": "127.0.0.2", "destination": "127.0.0.1:25", "tls_mode": "starttls",
        "message_id": a["message_id"], "recipients": [USER], "size": 1500, "connection": 1,
        "connection_seq": 1, "scheduled_at": finished, "scheduled_ms": 0.0,
        "started_at": finished, "started_ms": 0.0, "finished_at": finished,
        "finished_ms": 0.0, "transcript": [], "outcome": "accepted",
    }


IMAPLIB_CLIENT = r'''
import imaplib, json, sys, email.parser
port, run_id, attempts_path, chunk, fields = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
want = {}
with open(attempts_path) as f:
    for line in f:
        a = json.loads(line)
        if a["outcome"] == "accepted":
            want[a["message_id"]] = a["attempt_id"]
M = imaplib.IMAP4("127.0.0.1", int(port))
M.login("USER", "PASSWORD")
M.select("INBOX", readonly=True)
typ, data = M.uid("SEARCH", "HEADER", "X-Harness-Run", '"%s"' % run_id)
uids = sorted(int(u) for u in data[0].split())
parser = email.parser.BytesHeaderParser()
found = {}
for i in range(0, len(uids), chunk):
    part = uids[i:i + chunk]
    typ, data = M.uid("FETCH", ",".join(map(str, part)),
                      "(UID INTERNALDATE BODY.PEEK[HEADER.FIELDS (%s)])" % fields)
    for item in data:
        if not isinstance(item, tuple):
            continue
        h = parser.parsebytes(item[1])
        if (h.get("X-Harness-Run") or "").strip() != run_id:
            continue
        mid = (h.get("Message-ID") or "").strip()
        if mid in want:
            found[mid] = imaplib.Internaldate2tuple(item[0])
M.logout()
print(json.dumps({"found": len(found), "expected": len(want)}))
'''.replace("USER", USER).replace("PASSWORD", PASSWORD)


def run_measured(argv, env=None):
    """Runs a child and returns (wall seconds, peak RSS KiB, exit code, stdout)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    p.returncode = code
    if code not in (0,):
        sys.stderr.write(f"{argv[0]} exited {code}: {err.decode(errors='replace')}\n")
    return wall, ru.ru_maxrss, code, out.decode(errors="replace")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--total", type=int, default=50000)
    ap.add_argument("--run", type=int, default=10000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("must run as root (a private Dovecot instance is started)")

    state = tempfile.mkdtemp(prefix="mh-observe-bench-")
    os.chmod(state, 0o755)
    port = free_port()
    conf = write_dovecot(state, port)
    run_id = f"bench-{int(time.time())}"
    maildir = os.path.join(state, "mail", "bench.example", "bench")
    t0 = time.perf_counter()
    attempts = generate(maildir, args.total, args.run, run_id)
    gen_s = time.perf_counter() - t0
    subprocess.run(["chown", "-R", "5000:5000", os.path.join(state, "mail")], check=True)

    run_dir = os.path.join(state, run_id)
    os.makedirs(run_dir)
    finished = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 60))
    attempts_path = os.path.join(run_dir, "attempts.jsonl")
    with open(attempts_path, "w") as f:
        for a in attempts:
            f.write(json.dumps(attempt_record(run_id, a, finished)) + "\n")
    target = os.path.join(state, "bench.target.toml")
    with open(target, "w") as f:
        f.write(f"""name = "observe-bench"
kind = "tenant"
[senders]
primary = "127.0.0.2"
[smtp]
domain = "bench.example"
mx = "127.0.0.1"
[imap]
host = "127.0.0.1"
port = {port}
tls = "plain"
auth = "login"
[[mailboxes]]
address = "{USER}"
password_env = "MH_BENCH_IMAP_PASSWORD"
[guard]
allowed_domains = ["bench.example"]
max_messages_per_run = 20000
max_rate_per_ip = "6000/min"
""")
    client_py = os.path.join(state, "imaplib_client.py")
    with open(client_py, "w") as f:
        f.write(IMAPLIB_CLIENT)

    subprocess.run(["dovecot", "-c", conf], check=True)
    results = {"rust": [], "imaplib": []}
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        env = dict(os.environ, MH_BENCH_IMAP_PASSWORD=PASSWORD)
        rust_cmd = [args.bin, "observe", run_dir, "--target", target]
        py_cmd = [sys.executable, client_py, str(port), run_id, attempts_path, str(CHUNK), FIELDS]
        # Warm-up (not counted): Dovecot indexes the 50,000 new files and fills its cache, which
        # would otherwise be charged to whichever client ran first.
        w = run_measured(py_cmd, env)
        print(f"warm-up (imaplib, indexes the mailbox): {w[0]:.2f}s -> {w[3].strip()}")
        w = run_measured(rust_cmd, env)
        print(f"warm-up (mailharness): {w[0]:.2f}s")
        for rep in range(args.reps):
            order = [("rust", rust_cmd), ("imaplib", py_cmd)]
            if rep % 2 == 1:
                order.reverse()
            for name, cmd in order:
                wall, rss, code, out = run_measured(cmd, env)
                if name == "rust":
                    ok = code == 0
                    lines = open(os.path.join(run_dir, "observations.jsonl")).read().count("\n")
                    detail = f"exit {code}, {lines} observation lines"
                else:
                    ok = code == 0 and json.loads(out)["found"] == args.run
                    detail = out.strip()
                if not ok:
                    raise SystemExit(f"{name} failed: {detail}")
                results[name].append((wall, rss))
                print(f"rep {rep + 1} {name:8s} {wall:7.3f}s  peak RSS {rss / 1024:6.1f} MiB  ({detail})")
    finally:
        pidfile = os.path.join(state, "run", "master.pid")
        try:
            with open(pidfile) as f:
                os.kill(int(f.read().strip()), signal.SIGTERM)
        except (OSError, ValueError):
            pass
        time.sleep(0.5)
        if not args.keep:
            shutil.rmtree(state, ignore_errors=True)

    def median(xs):
        xs = sorted(xs)
        return xs[len(xs) // 2]

    rw = median([w for w, _ in results["rust"]])
    pw = median([w for w, _ in results["imaplib"]])
    rr = max(r for _, r in results["rust"]) / 1024
    pr = max(r for _, r in results["imaplib"]) / 1024
    print(f"\nmailbox: {args.total} messages, {args.run} of the run; generated in {gen_s:.1f}s")
    print(f"median wall: mailharness {rw:.3f}s, imaplib {pw:.3f}s, ratio {rw / pw:.2f}x (bar <= 1.0x)")
    print(f"peak RSS: mailharness {rr:.1f} MiB (bar < 64 MiB), imaplib {pr:.1f} MiB")
    ok = rw <= pw and rr < 64
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
