#!/usr/bin/env bash
# memcap.sh: flin-server under a memory cap against flin-server without one, beside what the
# disk itself can do (issue 15, "Data larger than memory").
#
# Makes a memory cgroup (cgroup v2 where the memory controller is writable, else the cgroup v1
# memory controller; the page cache counts against the cap in both), runs flin-server inside
# it and the load generators outside it, and prints the issue's table and its targets:
#   load      redis-benchmark -t set -n KEYS -r KEYS -d VALUE -c 8 -P 32 into a fresh directory,
#             without the cap and under it (the capped load stops after --capped-load-secs;
#             its rate is what it reached by then); wall time, server major faults
#   fio       buffered sequential write under the cap (the limit for a loader), and 4 KiB random
#             read, O_DIRECT, io_uring, QD8 on the data directory's file system (the limit for
#             cold GETs): MB/s, IOPS, p99
#   cold GETs page cache dropped, then GETs uniform over the key range at -c 8: ops/s, p99, and
#             the server's read_bytes (/proc/PID/io) per GET that found a value
#   hot GETs  1000 resident keys at -c 4 alone, and again while 8 other clients GET uniformly
#             random keys: ops/s, p99, max
#   open      server stopped, page cache dropped, started again on the loaded directory: seconds
#             until it answers PING (beside one cold sequential read of the hint files)
# The capped GET phases use the directory the uncapped load filled (data at least 10x the cap
# at the default size). Every phase has a time limit.
#
#   bench/memcap.sh [--quick] [--cap-mib M] [--keys N] [--value-bytes B] [--threads T]
#                   [--dir DIR] [--json FILE] [--keep] [limits and counts below]
#
#   --quick                 a try-out: --cap-mib 64 --keys 400000 and smaller counts and limits
#                           (flags after it still override)
#   --cap-mib M             memory cap in MiB (default 256)
#   --keys N                SETs of the load and the key range of every GET (default 3000000;
#                           random keys, so about 63% of N distinct keys are stored)
#   --value-bytes B         value size (default 1000)
#   --threads T             flin-server --threads (default 1)
#   --dir DIR               where data directories and fio's file go (default
#                           <target>/memcap; not a tmpfs, it must be the disk under test)
#   --json FILE             also write every measurement as one JSON object
#   --keep                  leave the data directories in DIR and the server logs (both are
#                           removed at exit otherwise)
#   --cold-gets N           GETs of each cold phase (default 100000)
#   --hot-gets N            GETs of the hot phase alone (default 200000)
#   --mixed-hot-gets N      GETs of the hot clients beside the 8 others (default 50000)
#   --load-secs S           limit on the uncapped load (default 900)
#   --capped-load-secs S    limit on the capped load (default 300)
#   --open-secs S           limit on each open (default 120); more is reported as "> S s"
#   --phase-secs S          limit on every GET phase (default 300)
#   --fio-mib M             size of fio's file (default 2048)
#   --fio-secs S            runtime of each fio job (default 20)
#
# Needs root (cgroups, /proc/sys/vm/drop_caches); where no memory controller is writable it
# says so and exits 0. Installs redis-tools, fio and jq with apt-get when missing. Environment:
# CARGO_TARGET_DIR (default <repo>/target); FLIN_SERVER_BIN to measure an already built
# flin-server (e.g. an older commit) instead of building this tree's.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"   # die, free_port, stop_pids, apt_install, ...

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly REPO
readonly TARGET=${CARGO_TARGET_DIR:-$REPO/target}
readonly HOST=127.0.0.1
readonly PORT_ATTEMPTS_MAX=100
readonly POLL_INTERVAL_SECS=0.05   # open: between PING attempts
STOP_TIMEOUT_SECS=120              # stop_pids: a clean stop writes the hints the next open reads
readonly SAMPLE_SECS=0.2           # per-thread fault sampling
readonly HOT_KEYS=1000             # the hot set: key:000000000000 .. key:000000000999
readonly LOAD_CLIENTS=8 LOAD_PIPELINE=32
readonly COLD_CLIENTS=8 HOT_CLIENTS=4

# ---- flags ---------------------------------------------------------------------------------

cap_mib=256 keys=3000000 value_bytes=1000 threads=1 data_root=$TARGET/memcap json_out="" keep=0
cold_gets=100000 hot_gets=200000 mixed_hot_gets=50000
load_secs=900 capped_load_secs=300 open_secs=120 phase_secs=300 fio_mib=2048 fio_secs=20
quick=0

count() { [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || die "$1 needs a positive count"; }

for arg in "$@"; do
    if [[ $arg == --quick ]]; then
        quick=1 cap_mib=64 keys=400000 cold_gets=20000 hot_gets=50000 mixed_hot_gets=20000
        capped_load_secs=60 open_secs=60 phase_secs=120 fio_mib=512 fio_secs=10
    fi
done
while [[ $# -gt 0 ]]; do
    case $1 in
        --quick) shift ;;
        --cap-mib) count "$1" "${2:-}"; cap_mib=$2; shift 2 ;;
        --keys) count "$1" "${2:-}"; keys=$2; shift 2 ;;
        --value-bytes) count "$1" "${2:-}"; value_bytes=$2; shift 2 ;;
        --threads) count "$1" "${2:-}"; threads=$2; shift 2 ;;
        --dir) [[ -n ${2:-} ]] || die "--dir needs a directory"; data_root=$2; shift 2 ;;
        --json) [[ -n ${2:-} ]] || die "--json needs a file"; json_out=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        --cold-gets) count "$1" "${2:-}"; cold_gets=$2; shift 2 ;;
        --hot-gets) count "$1" "${2:-}"; hot_gets=$2; shift 2 ;;
        --mixed-hot-gets) count "$1" "${2:-}"; mixed_hot_gets=$2; shift 2 ;;
        --load-secs) count "$1" "${2:-}"; load_secs=$2; shift 2 ;;
        --capped-load-secs) count "$1" "${2:-}"; capped_load_secs=$2; shift 2 ;;
        --open-secs) count "$1" "${2:-}"; open_secs=$2; shift 2 ;;
        --phase-secs) count "$1" "${2:-}"; phase_secs=$2; shift 2 ;;
        --fio-mib) count "$1" "${2:-}"; fio_mib=$2; shift 2 ;;
        --fio-secs) count "$1" "${2:-}"; fio_secs=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (try --help)" ;;
    esac
