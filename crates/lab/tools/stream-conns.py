#!/usr/bin/env python3
"""Long-lived TCP streams whose every byte is checked: the two ends of the
failover test (cargo xtask failover, crates/lab/src/failover.rs).

usage: stream-conns.py server PORT
       stream-conns.py client HOST PORT N

Each connection carries a stream the client writes: a 4-byte connection id,
then the bytes of a pattern that depends on the id and the offset. The
server checks every byte it receives against the pattern and sends it all
back; the client checks every byte of the echo. A wrong byte resets the
connection (the server) or counts it broken (the client).

The client opens N connections (each within 5 s), then every 100 ms sends
CHUNK bytes on each (at most WINDOW not yet echoed), and prints one JSON
object per line. It starts with {"event": "connected", ...}; then, for each
line on stdin:
  mark        from now on, the longest stall counts from here; prints
              {"event": "marked"}
  status      {"event": "status", "open", "broken", "reasons",
              "all_progressed" (every open connection had an echo since the
              mark), "max_stall_ms" (the longest a chunk waited for its
              echo since the mark, including chunks still waiting)}
  probe K     K new connections, each sends 4 KiB and checks the echo, then
              closes: {"event": "probe", "ok", "failed"}
  finish      stops sending, waits (10 s at most) for every echo, closes
              all: {"event": "done", "open", "broken", "bytes"}; then exits
It exits on end of input too. Every wait is bounded.
"""
import collections
import json
import os
import resource
import selectors
import socket
import struct
import sys
import time

CHUNK = 512
WINDOW = 64 * 1024
TICK = 0.1
# The pattern repeats after PERIOD bytes (a prime, so that no chunk size
# lines up with it); connection c starts it at offset c * 977.
PERIOD = 65521
BASE = bytes(((i * 31) + (i >> 8)) & 0xFF for i in range(PERIOD))
BASE2 = BASE + BASE


def expected(cid, offset, n):
    """The n stream bytes from `offset` (past the id) of connection cid."""
    out = bytearray()
    while n > 0:
        start = (offset + cid * 977) % PERIOD
        take = min(n, PERIOD)
        out += BASE2[start : start + take]
        offset += take
        n -= take
    return bytes(out)


