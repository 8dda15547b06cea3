#!/usr/bin/env bash
# issue16.sh: issue 16's throughput targets, flin-server against redis-server in the same run:
# MULTI/SET/SET/EXEC transactions per second at -c 16 -P 1 and -c 16 -P 16, and PUBLISH
# fan-out (1 publisher, 50 subscribers, 64-byte messages) in delivered messages per second.
#
# Starts flin-server (--threads 2, a fresh --dir, default fsync everysec) and redis-server
# (--save '' and, matching flin, --appendonly yes --appendfsync everysec, no automatic AOF
# rewrite: its child would run beside flin's next run; REDIS_AOF=no gives
# --appendonly no) on free loopback ports, then for each round runs every case on
# both servers, alternating which goes first. Prints every run, then per case the median over
# rounds, the min..max spread, and flin's median over Redis's.
#
#   bench/issue16.sh [--repeat R] [--transactions N] [--messages N]
#
#   --repeat R          rounds (default 3)
#   --transactions N    measured transactions per run (default 200000; 0.5 s warmup first)
#   --messages N        PUBLISHes per fan-out run (default 50000, x 50 deliveries)
#
# Environment: FLIN_PORT, REDIS_PORT (default: free ports); FLIN_SERVER_BIN (default the
# release build); CARGO_TARGET_DIR (default <repo>/target); the release binaries must be built
# (cargo build --release -p flin-server -p flin-bench).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"   # die, free_port, wait_ping, stop_pids, median

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly REPO
readonly TARGET=${CARGO_TARGET_DIR:-$REPO/target}
readonly HOST=127.0.0.1
readonly SUBSCRIBERS=50
readonly MESSAGE_BYTES=64
readonly PUBLISH_IN_FLIGHT=64

repeat=3
transactions=200000
messages=50000
count() { [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || die "$1 needs a positive count"; }
while [[ $# -gt 0 ]]; do
    case $1 in
        --repeat) count "$1" "${2:-}"; repeat=$2; shift 2 ;;
        --transactions) count "$1" "${2:-}"; transactions=$2; shift 2 ;;
        --messages) count "$1" "${2:-}"; messages=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done

bench=$TARGET/release/flin-bench
server=${FLIN_SERVER_BIN:-$TARGET/release/flin-server}
[[ -x $bench && -x $server ]] || die "build the release binaries first"
dir=$(mktemp -d)
pids=()
cleanup() { stop_pids "${pids[@]}"; rm -rf "$dir"; }
trap cleanup EXIT
taken_ports=""
flin_port=${FLIN_PORT:-}
redis_port=${REDIS_PORT:-}
[[ -n $flin_port ]] || free_port flin_port
[[ -n $redis_port ]] || free_port redis_port
"$server" --dir "$dir/data" --port "$flin_port" --threads 2 >"$dir/flin.log" 2>&1 &
pids+=($!)
wait_ping flin-server "$!" "$flin_port" "$dir/flin.log"
if [[ ${REDIS_AOF:-yes} == no ]]; then
    redis_durability=(--appendonly no)
else
    # No automatic rewrite: its forked child would share the two cores with flin's next run.
    redis_durability=(--appendonly yes --appendfsync everysec --auto-aof-rewrite-percentage 0)
fi
mkdir -p "$dir/redis"
redis-server --port "$redis_port" --dir "$dir/redis" --save '' "${redis_durability[@]}" \
    >"$dir/redis.log" 2>&1 &
pids+=($!)
wait_ping redis-server "$!" "$redis_port" "$dir/redis.log"

echo "redis-server ${redis_durability[*]}; flin-server --threads 2 (fsync everysec)"
declare -A results
# run SERVER PORT CASE: one flin-bench run; prints and records its rate.
run() {
    local server=$1 port=$2 case=$3 out rate
    case $case in
        multi-P1) out=$("$bench" -q --addr "$HOST:$port" --mode multi --clients 16 --pipeline 1 \
                        --warmup 0.5 -n "$transactions") ;;
        multi-P16) out=$("$bench" -q --addr "$HOST:$port" --mode multi --clients 16 --pipeline 16 \
                         --warmup 0.5 -n "$((transactions * 4))") ;;
        fanout) out=$("$bench" -q --addr "$HOST:$port" --mode pubsub --subscribers "$SUBSCRIBERS" \
                      --value-size "$MESSAGE_BYTES" --pipeline "$PUBLISH_IN_FLIGHT" -n "$messages") ;;
    esac
    if [[ $case == fanout ]]; then
        rate=$(sed -n 's/.* \([0-9.]*\) delivered\/s$/\1/p' <<<"$out")
    else
        rate=$(awk '$1 == "MULTI" { print $3 }' <<<"$out")
    fi
    [[ -n $rate ]] || die "no rate in: $out"
    echo "$server $case $rate"
    results[$server.$case]+=" $rate"
}

for ((round = 0; round < repeat; round++)); do
    for case in multi-P1 multi-P16 fanout; do
        if ((round % 2 == 0)); then
            run flin "$flin_port" "$case"; run redis "$redis_port" "$case"
        else
            run redis "$redis_port" "$case"; run flin "$flin_port" "$case"
        fi
    done
done

echo
printf '%-10s %14s %22s %14s %22s %7s\n' case flin-median flin-spread redis-median redis-spread ratio
for case in multi-P1 multi-P16 fanout; do
    # shellcheck disable=SC2086 # the lists are space-separated numbers
    {
        flin_median=$(median ${results[flin.$case]})
        redis_median=$(median ${results[redis.$case]})
        flin_spread=$(printf '%s\n' ${results[flin.$case]} | sort -g | sed -n '1p;$p' | paste -sd' ' | sed 's/ /../')
        redis_spread=$(printf '%s\n' ${results[redis.$case]} | sort -g | sed -n '1p;$p' | paste -sd' ' | sed 's/ /../')
    }
    printf '%-10s %14.0f %22s %14.0f %22s %7.2f\n' "$case" "$flin_median" "$flin_spread" \
        "$redis_median" "$redis_spread" "$(awk -v f="$flin_median" -v r="$redis_median" 'BEGIN { print f / r }')"
done