done
[[ -z $json_out || $json_out == /* ]] || json_out=$PWD/$json_out

# ---- small helpers -------------------------------------------------------------------------

say() { echo "memcap.sh: $*" >&2; }

# calc EXPR: floating-point arithmetic (awk syntax); "n/a" in, "n/a" out.
calc() {
    [[ $1 == *n/a* ]] && { echo n/a; return; }
    awk "BEGIN { print ($1) }"
}

# fmt FORMAT VALUE: printf that passes "n/a" through.
# shellcheck disable=SC2059 # the format is the caller's
fmt() {
    if [[ $2 == n/a || -z $2 ]]; then echo n/a; else LC_ALL=C printf "$1" "$2"; fi
}

now() { date +%s.%N; }

# Results, by name; printed as tables and written as JSON at the end.
declare -A R=()
rec() { R[$1]=$2; }
get() { echo "${R[$1]:-n/a}"; }

# ---- the cgroups ---------------------------------------------------------------------------
#
# Two sibling cgroups: CG_CAP with the cap and CG_FREE without one. The uncapped server runs in
# CG_FREE so that both servers' page cache can be evicted the same way (cg_evict) and counted
# the same way (memory.stat); drop_caches alone leaves pages that a process maps.

CG_KIND="" CG_CAP="" CG_FREE="" CG_WHY=()

# cgroup_try_v2: CG_CAP and CG_FREE under the v2 mount (or under this shell's own cgroup);
# returns 1 when the memory controller is absent or cannot be enabled there.
cgroup_try_v2() {
    local root own parent
    root=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
    if [[ -z $root ]]; then CG_WHY+=("no cgroup2 mount"); return 1; fi
    if ! grep -qw memory "$root/cgroup.controllers" 2>/dev/null; then
        CG_WHY+=("cgroup v2 at $root has no memory controller")
        return 1
    fi
    own=$(sed -n 's/^0::\(.*\)$/\1/p' /proc/self/cgroup)
    for parent in "$root" "$root${own%/}"; do
        grep -qw memory "$parent/cgroup.subtree_control" 2>/dev/null \
            || echo +memory >"$parent/cgroup.subtree_control" 2>/dev/null || continue
        CG_KIND=v2
        cgroup_make "$parent" && return 0
    done
    CG_KIND=""
    CG_WHY+=("cgroup v2 at $root: cannot enable memory for a child cgroup")
    return 1
}

# cgroup_try_v1: CG_CAP and CG_FREE under this shell's own v1 memory cgroup (or the
# hierarchy's root); returns 1 when the v1 memory controller is missing or read-only.
cgroup_try_v1() {
    local root own parent
    root=$(awk '$3 == "cgroup" && $4 ~ /(^|,)memory(,|$)/ { print $2; exit }' /proc/mounts)
    if [[ -z $root ]]; then CG_WHY+=("no cgroup v1 memory controller mounted"); return 1; fi
    own=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ { print $3; exit }' /proc/self/cgroup)
    CG_KIND=v1
    for parent in "$root${own%/}" "$root"; do
        cgroup_make "$parent" && return 0
    done
    CG_KIND=""
    CG_WHY+=("cgroup v1 memory controller at $root is not writable")
    return 1
}

# cgroup_make PARENT: creates CG_CAP (with the cap) and CG_FREE under PARENT; returns 1, with
# nothing left behind, when that fails.
cgroup_make() {
    local base=$1/flin-memcap-$$-$RANDOM
    mkdir "$base-cap" 2>/dev/null || return 1
    CG_CAP=$base-cap
    if ! cg_set_limit "$CG_CAP" $((cap_mib << 20)) 2>/dev/null || ! mkdir "$base-free" 2>/dev/null; then
        rmdir "$CG_CAP" 2>/dev/null || true
        CG_CAP=""
        return 1
    fi
    CG_FREE=$base-free
}

# cg_set_limit CGROUP BYTES|max: sets (or lifts) the cap, without swap beyond it; lowering it
# makes the kernel reclaim down to it.
cg_set_limit() {
    local cg=$1 v=$2
    if [[ $CG_KIND == v2 ]]; then
        echo "$v" >"$cg/memory.max"
        [[ ! -e $cg/memory.swap.max ]] || echo 0 >"$cg/memory.swap.max" 2>/dev/null || true
    elif [[ $v == max ]]; then
        # memory.memsw (memory + swap, where swap accounting exists) must stay >= the limit.
        echo -1 >"$cg/memory.memsw.limit_in_bytes" 2>/dev/null || true
        echo -1 >"$cg/memory.limit_in_bytes"
    else
        echo "$v" >"$cg/memory.limit_in_bytes"
        echo "$v" >"$cg/memory.memsw.limit_in_bytes" 2>/dev/null || true
    fi
}

# cg_stat CGROUP FIELD: a counter of the cgroup's memory.stat (0 when absent).
cg_stat() {
    awk -v f="$2" '$1 == f { print $2; found = 1 } END { if (!found) print 0 }' "$1/memory.stat"
}

# cg_usage CGROUP: bytes the cgroup is charged (page cache included).
cg_usage() {
    if [[ $CG_KIND == v2 ]]; then cat "$1/memory.current"; else cat "$1/memory.usage_in_bytes"; fi
}

# cg_peak CGROUP: the most bytes the cgroup was charged ("n/a" where the kernel does not say).
cg_peak() {
    local f=$1/memory.max_usage_in_bytes
    [[ $CG_KIND == v2 ]] && f=$1/memory.peak
    cat "$f" 2>/dev/null || echo n/a
}

# cg_reset_peak CGROUP: starts cg_peak afresh (v1 only; v2's memory.peak cannot be reset for
# other readers).
cg_reset_peak() {
    [[ $CG_KIND == v2 ]] || echo 0 >"$1/memory.max_usage_in_bytes" 2>/dev/null || true
}

# cg_oom_kills CGROUP: processes the OOM killer ended in the cgroup.
cg_oom_kills() {
    local f=$1/memory.oom_control
    [[ $CG_KIND == v2 ]] && f=$1/memory.events
    awk '$1 == "oom_kill" { print $2; found = 1 } END { if (!found) print 0 }' "$f" 2>/dev/null || echo 0
}

# cg_evict CGROUP: reclaims what the cgroup's page cache holds, pages its processes map
# included (v1 memory.force_empty, v2 memory.reclaim); anonymous memory stays (no swap).
cg_evict() {
    if [[ $CG_KIND == v2 ]]; then
        cg_usage "$1" >"$1/memory.reclaim" 2>/dev/null || true
    else
        echo 0 >"$1/memory.force_empty" 2>/dev/null || true
    fi
}

# cgroup_remove CGROUP: ends whatever still runs in it (only what this script put there) and
# removes it.
cgroup_remove() {
    local cg=$1 pid tries procs
    [[ -n $cg && -d $cg ]] || return 0
    for ((tries = 0; tries < 50; tries++)); do
        procs=$(<"$cg/cgroup.procs")   # cgroupfs files report size 0: read, do not test -s
        [[ -n $procs ]] || break
        for pid in $procs; do kill -KILL "$pid" 2>/dev/null || true; done
        sleep 0.1
    done
    rmdir "$cg" 2>/dev/null || say "could not remove cgroup $cg"
}

# IN_CG CGROUP CMD...: runs CMD inside CGROUP; the shell joins the cgroup and execs CMD, so
# CMD keeps its PID (and $! of "${IN_CG[@]}" ... & is CMD's).
# shellcheck disable=SC2016 # $0 and $@ belong to the inner shell
readonly IN_CG=(sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"')

# ---- processes and their counters ----------------------------------------------------------

pids=()           # servers and background load generators not yet reaped, stopped at exit

# forget_pid PID: drops a reaped PID from pids (so the exit trap cannot signal a reused PID).
forget_pid() {
    local p kept=()
    for p in "${pids[@]}"; do [[ $p == "$1" ]] || kept+=("$p"); done
    pids=("${kept[@]}")
}
SERVER_PID="" SERVER_PORT="" SERVER_LOG="" SERVER_CG="" server_runs=0

# field_of_stat PID N: field N (1-based, as proc(5) numbers them) of /proc/PID/stat.
field_of_stat() {
    local stat
    stat=$(<"/proc/$1/stat") 2>/dev/null || { echo 0; return; }
    stat=${stat##*) }
    awk -v n=$(($2 - 2)) '{ print $n }' <<<"$stat"
}
majflt() { field_of_stat "$1" 12; }
read_bytes() { awk '$1 == "read_bytes:" { print $2 }' "/proc/$1/io" 2>/dev/null || echo 0; }

# task_faults PID: one line per thread, "TID NAME MAJFLT" (the main thread is named "main").
task_faults() {
    cat "/proc/$1"/task/*/stat 2>/dev/null | awk -v pid="$1" '{
        l = $0; lp = index(l, "("); rp = 0
        for (i = length(l); i > lp; i--) if (substr(l, i, 1) == ")") { rp = i; break }
        name = substr(l, lp + 1, rp - lp - 1); gsub(/ /, "_", name)
        split(substr(l, rp + 2), f, " ")
        if ($1 == pid) name = "main"
        print $1, name, f[10]
    }' || true
}

