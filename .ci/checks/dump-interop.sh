#!/usr/bin/env bash
# DUMP/RESTORE between flin-server and redis-server 7, both ways: values of every RDB string
# form (integers, short and long plain strings, LZF-compressible text, incompressible binary,
# empty, 1 MiB) are set in one server, DUMPed, RESTOREd into the other with a TTL, and must
# come back as the same bytes with the TTL; flin's DUMP must be the same bytes as Redis's.
# A payload of another type (a Redis list) must get Redis's "Bad data format" from flin.
# Installs redis-server when missing. Bounded waits throughout; the trap stops both servers.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../../bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../bench/lib.sh"   # wait_logged_port, stop_pids, ...
cd "$(dirname "$0")/../.."

readonly START_TIMEOUT_SECS=30   # flin-server logging that it is ready

work="$(mktemp -d)"
flin_pid=""
redis_pid=""
cleanup() {
    stop_pids "$flin_pid" "$redis_pid"
    rm -rf "$work"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    for log in "$work/flin.log" "$work/redis.log"; do
        [ -s "$log" ] && { echo "--- $log" >&2; tail -20 "$log" >&2; }
    done
    exit 1
}
die() { fail "$@"; }

need_redis_server_7
command -v python3 >/dev/null || apt_install python3

cargo build --release -p flin-server
target="${CARGO_TARGET_DIR:-target}/release"

free_port redis_port
redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no --daemonize no \
    --dir "$work" >"$work/redis.log" 2>&1 &
redis_pid=$!
wait_ping redis-server "$redis_pid" "$redis_port" "$work/redis.log"

FLIN_LOG_LEVEL=info "$target/flin-server" --dir "$work/data" --port 0 --threads 2 \
    >"$work/flin.log" 2>&1 &
flin_pid=$!
wait_logged_port flin-server "$flin_pid" "$work/flin.log" flin_port
echo "redis-server on $redis_port, flin-server on $flin_port"

timeout 300 python3 - "$redis_port" "$flin_port" <<'EOF' || fail "DUMP/RESTORE did not interoperate (above)"
import random, socket, sys

class Conn:
    """A RESP2 client that sends binary arguments and reads one reply."""
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", int(port)), timeout=30)
        self.buf = b""

    def call(self, *args):
        args = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        req = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
        self.s.sendall(req)
        return self.reply()

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(1 << 20)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self):
        line = self.line()
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b":"):
            return rest
        if kind == b"-":
            return ("error", rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.s.recv(1 << 20)
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data
        if kind == b"*":
            return [self.reply() for _ in range(int(rest))]
        raise ValueError(line)

redis, flin = Conn(sys.argv[1]), Conn(sys.argv[2])
servers = {"redis": redis, "flin": flin}
rng = random.Random(20)
values = {
    "int8": b"-7", "int16": b"300", "int32": b"-2147483648", "int64": b"9223372036854775807",
    "not-canonical": b"007", "empty": b"", "short": b"hello", "len63": b"x" * 63, "len64": b"y" * 64,
    "len16384": bytes(rng.randrange(256) for _ in range(16384)),
    "text": b"the quick brown fox jumps over the lazy dog " * 50,
    "runs": b"a" * 5000 + b"b" * 5000,
    "binary": bytes(rng.randrange(256) for _ in range(3000)),
    "mib": (b"0123456789abcdef" * 32 + bytes(rng.randrange(256) for _ in range(512))) * 1024,
}
failures = []
for name, value in values.items():
    for src_name, dst_name in (("redis", "flin"), ("flin", "redis")):
        src, dst = servers[src_name], servers[dst_name]
        key = f"{name}:{src_name}-to-{dst_name}"
        assert src.call("SET", key, value) == b"OK"
        payload = src.call("DUMP", key)
        other = dst.call("SET", "probe", value), dst.call("DUMP", "probe")
        if payload != other[1]:
            failures.append(f"{name}: {src_name}'s DUMP differs from {dst_name}'s")
        got = dst.call("RESTORE", key, 100000, payload)
        if got != b"OK":
            failures.append(f"{name}: RESTORE into {dst_name} answered {got!r}")
            continue
        if dst.call("GET", key) != value:
            failures.append(f"{name}: {src_name} -> {dst_name} changed the value")
        pttl = int(dst.call("PTTL", key))
        if not 90000 < pttl <= 100000:
            failures.append(f"{name}: {src_name} -> {dst_name} PTTL {pttl}")
        if dst.call("RESTORE", key, 0, payload) != ("error", b"BUSYKEY Target key name already exists."):
            failures.append(f"{name}: no BUSYKEY from {dst_name}")
assert redis.call("RPUSH", "list", "a", "b") == b"2"
got = flin.call("RESTORE", "list", 0, redis.call("DUMP", "list"))
if got != ("error", b"ERR Bad data format"):
    failures.append(f"a list's payload: flin answered {got!r}")
if flin.call("PING") != b"PONG":
    failures.append("flin's connection did not survive the list payload")
for f in failures:
    print("FAIL:", f, file=sys.stderr)
print(f"{len(values)} values, both ways: {len(failures)} failures")
sys.exit(1 if failures else 0)
EOF
echo "dump-interop check passed"
