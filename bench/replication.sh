#!/usr/bin/env bash
# replication.sh: issue 17's full-sync target. The time a replica takes, from REPLICAOF to
# a complete copy (link up, sync over, every key there), of a primary holding N keys
# (16-byte keys `key:000000000042`, 100-byte values), for Redis -> Redis, Redis -> flin,
# flin -> flin and flin -> Redis; each pair on fresh directories, the pairs in a rotating
# order each round. Prints every run, then per pair the median and its ratio to
# Redis -> Redis (the issue's target: at most 1.5x).
# Then replication lag under a steady write load at half the rate redis-benchmark's
# `-t set -c 16 -P 1` reaches on a redis-server here: for each pair, from the primary's
# reply to a probe SET until a GET on the replica finds it (`bench/repl_lag.py`), p50/p99/max
# (the issue's target: p99 no worse than Redis -> Redis's), and the CPU time and context
# switches each server spent meanwhile.
#
#   bench/replication.sh [--keys N] [--repeat R] [--lag-secs S]
#
#   --keys N       keys on the primary (default 1000000)
#   --repeat R     rounds (default 3)
#   --lag-secs S   length of each lag run (default 10; 0 skips the lag runs)
#
# redis-server runs with `--save '' --appendonly no` (its default diskless full sync, without
# the 5 s delay it waits for more replicas: `--repl-diskless-sync-delay 0`); flin-server with
# its defaults (one worker per core but one, fsync everysec). Installs redis-server and
# redis-tools when missing; builds flin-server in release unless FLIN_SERVER_BIN names one.
# REDIS_ARGS and FLIN_ARGS add arguments to every redis-server and flin-server started (say
# `REDIS_ARGS='--appendonly yes'` for a Redis that persists as flin does).
# The Sentinel rounds are `ROUNDS=20 bash .ci/checks/sentinel.sh`.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"   # die, free_port, stop_pids, apt_install, ...

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly REPO
readonly SYNC_TIMEOUT_SECS=600
readonly START_TIMEOUT_SECS=60

keys=1000000
repeat=3
lag_secs=10
while (($#)); do
    case $1 in
        --keys) keys=$2; shift 2 ;;
        --repeat) repeat=$2; shift 2 ;;
        --lag-secs) lag_secs=$2; shift 2 ;;
        -h | --help) sed -n '2,24p' "$0"; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done
[[ $keys =~ ^[1-9][0-9]*$ && $repeat =~ ^[1-9][0-9]*$ ]] || die "--keys and --repeat take positive integers"

command -v redis-server >/dev/null || apt_install redis-server
command -v redis-cli >/dev/null || apt_install redis-tools
if [[ -n ${FLIN_SERVER_BIN:-} ]]; then
    flin=$FLIN_SERVER_BIN
else
    (cd "$REPO" && cargo build --release -q -p flin-server)
    flin="${CARGO_TARGET_DIR:-$REPO/target}/release/flin-server"
fi

work=$(mktemp -d)
pids=()
cleanup() {
    stop_pids "${pids[@]}"
    rm -rf "$work"
}
trap cleanup EXIT

# The load, once: N SETs as RESP, fed to each primary with redis-cli --pipe.
python3 - "$keys" >"$work/load.resp" <<'EOF'
import sys
n = int(sys.argv[1])
out = sys.stdout.buffer
value = b"v" * 100
for i in range(n):
    key = b"key:%012d" % i
    out.write(b"*3\r\n$3\r\nSET\r\n$16\r\n" + key + b"\r\n$100\r\n" + value + b"\r\n")
EOF

start() {   # KIND NAME PORT: starts a redis-server or a flin-server on a fresh directory
    local kind=$1 name=$2 port=$3
    mkdir -p "$work/$name"
    if [[ $kind == redis ]]; then
        redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
            --repl-diskless-sync-delay 0 --dir "$work/$name" ${REDIS_ARGS:-} >"$work/$name.log" 2>&1 &
    else
        "$flin" --dir "$work/$name/data" --port "$port" ${FLIN_ARGS:-} >"$work/$name.log" 2>&1 &
    fi
    pids+=($!)
    wait_ping "$kind $name" "$!" "$port" "$work/$name.log"
}

synced() {   # PORT: the replica's link is up and its sync over
    local i
    i=$(redis-cli -p "$1" info replication | tr -d '\r')
    [[ $i == *"master_link_status:up"* && $i == *"master_sync_in_progress:0"* ]]
}

