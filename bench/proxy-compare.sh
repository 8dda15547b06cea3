#!/usr/bin/env bash
# proxy-compare.sh: three flin-servers vs three redis-servers, each set behind nutcracker.
#
# Starts three flin-servers (--threads 1, unpinned, fsync everysec) and three
# redis-servers (AOF, fsync everysec, no RDB snapshots) on free 127.0.0.1 ports, one nutcracker
# (twemproxy) in front of each set with the same ketama pool, and runs the same redis-benchmark
# load through each proxy, cell by cell, alternating which set goes first. Prints ops/s through
# each proxy, the ratio, and CPU per operation of the three servers together and of the proxy
# (utime+stime from /proc/PID/stat).
#
#   bench/proxy-compare.sh [--requests N] [--repeat R]
#
#   --requests N   requests per test in the unpipelined cell (default 200000); the pipelined
#                  cell uses PIPELINED_FACTOR times as many
#   --repeat R     measure every test R times per set, alternating order, and report medians
#                  (default 3)
#
# Environment: CARGO_TARGET_DIR (default <repo>/target).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"   # die, free_port, wait_ping, stop_pids, ...

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly REPO
readonly TARGET=${CARGO_TARGET_DIR:-$REPO/target}
readonly FLIN_SERVER=$TARGET/release/flin-server
readonly HOST=127.0.0.1
readonly SHARDS=3
readonly VALUE_SIZE_BYTES=16
readonly KEYSPACE=100000
readonly PIPELINED_FACTOR=5
readonly WARMUP_REQUESTS=100000    # unmeasured SETs through each proxy (fills the keyspace)
readonly START_TIMEOUT_SECS=10     # longest wait for a process to answer PING
readonly POLL_INTERVAL_SECS=0.1
readonly PORT_ATTEMPTS_MAX=100
readonly RUN_TIMEOUT_SECS=600      # one redis-benchmark run
# The matrix: clients:pipeline.
readonly CELLS=("50:16" "16:1")

requests=200000
repeat=3

while [[ $# -gt 0 ]]; do
    case $1 in
        --requests) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || die "--requests needs a positive count"
                    requests=$2; shift 2 ;;
        --repeat) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || die "--repeat needs a positive count"
                  repeat=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (try --help)" ;;
    esac
done

