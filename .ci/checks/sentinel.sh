#!/usr/bin/env bash
# Redis Sentinel 7 fails a flin primary over to a flin replica (issue 17, Sentinel): a flin
# primary with two flin replicas and three sentinels (down-after 2 s). A writer runs `SET` then
# `WAIT 1 1000` in a loop and records each key WAIT acknowledged; the primary is killed with
# SIGKILL mid-load. Then: a replica is promoted and takes writes within FAILOVER_MAX_SECS, the
# other replica follows it, the old primary restarted on its data directory is turned into a
# replica of the new one by Sentinel, and no acknowledged key is missing on the new primary or
# on the replicas. ROUNDS=N (default 1) repeats it N times, each round killing the primary the
# last one promoted (issue 17's target: 20 rounds, `ROUNDS=20 bash .ci/checks/sentinel.sh`).
# Installs redis-server (which runs as redis-sentinel) when missing. Bounded waits
# throughout; the trap stops every process.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../../bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../bench/lib.sh"   # free_port, stop_pids, ...
cd "$(dirname "$0")/../.."

readonly START_TIMEOUT_SECS=30    # a process answering PING, replicas online, sentinels agreeing
readonly FAILOVER_MAX_SECS=15     # kill -9 to a replica serving writes (issue 17's target)
readonly REJOIN_TIMEOUT_SECS=60   # the old primary following the new one
readonly ROUNDS=${ROUNDS:-1}