# run PRIMARY_KIND REPLICA_KIND: sets `secs` to the seconds the full sync took.
run() {
    local pk=$1 rk=$2 pp rp t0 t1 n
    free_port pp
    free_port rp
    start "$pk" primary "$pp"
    redis-cli -p "$pp" --pipe <"$work/load.resp" >/dev/null
    n=$(redis-cli -p "$pp" dbsize)
    [[ $n == "$keys" ]] || die "$pk primary holds $n keys, not $keys"
    start "$rk" replica "$rp"
    t0=$(date +%s.%N)
    redis-cli -p "$rp" replicaof 127.0.0.1 "$pp" >/dev/null
    local deadline=$((SECONDS + SYNC_TIMEOUT_SECS))
    until synced "$rp"; do
        ((SECONDS < deadline)) || die "$pk -> $rk: no sync within ${SYNC_TIMEOUT_SECS}s"
        sleep 0.02
    done
    t1=$(date +%s.%N)
    n=$(redis-cli -p "$rp" dbsize)
    [[ $n == "$keys" ]] || die "$pk -> $rk: the replica holds $n keys, not $keys"
    stop_pids "${pids[@]}"
    pids=()
    rm -rf "$work/primary" "$work/replica"
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
}

pairs=("redis redis" "redis flin" "flin flin" "flin redis")
declare -A times
echo "full sync of $keys keys (16-byte keys, 100-byte values), $repeat round(s)"
for ((round = 0; round < repeat; round++)); do
    for ((j = 0; j < ${#pairs[@]}; j++)); do
        pair=${pairs[$(((j + round) % ${#pairs[@]}))]}
        # shellcheck disable=SC2086 # two words: primary kind, replica kind
        run $pair
        echo "round $((round + 1)): ${pair/ / -> }: ${secs} s"
        times[$pair]+="$secs "
    done
done

# shellcheck disable=SC2086 # the runs, one per word
base=$(median ${times["redis redis"]})
printf '\n| primary -> replica | median s | runs | / redis -> redis |\n| --- | ---: | --- | ---: |\n'
for pair in "${pairs[@]}"; do
    # shellcheck disable=SC2086 # the runs, one per word
    m=$(median ${times[$pair]})
    ratio=$(awk -v a="$m" -v b="$base" 'BEGIN { printf "%.2f", a / b }')
    echo "| ${pair/ / -> } | $m | ${times[$pair]% } | $ratio |"
done

((lag_secs > 0)) || exit 0

# PID: its CPU ticks (user + system) and context switches (all threads, voluntary or not) so
# far. On a shared machine the lag's tail moves with the neighbours; these move with the
# servers' own work.
cpu_and_switches() {
    local ticks switches
    ticks=$(awk '{ print $14 + $15 }' "/proc/$1/stat")
    switches=$(cat "/proc/$1/task/"*/status | awk '/ctxt_switches/ { s += $2 } END { print s }')
    echo "$ticks $switches"
}
# Half of Redis's unpipelined SET rate at -c 16, measured here and now.
free_port pp
start redis primary "$pp"
rate=$(redis-benchmark -p "$pp" -t set -c 16 -P 1 -n 200000 -r 100000 -d 100 -q 2>/dev/null |
    tr '\r' '\n' | awk '/requests per second/ { r = $2 } END { print int(r / 2) }')
stop_pids "${pids[@]}"
pids=()
rm -rf "$work/primary"
((rate > 0)) || die "could not measure redis-server's SET rate"
printf '\nreplication lag, %s s per pair, writer at %s SET/s (half of redis -c 16 -P 1)\n' "$lag_secs" "$rate"
printf '| primary -> replica | probes | writer SET/s | lag p50 ms | p99 ms | max ms | primary CPU s, ctx switches | replica CPU s, ctx switches |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n'
for pair in "${pairs[@]}"; do
    read -r pk rk <<<"$pair"
    free_port pp
    free_port rp
    start "$pk" primary "$pp"
    start "$rk" replica "$rp"
    redis-cli -p "$rp" replicaof 127.0.0.1 "$pp" >/dev/null
    deadline=$((SECONDS + SYNC_TIMEOUT_SECS))
    until synced "$rp"; do
        ((SECONDS < deadline)) || die "$pk -> $rk: no sync within ${SYNC_TIMEOUT_SECS}s"
        sleep 0.02
    done
    read -r pcpu0 psw0 <<<"$(cpu_and_switches "${pids[0]}")"
    read -r rcpu0 rsw0 <<<"$(cpu_and_switches "${pids[1]}")"
    line=$(python3 "$REPO/bench/repl_lag.py" "$pp" "$rp" "$rate" "$lag_secs")
    read -r pcpu1 psw1 <<<"$(cpu_and_switches "${pids[0]}")"
    read -r rcpu1 rsw1 <<<"$(cpu_and_switches "${pids[1]}")"
    read -r _ probes _ wrate _ _ p50 _ p99 _ max <<<"$line"
    pcpu=$(awk -v a="$pcpu0" -v b="$pcpu1" -v t="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", (b - a) / t }')
    rcpu=$(awk -v a="$rcpu0" -v b="$rcpu1" -v t="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", (b - a) / t }')
    echo "| ${pair/ / -> } | $probes | $wrate | $p50 | $p99 | $max | $pcpu, $((psw1 - psw0)) | $rcpu, $((rsw1 - rsw0)) |"
    stop_pids "${pids[@]}"
    pids=()
    rm -rf "$work/primary" "$work/replica"
done
