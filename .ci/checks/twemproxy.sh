#!/usr/bin/env bash
# twemproxy.sh: three flin-servers behind nutcracker (twemproxy), checked end to end.
#
# Guards the deployment docs/SCALING.md describes: flin shards behind twemproxy with ketama
# consistent hashing. Starts three flin-servers and one nutcracker on free 127.0.0.1 ports,
# with two pools over the same three servers: "eject" (auto_eject_hosts: true,
# server_failure_limit: 1) and "steady" (auto_eject_hosts: false). Then:
#   1. writes KEYS_TOTAL keys through the eject pool, pipelined, every reply checked;
#   2. reads every key back through both pools (same servers and names: the same ring);
#   3. asks each server directly which keys it holds: exactly one holds each key, with the
#      value written, and DBSIZE agrees; each server's share is within SHARE_PCT_MIN..MAX;
#   4. MGET across all three shards through the proxy; MSET across shards with hash tags
#      ("{key:...}:tag" lands on the owner of "key:...");
#   5. SIGKILLs one server: through both pools every key of the two survivors still reads
#      back; the eject pool (after ejection, waited for in a bounded loop) answers the dead
#      shard's keys with nil, the steady pool with an error;
#   6. restarts that server on its data: through the steady pool every key reads back again.
# Every step has a time limit; on any failure it says what failed, shows the logs' tails and
# exits 1. Runs on a fresh machine as root: installs nutcracker and redis tools when missing.
#
# Environment: CARGO_TARGET_DIR (default <repo>/target).
set -Eeuo pipefail
# shellcheck source-path=SCRIPTDIR source=../../bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../bench/lib.sh"   # free_port, wait_ping, stop_pids, ...

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
readonly REPO
readonly TARGET=${CARGO_TARGET_DIR:-$REPO/target}
readonly FLIN_SERVER=$TARGET/release/flin-server
readonly HOST=127.0.0.1
readonly SERVERS=3
readonly KEYS_TOTAL=100000
readonly SHARE_PCT_MIN=20
readonly SHARE_PCT_MAX=47
readonly MGET_KEYS_PER_SHARD=20
readonly PROXY_TIMEOUT_MS=2000           # nutcracker "timeout": per request to a server
readonly PROXY_RETRY_TIMEOUT_MS=60000    # ejected stays ejected for the rest of the run
readonly APT_TIMEOUT_SECS=900
readonly BUILD_TIMEOUT_SECS=3600
readonly START_TIMEOUT_SECS=20           # a server or the proxy answering PING
readonly ROUNDTRIP_TIMEOUT_SECS=30       # one pipelined pass over up to KEYS_TOTAL keys
readonly COMMAND_TIMEOUT_SECS=10         # one redis-cli command
readonly EJECT_WAIT_SECS=20              # from SIGKILL to the proxy serving around the dead shard
readonly POLL_INTERVAL_SECS=0.1
readonly PORT_ATTEMPTS_MAX=100

started_at=$SECONDS
WORK=""
pids=()            # every background process started here, for cleanup
server_pids=()     # index 1..SERVERS
server_ports=()

failure=""   # said last, after the logs' tails

fail() {
    failure=$*
    echo "twemproxy.sh: FAILED: $failure" >&2
    exit 1
}
# The helpers of bench/lib.sh fail through die.
die() { fail "$@"; }