def linger_reset(sock):
    """Close with a RST: the peer sees at once that something was wrong."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


# ---------------------------------------------------------------- server


class Echo:
    def __init__(self, sock):
        self.sock = sock
        self.head = b""
        self.cid = None
        self.got = 0
        self.out = bytearray()


def serve(port):
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("0.0.0.0", port))
    lsock.listen(1024)
    lsock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ, None)

    def drop(e, why):
        if why:
            print(f"reset {e.cid}: {why}", file=sys.stderr, flush=True)
        sel.unregister(e.sock)
        linger_reset(e.sock) if why else e.sock.close()

    while True:
        for key, mask in sel.select():
            if key.data is None:
                try:
                    s, _ = lsock.accept()
                except OSError:
                    continue
                s.setblocking(False)
                sel.register(s, selectors.EVENT_READ, Echo(s))
                continue
            e = key.data
            if mask & selectors.EVENT_READ:
                try:
                    data = e.sock.recv(65536)
                except OSError:
                    drop(e, None)
                    continue
                if not data:
                    drop(e, None)
                    continue
                e.out += data
                if e.cid is None:
                    need = 4 - len(e.head)
                    e.head += data[:need]
                    data = data[need:]
                    if len(e.head) == 4:
                        e.cid = struct.unpack("!I", e.head)[0]
                if data:
                    if data != expected(e.cid, e.got, len(data)):
                        drop(e, f"wrong bytes at offset {e.got}")
                        continue
                    e.got += len(data)
            if e.out:
                try:
                    n = e.sock.send(e.out)
                    del e.out[:n]
                except BlockingIOError:
                    pass
                except OSError:
                    drop(e, None)
                    continue
            # Write interest only while there is something left to echo; no
            # reading while a megabyte waits (the client's window is less).
            ev = selectors.EVENT_READ if len(e.out) < (1 << 20) else 0
            if e.out:
                ev |= selectors.EVENT_WRITE
            sel.modify(e.sock, ev, e)


# ---------------------------------------------------------------- client


class Stream:
    def __init__(self, cid, sock):
        self.cid = cid
        self.sock = sock
        self.pending = bytearray(struct.pack("!I", cid))
        self.queued = 0  # pattern bytes put in `pending` so far
        self.echoed = -4  # pattern bytes echoed and checked (the id first)
        self.chunks = collections.deque()  # (end offset, time written)
        self.progress = 0.0  # time of the last echo
        self.broken = None


def client(host, port, n):
    # Room for N sockets and the probes.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, n + 1024))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    sel = selectors.DefaultSelector()
    streams = []
    failed = 0
    for cid in range(n):
        try:
            s = socket.create_connection((host, port), timeout=5)
        except OSError as e:
            failed += 1
            print(f"connection {cid}: {e}", file=sys.stderr, flush=True)
            continue
        s.setblocking(False)
        st = Stream(cid, s)
        st.progress = time.monotonic()
        streams.append(st)
        sel.register(s, selectors.EVENT_READ, st)
    say({"event": "connected", "open": len(streams), "failed": failed})
    os.set_blocking(0, False)
    sel.register(0, selectors.EVENT_READ, "stdin")
    stdin = b""
    mark = time.monotonic()
    max_stall = 0.0
    next_tick = time.monotonic()
    sending = True
    finish_by = None

    def lost(st, why):
        st.broken = why
        try:
            sel.unregister(st.sock)
        except (KeyError, ValueError):
            pass
        st.sock.close()

    def flush(st):
        try:
            k = st.sock.send(st.pending)
        except BlockingIOError:
            return
        except OSError as e:
            lost(st, f"send: {e}")
            return
        del st.pending[:k]

    while True:
        now = time.monotonic()
        if sending and now >= next_tick:
            next_tick = now + TICK
            for st in streams:
                if st.broken or st.queued - st.echoed > WINDOW:
                    continue
                st.pending += expected(st.cid, st.queued, CHUNK)
                st.queued += CHUNK
                st.chunks.append((st.queued, now))
                flush(st)
        for st in streams:
            if not st.broken:
                ev = selectors.EVENT_READ | (selectors.EVENT_WRITE if st.pending else 0)
                sel.modify(st.sock, ev, st)
        timeout = max(0.0, next_tick - time.monotonic()) if sending else 0.1
        for key, mask in sel.select(timeout):
            if key.data == "stdin":
                try:
                    chunk = os.read(0, 4096)
                except BlockingIOError:
                    continue
                if not chunk:
                    return
                stdin += chunk
                while b"\n" in stdin:
                    line, stdin = stdin.split(b"\n", 1)
                    words = line.decode().split()
                    if not words:
                        continue
                    now = time.monotonic()
                    if words[0] == "mark":
                        mark, max_stall = now, 0.0
                        say({"event": "marked"})
                    elif words[0] == "status":
                        live = [s for s in streams if not s.broken]
                        waiting = [now - max(s.chunks[0][1], mark) for s in live if s.chunks]
                        say(
                            {
                                "event": "status",
                                "open": len(live),
                                "broken": len(streams) - len(live),
                                "reasons": sorted({s.broken for s in streams if s.broken}),
                                "all_progressed": all(s.progress > mark for s in live),
                                "max_stall_ms": round(1000 * max([max_stall] + waiting)),
                            }
                        )
                    elif words[0] == "probe":
                        say(probe(host, port, int(words[1]), n))
                    elif words[0] == "finish":
                        sending = False
                        finish_by = now + 10
                    else:
                        say({"event": "error", "what": f"unknown command {words[0]}"})
                continue
            st = key.data
            if st.broken:
                continue
            if mask & selectors.EVENT_WRITE:
                flush(st)
            if st.broken or not mask & selectors.EVENT_READ:
                continue
            try:
                data = st.sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError as e:
                lost(st, f"recv: {e}")
                continue
            if not data:
                lost(st, "closed by the server")
                continue
            if st.echoed < 0:
                head_left = -st.echoed
                head = data[:head_left]
                if head != struct.pack("!I", st.cid)[4 - head_left :][: len(head)]:
                    lost(st, "wrong id echoed")
                    continue
                st.echoed += len(head)
                data = data[len(head) :]
            if data:
                if data != expected(st.cid, st.echoed, len(data)):
                    lost(st, f"wrong bytes echoed at offset {st.echoed}")
                    continue
                st.echoed += len(data)
            now = time.monotonic()
            st.progress = now
            while st.chunks and st.chunks[0][0] <= st.echoed:
                _, t = st.chunks.popleft()
                max_stall = max(max_stall, now - max(t, mark))
        if finish_by is not None:
            live = [s for s in streams if not s.broken]
            done = all(s.echoed == s.queued and not s.pending for s in live)
            if done or time.monotonic() > finish_by:
                for s in live:
                    if s.echoed != s.queued:
                        lost(s, "echo incomplete at the end")
                    else:
                        sel.unregister(s.sock)
                        s.sock.close()
                say(
                    {
                        "event": "done",
                        "open": len([s for s in streams if not s.broken]),
                        "broken": len([s for s in streams if s.broken]),
                        "reasons": sorted({s.broken for s in streams if s.broken}),
                        "bytes": sum(s.echoed for s in streams if s.echoed > 0),
                    }
                )
                return


def probe(host, port, k, first_id):
    """k short connections, each 4 KiB out and back, checked."""
    ok = failed = 0
    for i in range(k):
        cid = first_id + i
        want = struct.pack("!I", cid) + expected(cid, 0, 4096)
        try:
            with socket.create_connection((host, port), timeout=5) as s:
                s.settimeout(5)
                s.sendall(want)
                got = b""
                while len(got) < len(want):
                    b = s.recv(65536)
                    if not b:
                        break
                    got += b
            if got == want:
                ok += 1
            else:
                failed += 1
        except OSError:
            failed += 1
    return {"event": "probe", "ok": ok, "failed": failed}


def say(obj):
    print(json.dumps(obj), flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "server":
        serve(int(sys.argv[2]))
    elif len(sys.argv) == 5 and sys.argv[1] == "client":
        client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit(__doc__)
