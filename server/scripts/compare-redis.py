#!/usr/bin/env python3
"""Side-by-side load test: redis-server 7 and flin-server under the same redis-benchmark runs.

For each cell (clients, pipeline) and each test it runs redis-benchmark against each server
in turn and reports ops/s, the flin/redis ratio, and each server's CPU microseconds per
operation from /proc/PID/stat read before and after the run: utime + stime of all threads,
plus the CPU of its child processes (cutime + cstime of those it reaped, and the running
ones'), so redis-server's AOF rewrites, which run in a forked child, count as flin's
compaction threads do.
Tests: set and get (`-t <test> -d 16 -r 100000`), and commands of their own: setbit and
getbit (`SETBIT bit:__rand_int__ 7 1`, `GETBIT bit:__rand_int__ 7`, one small bitmap per key)
and bitcount1m (`BITCOUNT bitmap1m`, a 1 MiB value of random bytes loaded first).

With --repeat N every cell runs N times, the servers' order alternating, and the table gives
medians (and each run's ratio). With --baseline BIN a second flin-server (say, the build
before a change) runs beside the first, so the two are compared in the same conditions.

Usage: compare-redis.py [--flin BIN] [--baseline BIN] [--flin-args "..."] [--cells 1x1,16x1,...]
                        [--tests set,get,...] [--repeat N] [--fsync-always]
Needs redis-server and redis-benchmark (apt-get install redis-server redis-tools).
"""
import argparse, os, re, shutil, socket, subprocess, sys, tempfile, time

TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_seconds(pid):
    """CPU seconds of PID's threads and of its children, reaped (cutime, cstime) or running."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0  # a child that ended meanwhile: its parent's cutime has it
    ticks = sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
    children = set()
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                children.update(f.read().split())
    except OSError:
        pass
    return ticks / TICK + sum(cpu_seconds(int(c)) for c in children)


def wait_port(port, proc, what):
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{what} exited at start")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{what} did not start")


def start_redis(port, workdir, always):
    fsync = "always" if always else "everysec"
    p = subprocess.Popen(
        ["redis-server", "--port", str(port), "--dir", workdir, "--appendonly", "yes",
         "--appendfsync", fsync, "--save", "", "--daemonize", "no", "--logfile", ""],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, p, "redis-server")
    return p


def start_flin(binary, port, workdir, always, extra):
    args = [binary, "--dir", os.path.join(workdir, "flin"), "--port", str(port),
            "--fsync", "always" if always else "everysec", "--log-level", "warn"] + extra
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, p, "flin-server")
    return p


# Tests run as commands of their own rather than `-t`, with what they need loaded first.
CUSTOM = {
    "setbit": ["SETBIT", "bit:__rand_int__", "7", "1"],
    "getbit": ["GETBIT", "bit:__rand_int__", "7"],
    "bitcount1m": ["BITCOUNT", "bitmap1m"],
}
# Rough rates per test and pipeline depth, to size runs of a few seconds.
RATE_GUESS = {1: 40_000, 16: 500_000, 64: 1_000_000}


def preload(port, test):
    if test == "bitcount1m":
        value = os.urandom(1 << 20)
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"*3\r\n$3\r\nSET\r\n$8\r\nbitmap1m\r\n$%d\r\n%s\r\n" % (len(value), value))
        assert s.recv(16).startswith(b"+OK")
        s.close()


def bench(port, pid, test, clients, pipeline, n):
    if test in CUSTOM:
        what = CUSTOM[test]
    else:
        what = ["-t", test, "-d", "16"]
    cmd = ["redis-benchmark", "-p", str(port), "-r", "100000", "-c", str(clients),
           "-P", str(pipeline), "-n", str(n), "-q", "--csv"] + what
    before = cpu_seconds(pid)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600).stdout
    after = cpu_seconds(pid)
    m = re.search(r'^"(?!test")[^"]*","([0-9.]+)"', out, re.M)
    if not m:
        sys.exit(f"cannot parse redis-benchmark output: {out!r}")
    return float(m.group(1)), (after - before) * 1e6 / n


def median(xs):
    xs = sorted(xs)
    return xs[(len(xs) - 1) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flin", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release/flin-server"))
    ap.add_argument("--baseline", help="a second flin-server binary to run beside --flin")
    ap.add_argument("--flin-args", default="")
    ap.add_argument("--cells", default="1x1,16x1,16x16,50x16,1x64,16x64")
    ap.add_argument("--tests", default="set,get")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--fsync-always", action="store_true", help="compare --fsync always vs appendfsync always")
    ap.add_argument("--seconds", type=float, default=2.5, help="rough duration of one run")
    a = ap.parse_args()
    for tool in ("redis-server", "redis-benchmark"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found (apt-get install redis-server redis-tools)")
    work = tempfile.mkdtemp(prefix="flin-vs-redis-")
    servers = []
    port = free_port()
    servers.append(("redis", (port, start_redis(port, work, a.fsync_always))))
    for name, binary in (("flin", a.flin), ("base", a.baseline)):
        if binary:
            port = free_port()
            proc = start_flin(binary, port, os.path.join(work, name), a.fsync_always, a.flin_args.split())
            servers.append((name, (port, proc)))
    rows = []
    try:
        for test in a.tests.split(","):
            for _, (port, proc) in servers:
                preload(port, test)
        for cell in a.cells.split(","):
            c, p = (int(x) for x in cell.split("x"))
            for test in a.tests.split(","):
                guess = RATE_GUESS.get(p, 500_000) * (1 if c > 1 else 0.5)
                if a.fsync_always and test in ("set", "setbit"):
                    guess = 20_000
                if test == "bitcount1m":
                    guess = 20_000
                n = max(20_000, int(guess * a.seconds) // 1000 * 1000)
                # The baseline may predate a custom test's command: it runs set and get only.
                here = [sv for sv in servers if sv[0] != "base" or test not in CUSTOM]
                runs = {name: [] for name, _ in here}
                for r in range(a.repeat):
                    order = here if r % 2 == 0 else here[::-1]
                    for name, (port, proc) in order:
                        runs[name].append(bench(port, proc.pid, test, c, p, n))
                med = {name: (median([x[0] for x in v]), median([x[1] for x in v])) for name, v in runs.items()}
                ratios = [f / r for (f, _), (r, _) in zip(runs["flin"], runs["redis"])]
                rows.append((f"-c {c} -P {p}", test.upper(), med, ratios))
                line = f"-c {c:>2} -P {p:>2} {test.upper():<10}"
                for name, (ops, us) in med.items():
                    line += f"  {name} {ops:>11,.0f} ops/s {us:6.2f} us/op"
                line += f"  ratio {med['flin'][0] / med['redis'][0]:5.2f} (runs {', '.join(f'{x:.2f}' for x in ratios)})"
                print(line, flush=True)
    finally:
        for _, (port, proc) in servers:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)
    print()
    base = " base ops/s | base/flin | base us/op |" if a.baseline else ""
    print(f"| cell | test | redis ops/s | flin ops/s | ratio | runs |{base} redis us/op | flin us/op | cpu ratio |")
    print("|---|---|---:|---:|---:|---|" + ("---:|---:|---:|" if a.baseline else "") + "---:|---:|---:|")
    for cell, test, med, ratios in rows:
        (r_ops, r_us), (f_ops, f_us) = med["redis"], med["flin"]
        extra = ""
        if a.baseline:
            extra = (f" {med['base'][0]:,.0f} | {med['base'][0] / f_ops:.2f} | {med['base'][1]:.2f} |"
                     if "base" in med else " - | - | - |")
        print(f"| {cell} | {test} | {r_ops:,.0f} | {f_ops:,.0f} | {f_ops / r_ops:.2f} | "
              f"{', '.join(f'{x:.2f}' for x in ratios)} |{extra} {r_us:.2f} | {f_us:.2f} | "
              f"{f_us / r_us if r_us else float('nan'):.2f} |")


if __name__ == "__main__":
    main()