# Per-thread major faults over a phase: a sampler appends task_faults every SAMPLE_SECS, so
# threads that end during the phase (recovery's) are counted too.
SAMPLER_PID="" SAMPLER_FILE=""
faults_start() {
    SAMPLER_FILE=$WORK/faults-$1
    task_faults "$SERVER_PID" | sed 's/^/base /' >"$SAMPLER_FILE"
    (
        while kill -0 "$SERVER_PID" 2>/dev/null; do
            task_faults "$SERVER_PID" | sed 's/^/seen /'
            sleep "$SAMPLE_SECS"
        done
    ) >>"$SAMPLER_FILE" &
    SAMPLER_PID=$!
}
# faults_stop: ends the sampler and prints "name=faults ..." per thread name, largest first.
faults_stop() {
    task_faults "$SERVER_PID" | sed 's/^/seen /' >>"$SAMPLER_FILE"
    kill "$SAMPLER_PID" 2>/dev/null || true
    wait "$SAMPLER_PID" 2>/dev/null || true
    SAMPLER_PID=""
    awk '$1 == "base" { base[$2] = $4 } $1 == "seen" { name[$2] = $3; if ($4 > top[$2]) top[$2] = $4 }
         END { for (t in top) sum[name[t]] += top[t] - base[t]
               for (n in sum) if (sum[n] > 0) print sum[n], n }' "$SAMPLER_FILE" \
        | sort -rn | awk '{ printf "%s%s=%s", (NR > 1 ? " " : ""), $2, $1 } END { if (!NR) printf "none" }'
}

# server_start DIR capped|uncapped: starts flin-server on DIR in the background, in CG_CAP or
# CG_FREE; sets SERVER_PID, SERVER_PORT, SERVER_LOG and SERVER_CG. Does not wait for it.
server_start() {
    local dir=$1 where=$2 cmd
    free_port SERVER_PORT
    SERVER_LOG=$WORK/server-$((++server_runs))-$where.log
    cmd=("$FLIN_SERVER" --dir "$dir" --bind "$HOST" --port "$SERVER_PORT" --threads "$threads")
    SERVER_CG=$CG_FREE
    [[ $where == uncapped ]] || SERVER_CG=$CG_CAP
    "${IN_CG[@]}" "$SERVER_CG" "${cmd[@]}" >"$SERVER_LOG" 2>&1 &
    SERVER_PID=$!
    pids+=("$SERVER_PID")
}

# server_wait START LIMIT: waits until the server answers PING; prints the seconds since START
# (a `now` value). Returns 1 if LIMIT seconds pass first, 2 if the server exits first.
server_wait() {
    local start=$1 limit=$2
    while :; do
        if [[ $(timeout 2 redis-cli -h "$HOST" -p "$SERVER_PORT" ping 2>/dev/null) == PONG ]]; then
            calc "$(now) - $start"
            return 0
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || return 2
        (($(calc "$(now) - $start >= $limit"))) && return 1
        sleep "$POLL_INTERVAL_SECS"
    done
}

# server_stop: SIGTERM, and SIGKILL STOP_TIMEOUT_SECS later.
server_stop() {
    [[ -n $SERVER_PID ]] || return 0
    stop_pids "$SERVER_PID"
    forget_pid "$SERVER_PID"
    SERVER_PID=""
}