# --- tools ------------------------------------------------------------------------------------
PATH=$PATH:/usr/sbin:/sbin   # Debian installs nutcracker in /usr/sbin
missing=()
command -v nutcracker >/dev/null || missing+=(nutcracker)
command -v redis-server >/dev/null || missing+=(redis-server)
{ command -v redis-benchmark >/dev/null && command -v redis-cli >/dev/null; } || missing+=(redis-tools)
if ((${#missing[@]})); then
    apt_install "${missing[@]}"
fi

echo "proxy-compare.sh: cargo build --release -p flin-server (target $TARGET)" >&2
(cd "$REPO" && cargo build --release -p flin-server >&2) || die "build failed"
[[ -x $FLIN_SERVER ]] || die "no $FLIN_SERVER after the build"

CLK_TCK=$(getconf CLK_TCK)
readonly CLK_TCK

# --- processes --------------------------------------------------------------------------------
WORK=$(mktemp -d -t flin-proxy-compare.XXXXXX)
pids=()

cleanup() {
    stop_pids "${pids[@]}"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

declare -A server_pids proxy_pid proxy_port   # by set: flin | redis

# start_set SET: three servers of SET and a nutcracker in front of them.
start_set() {
    local set=$1 s port dir pid stats_port servers=""
    server_pids[$set]=""
    for ((s = 1; s <= SHARDS; s++)); do
        free_port port
        dir=$WORK/$set$s
        mkdir -p "$dir"
        if [[ $set == flin ]]; then
            # Unpinned like redis-server (FLIN_PIN_CORES=no): pinned, all three would share
            # the first core.
            FLIN_PIN_CORES=no "$FLIN_SERVER" --dir "$dir" --bind "$HOST" --port "$port" \
                --threads 1 --fsync everysec --log-level warn >"$dir.log" 2>&1 &
        else
            redis-server --bind "$HOST" --port "$port" --dir "$dir" --appendonly yes \
                --appendfsync everysec --save '' >"$dir.log" 2>&1 &
        fi
        pid=$!
        pids+=("$pid")
        wait_ping "$set-server $s" "$pid" "$port" "$dir.log"
        server_pids[$set]+=" $pid"
        servers+="   - $HOST:$port:1 $set$s"$'\n'
    done
    free_port "proxy_port[$set]"
    free_port stats_port
    cat >"$WORK/$set.yml" <<EOF
$set:
  listen: $HOST:${proxy_port[$set]}
  redis: true
  hash: fnv1a_64
  hash_tag: "{}"
  distribution: ketama
  timeout: 2000
  auto_eject_hosts: false
  servers:
$servers
EOF
    nutcracker --conf-file "$WORK/$set.yml" --stats-addr "$HOST" --stats-port "$stats_port" \
        --output "$WORK/$set-nutcracker.log" &
    proxy_pid[$set]=$!
    pids+=("$!")
    wait_ping "nutcracker ($set)" "${proxy_pid[$set]}" "${proxy_port[$set]}" "$WORK/$set-nutcracker.log"
    run_load "${proxy_port[$set]}" set 50 16 "$WARMUP_REQUESTS" >/dev/null
    echo "proxy-compare.sh: $set: servers${server_pids[$set]}, nutcracker ${proxy_pid[$set]} on port ${proxy_port[$set]}" >&2
}

# run_load PORT TEST CLIENTS PIPELINE N: prints the ops/s of TEST (set|get).
run_load() {
    local port=$1 test=$2 clients=$3 pipeline=$4 n=$5 out rps
    # redis-benchmark first asks for CONFIG GET, which twemproxy does not forward: it warns on
    # stderr and carries on.
    out=$(timeout "$RUN_TIMEOUT_SECS" redis-benchmark -h "$HOST" -p "$port" -t "$test" \
        -d "$VALUE_SIZE_BYTES" -r "$KEYSPACE" -n "$n" -c "$clients" -P "$pipeline" --csv 2>/dev/null) \
        || die "redis-benchmark failed through port $port"
    rps=$(grep "^\"${test^^}\"," <<<"$out" | head -1 | cut -d, -f2 | tr -d '"')
    [[ -n $rps ]] || die "no ${test^^} result in: $out"
    echo "$rps"
}

# measure SET TEST CLIENTS PIPELINE N: prints "ops/s servers_cpu_us_per_op proxy_cpu_us_per_op".
measure() {
    local set=$1 test=$2 clients=$3 pipeline=$4 n=$5 servers_before proxy_before rps
    # shellcheck disable=SC2086 # the pid list splits into arguments
    servers_before=$(cpu_ticks ${server_pids[$set]})
    proxy_before=$(cpu_ticks "${proxy_pid[$set]}")
    rps=$(run_load "${proxy_port[$set]}" "$test" "$clients" "$pipeline" "$n")
    # shellcheck disable=SC2086
    awk -v rps="$rps" -v s="$(($(cpu_ticks ${server_pids[$set]}) - servers_before))" \
        -v p="$(($(cpu_ticks "${proxy_pid[$set]}") - proxy_before))" -v hz="$CLK_TCK" -v n="$n" \
        'BEGIN { printf "%s %.3f %.3f\n", rps, s * 1e6 / hz / n, p * 1e6 / hz / n }'
}

# --- the matrix -------------------------------------------------------------------------------
start_set redis
start_set flin

rows=()   # "test|cell|redis_ops|flin_ops|redis_cpu|flin_cpu|redis_proxy_cpu|flin_proxy_cpu"
for index in "${!CELLS[@]}"; do
    clients=${CELLS[index]%:*}
    pipeline=${CELLS[index]#*:}
    n=$requests
    ((pipeline > 1)) && n=$((requests * PIPELINED_FACTOR))
    for test in set get; do
        declare -A ops=() cpu=() proxy_cpu=()
        echo "proxy-compare.sh: ${test^^} c$clients P$pipeline, $n requests x $repeat" >&2
        for ((round = 0; round < repeat; round++)); do
            order=(redis flin)
            (((index + round) % 2 == 1)) && order=(flin redis)
            for set in "${order[@]}"; do
                result=$(measure "$set" "$test" "$clients" "$pipeline" "$n")
                read -r r c p <<<"$result"
                ops[$set]+=" $r"
                cpu[$set]+=" $c"
                proxy_cpu[$set]+=" $p"
            done
        done
        # shellcheck disable=SC2086 # the lists split into arguments
        rows+=("${test^^}|c$clients P$pipeline|$(median ${ops[redis]})|$(median ${ops[flin]})|$(median ${cpu[redis]})|$(median ${cpu[flin]})|$(median ${proxy_cpu[redis]})|$(median ${proxy_cpu[flin]})")
        unset ops cpu proxy_cpu
    done
done

# --- output -----------------------------------------------------------------------------------
echo
echo "redis-benchmark through nutcracker $(nutcracker --version 2>&1 | sed -n '1s/.*-//p') to $SHARDS shards;" \
    "$requests requests unpipelined (x$PIPELINED_FACTOR pipelined), ${VALUE_SIZE_BYTES}-byte values," \
    "$KEYSPACE keys, median of $repeat"
echo
echo "| test | cell | ops/s 3x redis | ops/s 3x flin | flin/redis | servers CPU us/op redis / flin | proxy CPU us/op redis / flin |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
for row in "${rows[@]}"; do
    IFS='|' read -r test cell ro fo rc fc rp fp <<<"$row"
    awk -v t="$test" -v c="$cell" -v ro="$ro" -v fo="$fo" -v rc="$rc" -v fc="$fc" -v rp="$rp" -v fp="$fp" \
        'BEGIN { printf "| %s | %s | %.0f | %.0f | %.2f | %.2f / %.2f | %.2f / %.2f |\n", t, c, ro, fo, (ro > 0 ? fo / ro : 0), rc, fc, rp, fp }'
done