cleanup() {
    local status=$? log
    stop_pids "${pids[@]}"
    if [[ -n $WORK ]]; then
        if ((status != 0)); then
            for log in "$WORK"/*.log; do
                [[ -s $log ]] || continue
                echo "--- tail of $(basename "$log")" >&2
                tail -15 "$log" >&2
            done
            [[ -n $failure ]] && echo "twemproxy.sh: FAILED: $failure" >&2
        fi
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# Any unexpected failing command still says where it failed.
trap 'failure="line $LINENO: $BASH_COMMAND"; echo "twemproxy.sh: FAILED at $failure" >&2' ERR

# --- tools ------------------------------------------------------------------------------------
PATH=$PATH:/usr/sbin:/sbin   # Debian installs nutcracker in /usr/sbin
missing=()
command -v nutcracker >/dev/null || missing+=(nutcracker)
command -v redis-cli >/dev/null || missing+=(redis-tools)
command -v redis-server >/dev/null || missing+=(redis-server)
if ((${#missing[@]})); then
    apt_install "${missing[@]}"
fi
nutcracker_version=$(nutcracker --version 2>&1) || fail "nutcracker --version"
nutcracker_version=${nutcracker_version%%$'\n'*}   # "This is nutcracker-0.5.0"
nutcracker_version=${nutcracker_version##*-}

echo "twemproxy.sh: cargo build --release -p flin-server -p flin-bench (target $TARGET)" >&2
(cd "$REPO" && timeout "$BUILD_TIMEOUT_SECS" cargo build --release -p flin-server -p flin-bench >&2) \
    || fail "cargo build failed"
[[ -x $FLIN_SERVER ]] || fail "no $FLIN_SERVER after the build"

WORK=$(mktemp -d -t flin-twemproxy.XXXXXX)

# --- helpers ----------------------------------------------------------------------------------
cli() {
    local port=$1
    shift
    timeout "$COMMAND_TIMEOUT_SECS" redis-cli -h "$HOST" -p "$port" "$@"
}

# gen MODE FILTER REQ EXP: writes pipelined requests for keys 0..KEYS_TOTAL-1 to REQ and the
# exact reply stream expected to EXP. MODE: set | get | exists (EXP not written: each reply is
# ":0\r\n" or ":1\r\n"). FILTER: all, =N (keys server N owns) or !N (keys it does not own).
# Values are derived from the key and this run's salt, so nothing else needs storing.
gen() {
    awk -v n="$KEYS_TOTAL" -v salt="$SALT" -v mode="$1" -v filter="$2" -v req="$3" \
        -v rep="$4" -v owners="$WORK/owners" '
        function bulk(s) { return "$" length(s) "\r\n" s "\r\n" }
        BEGIN {
            if (filter != "all") {
                want = substr(filter, 2) + 0
                while ((getline line < owners) > 0) { split(line, f, " "); own[f[1]] = f[2] }
            }
            for (i = 0; i < n; i++) {
                if (filter != "all") {
                    if (substr(filter, 1, 1) == "=" && own[i] != want) continue
                    if (substr(filter, 1, 1) == "!" && own[i] == want) continue
                }
                k = sprintf("key:%06d", i)
                v = salt ":" i ":" substr("abcdefghijklmnopqrstuvw", 1, i % 24)
                if (mode == "set") {
                    printf "*3\r\n$3\r\nSET\r\n%s%s", bulk(k), bulk(v) > req
                    printf "+OK\r\n" > rep
                } else if (mode == "get") {
                    printf "*2\r\n$3\r\nGET\r\n%s", bulk(k) > req
                    printf "%s", bulk(v) > rep
                } else {
                    printf "*2\r\n$6\r\nEXISTS\r\n%s", bulk(k) > req
                }
            }
            close(req)
            if (mode != "exists") close(rep)
        }'
}

# roundtrip PORT REQ REPLY BYTES SECS: one connection; writes REQ whole while reading exactly
# BYTES of replies into REPLY. Fails if they do not all arrive within SECS.
roundtrip() {
    local port=$1 req=$2 reply=$3 bytes=$4 secs=$5 fd reader status=0
    exec {fd}<>"/dev/tcp/$HOST/$port" || return 1
    timeout "$secs" head -c "$bytes" <&"$fd" >"$reply" &
    reader=$!
    pids+=("$reader")
    timeout "$secs" cat "$req" >&"$fd" || status=1
    wait "$reader" || status=1
    exec {fd}>&-
    (($(stat -c %s "$reply") == bytes)) || status=1
    return "$status"
}

# expect_replies WHAT PORT REQ EXP [SECS]: roundtrip, then the replies must equal EXP byte for
# byte. Returns non-zero (with a message on stderr) instead of exiting, for retry loops.
expect_replies() {
    local what=$1 port=$2 req=$3 exp=$4 secs=${5:-$ROUNDTRIP_TIMEOUT_SECS}
    local reply=$WORK/reply bytes line
    bytes=$(stat -c %s "$exp")
    if ! roundtrip "$port" "$req" "$reply" "$bytes" "$secs"; then
        echo "twemproxy.sh: $what: got $(stat -c %s "$reply" 2>/dev/null || echo 0) of $bytes reply" \
            "bytes within ${secs}s" >&2
        return 1
    fi
    if ! cmp -s "$reply" "$exp"; then
        line=$(cmp "$reply" "$exp" 2>/dev/null | awk '{ print $NF }' || true)
        echo "twemproxy.sh: $what: reply line ${line:-?} is $(sed -n "${line:-1}p" "$reply" | tr -d '\r')," \
            "expected $(sed -n "${line:-1}p" "$exp" | tr -d '\r')" >&2
        return 1
    fi
}

key_of() { printf 'key:%06d' "$1"; }
value_of() {
    local pad=abcdefghijklmnopqrstuvw
    printf '%s:%d:%s' "$SALT" "$1" "${pad:0:$(($1 % 24))}"
}

# --- servers and proxy ------------------------------------------------------------------------
SALT=$RANDOM$RANDOM
readonly SALT

# start_server S: flin-server S on its port and data directory (both kept across restarts).
start_server() {
    local s=$1
    # Unpinned (FLIN_PIN_CORES=no): pinned, every one-thread server would sit on the first core.
    FLIN_PIN_CORES=no "$FLIN_SERVER" --dir "$WORK/data$s" --bind "$HOST" --port "${server_ports[s]}" \
        --threads 1 --fsync everysec >>"$WORK/flin$s.log" 2>&1 &
    server_pids[s]=$!
    pids+=("$!")
}
for ((s = 1; s <= SERVERS; s++)); do
    free_port "server_ports[$s]"
    start_server "$s"
done
for ((s = 1; s <= SERVERS; s++)); do
    wait_ping "flin-server $s" "${server_pids[s]}" "${server_ports[s]}"
done

eject_port="" steady_port="" stats_port=""
free_port eject_port
free_port steady_port
free_port stats_port
# pool NAME PORT EJECT: one server pool over the same servers. Same names and weights give
# the same ketama ring in both pools.
pool() {
    local s
    cat <<EOF
$1:
  listen: $HOST:$2
  redis: true
  hash: fnv1a_64
  hash_tag: "{}"
  distribution: ketama
  timeout: $PROXY_TIMEOUT_MS
  auto_eject_hosts: $3
  server_failure_limit: 1
  server_retry_timeout: $PROXY_RETRY_TIMEOUT_MS
  servers:
EOF
    for ((s = 1; s <= SERVERS; s++)); do
        echo "   - $HOST:${server_ports[s]}:1 flin$s"
    done
}
{ pool eject "$eject_port" true; pool steady "$steady_port" false; } >"$WORK/nutcracker.yml"
nutcracker --test-conf --conf-file "$WORK/nutcracker.yml" >"$WORK/nutcracker-test.log" 2>&1 \
    || fail "nutcracker rejects the generated configuration"
nutcracker --conf-file "$WORK/nutcracker.yml" --stats-addr "$HOST" --stats-port "$stats_port" \
    --output "$WORK/nutcracker.log" &
proxy_pid=$!
pids+=("$proxy_pid")
wait_ping nutcracker "$proxy_pid" "$eject_port"
wait_ping nutcracker "$proxy_pid" "$steady_port"
echo "twemproxy.sh: nutcracker $nutcracker_version on $eject_port (eject) and $steady_port" \
    "(steady); flin-servers on ${server_ports[*]:1}" >&2

# --- 1, 2: write through the proxy, read back through both pools ------------------------------
gen set all "$WORK/set.req" "$WORK/set.exp"
gen get all "$WORK/get.req" "$WORK/get.exp"
t0=$(date +%s%N)
expect_replies "SET of $KEYS_TOTAL keys through the proxy" "$eject_port" "$WORK/set.req" "$WORK/set.exp" \
    || fail "writing through the proxy"
write_ms=$((($(date +%s%N) - t0) / 1000000))
expect_replies "GET of $KEYS_TOTAL keys through the eject pool" "$eject_port" "$WORK/get.req" "$WORK/get.exp" \
    || fail "reading back through the proxy"
expect_replies "GET of $KEYS_TOTAL keys through the steady pool" "$steady_port" "$WORK/get.req" "$WORK/get.exp" \
    || fail "reading back through the second pool"

# --- 3: owners, shares, direct reads ----------------------------------------------------------
gen exists all "$WORK/exists.req" ""
for ((s = 1; s <= SERVERS; s++)); do
    roundtrip "${server_ports[s]}" "$WORK/exists.req" "$WORK/exists$s.rep" $((KEYS_TOTAL * 4)) \
        "$ROUNDTRIP_TIMEOUT_SECS" || fail "EXISTS of every key directly on server $s"
    tr -d ':\r' <"$WORK/exists$s.rep" >"$WORK/exists$s.col"
done
# owners: "INDEX SERVER" a line; every key must be held by exactly one server.
paste -d ' ' "$WORK"/exists{1..3}.col | awk '
    { held = 0; owner = 0
      for (s = 1; s <= NF; s++) if ($s == 1) { held++; owner = s }
      if (held != 1) { printf "key:%06d is held by %d servers, not 1\n", NR - 1, held > "/dev/stderr"; exit 1 }
      print NR - 1, owner }' >"$WORK/owners" || fail "every key must be on exactly one server"
mapfile -t owner_of < <(cut -d ' ' -f 2 "$WORK/owners")   # owner_of[INDEX]

shares=()
for ((s = 1; s <= SERVERS; s++)); do
    owned=$(awk -v s="$s" '$2 == s' "$WORK/owners" | wc -l)
    dbsize=$(cli "${server_ports[s]}" dbsize) || fail "DBSIZE on server $s"
    ((dbsize == owned)) || fail "server $s: DBSIZE $dbsize but it holds $owned of the keys"
    pct=$(awk -v o="$owned" -v n="$KEYS_TOTAL" 'BEGIN { printf "%.1f", 100 * o / n }')
    if ((owned * 100 < SHARE_PCT_MIN * KEYS_TOTAL || owned * 100 > SHARE_PCT_MAX * KEYS_TOTAL)); then
        fail "server $s holds $pct% of the keys, outside ${SHARE_PCT_MIN}%..${SHARE_PCT_MAX}%"
    fi
    shares+=("$pct%")
    gen get "=$s" "$WORK/own$s.req" "$WORK/own$s.exp"
    expect_replies "GET of server $s's $owned keys directly" "${server_ports[s]}" "$WORK/own$s.req" \
        "$WORK/own$s.exp" || fail "direct reads from server $s"
done

# --- 4: MGET and MSET across shards -----------------------------------------------------------
# Key indexes: the first MGET_KEYS_PER_SHARD keys of each server, interleaved.
mapfile -t mget_indexes < <(awk -v m="$MGET_KEYS_PER_SHARD" -v n="$SERVERS" '
    c[$2] < m { picked[$2, c[$2]++] = $1 }
    END { for (j = 0; j < m; j++) for (s = 1; s <= n; s++) if ((s, j) in picked) print picked[s, j] }' \
    "$WORK/owners")
((${#mget_indexes[@]} == MGET_KEYS_PER_SHARD * SERVERS)) \
    || fail "some server owns fewer than $MGET_KEYS_PER_SHARD keys"
first_of=()   # server -> one key index it owns
for ((s = 1; s <= SERVERS; s++)); do
    first_of[s]=${mget_indexes[s - 1]}
done
mget_keys=()
mget_expected=""
for i in "${mget_indexes[@]}"; do
    mget_keys+=("$(key_of "$i")")
    mget_expected+="$(value_of "$i")"$'\n'
done
got=$(cli "$eject_port" mget "${mget_keys[@]}") || fail "MGET across shards through the proxy: $got"
[[ $got$'\n' == "$mget_expected" ]] || fail "MGET of ${#mget_keys[@]} keys across shards through the proxy returned other values"

# MSET of "{key:N}:tag" for one N per server: the hash tag puts each on N's owner.
mset_args=()
for ((s = 1; s <= SERVERS; s++)); do
    mset_args+=("{$(key_of "${first_of[s]}")}:tag" "tagged-$s-$SALT")
done
[[ $(cli "$eject_port" mset "${mset_args[@]}") == OK ]] || fail "MSET across shards through the proxy"
for ((s = 1; s <= SERVERS; s++)); do
    key="{$(key_of "${first_of[s]}")}:tag"
    [[ $(cli "${server_ports[s]}" get "$key") == "tagged-$s-$SALT" ]] \
        || fail "$key (hash tag of a key on server $s) is not on server $s"
    [[ $(cli "$eject_port" get "$key") == "tagged-$s-$SALT" ]] || fail "$key through the proxy"
done

# --- 5: one server SIGKILLed ------------------------------------------------------------------
victim=1
victim_key=$(key_of "${first_of[victim]}")
gen get "!$victim" "$WORK/alive.req" "$WORK/alive.exp"
alive_keys=$(awk -v v="$victim" '$2 != v' "$WORK/owners" | wc -l)
# What the eject pool's MGET returns once server $victim is ejected: its keys are nil (they
# now hash to survivors, which do not hold them), the others unchanged.
ejected_expected=""
for i in "${mget_indexes[@]}"; do
    if ((owner_of[i] == victim)); then
        ejected_expected+=$'\n'
    else
        ejected_expected+="$(value_of "$i")"$'\n'
    fi
done

kill -KILL "${server_pids[victim]}"
wait "${server_pids[victim]}" 2>/dev/null || true
killed_at=$(date +%s.%N)

deadline=$((SECONDS + EJECT_WAIT_SECS))
attempts=0
until got=$(cli "$eject_port" mget "${mget_keys[@]}" 2>&1) && [[ $got$'\n' == "$ejected_expected" ]]; do
    ((++attempts))
    ((SECONDS < deadline)) || fail "${EJECT_WAIT_SECS}s after SIGKILL of server $victim, MGET through the eject pool still returns: $(head -3 <<<"$got")"
    sleep "$POLL_INTERVAL_SECS"
done
eject_ms=$(awk -v a="$killed_at" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", (b - a) * 1000 }')

attempts=0
until expect_replies "GET of the survivors' $alive_keys keys through the eject pool" "$eject_port" \
    "$WORK/alive.req" "$WORK/alive.exp" "$COMMAND_TIMEOUT_SECS"; do
    ((++attempts))
    ((SECONDS < deadline)) || fail "the eject pool does not serve the survivors' keys after SIGKILL of server $victim"
    sleep "$POLL_INTERVAL_SECS"
done
expect_replies "GET of the survivors' $alive_keys keys through the steady pool" "$steady_port" \
    "$WORK/alive.req" "$WORK/alive.exp" || fail "the steady pool does not serve the survivors' keys"
got=$(cli "$steady_port" get "$victim_key" 2>&1 || true)
[[ $got == ERR* ]] || fail "the steady pool answered GET $victim_key (dead shard) with '$got', not an error"

# --- 6: the killed server restarts on its data directory --------------------------------------
# It recovers from its own log (a SIGKILL loses nothing the OS already has), and the steady
# pool, which never rehashed its keys, serves every key again.
start_server "$victim"
wait_ping "restarted flin-server $victim" "${server_pids[victim]}" "${server_ports[victim]}"
deadline=$((SECONDS + EJECT_WAIT_SECS))
until expect_replies "GET of all $KEYS_TOTAL keys through the steady pool after the restart" \
    "$steady_port" "$WORK/get.req" "$WORK/get.exp" "$COMMAND_TIMEOUT_SECS"; do
    ((SECONDS < deadline)) || fail "after server $victim restarted, the steady pool does not serve every key"
    sleep "$POLL_INTERVAL_SECS"
done

echo "twemproxy.sh: ok: $KEYS_TOTAL keys written through nutcracker $nutcracker_version in ${write_ms} ms" \
    "over $SERVERS flin-servers (shares ${shares[*]}), read back through proxy and owner;" \
    "MGET/MSET across shards ok; after SIGKILL of server $victim the eject pool served" \
    "around it in ${eject_ms} ms and both pools served the survivors' $alive_keys keys;" \
    "restarted, it served all its keys again; $((SECONDS - started_at))s in all"