# server_alive WHAT: dies, saying what was running, if the server is gone (OOM killer, crash).
server_alive() {
    kill -0 "$SERVER_PID" 2>/dev/null && return 0
    tail -20 "$SERVER_LOG" >&2
    die "flin-server exited during $1 (OOM kills in its cgroup: $(cg_oom_kills "$SERVER_CG"))"
}

# info FIELD: a field of the server's INFO ("n/a" when absent or the server does not answer).
info() {
    local v
    v=$(timeout 30 redis-cli -h "$HOST" -p "$SERVER_PORT" info 2>/dev/null \
        | tr -d '\r' | awk -F: -v f="$1" '$1 == f { print $2; exit }') || true
    echo "${v:-n/a}"
}
# gets_done: GETs the server has answered (hits and misses).
gets_done() { echo $(($(info keyspace_hits) + $(info keyspace_misses))); }

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# make_cold: the page cache dropped, and the server's cgroup emptied of the pages its mappings
# hold (drop_caches leaves those). Records the server's resident file pages after it, KiB.
make_cold() {
    drop_caches
    cg_evict "$SERVER_CG"
    rec "${1}_rss_file_kib_after_evict" "$(awk '$1 == "RssFile:" { print $2 }' "/proc/$SERVER_PID/status")"
}

# ---- redis-benchmark -----------------------------------------------------------------------

# bench LIMIT ARGS...: redis-benchmark --csv ARGS against the server, for at most LIMIT seconds.
# Sets B_SECS (wall time) and, when it finished, B_RPS, B_P50, B_P99 and B_MAX (ms); they are
# "n/a" when the limit ended it.
bench() {
    local limit=$1 t0 line
    shift
    B_RPS=n/a B_P50=n/a B_P99=n/a B_MAX=n/a
    t0=$(now)
    if timeout "$limit" redis-benchmark -h "$HOST" -p "$SERVER_PORT" --csv "$@" \
        >"$WORK/bench.csv" 2>"$WORK/bench.err"; then
        B_SECS=$(calc "$(now) - $t0")
        line=$(tail -1 "$WORK/bench.csv" | tr -d '"')
        IFS=, read -r _ B_RPS _ _ B_P50 _ B_P99 B_MAX <<<"$line"
        [[ $B_RPS =~ ^[0-9.]+$ ]] || die "redis-benchmark printed no result: $(cat "$WORK/bench.csv" "$WORK/bench.err")"
    else
        B_SECS=$(calc "$(now) - $t0")
        say "  redis-benchmark stopped at the ${limit}s limit"
    fi
}

# ---- phases --------------------------------------------------------------------------------

# phase_fio: what the disk does under the cap: buffered sequential write (fio inside the
# cgroup), then 4 KiB random reads with O_DIRECT at QD8 of the same file.
phase_fio() {
    local dir=$data_root/fio engine=io_uring out=$WORK/fio.json
    mkdir -p "$dir"
    say "fio: ${fio_mib} MiB buffered sequential write under the cap"
    "${IN_CG[@]}" "$CG_CAP" fio --name=seqwrite --filename="$dir/fio.dat" --rw=write --bs=1M --size="${fio_mib}M" \
        --ioengine=psync --end_fsync=1 --runtime="$((fio_secs * 3))" \
        --output-format=json --output="$out" >/dev/null || die "fio sequential write failed"
    rec fio_seqwrite_mbps "$(jq '.jobs[0].write.bw_bytes / 1e6 | round' "$out")"
    fio --name=probe --filename="$dir/fio.dat" --rw=randread --bs=4k --direct=1 --ioengine=io_uring \
        --size="${fio_mib}M" --runtime=1 --time_based --output="$WORK/fio-probe.txt" >/dev/null 2>&1 \
        || engine=libaio
    say "fio: 4 KiB random read, O_DIRECT, $engine, QD8, ${fio_secs}s"
    fio --name=randread --filename="$dir/fio.dat" --rw=randread --bs=4k --direct=1 \
        --ioengine="$engine" --iodepth=8 --size="${fio_mib}M" --runtime="$fio_secs" --time_based \
        --output-format=json --output="$out" >/dev/null || die "fio random read failed"
    rec fio_randread_engine "$engine"
    rec fio_randread_iops "$(jq '.jobs[0].read.iops | round' "$out")"
    rec fio_randread_p99_ms "$(jq '.jobs[0].read.clat_ns.percentile["99.000000"] / 1e6 * 1000 | round / 1000' "$out")"
    rm -rf "$dir"
}

# phase_load WHERE DIR LIMIT: a fresh DIR, flin-server started WHERE, the issue's load for at
# most LIMIT seconds. Leaves the server running.
phase_load() {
    local where=$1 dir=$2 limit=$3 c0 w0 f0 r0 sets secs
    rm -rf "$dir"
    server_start "$dir" "$where"
    START_TIMEOUT_SECS=60 wait_ping flin-server "$SERVER_PID" "$SERVER_PORT" "$SERVER_LOG"
    say "$where load: $keys SETs of $value_bytes bytes (limit ${limit}s)"
    c0=$(info total_commands_processed) w0=$(info engine_bytes_written)
    f0=$(majflt "$SERVER_PID") r0=$(read_bytes "$SERVER_PID")
    faults_start "load-$where"
    bench "$limit" -t set -n "$keys" -r "$keys" -d "$value_bytes" -c "$LOAD_CLIENTS" -P "$LOAD_PIPELINE"
    server_alive "the $where load"
    rec "load_${where}_threads_majflt" "$(faults_stop)"
    secs=$B_SECS
    if [[ $B_RPS == n/a ]]; then
        # Stopped at the limit: the SETs are what the server processed (a few more commands
        # than SETs: INFO and redis-benchmark's CONFIG GETs, a handful in millions).
        sets=$(($(info total_commands_processed) - c0))
        rec "load_${where}_finished" no
    else
        sets=$keys
        rec "load_${where}_finished" yes
    fi
    rec "load_${where}_secs" "$(fmt %.1f "$secs")"
    rec "load_${where}_sets" "$sets"
    rec "load_${where}_keys_per_sec" "$(fmt %.0f "$(calc "$sets / $secs")")"
    rec "load_${where}_mb_per_sec" "$(fmt %.1f "$(calc "$sets * $value_bytes / $secs / 1e6")")"
    rec "load_${where}_gb" "$(fmt %.2f "$(calc "$sets * $value_bytes / 1e9")")"
    rec "load_${where}_engine_bytes_written" "$(($(info engine_bytes_written) - w0))"
    rec "load_${where}_majflt" "$(($(majflt "$SERVER_PID") - f0))"
    rec "load_${where}_read_bytes" "$(($(read_bytes "$SERVER_PID") - r0))"
    rec "load_${where}_keys_stored" "$(info engine_keys)"
    say "  $(get "load_${where}_sets") SETs in $(get "load_${where}_secs") s, $(get "load_${where}_majflt") major faults"
}