work="$(mktemp -d)"
pids=()
writer_pid=""
cleanup() {
    stop_pids "$writer_pid" "${pids[@]}"
    rm -rf "$work"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    for log in "$work"/*.log; do
        [ -s "$log" ] && { echo "--- $log" >&2; tail -15 "$log" >&2; }
    done
    exit 1
}
die() { fail "$@"; }

need_redis_server_7 "for redis-sentinel"
cargo build --release -p flin-server
flin="${CARGO_TARGET_DIR:-target}/release/flin-server"

# Fixed ports: Sentinel knows the servers by address, and the old primary comes back on its own.
for name in p r1 r2 s1 s2 s3; do free_port "port_$name"; done
cli() { redis-cli -p "$1" "${@:2}"; }

declare -A pid_of name_of
start_flin() {   # NAME PORT [FLAGS...]
    local name=$1 port=$2
    "$flin" --dir "$work/$name" --port "$port" --threads 2 "${@:3}" >>"$work/$name.log" 2>&1 &
    pids+=($!)
    pid_of[$port]=$!
    name_of[$port]=$name
    wait_ping "flin $name" "$!" "$port" "$work/$name.log"
}

# Waits until `CONDITION` (a command) succeeds, at most SECS seconds; fails saying WHAT.
wait_until() {
    local secs=$1 what=$2 deadline=$((SECONDS + $1))
    shift 2
    until "$@"; do
        ((SECONDS < deadline)) || fail "$what not within ${secs}s"
        sleep 0.2
    done
}
online_replicas() {   # PORT N: the server at PORT has N replicas online
    [[ $(cli "$1" info replication | grep -c 'state=online') == "$2" ]]
}
link_up() {   # PORT PRIMARY_PORT: the server at PORT follows PRIMARY_PORT, link up
    local i
    i=$(cli "$1" info replication | tr -d '\r')
    [[ $i == *"master_port:$2"* && $i == *"master_link_status:up"* ]]
}

start_flin p "$port_p"
start_flin r1 "$port_r1" --replicaof 127.0.0.1 "$port_p"
start_flin r2 "$port_r2" --replicaof 127.0.0.1 "$port_p"
wait_until "$START_TIMEOUT_SECS" "two replicas online" online_replicas "$port_p" 2

for i in 1 2 3; do
    port_var="port_s$i"
    cat >"$work/s$i.conf" <<EOF
port ${!port_var}
bind 127.0.0.1
dir $work
sentinel monitor flin 127.0.0.1 $port_p 2
sentinel down-after-milliseconds flin 2000
sentinel failover-timeout flin 10000
sentinel parallel-syncs flin 1
EOF
    redis-server "$work/s$i.conf" --sentinel >"$work/s$i.log" 2>&1 &
    pids+=($!)
done
sentinels_ready() {
    local s m
    for s in "$port_s1" "$port_s2" "$port_s3"; do
        m=$(cli "$s" sentinel master flin 2>/dev/null | paste - - | tr -d '\r')
        [[ $m == *$'num-slaves\t2'* && $m == *$'num-other-sentinels\t2'* ]] || return 1
    done
}
wait_until "$START_TIMEOUT_SECS" "three sentinels seeing two replicas and each other" sentinels_ready
echo "flin primary :$port_p, replicas :$port_r1 :$port_r2, sentinels agree"

promoted() {   # sets new_primary once Sentinel names a server other than $current that takes writes
    local addr
    addr=$(cli "$port_s1" sentinel get-master-addr-by-name flin 2>/dev/null | tail -1)
    [[ $addr != "$current" && -n $addr ]] || return 1
    [[ $(cli "$addr" set after:failover 1 2>/dev/null) == OK ]] || return 1
    new_primary=$addr
}

current=$port_p
failover_secs=()
for ((round = 1; round <= ROUNDS; round++)); do
    # The writer: each key WAIT acknowledged is recorded; it stops when the primary is gone.
    : >"$work/acked"
    (
        i=0
        while :; do
            i=$((i + 1))
            reply=$(printf 'SET key:%d:%d %d\nWAIT 1 1000\n' "$round" "$i" "$i" | cli "$current" 2>/dev/null) || break
            [[ $(sed -n 2p <<<"$reply") -ge 1 ]] 2>/dev/null || break
            echo "key:$round:$i" >>"$work/acked"
        done
    ) &
    writer_pid=$!
    wait_until 30 "acknowledged writes" test -s "$work/acked"
    sleep 1   # let the load run a moment: the kill lands in the middle of it
    kill -9 "${pid_of[$current]}"
    killed_at=$SECONDS
    wait "$writer_pid" 2>/dev/null || true
    writer_pid=""
    acked=$(wc -l <"$work/acked")
    echo "round $round: primary :$current killed with $acked acknowledged writes"

    wait_until "$FAILOVER_MAX_SECS" "a replica promoted and taking writes" promoted
    failover_secs+=($((SECONDS - killed_at)))
    echo "round $round: :$new_primary takes writes $((SECONDS - killed_at)) s after the kill"
    for port in "$port_p" "$port_r1" "$port_r2"; do
        [[ $port != "$new_primary" && $port != "$current" ]] && other=$port
    done
    wait_until "$START_TIMEOUT_SECS" "the other replica following the new primary" \
        link_up "$other" "$new_primary"

    start_flin "${name_of[$current]}" "$current"
    wait_until "$REJOIN_TIMEOUT_SECS" "the old primary rejoining as a replica" \
        link_up "$current" "$new_primary"
    [[ -s $work/${name_of[$current]}/REPLICAOF ]] ||
        fail "the old primary's role was not recorded in its directory"
    [[ $(cli "$new_primary" wait 2 5000) == 2 ]] || fail "the replicas did not acknowledge"

    for port in "$new_primary" "$other" "$current"; do
        sed 's/^/EXISTS /' "$work/acked" | cli "$port" >"$work/exists"
        missing=$(grep -vc '^1$' "$work/exists" || true)
        [[ $missing == 0 ]] || fail ":$port misses $missing of the $acked acknowledged keys"
    done
    echo "round $round: no acknowledged write lost ($acked keys on all three)"
    current=$new_primary
done
echo "failover times over $ROUNDS round(s), kill -9 to writes taken: ${failover_secs[*]} s (limit $FAILOVER_MAX_SECS s)"
echo "sentinel check passed"
