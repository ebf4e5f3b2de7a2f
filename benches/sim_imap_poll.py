#!/usr/bin/env python3
"""IMAP load on a running simulator whose qa1 INBOX already holds many messages.

    SIM_PASSWORD=... benches/sim_imap_poll.py IMAP_HOST:PORT SMTP_HOST:PORT [CLIENTS=4] [ROUNDS=200]

Measures, with Python's imaplib:
- cold: LOGIN + SELECT INBOX on a fresh simulator (the first open indexes every file);
- noop: CLIENTS sessions each sending ROUNDS NOOPs while nothing changes (ops/s);
- search: CLIENTS sessions each sending ROUNDS/10 `UID SEARCH HEADER Message-ID` (ops/s);
- polling under delivery: CLIENTS sessions polling NOOP while smtp-source delivers 5,000 more
  messages (every poll rescans a changed folder): NOOP latency p50/p99/max.
Used by benches/sim_ab.sh to compare two builds; PID=<server pid> adds the server's CPU time.
"""
import imaplib
import os
import statistics
import subprocess
import sys
import threading
import time

USER = "qa1@contoso.example"


def login(host, port):
    c = imaplib.IMAP4(host, port)
    c.login(USER, os.environ["SIM_PASSWORD"])
    return c


def parallel(n, fn):
    out = [None] * n
    ts = [threading.Thread(target=lambda i=i: out.__setitem__(i, fn(i))) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def main():
    ih, ip = sys.argv[1].rsplit(":", 1)
    smtp = sys.argv[2]
    clients = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 200
    ip = int(ip)

    t0 = time.monotonic()
    c = login(ih, ip)
    typ, data = c.select("INBOX", readonly=True)
    cold = time.monotonic() - t0
    exists = int(data[0])
    c.logout()

    def noops(_):
        c = login(ih, ip)
        c.select("INBOX", readonly=True)
        for _ in range(rounds):
            c.noop()
        c.logout()

    t0 = time.monotonic()
    parallel(clients, noops)
    noop_rate = clients * rounds / (time.monotonic() - t0)

    def searches(_):
        c = login(ih, ip)
        c.select("INBOX", readonly=True)
        for i in range(rounds // 10):
            c.uid("SEARCH", None, "HEADER", "Message-ID", f"nosuch{i}")
        c.logout()

    t0 = time.monotonic()
    parallel(clients, searches)
    search_rate = clients * (rounds // 10) / (time.monotonic() - t0)

    stop = threading.Event()
    lat = []

    def poll(_):
        c = login(ih, ip)
        c.select("INBOX", readonly=True)
        while not stop.is_set():
            s = time.monotonic()
            c.noop()
            lat.append(time.monotonic() - s)
        c.logout()

    ts = [threading.Thread(target=poll, args=(i,)) for i in range(clients)]
    for t in ts:
        t.start()
    subprocess.run(["smtp-source", "-d", "-s", "10", "-m", "5000", "-f", "bench@platform.example",
                    "-t", USER, smtp], check=True, stdout=subprocess.DEVNULL)
    time.sleep(1.0)
    stop.set()
    for t in ts:
        t.join()
    lat.sort()
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000
    print(f"cold SELECT of {exists} messages {cold * 1000:.0f} ms; NOOP {noop_rate:.0f}/s; "
          f"SEARCH HEADER {search_rate:.1f}/s; NOOP during delivery: {len(lat)} polls, "
          f"p50 {p(0.5):.2f} ms, p99 {p(0.99):.2f} ms, max {lat[-1] * 1000:.1f} ms")


main()