# hot_prepare: writes the hot keys (all of them exist afterwards) and reads them once.
hot_prepare() {
    bench "$phase_secs" -t set -r "$HOT_KEYS" -n $((HOT_KEYS * 20)) -d "$value_bytes" -c "$HOT_CLIENTS" -P 16
}
# hot_warm: reads the hot keys until they are resident.
hot_warm() {
    bench "$phase_secs" -t get -r "$HOT_KEYS" -n $((HOT_KEYS * 20)) -c "$HOT_CLIENTS" -P 16
}

# phase_hot WHERE: hot GETs alone.
phase_hot() {
    local where=$1
    hot_warm
    say "$where hot GETs: $hot_gets on $HOT_KEYS keys, -c $HOT_CLIENTS"
    bench "$phase_secs" -t get -r "$HOT_KEYS" -n "$hot_gets" -c "$HOT_CLIENTS"
    server_alive "the $where hot GETs"
    rec "hot_${where}_rps" "$(fmt %.0f "$B_RPS")"
    rec "hot_${where}_p99_ms" "$B_P99"
    rec "hot_${where}_max_ms" "$B_MAX"
}

# phase_mixed WHERE: the hot GETs while COLD_CLIENTS other clients GET uniformly random keys.
phase_mixed() {
    local where=$1 other g0 t0 others_secs n
    n=$(fit_count "$mixed_hot_gets")
    hot_warm
    say "$where hot GETs beside $COLD_CLIENTS clients of uniform GETs: $n hot GETs"
    g0=$(gets_done) t0=$(now)
    timeout "$((phase_secs + 30))" redis-benchmark -h "$HOST" -p "$SERVER_PORT" -t get -r "$keys" \
        -n 2000000000 -c "$COLD_CLIENTS" -q >/dev/null 2>&1 &
    other=$!
    pids+=("$other")
    sleep 1
    bench "$phase_secs" -t get -r "$HOT_KEYS" -n "$n" -c "$HOT_CLIENTS"
    kill "$other" 2>/dev/null || true
    wait "$other" 2>/dev/null || true
    forget_pid "$other"
    others_secs=$(calc "$(now) - $t0")
    server_alive "the $where hot GETs beside others"
    rec "mixed_${where}_hot_rps" "$(fmt %.0f "$B_RPS")"
    rec "mixed_${where}_hot_p99_ms" "$B_P99"
    rec "mixed_${where}_hot_max_ms" "$B_MAX"
    rec "mixed_${where}_others_rps" \
        "$(fmt %.0f "$(calc "($(gets_done) - $g0 - $n) / $others_secs")")"
    rec "mixed_${where}_hot_gets" "$n"
}

# Cold GETs/s that a short probe measured (phase_cold sets it): the GET counts of the phases
# that follow are cut to what fits in half of --phase-secs at that rate, so that they finish
# and report their latency instead of meeting the limit.
COLD_PROBE_RPS=""
readonly COLD_PROBE_GETS=400 FIT_MIN_GETS=1000

# fit_count WANT: WANT, or fewer if COLD_PROBE_RPS says WANT would take too long.
fit_count() {
    if [[ -z $COLD_PROBE_RPS ]]; then echo "$1"; return; fi
    awk -v want="$1" -v rps="$COLD_PROBE_RPS" -v secs="$phase_secs" -v low="$FIT_MIN_GETS"         'BEGIN { n = int(rps * secs / 2); if (n < low) n = low; if (n > want) n = want; print n }'
}

# cold_probe: COLD_PROBE_GETS cold GETs, to set COLD_PROBE_RPS.
cold_probe() {
    local g0
    make_cold probe
    g0=$(gets_done)
    bench "$phase_secs" -t get -r "$keys" -n "$COLD_PROBE_GETS" -c "$COLD_CLIENTS"
    COLD_PROBE_RPS=$B_RPS
    [[ $B_RPS != n/a ]] || COLD_PROBE_RPS=$(calc "($(gets_done) - $g0) / $B_SECS")
}

# phase_cold WHERE: page cache dropped (and the server's cgroup emptied), then uniform GETs;
# disk bytes per GET that found a value.
phase_cold() {
    local where=$1 h0 m0 f0 r0 d0 cg0 hits gets secs dev_stat n
    dev_stat=/sys/block/$DISK/stat
    cold_probe
    n=$(fit_count "$cold_gets")
    rec "cold_${where}_probe_rps" "$(fmt %.0f "$COLD_PROBE_RPS")"
    make_cold "cold_$where"
    say "$where cold GETs: $n uniform over $keys keys, -c $COLD_CLIENTS (probe: $(get "cold_${where}_probe_rps")/s)"
    h0=$(info keyspace_hits) m0=$(info keyspace_misses)
    f0=$(majflt "$SERVER_PID") r0=$(read_bytes "$SERVER_PID") cg0=$(cg_stat "$SERVER_CG" pgmajfault)
    d0=$(awk '{ printf "%.0f\n", $3 * 512 }' "$dev_stat" 2>/dev/null || echo 0)
    faults_start "cold-$where"
    bench "$phase_secs" -t get -r "$keys" -n "$n" -c "$COLD_CLIENTS"
    server_alive "the $where cold GETs"
    rec "cold_${where}_threads_majflt" "$(faults_stop)"
    secs=$B_SECS
    hits=$(($(info keyspace_hits) - h0))
    gets=$((hits + $(info keyspace_misses) - m0))
    [[ $B_RPS != n/a ]] || B_RPS=$(calc "$gets / $secs")
    rec "cold_${where}_finished" "$([[ $B_P99 == n/a ]] && echo no || echo yes)"
    rec "cold_${where}_rps" "$(fmt %.0f "$B_RPS")"
    rec "cold_${where}_p50_ms" "$B_P50"
    rec "cold_${where}_p99_ms" "$B_P99"
    rec "cold_${where}_max_ms" "$B_MAX"
    rec "cold_${where}_gets" "$gets"
    rec "cold_${where}_hits" "$hits"
    rec "cold_${where}_hit_rps" "$(fmt %.0f "$(calc "$B_RPS * $hits / ($gets > 0 ? $gets : 1)")")"
    rec "cold_${where}_majflt" "$(($(majflt "$SERVER_PID") - f0))"
    rec "cold_${where}_read_bytes" "$(($(read_bytes "$SERVER_PID") - r0))"
    rec "cold_${where}_device_read_bytes" "$(($(awk '{ printf "%.0f\n", $3 * 512 }' "$dev_stat" 2>/dev/null || echo 0) - d0))"
    rec "cold_${where}_read_bytes_per_hit" \
        "$(fmt %.0f "$(calc "$(get "cold_${where}_read_bytes") / ($hits > 0 ? $hits : 1)")")"
    rec "cold_${where}_cgroup_pgmajfault" "$(($(cg_stat "$SERVER_CG" pgmajfault) - cg0))"
    say "  $(get "cold_${where}_rps") GET/s, p99 $(get "cold_${where}_p99_ms") ms, $(get "cold_${where}_read_bytes_per_hit") bytes read per hit"
}

