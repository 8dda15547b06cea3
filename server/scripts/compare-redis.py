#!/usr/bin/env python3
"""Side-by-side load test: redis-server 7 and flin-server under the same redis-benchmark runs.

For each cell (clients, pipeline) and each test (SET, GET) it runs
`redis-benchmark -t <test> -d 16 -r 100000 -c C -P P -n N` against each server in turn and
reports ops/s, the flin/redis ratio, and each server's CPU microseconds per operation from
/proc/PID/stat (utime + stime, all threads) read before and after the run.

Usage: compare-redis.py [--flin BIN] [--flin-args "..."] [--cells 1x1,16x1,...] [--fsync-always]
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
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


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


def bench(port, pid, test, clients, pipeline, n):
    cmd = ["redis-benchmark", "-p", str(port), "-t", test, "-d", "16", "-r", "100000",
           "-c", str(clients), "-P", str(pipeline), "-n", str(n), "-q", "--csv"]
    before = cpu_seconds(pid)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600).stdout
    after = cpu_seconds(pid)
    m = re.search(r'^"%s[^"]*","([0-9.]+)"' % test.upper(), out, re.M)
    if not m:
        sys.exit(f"cannot parse redis-benchmark output: {out!r}")
    return float(m.group(1)), (after - before) * 1e6 / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flin", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release/flin-server"))
    ap.add_argument("--flin-args", default="")
    ap.add_argument("--cells", default="1x1,16x1,16x16,50x16,1x64,16x64")
    ap.add_argument("--tests", default="set,get")
    ap.add_argument("--fsync-always", action="store_true", help="compare --fsync always vs appendfsync always")
    ap.add_argument("--seconds", type=float, default=2.5, help="rough duration of one run")
    a = ap.parse_args()
    for tool in ("redis-server", "redis-benchmark"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found (apt-get install redis-server redis-tools)")
    work = tempfile.mkdtemp(prefix="flin-vs-redis-")
    rport, fport = free_port(), free_port()
    redis = start_redis(rport, work, a.fsync_always)
    flin = start_flin(a.flin, fport, work, a.fsync_always, a.flin_args.split())
    rows = []
    try:
        for cell in a.cells.split(","):
            c, p = (int(x) for x in cell.split("x"))
            for test in a.tests.split(","):
                # Size each run from a guess of the rate so that runs take a few seconds.
                guess = {1: 40_000, 16: 500_000, 64: 1_000_000}.get(p, 500_000) * (1 if c > 1 else 0.5)
                if a.fsync_always and test == "set":
                    guess = 20_000
                n = max(20_000, int(guess * a.seconds) // 1000 * 1000)
                # Preload so GETs hit.
                r_ops, r_us = bench(rport, redis.pid, test, c, p, n)
                f_ops, f_us = bench(fport, flin.pid, test, c, p, n)
                rows.append((f"-c {c} -P {p}", test.upper(), r_ops, f_ops, r_us, f_us))
                print(f"-c {c:>2} -P {p:>2} {test.upper():<3}  redis {r_ops:>11,.0f} ops/s {r_us:6.2f} us/op"
                      f"   flin {f_ops:>11,.0f} ops/s {f_us:6.2f} us/op   ratio {f_ops / r_ops:5.2f}"
                      f"   cpu {f_us / r_us if r_us else float('nan'):5.2f}x", flush=True)
    finally:
        for proc in (redis, flin):
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)
    print()
    print("| cell | test | redis ops/s | flin ops/s | ratio | redis us/op | flin us/op | cpu ratio |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for cell, test, r_ops, f_ops, r_us, f_us in rows:
        print(f"| {cell} | {test} | {r_ops:,.0f} | {f_ops:,.0f} | {f_ops / r_ops:.2f} | {r_us:.2f} | {f_us:.2f} | "
              f"{f_us / r_us if r_us else float('nan'):.2f} |")


if __name__ == "__main__":
    main()
