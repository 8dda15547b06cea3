#!/usr/bin/env bash
# flin-server follows a live redis-server 7 primary (issue 17, replica side): keys with TTLs,
# integers, long compressible values and a list (skipped, counted) in two databases; a write
# load running while the full sync happens; diskless (`$EOF:`) and disk-based (`$<len>`)
# payloads; the primary's AUTH; a killed link resumed with a partial resync, and so is flin
# restarted cleanly (SIGTERM); a restarted
# primary (new replication id, empty) followed by a new full sync. After each step every
# string key of the primary must read the same on flin. Installs redis-server when missing.
# Bounded waits throughout; the trap stops both servers.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../../bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../bench/lib.sh"   # free_port, stop_pids, ...
cd "$(dirname "$0")/../.."

readonly START_TIMEOUT_SECS=30   # a server answering PING / logging that it is ready
readonly SYNC_TIMEOUT_SECS=60    # flin catching up with the primary
readonly PASSWORD=repl-secret

work="$(mktemp -d)"
flin_pid=""
redis_pid=""
load_pid=""
follower_pid=""
cleanup() {
    stop_pids "$load_pid" "$follower_pid" "$flin_pid" "$redis_pid"
    rm -rf "$work"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    for log in "$work/flin.log" "$work/redis.log" "$work/follower.log"; do
        [ -s "$log" ] && { echo "--- $log" >&2; tail -30 "$log" >&2; }
    done
    exit 1
}
die() { fail "$@"; }

need_redis_server_7

cargo build --release -p flin-server
target="${CARGO_TARGET_DIR:-target}/release"

# REDIS_PORT / FLIN_PORT_CHECK pin the ports (default: free ones).
redis_port=${REDIS_PORT:-}
[[ -n $redis_port ]] || free_port redis_port
primary() { redis-cli -p "$redis_port" -a "$PASSWORD" --no-auth-warning "$@"; }
replica() { redis-cli -p "$flin_port" "$@"; }

start_primary() {
    redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
        --requirepass "$PASSWORD" --repl-diskless-sync-delay 0 --dir "$work" \
        >"$work/redis.log" 2>&1 &
    redis_pid=$!
    local deadline=$((SECONDS + START_TIMEOUT_SECS))
    until [[ $(primary ping 2>/dev/null) == PONG ]]; do
        ((SECONDS < deadline)) || fail "redis-server did not start"
        sleep 0.1
    done
}

# Writes N string keys of each kind into database DB of the primary, with PREFIX.
fill() {
    local db=$1 prefix=$2 n=$3 long
    long=$(printf 'abcdefgh%.0s' $(seq 200))   # 1600 compressible bytes
    for i in $(seq "$n"); do
        echo "SET ${prefix}plain:$i value-$i"
        echo "SET ${prefix}int:$i $((i * 7919))"
        echo "SET ${prefix}ttl:$i ttl-$i EX $((1000 + i))"
        echo "SET ${prefix}long:$i $long$i"
    done | primary -n "$db" >/dev/null
}

# Every string key of database DB reads the same (value and rough TTL) on both servers.
same_data() {
    local db=$1
    primary -n "$db" --scan | sort >"$work/keys"
    grep -v '^list' "$work/keys" >"$work/strings" || true
    sed 's/^/GET /' "$work/strings" | primary -n "$db" >"$work/primary.values"
    sed 's/^/GET /' "$work/strings" | replica -n "$db" >"$work/replica.values"
    cmp -s "$work/primary.values" "$work/replica.values" \
        || fail "db $db: values differ ($(diff "$work/primary.values" "$work/replica.values" | head -5))"
    local want have
    want=$(wc -l <"$work/strings")
    have=$(replica -n "$db" dbsize)
    [[ $have == "$want" ]] || fail "db $db: flin holds $have keys, the primary $want strings"
    local ttl
    ttl=$(replica -n "$db" ttl "$(grep -m1 ttl: "$work/strings" || echo none)")
    [[ $ttl -gt 900 || $(grep -c ttl: "$work/strings") == 0 ]] || fail "db $db: TTL lost ($ttl)"
}

# Waits until flin has applied everything the primary wrote.
wait_synced() {
    local deadline=$((SECONDS + SYNC_TIMEOUT_SECS)) want="" have="" link=""
    while ((SECONDS < deadline)); do
        want=$(primary info replication | sed -n 's/^master_repl_offset:\([0-9]*\).*/\1/p')
        have=$(replica info replication | sed -n 's/^slave_repl_offset:\([0-9]*\).*/\1/p')
        link=$(replica info replication | sed -n 's/^master_link_status:\([a-z]*\).*/\1/p')
        [[ $link == up && $want == "$have" ]] && return
        sleep 0.2
    done
    fail "flin did not catch up (primary at $want, flin at $have, link $link)"
}

