# shellcheck shell=bash
# lib.sh: helpers shared by the bench scripts (bench/*.sh) and the CI checks (.ci/checks/*.sh).
# Source it, by a path relative to the sourcing script, before any cd:
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"               # from bench/
#   source "$(dirname "${BASH_SOURCE[0]}")/../../bench/lib.sh"   # from .ci/checks/
# Written for `set -euo pipefail`: every function returns 0 or ends the script through die
# (called inside $(...), die ends the subshell, and set -e then ends the script).
#
# Variables the functions read (set them before calling; defaults in brackets):
#   HOST                 loopback address the servers listen on [127.0.0.1]
#   PORT_ATTEMPTS_MAX    free_port: candidates tried [100]
#   START_TIMEOUT_SECS   wait_ping, wait_logged_port: longest wait for a process to start [10]
#   POLL_INTERVAL_SECS   wait_ping, wait_logged_port: pause between polls [0.1]
#   PING_TIMEOUT_SECS    wait_ping: limit on one redis-cli PING [5]
#   STOP_TIMEOUT_SECS    stop_pids: from SIGTERM to SIGKILL [5]
#   APT_TIMEOUT_SECS     apt_install: limit on each apt-get call [900]
# and the one this file keeps:
#   taken_ports          ports free_port has handed out in this run, space-separated
#
# Functions:
#   die MESSAGE...         prints "SCRIPT: MESSAGE" on stderr (SCRIPT: the script's file name)
#                          and exits 1. The helpers below fail through die: a script that says
#                          more on failure (log tails, a summary line) redefines die after
#                          sourcing this file.
#   free_port VAR          sets VAR (a name or an array element such as "ports[$i]") to a port
#                          on HOST that nothing listens on, below the kernel's ephemeral range
#                          (so no outgoing connection holds it) and not handed out before.
#   wait_ping NAME PID PORT [LOG]
#                          polls PING on PORT until PONG; dies if process PID exits first or
#                          START_TIMEOUT_SECS pass (with the last 20 lines of LOG, if given).
#   wait_logged_port NAME PID LOG VAR
#                          for a flin-server started with --port 0: waits for its "flin-server
#                          ready ... address=127.0.0.1:PORT" line in LOG and sets VAR to PORT;
#                          dies if PID exits first or START_TIMEOUT_SECS pass.
#   stop_pids PID...       SIGTERM to each, SIGKILL to any still running STOP_TIMEOUT_SECS later,
#                          then reaps them; empty and already gone PIDs are fine. For EXIT traps.
#   apt_install PACKAGE... installs Debian packages (apt-get update only when the plain install
#                          fails); dies saying which ones it could not install.
#   cpu_ticks PID...       CPU ticks (utime + stime) the processes have used together.
#   median VALUE...        the middle value (the lower middle for an even count).

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    echo "lib.sh: source this file from a script, do not run it" >&2
    exit 1
fi

taken_ports=${taken_ports:-}

die() {
    echo "${0##*/}: $*" >&2
    exit 1
}

free_port() {
    # Locals start with "_": VAR is assigned by name, so it must not name one of them.
    local _low=10000 _high _candidate _attempt
    _high=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true)
    [[ $_high =~ ^[0-9]+$ ]] || _high=32768
    ((_high - _low >= 1000)) || _high=60000   # an ephemeral range that starts low: skip the rule
    for ((_attempt = 0; _attempt < ${PORT_ATTEMPTS_MAX:-100}; _attempt++)); do
        _candidate=$((_low + RANDOM % (_high - _low)))
        [[ " $taken_ports " == *" $_candidate "* ]] && continue
        if ! (exec 3<>"/dev/tcp/${HOST:-127.0.0.1}/$_candidate") 2>/dev/null; then
            taken_ports+=" $_candidate"
            printf -v "$1" '%s' "$_candidate"
            return
        fi
    done
    die "no free port found in ${PORT_ATTEMPTS_MAX:-100} attempts between $_low and $_high"
}

wait_ping() {
    local name=$1 pid=$2 port=$3 log=${4:-} secs=${START_TIMEOUT_SECS:-10}
    local deadline=$((SECONDS + secs))
    while ((SECONDS < deadline)); do
        if [[ $(timeout "${PING_TIMEOUT_SECS:-5}" redis-cli -h "${HOST:-127.0.0.1}" -p "$port" ping 2>/dev/null) == PONG ]]; then
            return
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            [[ -z $log ]] || tail -20 "$log" >&2
            die "$name exited at start"
        fi
        sleep "${POLL_INTERVAL_SECS:-0.1}"
    done
    [[ -z $log ]] || tail -20 "$log" >&2
    die "$name did not answer PING on port $port within ${secs}s"
}

wait_logged_port() {
    # Locals start with "_", as in free_port.
    local _name=$1 _pid=$2 _log=$3 _secs=${START_TIMEOUT_SECS:-10} _port=""
    local _deadline=$((SECONDS + _secs))
    while ((SECONDS < _deadline)); do
        _port=$(sed -n 's/.*flin-server ready.*address=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$_log" | head -1)
        if [[ -n $_port ]]; then
            printf -v "$4" '%s' "$_port"
            return
        fi
        kill -0 "$_pid" 2>/dev/null || die "$_name exited at start"
        sleep "${POLL_INTERVAL_SECS:-0.1}"
    done
    die "$_name not ready within ${_secs}s (no \"flin-server ready\" line in $_log)"
}

stop_pids() {
    local pid deadline=$((SECONDS + ${STOP_TIMEOUT_SECS:-5}))
    for pid in "$@"; do
        if [[ -n $pid ]]; then kill -TERM "$pid" 2>/dev/null || true; fi
    done
    for pid in "$@"; do
        [[ -n $pid ]] || continue
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
        wait "$pid" 2>/dev/null || true
    done
}

apt_install() {
    local secs=${APT_TIMEOUT_SECS:-900}
    echo "${0##*/}: installing $*" >&2
    DEBIAN_FRONTEND=noninteractive timeout "$secs" apt-get install -y "$@" >/dev/null 2>&1 \
        || { timeout "$secs" apt-get update >/dev/null \
             && DEBIAN_FRONTEND=noninteractive timeout "$secs" apt-get install -y "$@" >/dev/null; } \
        || die "cannot install $* with apt-get (it needs root and network; or install them by hand)"
}

# need_redis_server_7 [WHY]: installs redis-server with apt-get when missing, and dies (through
# the caller's `die`) unless it is version 7, naming WHY it is needed.
need_redis_server_7() {
    command -v redis-server >/dev/null || apt_install redis-server
    case "$(redis-server --version)" in
        *" v=7."*) ;;
        *) die "redis-server 7 needed${1:+ ($1)}; found: $(redis-server --version)" ;;
    esac
}

# Fields 14 and 15 of /proc/PID/stat, counted after the ")" that ends the command name (which
# may hold spaces).
cpu_ticks() {
    local pid stat total=0
    for pid in "$@"; do
        stat=$(<"/proc/$pid/stat") || die "process $pid is gone"
        stat=${stat##*) }
        total=$((total + $(awk '{ print $12 + $13 }' <<<"$stat")))
    done
    echo "$total"
}

median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
