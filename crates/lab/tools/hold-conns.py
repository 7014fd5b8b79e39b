#!/usr/bin/env python3
"""Holds N TCP connections open and checks, when told, that every one
still carries data: the client side of the reload-under-traffic test.

usage: hold-conns.py HOST PORT N

Opens N connections (at most 100 connecting at once, each within 10 s),
sends one byte on each and waits for its echo, then prints
`open OPENED FAILED`. Then, for every line on stdin:
  round   sends a byte on every connection and waits (10 s at most) for
          each echo; prints `round OK FAILED`, then one `lost PORT REASON`
          line per failed connection (its local port)
  close   closes them all, prints `closed` and exits
It exits on end of input too. Every wait is bounded.
"""
import asyncio
import resource
import sys

TIMEOUT = 10.0


async def exchange(conn, byte):
    reader, writer = conn
    writer.write(byte)
    await writer.drain()
    got = await reader.readexactly(1)
    if got != byte:
        raise ValueError(f"echoed {got!r}, not {byte!r}")


async def open_one(host, port, limit, n):
    async with limit:
        conn = await asyncio.wait_for(asyncio.open_connection(host, port), TIMEOUT)
        await asyncio.wait_for(exchange(conn, bytes([n % 256])), TIMEOUT)
        return conn


async def round_trip(conns, n):
    async def one(conn):
        await asyncio.wait_for(exchange(conn, bytes([n % 256])), TIMEOUT)

    results = await asyncio.gather(*(one(c) for c in conns), return_exceptions=True)
    lost = [
        (c[1].get_extra_info("sockname")[1], repr(r))
        for c, r in zip(conns, results)
        if isinstance(r, BaseException)
    ]
    return len(conns) - len(lost), lost


async def main(host, port, n):
    limit = asyncio.Semaphore(100)
    results = await asyncio.gather(
        *(open_one(host, port, limit, i) for i in range(n)), return_exceptions=True
    )
    conns = [r for r in results if not isinstance(r, BaseException)]
    print(f"open {len(conns)} {n - len(conns)}", flush=True)
    loop = asyncio.get_running_loop()
    rounds = 0
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        cmd = line.strip()
        if cmd == "round":
            rounds += 1
            ok, lost = await round_trip(conns, rounds)
            print(f"round {ok} {len(lost)}", flush=True)
            for port, why in lost:
                print(f"lost {port} {why}", flush=True)
        else:
            for _, w in conns:
                w.close()
            print("closed", flush=True)
            return


if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
