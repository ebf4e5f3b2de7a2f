#!/usr/bin/env python3
"""Refusal load on a running simulator: every transaction is refused at RCPT TO and traced.

    benches/sim_refusals.py HOST:PORT [CONNECTIONS=20] [TRANSACTIONS=500] [DEPTH=1]

Each connection sends EHLO, then TRANSACTIONS times `MAIL FROM / RCPT TO / RSET`, DEPTH
transactions per write (DEPTH=1: one transaction at a time, the worst case for a server that
writes one trace record per refused transaction; larger: pipelined, RFC 2920). The tenant must
refuse 127.0.0.1's recipients (benches/sim_refusals_tenant.toml: throttling with an empty
bucket). Prints transactions per second and, when given PID=<server pid> in the environment,
the server's CPU time per transaction (user+system from /proc). Used by benches/sim_ab.sh.
"""
import asyncio
import os
import sys
import time


async def session(host, port, n, depth, counts):
    r, w = await asyncio.open_connection(host, port)

    async def replies(k):
        got = 0
        while got < k:
            line = await r.readline()
            if not line:
                raise RuntimeError("connection closed")
            if line[3:4] != b"-":
                got += 1
                counts[line[:1]] = counts.get(line[:1], 0) + 1

    await replies(1)
    w.write(b"EHLO bench.platform.example\r\n")
    await replies(1)
    txn = b"MAIL FROM:<bench@platform.example>\r\nRCPT TO:<qa1@contoso.example>\r\nRSET\r\n"
    done = 0
    while done < n:
        k = min(depth, n - done)
        w.write(txn * k)
        await replies(3 * k)
        done += k
    w.write(b"QUIT\r\n")
    await replies(1)
    w.close()


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


async def main():
    host, port = sys.argv[1].rsplit(":", 1)
    conns = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    per = int(sys.argv[3]) if len(sys.argv) > 3 else 500
    depth = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    pid = os.environ.get("PID")
    counts = {}
    c0 = cpu_ticks(pid) if pid else None
    t0 = time.monotonic()
    await asyncio.gather(*(session(host, int(port), per, depth, counts) for _ in range(conns)))
    t1 = time.monotonic()
    total = conns * per
    refused = counts.get(b"4", 0) + counts.get(b"5", 0)
    line = f"{total / (t1 - t0):.0f} txn/s ({total} transactions, {refused} refused RCPT, depth {depth})"
    if pid:
        us = (cpu_ticks(pid) - c0) * 10_000 / total
        line += f", server CPU {us:.1f} us/txn"
    print(line)


asyncio.run(main())