start_primary
fill 0 "" 300
fill 3 "db3:" 50
primary rpush list:a x y z >/dev/null
echo "primary: $(primary dbsize) keys in db 0"

# A write load that runs through the full sync.
(for i in $(seq 2000); do echo "SET live:$i $i"; echo "INCR live:counter"; done \
    | primary >/dev/null) &
load_pid=$!

"$target/flin-server" --dir "$work/data" --port "${FLIN_PORT_CHECK:-0}" --threads 2 \
    --replicaof 127.0.0.1 "$redis_port" --masterauth "$PASSWORD" >"$work/flin.log" 2>&1 &
flin_pid=$!
wait_logged_port flin-server "$flin_pid" "$work/flin.log" flin_port
wait "$load_pid" || fail "the write load failed"
load_pid=""
wait_synced
same_data 0
same_data 3
[[ $(replica get live:counter) == 2000 ]] || fail "live:counter is $(replica get live:counter)"
replica info replication | grep -q '^flin_skipped_keys:1' || fail "the list was not counted as skipped"
[[ $(replica set x y 2>&1) == READONLY* ]] || fail "flin accepted a client's write"
echo "full sync (diskless) and live load: ok"

# Writes after the sync: MULTI/EXEC, expiries, deletes, another database.
primary eval "redis.call('set','lua:1','a'); redis.call('incrby','plain:1','0')" 0 >/dev/null || true
printf 'MULTI\nSET tx:1 one\nDEL int:1\nPEXPIRE plain:2 500000\nEXEC\n' | primary >/dev/null
primary -n 3 set db3:after yes >/dev/null
wait_synced
same_data 0
same_data 3
echo "command stream: ok"

# The link drops: flin resumes from its offset.
primary client kill type replica >/dev/null
primary set after:kill 1 >/dev/null
wait_synced
same_data 0
grep -q "partial resync" "$work/flin.log" || fail "no partial resync after the dropped link"
echo "partial resync: ok"

# flin stopped cleanly (SIGTERM) and started again on its directory: it asks Redis to
# continue from the offset it had (Redis counts a partial resync), in the database the
# stream had selected (writes to db 3 after the restart come without a SELECT).
primary -n 3 set db3:before:restart 1 >/dev/null
wait_synced
partial_before=$(primary info stats | tr -d '\r' | sed -n 's/^sync_partial_ok://p')
stop_pids "$flin_pid"
flin_pid=""
[[ -f $work/data/REPL-RESUME ]] || fail "the clean stop left no replication position"
primary -n 3 set db3:while:down 1 >/dev/null
"$target/flin-server" --dir "$work/data" --port "${FLIN_PORT_CHECK:-0}" --threads 2 \
    --masterauth "$PASSWORD" >"$work/flin.log" 2>&1 &
flin_pid=$!
wait_logged_port flin-server "$flin_pid" "$work/flin.log" flin_port
primary -n 3 set db3:after:restart 1 >/dev/null
wait_synced
same_data 0
same_data 3
partial_after=$(primary info stats | tr -d '\r' | sed -n 's/^sync_partial_ok://p')
((partial_after == partial_before + 1)) \
    || fail "Redis counted no partial resync after flin's restart ($partial_before, then $partial_after)"
echo "replica restart (partial resync): ok"

# A disk-based full sync (`$<len>` payload): REPLICAOF NO ONE, then follow again.
primary config set repl-diskless-sync no >/dev/null
replica replicaof no one >/dev/null
replica set local:write 1 >/dev/null
replica replicaof 127.0.0.1 "$redis_port" >/dev/null
wait_synced
same_data 0
[[ -z $(replica get local:write) ]] || fail "a full sync kept a key the primary does not have"
echo "full sync (disk-based): ok"

# The primary restarts empty (new replication id): flin full-syncs again.
stop_pids "$redis_pid"
redis_pid=""
rm -f "$work/dump.rdb"   # written for the disk-based sync: the primary would load it
start_primary
primary set reborn 1 >/dev/null
wait_synced
same_data 0
[[ $(replica dbsize) == 1 ]] || fail "flin kept $(replica dbsize) keys of the old primary"
echo "primary restart: ok"

# The other way: flin is the primary, a redis-server follows it.
stop_pids "$redis_pid"
redis_pid=""
replica replicaof no one >/dev/null
replica flushall >/dev/null
flin_fill() {
    local db=$1 n=$2 long
    long=$(printf 'abcdefgh%.0s' $(seq 200))
    for i in $(seq "$n"); do
        echo "SET plain:$i value-$i"
        echo "SET int:$i $((i * 7919 - 100000))"
        echo "SET ttl:$i ttl-$i EX $((1000 + i))"
        echo "SET pttl:$i x PX $((5000000 + i))"
        echo "SET long:$i $long$i"
    done | replica -n "$db" >/dev/null
}
flin_fill 0 200
flin_fill 3 50
flin_fill 5 20
free_port follower_port
follower() { redis-cli -p "$follower_port" "$@"; }
redis-server --bind 127.0.0.1 --port "$follower_port" --save '' --appendonly no \
    --dir "$work" --replicaof 127.0.0.1 "$flin_port" >"$work/follower.log" 2>&1 &