# phase_open WHERE DIR LIMIT: (server stopped) page cache dropped, server started WHERE on the
# loaded DIR; seconds until it answers PING, or "> LIMIT". Returns 1, with the server still
# opening, when the limit passed.
phase_open() {
    local where=$1 dir=$2 limit=$3 t0 secs rc=0
    drop_caches
    say "$where open of $dir (limit ${limit}s)"
    t0=$(now)
    server_start "$dir" "$where"
    faults_start "open-$where"
    secs=$(server_wait "$t0" "$limit") || rc=$?
    rec "open_${where}_majflt" "$(majflt "$SERVER_PID")"
    rec "open_${where}_threads_majflt" "$(faults_stop)"
    if ((rc == 2)); then
        tail -20 "$SERVER_LOG" >&2
        die "flin-server exited while opening $dir (OOM kills in its cgroup: $(cg_oom_kills "$SERVER_CG"))"
    fi
    if ((rc == 1)); then
        rec "open_${where}_secs" "> $limit"
        say "  not open after ${limit}s ($(get "open_${where}_majflt") major faults)"
        return 1
    fi
    rec "open_${where}_secs" "$(fmt %.2f "$secs")"
    rec "open_${where}_recovery_ms" \
        "$(sed -n 's/.*flin-server ready.* recovery_ms=\([0-9]*\).*/\1/p' "$SERVER_LOG" | head -1)"
    say "  open in $(get "open_${where}_secs") s"
}

