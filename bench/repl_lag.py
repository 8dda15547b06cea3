#!/usr/bin/env python3
"""Replication lag under a steady write load (issue 17): how long after a write is
acknowledged by the primary it can be read on the replica.

Usage: repl_lag.py PRIMARY_PORT REPLICA_PORT RATE SECONDS

A writer sends SETs to the primary at RATE per second (pipelined in 5 ms batches, 100-byte
values over 100,000 keys); a prober, every 20 ms, sets `lag:probe:<n>` on the primary and,
once the primary answered, polls the replica with GET until the key is there. Prints one
line: probes, the writer's achieved rate, and lag p50 / p99 / max in milliseconds.
Standard library only; every socket has a timeout, and a probe not seen within 10 s fails.
"""

import socket
import sys
import threading
import time

PROBE_EVERY_S = 0.02
PROBE_TIMEOUT_S = 10.0
BATCH_S = 0.005


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def cmd(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class Replies:
    """Reads RESP replies (simple strings, errors, integers, bulk strings) off a socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read(self):
        line = self._line()
        if line[:1] == b"-":
            raise RuntimeError(line.decode())
        if line[:1] == b"$":
            n = int(line[1:])
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("server closed the connection")
                self.buf += chunk
            body, self.buf = self.buf[:n], self.buf[n + 2:]
            return body
        return line[1:]


def writer(port, rate, stop, done):
    s = connect(port)
    r = Replies(s)
    value = b"w" * 100
    sent = 0
    start = time.monotonic()
    while not stop.is_set():
        due = int((time.monotonic() - start) * rate)
        n = due - sent
        if n > 0:
            s.sendall(b"".join(cmd("SET", "lag:key:%d" % ((sent + i) % 100000), value) for i in range(n)))
            for _ in range(n):
                r.read()
            sent += n
        time.sleep(BATCH_S)
    done.append(sent / (time.monotonic() - start))


def main():
    primary, replica, rate, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    stop = threading.Event()
    achieved = []
    w = threading.Thread(target=writer, args=(primary, rate, stop, achieved), daemon=True)
    w.start()
    p, q = connect(primary), connect(replica)
    pr, qr = Replies(p), Replies(q)
    lags = []
    n = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        n += 1
        key = "lag:probe:%d" % n
        p.sendall(cmd("SET", key, "1"))
        pr.read()
        acked = time.monotonic()
        while True:
            q.sendall(cmd("GET", key))
            if qr.read() is not None:
                break
            if time.monotonic() - acked > PROBE_TIMEOUT_S:
                sys.exit("probe %s not on the replica after %.0f s" % (key, PROBE_TIMEOUT_S))
        lags.append((time.monotonic() - acked) * 1000)
        time.sleep(PROBE_EVERY_S)
    stop.set()
    w.join(timeout=10)
    lags.sort()

    def pct(q):
        return lags[min(len(lags) - 1, int(q * len(lags)))]

    print("probes %d writer %.0f lag_ms p50 %.3f p99 %.3f max %.3f"
          % (len(lags), achieved[0] if achieved else 0, pct(0.5), pct(0.99), lags[-1]))


if __name__ == "__main__":
    main()