follower_pid=$!
wait_ping redis-server "$follower_pid" "$follower_port" "$work/follower.log"

# Waits until the redis-server follower has applied everything flin wrote.
# (Its polls tolerate a failed redis-cli: under `set -e` and pipefail a failing `var=$(...)`
# would end the script without a word.)
follower_synced() {
    local deadline=$((SECONDS + SYNC_TIMEOUT_SECS)) want="" have="" link=""
    while ((SECONDS < deadline)); do
        want=$(replica info replication | sed -n 's/^master_repl_offset:\([0-9]*\).*/\1/p')
        have=$(follower info replication 2>/dev/null \
            | sed -n 's/^slave_repl_offset:\([0-9]*\).*/\1/p') || true
        link=$(follower info replication 2>/dev/null \
            | sed -n 's/^master_link_status:\([a-z]*\).*/\1/p') || true
        [[ $link == up && $want == "$have" ]] && return
        sleep 0.2
    done
    fail "redis-server did not catch up with flin (flin at $want, redis at $have, link $link)"
}

# Every key of database DB: name, value and absolute expiry, the same on both.
same_on_follower() {
    local db=$1 n
    replica -n "$db" --scan | sort >"$work/fkeys"
    follower -n "$db" --scan | sort >"$work/rkeys"
    cmp -s "$work/fkeys" "$work/rkeys" \
        || fail "db $db: keys differ ($(diff "$work/fkeys" "$work/rkeys" | head -5))"
    sed 's/^/GET /' "$work/fkeys" | replica -n "$db" >"$work/f.values"
    sed 's/^/GET /' "$work/fkeys" | follower -n "$db" >"$work/r.values"
    cmp -s "$work/f.values" "$work/r.values" \
        || fail "db $db: values differ ($(diff "$work/f.values" "$work/r.values" | head -5))"
    sed 's/^/PEXPIRETIME /' "$work/fkeys" | replica -n "$db" >"$work/f.ttls"
    sed 's/^/PEXPIRETIME /' "$work/fkeys" | follower -n "$db" >"$work/r.ttls"
    cmp -s "$work/f.ttls" "$work/r.ttls" \
        || fail "db $db: expiry times differ ($(diff "$work/f.ttls" "$work/r.ttls" | head -5))"
    n=$(wc -l <"$work/fkeys")
    ((n > 0)) || fail "db $db: no keys to compare"
}

follower_synced
for db in 0 3 5; do same_on_follower "$db"; done
[[ $(replica info stats | tr -d '\r' | sed -n 's/^sync_full://p') == 1 ]] \
    || fail "flin did not count the full sync"
echo "flin -> redis-server full sync: ok"

{
    echo "MULTI"; echo "SET tx:a 1"; echo "INCRBY int:1 5"; echo "EXPIRE plain:1 777"; echo "EXEC"
    echo "SET ex:1 v EX 3000"; echo "SETEX ex:2 4000 w"; echo "PEXPIRE plain:2 900000"
    echo "INCRBYFLOAT float 1.25"; echo "INCRBYFLOAT float 0.5"; echo "GETDEL plain:3"
    echo "GETEX plain:4 PX 800000"; echo "PERSIST ttl:5"; echo "SETNX plain:6 no"
    echo "APPEND long:7 tail"; echo "SET gone soon PX 100"; echo "EXPIRE plain:8 -1"
} | replica >/dev/null
printf 'SET db3:after yes\nRENAME plain:9 renamed:9\n' | replica -n 3 >/dev/null
[[ $(replica wait 1 5000) == 1 ]] || fail "WAIT did not see the redis-server acknowledge"
deadline=$((SECONDS + SYNC_TIMEOUT_SECS))
until [[ $(replica dbsize) == $(follower dbsize) && -z $(replica get gone) ]]; do
    ((SECONDS < deadline)) || fail "the expired key's DEL did not reach redis-server"
    sleep 0.1
done
follower_synced
for db in 0 3 5; do same_on_follower "$db"; done
[[ $(follower get float) == 1.75 ]] || fail "INCRBYFLOAT reached redis-server as $(follower get float)"
replica info replication | grep -q '^slave0:ip=127.0.0.1,port='"$follower_port"',state=online' \
    || fail "INFO replication does not list the redis-server: $(replica info replication)"
echo "flin -> redis-server stream: ok"
echo "replication-redis check passed"