# hint_read DIR: seconds for one cold sequential read of DIR's hint files.
hint_read() {
    local dir=$1 t0
    drop_caches
    t0=$(now)
    cat "$dir"/*.hint >/dev/null 2>&1 || true
    rec hint_read_secs "$(fmt %.2f "$(calc "$(now) - $t0")")"
    rec hint_bytes "$(cat "$dir"/*.hint 2>/dev/null | wc -c)"
    rec segments "$(find "$dir" -maxdepth 1 -name '*.seg' | wc -l)"
    rec data_bytes "$(du -sb "$dir" | awk '{ print $1 }')"
}

# info_fields WHERE: the issue's visibility fields of INFO, "n/a" where the server has none yet.
INFO_FIELDS="cold_reads cold_reads_direct cold_read_rings cold_reads_in_flight cold_read_p50_us
    cold_read_p99_us cold_read_errors worker_major_faults used_memory_rss index_bytes"
info_fields() {
    local f
    for f in $INFO_FIELDS; do
        rec "info_${1}_$f" "$(info "$f")"
    done
}

# ---- the report ----------------------------------------------------------------------------

# verdict VALUE OP TARGET: "yes" or "no"; "n/a" when VALUE is, or when it is a lower bound
# ("> N") that does not decide.
verdict() {
    local v=$1 op=$2 target=$3
    if [[ $v == n/a ]]; then
        echo n/a
    elif [[ $v == \>* ]]; then
        if [[ $op == "<=" ]] && (($(calc "${v#> } > $target"))); then echo no; else echo n/a; fi
    elif (($(calc "$v $op $target"))); then
        echo yes
    else
        echo no
    fi
}

print_report() {
    local u=uncapped c=capped load_u load_c open_c
    load_u="$(get load_${u}_gb) GB in $(get load_${u}_secs) s ($(get load_${u}_keys_per_sec) keys/s, $(get load_${u}_mb_per_sec) MB/s), $(get load_${u}_majflt) major faults"
    load_c="$(get load_${c}_gb) GB in $(get load_${c}_secs) s"
    [[ $(get load_${c}_finished) == yes ]] || load_c+=", stopped at the limit"
    load_c+=" ($(get load_${c}_keys_per_sec) keys/s, $(get load_${c}_mb_per_sec) MB/s), $(get load_${c}_majflt) major faults"
    open_c="$(get open_${c}_secs) s"
    echo
    echo "## flin under a ${cap_mib} MiB memory cap (cgroup $CG_KIND), $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "flin-server --threads $threads, $value_bytes-byte values, data $(fmt %.2f "$(calc "$(get data_bytes) / 1e9")") GB" \
        "on disk ($(get segments) segments, $(get load_${u}_keys_stored) keys), $(fmt %.1f "$(calc "$(get data_bytes) / ($cap_mib * 1048576)")")x the cap;" \
        "$DISK read_ahead_kb $(get read_ahead_kb)"
    echo
    echo "machine: $(get machine); load average at start $(get loadavg_start), at end $(get loadavg_end)"
    echo
    echo "| cell | without cap | under the cap |"
    echo "| --- | --- | --- |"
    echo "| load: \`redis-benchmark -t set -n $keys -r $keys -d $value_bytes -c $LOAD_CLIENTS -P $LOAD_PIPELINE\` | $load_u | $load_c |"
    echo "| fio buffered sequential write, same cap | | $(get fio_seqwrite_mbps) MB/s |"
    echo "| cold GETs, uniform over all keys, \`-c $COLD_CLIENTS\` (page cache dropped) | $(get cold_${u}_rps)/s, p99 $(get cold_${u}_p99_ms) ms | $(get cold_${c}_rps)/s, p99 $(get cold_${c}_p99_ms) ms, max $(get cold_${c}_max_ms) ms |"
    echo "| fio 4 KiB random read, O_DIRECT, $(get fio_randread_engine), QD8 | | $(get fio_randread_iops) IOPS, p99 $(get fio_randread_p99_ms) ms |"
    echo "| hot GETs on $HOT_KEYS resident keys, \`-c $HOT_CLIENTS\`, alone | $(get hot_${u}_rps)/s, p99 $(get hot_${u}_p99_ms) ms | $(get hot_${c}_rps)/s, p99 $(get hot_${c}_p99_ms) ms |"
    echo "| the same hot GETs while $COLD_CLIENTS other clients GET uniform keys | $(get mixed_${u}_hot_rps)/s, p99 $(get mixed_${u}_hot_p99_ms) ms, max $(get mixed_${u}_hot_max_ms) ms (all resident; others $(get mixed_${u}_others_rps)/s) | $(get mixed_${c}_hot_rps)/s, p99 $(get mixed_${c}_hot_p99_ms) ms, max $(get mixed_${c}_hot_max_ms) ms (others $(get mixed_${c}_others_rps)/s) |"
    echo "| bytes read from disk in the cold GETs (server read_bytes) | $(fmt %.2f "$(calc "$(get cold_${u}_read_bytes) / 1e9")") GB for $(get cold_${u}_hits) GETs that found a value | $(fmt %.2f "$(calc "$(get cold_${c}_read_bytes) / 1e9")") GB for $(get cold_${c}_hits) ($(fmt %.0f "$(calc "$(get cold_${c}_read_bytes_per_hit) / 1024")") KiB each) |"
    echo "| open the loaded store, page cache dropped (hints: $(fmt %.1f "$(calc "$(get hint_bytes) / 1e6")") MB, cold read $(get hint_read_secs) s) | $(get open_${u}_secs) s | $open_c, $(get open_${c}_majflt) major faults |"
    echo
    echo "| target (issue 15) | measured | target | met |"
    echo "| --- | --- | --- | --- |"
    echo "| load rate under the cap / without | $(get ratio_load) | >= 0.5 | $(verdict "$(get ratio_load)" '>=' 0.5) |"
    echo "| cold GETs per s / fio QD8 IOPS (the issue's measure: its \"today 0.03x\" is 2.75K GETs/s over 89K IOPS) | $(get ratio_cold_gets_vs_fio) | >= 0.5 | $(verdict "$(get ratio_cold_gets_vs_fio)" '>=' 0.5) |"
    echo "| stricter: only the cold GETs that found a value (and read it) per s / fio QD8 IOPS | $(get ratio_cold_vs_fio) | >= 0.5 | $(verdict "$(get ratio_cold_vs_fio)" '>=' 0.5) |"
    echo "| hot p99 beside cold GETs (capped) / beside others all resident | $(get ratio_hot_p99) | <= 2 | $(verdict "$(get ratio_hot_p99)" '<=' 2) |"
    echo "| KiB read from disk per cold GET (capped) | $(get cold_kib_per_get) | <= 8 | $(verdict "$(get cold_kib_per_get)" '<=' 8) |"
    echo "| open under the cap / (open without + hint read) | $(get ratio_open) | <= 2 | $(verdict "$(get ratio_open)" '<=' 2) |"
    echo
    echo "disk reads by the server during the load: without the cap $(fmt %.2f "$(calc "$(get load_${u}_read_bytes) / 1e9")") GB," \
        "under it $(fmt %.2f "$(calc "$(get load_${c}_read_bytes) / 1e9")") GB ($(fmt %.0f "$(calc "$(get load_${c}_read_bytes) / $(get load_${c}_sets) / 1024")") KiB per SET)"
    echo "peak charge of the capped cgroup (cap $cap_mib MiB): load" \
        "$(fmt %.0f "$(calc "$(get cgroup_capped_load_peak_bytes) / 1048576")") MiB, open and GETs" \
        "$(fmt %.0f "$(calc "$(get cgroup_capped_gets_peak_bytes) / 1048576")") MiB$([[ $(get peak_note) == n/a ]] || echo " $(get peak_note)");" \
        "OOM kills in it: $(get cgroup_capped_oom_kills)"
    echo "server major faults by thread: load capped: $(get load_capped_threads_majflt);" \
        "open capped: $(get open_capped_threads_majflt); cold capped: $(get cold_capped_threads_majflt)"
    echo "cold GETs found a value in $(get cold_uncapped_hits) of $(get cold_uncapped_gets) without the cap and" \
        "$(get cold_capped_hits) of $(get cold_capped_gets) under it (random keys); device" \
        "bytes read in the capped cold phase $(fmt %.2f "$(calc "$(get cold_capped_device_read_bytes) / 1e9")") GB (whole disk)"
    echo "INFO (capped, after the cold GETs):" "$(for f in $INFO_FIELDS; do
        printf '%s=%s ' "$f" "$(get "info_capped_$f")"; done)"
    [[ -z $(get capped_open_note) || $(get capped_open_note) == n/a ]] || echo "note: $(get capped_open_note)"
}

compute_ratios() {
    local open_c
    rec ratio_load "$(fmt %.3f "$(calc "$(get load_capped_keys_per_sec) / $(get load_uncapped_keys_per_sec)")")"
    rec ratio_cold_vs_fio "$(fmt %.3f "$(calc "$(get cold_capped_hit_rps) / $(get fio_randread_iops)")")"
    rec ratio_cold_gets_vs_fio "$(fmt %.3f "$(calc "$(get cold_capped_rps) / $(get fio_randread_iops)")")"
    rec ratio_hot_p99 "$(fmt %.1f "$(calc "$(get mixed_capped_hot_p99_ms) / $(get mixed_uncapped_hot_p99_ms)")")"
    rec cold_kib_per_get "$(fmt %.1f "$(calc "$(get cold_capped_read_bytes_per_hit) / 1024")")"
    open_c=$(get open_capped_secs)
    if [[ $open_c == \>* ]]; then
        rec ratio_open "> $(fmt %.0f "$(calc "${open_c#> } / ($(get open_uncapped_secs) + $(get hint_read_secs))")")"
    else
        rec ratio_open "$(fmt %.2f "$(calc "$open_c / ($(get open_uncapped_secs) + $(get hint_read_secs))")")"
    fi
}

write_json() {
    local k
    for k in "${!R[@]}"; do printf '%s\t%s\n' "$k" "${R[$k]}"; done \
        | jq -Rn '[inputs | split("\t") | {(.[0]): (.[1] | tonumber? // .)}] | add' >"$json_out"
    say "wrote $json_out"
}

# disk_of DIR: the block device (whole disk, e.g. vda) under DIR's file system.
disk_of() {
    local src name
    src=$(findmnt -no SOURCE --target "$1" | head -1)
    name=$(basename "$src")
    if [[ -e /sys/class/block/$name/partition ]]; then
        name=$(basename "$(readlink -f "/sys/class/block/$name/..")")
    fi
    [[ -e /sys/block/$name ]] && echo "$name" || echo unknown
}

# ---- main ----------------------------------------------------------------------------------

main() {
    local dir_u dir_c fs_type
    [[ -w /proc/sys/vm/drop_caches ]] || { say "needs root (drop_caches, cgroups): nothing measured"; exit 0; }
    if ! cgroup_try_v2 && ! cgroup_try_v1; then
        say "no writable cgroup memory controller here, nothing measured ($(printf '%s; ' "${CG_WHY[@]}" | sed 's/; $//'))"
        exit 0
    fi
    say "cap: ${cap_mib} MiB in cgroup $CG_KIND $CG_CAP (uncapped: $CG_FREE)"

    local tool missing=()
    for tool in redis-benchmark:redis-tools redis-cli:redis-tools fio:fio jq:jq; do
        command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
    done
    ((${#missing[@]} == 0)) || mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    ((${#missing[@]} == 0)) || apt_install "${missing[@]}"

    if [[ -z ${FLIN_SERVER_BIN:-} ]]; then
        say "cargo build --release -p flin-server (target $TARGET)"
        (cd "$REPO" && cargo build --release -p flin-server >&2) || die "build failed"
    fi
    FLIN_SERVER=${FLIN_SERVER_BIN:-$TARGET/release/flin-server}
    [[ -x $FLIN_SERVER ]] || die "no $FLIN_SERVER"

    mkdir -p "$data_root"
    data_root=$(cd "$data_root" && pwd)
    fs_type=$(df --output=fstype "$data_root" | tail -1)
    [[ $fs_type != tmpfs ]] || die "$data_root is on tmpfs: give --dir on the disk to measure"
    DISK=$(disk_of "$data_root")
    rec read_ahead_kb "$(cat "/sys/block/$DISK/queue/read_ahead_kb" 2>/dev/null || echo n/a)"
    rec cap_mib "$cap_mib"; rec keys "$keys"; rec value_bytes "$value_bytes"; rec threads "$threads"
    rec cgroup "$CG_KIND"; rec quick "$quick"; rec disk "$DISK"
    rec machine "$(nproc) CPUs ($(lscpu | sed -n 's/^Model name: *//p' | head -1)), $(free -g | awk '/^Mem:/ { print $2 }') GB RAM, Linux $(uname -r)"
    rec loadavg_start "$(cut -d' ' -f1-3 /proc/loadavg)"
    say "data in $data_root ($fs_type on $DISK, read_ahead_kb $(get read_ahead_kb))"
    dir_u=$data_root/uncapped dir_c=$data_root/capped

    phase_fio

    # Without the cap: load, hot GETs (everything resident), cold GETs, stop, open.
    phase_load uncapped "$dir_u" "$load_secs"
    [[ $(get load_uncapped_finished) == yes ]] || say "the uncapped load did not finish: the store is smaller than asked"
    hot_prepare
    phase_hot uncapped
    phase_mixed uncapped
    phase_cold uncapped
    info_fields uncapped
    server_stop
    hint_read "$dir_u"
    phase_open uncapped "$dir_u" "$open_secs" || die "the uncapped open took more than ${open_secs}s"
    server_stop

    # Under the cap: the load into a fresh directory, for its rate only.
    phase_load capped "$dir_c" "$capped_load_secs"
    server_stop
    rec cgroup_capped_load_peak_bytes "$(cg_peak "$CG_CAP")"
    cg_reset_peak "$CG_CAP"
    ((keep)) || rm -rf "$dir_c"

    # Under the cap, on the full store the uncapped load made: open, hot, cold, hot beside cold.
    if ! phase_open capped "$dir_u" "$open_secs"; then
        # Today's open ignores SIGTERM until the store is open: SIGKILL soon.
        STOP_TIMEOUT_SECS=5 server_stop
        rec capped_open_note "the capped open did not finish in ${open_secs}s; the capped GET phases ran on a server opened inside the cgroup with the cap lifted, then the cap set again and the page cache dropped"
        cg_set_limit "$CG_CAP" max
        server_start "$dir_u" capped
        START_TIMEOUT_SECS=$open_secs wait_ping flin-server "$SERVER_PID" "$SERVER_PORT" "$SERVER_LOG"
        make_cold reopen
        cg_set_limit "$CG_CAP" $((cap_mib << 20))
        cg_reset_peak "$CG_CAP"
        [[ $CG_KIND == v1 ]] || rec peak_note "(v2: includes the open without the cap)"
    fi
    phase_hot capped
    phase_cold capped
    info_fields capped
    phase_mixed capped
    server_stop

    rec cgroup_capped_gets_peak_bytes "$(cg_peak "$CG_CAP")"
    rec cgroup_capped_oom_kills "$(cg_oom_kills "$CG_CAP")"
    rec loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"
    compute_ratios
    print_report
    [[ -z $json_out ]] || write_json
}

WORK=$(mktemp -d -t flin-memcap.XXXXXX)
cleanup() {
    [[ -z $SAMPLER_PID ]] || kill "$SAMPLER_PID" 2>/dev/null || true
    STOP_TIMEOUT_SECS=10
    stop_pids "${pids[@]}"
    cgroup_remove "$CG_CAP"
    cgroup_remove "$CG_FREE"
    if ((keep)); then
        say "kept the data directories in $data_root and the server logs in $WORK"
    else
        rm -rf "$data_root/uncapped" "$data_root/capped" "$data_root/fio" "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

main
