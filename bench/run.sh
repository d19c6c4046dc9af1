#!/bin/bash
# hostchanfs against kernel tmpfs, side by side, on this machine. As root:
#
#   bench/run.sh [--quick] [--size SIZE] [--reps N] [--seconds S] [--only REGEX] [--out DIR]
#                [--baseline BIN] [--cpu N]
#
#   --quick        a short run (under two minutes); the full run takes under fifteen
#   --size SIZE    size of each mount (default 1G; k/m/g suffixes)
#   --reps N       repetitions per workload (default 5, quick 2)
#   --seconds S    time budget of one timed measurement (default 1, quick 0.2)
#   --only REGEX   only the workloads whose name matches (e.g. '^fio-|^dd-')
#   --out DIR      results directory (default bench/results/<UTC timestamp>)
#   --baseline BIN another build's hostchanfs binary (e.g. of the commit before a change):
#                  one more column, "baseline", its --charge channel mount measured in the
#                  same repetitions, so that before and after meet the same machine
#   --cpu N        everything (the programs, the daemons, the harness) on CPU N alone: no
#                  request then waits for an idle CPU to wake, so a ratio is of the CPU
#                  work alone, and on a noisy virtual machine two daemons of one build
#                  agree far better (for deciding between two builds; the targets are
#                  read unpinned)
#
# It mounts a kernel tmpfs and two hostchanfs channels of the same size (mode 1777), one
# `--charge channel` (column "hostchanfs") and one `--charge writer` (column "writer",
# FUSE passthrough; left out where the kernel cannot, with a note), in a private mount
# namespace of its own, so nothing stays mounted whatever happens, runs every workload on
# each (bench/harness.py), and prints the table (under it, each metadata row's writer /
# channel ratio, which issue 17's "no worse than channel" reads). The results directory
# gets table.txt, table.md, results.json and results.csv (every repetition, with the
# machine), and ratios.png.
#
# Binaries: $HOSTCHANFS_BIN (default $HOSTCHANFS_BUILD_DIR/cli/hostchanfs) and the bench
# helpers in $HOSTCHANFS_BUILD_DIR/bench; HOSTCHANFS_BUILD_DIR defaults to build/, which is
# configured and built when something is missing.
# HOSTCHANFS_BENCH_COMMIT names the measured commit when the build's source tree is not a
# git checkout (e.g. an export of one commit); otherwise `git describe` of it is recorded.
# HOSTCHANFS_BENCH_SELF_TEST=1 mounts a second kernel tmpfs in place of hostchanfs: it
# tests the harness itself, and says so in every output.
#
# Exit status: 0 all measured; 1 some measurement failed (the outputs are still written,
# with ERROR rows); 2 bad usage or missing prerequisites (nothing was mounted).
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
fail_usage() { echo "bench/run.sh: $1" >&2; exit 2; }

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
QUICK="" SIZE="1G" REPS="" SECONDS_PER="" ONLY="" OUT="" BASELINE="" PIN_CPU=""
COMMAND="bench/run.sh $*"
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --size) SIZE="${2:?--size needs a value}"; shift ;;
        --reps) REPS="${2:?--reps needs a value}"; shift ;;
        --seconds) SECONDS_PER="${2:?--seconds needs a value}"; shift ;;
        --only) ONLY="${2:?--only needs a value}"; shift ;;
        --out) OUT="${2:?--out needs a value}"; shift ;;
        --baseline) BASELINE="${2:?--baseline needs a value}"; shift ;;
        --cpu) PIN_CPU="${2:?--cpu needs a value}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) fail_usage "unknown argument '$1' (see --help)" ;;
    esac
    shift
done

# SIZE in bytes, as both tmpfs and hostchanfs take it: N[k|m|g][b], any case.
size_bytes() {
    local s="${1,,}" n mult=1
    s="${s%b}"
    case "$s" in
        *k) mult=1024; s="${s%k}" ;;
        *m) mult=$((1 << 20)); s="${s%m}" ;;
        *g) mult=$((1 << 30)); s="${s%g}" ;;
    esac
    [[ "$s" =~ ^[0-9]+$ ]] || return 1
    n=$((s * mult))
    [ "$n" -ge $((16 << 20)) ] || return 1
    echo "$n"
}
SIZE_BYTES="$(size_bytes "$SIZE")" || fail_usage "--size '$SIZE' is not a size of at least 16M (e.g. 512M, 1G)"
[ -z "$REPS" ] || [[ "$REPS" =~ ^[1-9][0-9]*$ ]] || fail_usage "--reps '$REPS' is not a positive number"
[ -z "$SECONDS_PER" ] || [[ "$SECONDS_PER" =~ ^[0-9]*\.?[0-9]+$ ]] || fail_usage "--seconds '$SECONDS_PER' is not a number of seconds"
if [ -n "$BASELINE" ]; then
    [ -x "$BASELINE" ] || fail_usage "--baseline '$BASELINE' is not an executable hostchanfs binary; build the other commit and pass its cli/hostchanfs"
    BASELINE="$(realpath "$BASELINE")"
fi
if [ -n "$PIN_CPU" ]; then
    command -v taskset >/dev/null || fail_usage "--cpu needs 'taskset' (util-linux), which is missing"
    { [[ "$PIN_CPU" =~ ^[0-9]+$ ]] && taskset -c "$PIN_CPU" true 2>/dev/null; } ||
        fail_usage "--cpu '$PIN_CPU' is not a CPU this may run on (these are: $(taskset -pc $$ | sed 's/.*: //'))"
fi
[ "$(id -u)" = 0 ] || fail_usage "needs root (it mounts a tmpfs and a FUSE file system); run it with sudo"

if [ -z "${HOSTCHANFS_BENCH_IN_NAMESPACE:-}" ]; then
    # ---- outside: find or build the binaries, then re-enter in a private mount namespace.
    for tool in fio dd gnuplot unshare setpriv python3; do
        command -v "$tool" >/dev/null || fail_usage "'$tool' is missing; run scripts/deps.sh"
    done
    [ "${HOSTCHANFS_BENCH_SELF_TEST:-}" = 1 ] || [ -e /dev/fuse ] ||
        fail_usage "/dev/fuse is missing; load the fuse module (modprobe fuse)"
    BUILD_DIR="$(realpath -m "${HOSTCHANFS_BUILD_DIR:-$ROOT/build}")"
    HOSTCHANFS_BIN="$(realpath -m "${HOSTCHANFS_BIN:-$BUILD_DIR/cli/hostchanfs}")"
    HOSTCHANFS_BENCH_BIN_DIR="$(realpath -m "${HOSTCHANFS_BENCH_BIN_DIR:-$BUILD_DIR/bench}")"
    export HOSTCHANFS_BIN HOSTCHANFS_BENCH_BIN_DIR
    targets="hostchanfs_bench_metadata hostchanfs_bench_ipc"
    [ -n "$QUICK" ] || targets="$targets hostchanfs_store_bench"
    missing=""
    for t in $targets; do [ -x "$HOSTCHANFS_BENCH_BIN_DIR/$t" ] || missing=1; done
    [ -x "$HOSTCHANFS_BIN" ] || missing=1
    if [ -n "$missing" ]; then
        echo "bench: building in $BUILD_DIR"
        [ -f "$BUILD_DIR/CMakeCache.txt" ] ||
            cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
        # The store benchmark is optional: an older tree without it still runs the rest.
        cmake --build "$BUILD_DIR" -j "$(nproc)" --target hostchanfs $targets ||
            cmake --build "$BUILD_DIR" -j "$(nproc)" --target hostchanfs hostchanfs_bench_metadata hostchanfs_bench_ipc
    fi
    # The results name the commit the binaries were built from: the build's source tree.
    SOURCE_DIR="$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$BUILD_DIR/CMakeCache.txt" 2>/dev/null)"
    export HOSTCHANFS_BENCH_SOURCE_DIR="${SOURCE_DIR:-$ROOT}"
    export HOSTCHANFS_BENCH_IN_NAMESPACE=1 HOSTCHANFS_BENCH_COMMAND="${COMMAND% }"
    # setpriv --pdeathsig: the inner script stops if whatever runs it goes away.
    # --cpu: taskset first, so that everything the inner script starts inherits the CPU
    # (the harness reads it back from its own affinity).
    exec ${PIN_CPU:+taskset -c "$PIN_CPU"} unshare --mount --propagation private -- \
        setpriv --pdeathsig TERM -- "$0" \
        ${QUICK:+--quick} --size "$SIZE" \
        ${REPS:+--reps "$REPS"} ${SECONDS_PER:+--seconds "$SECONDS_PER"} \
        ${ONLY:+--only "$ONLY"} ${OUT:+--out "$OUT"} ${BASELINE:+--baseline "$BASELINE"}
fi

# ---- inside the private mount namespace: mount, measure, and tear everything down.
COMMAND="${HOSTCHANFS_BENCH_COMMAND:-$COMMAND}"
OUT="${OUT:-$ROOT/bench/results/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
WORK="$(mktemp -d /tmp/hostchanfs-bench.XXXXXX)"
DAEMON_PID="" WRITER_PID="" BASELINE_PID="" HARNESS_PID=""

cleanup() {
    local rc=$?
    if [ -n "$HARNESS_PID" ] && kill -0 "$HARNESS_PID" 2>/dev/null; then
        kill -TERM "$HARNESS_PID" 2>/dev/null || true
        wait "$HARNESS_PID" 2>/dev/null || true
    fi
    for pid in $DAEMON_PID $WRITER_PID $BASELINE_PID; do
        kill -0 "$pid" 2>/dev/null || continue
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    # The namespace dies with this script anyway; unmounting first lets rmdir clean up.
    for m in "$WORK/hostchanfs" "$WORK/writer" "$WORK/baseline" "$WORK/tmpfs"; do
        mountpoint -q "$m" && umount -l "$m" 2>/dev/null
        rmdir "$m" 2>/dev/null || true
    done
    rm -f "$WORK/ready"
    rmdir "$WORK" 2>/dev/null || true
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir "$WORK/tmpfs" "$WORK/hostchanfs" "$WORK/writer" "$WORK/baseline"
mount -t tmpfs -o "size=$SIZE_BYTES,mode=1777,nosuid,nodev,noexec" bench-tmpfs "$WORK/tmpfs"

if [ "${HOSTCHANFS_BENCH_SELF_TEST:-}" = 1 ]; then
    echo "bench: SELF TEST: the 'hostchanfs' column is a second kernel tmpfs"
    mount -t tmpfs -o "size=$SIZE_BYTES,mode=1777,nosuid,nodev,noexec" bench-selftest "$WORK/hostchanfs"
    COMMAND="HOSTCHANFS_BENCH_SELF_TEST=1 $COMMAND"
else
    # start_daemon BIN DIR LOG ARGS...: BIN's `serve` on DIR; its pid in STARTED, once it serves.
    # The daemon writes "ready\n" on fd 9 once it serves. A FIFO opened read-write here
    # never blocks the daemon and never gives us EOF, so the wait polls with a timeout
    # and gives up as soon as the daemon is gone. bash reads a FIFO a byte at a time, and
    # a read that times out after "rea" keeps those bytes in `part` only: they are kept.
    start_daemon() {
        local bin="$1" dir="$2" log="$3" ready="" line="" part
        shift 3
        rm -f "$WORK/ready"
        mkfifo "$WORK/ready"
        exec 9<>"$WORK/ready"
        # setpriv --pdeathsig: the daemon dies with this script even if the script is killed.
        setpriv --pdeathsig TERM -- "$bin" serve --size "$SIZE_BYTES" --ready-fd 9 "$@" \
            "$dir" 2>"$log" &
        STARTED=$!
        for _ in $(seq 300); do
            if read -r -t 0.1 -u 9 part; then
                [ "$line$part" = ready ] && { ready=1; break; }
                line=""
            else
                line="$line$part"
            fi
            kill -0 "$STARTED" 2>/dev/null || break
        done
        exec 9>&-
        [ -n "$ready" ]
    }
    if ! start_daemon "$HOSTCHANFS_BIN" "$WORK/hostchanfs" "$OUT/daemon.log"; then
        echo "bench/run.sh: hostchanfs serve did not become ready; see $OUT/daemon.log:" >&2
        tail -n 5 "$OUT/daemon.log" >&2 || true
        exit 2
    fi
    DAEMON_PID=$STARTED
    if start_daemon "$HOSTCHANFS_BIN" "$WORK/writer" "$OUT/daemon-writer.log" --charge writer; then
        WRITER_PID=$STARTED
    else
        echo "bench: no 'writer' column: serve --charge writer did not start ($(tail -n 1 "$OUT/daemon-writer.log"))"
        WRITER_PID=""
    fi
    if [ -n "$BASELINE" ]; then
        if ! start_daemon "$BASELINE" "$WORK/baseline" "$OUT/daemon-baseline.log"; then
            echo "bench/run.sh: the --baseline daemon did not become ready; see $OUT/daemon-baseline.log:" >&2
            tail -n 5 "$OUT/daemon-baseline.log" >&2 || true
            exit 2
        fi
        BASELINE_PID=$STARTED
    fi
fi

PYTHON=python3
[ -x /usr/bin/python3 ] && PYTHON=/usr/bin/python3   # Debian's, as scripts/deps.sh installs it
STORE_BENCH="$HOSTCHANFS_BENCH_BIN_DIR/hostchanfs_store_bench"
[ -x "$STORE_BENCH" ] || STORE_BENCH=""
# In the background with `wait`: bash runs a signal trap only once a foreground child
# has finished, but interrupts `wait` at once.
setpriv --pdeathsig TERM -- "$PYTHON" "$ROOT/bench/harness.py" \
    --tmpfs "$WORK/tmpfs" --hostchanfs "$WORK/hostchanfs" ${DAEMON_PID:+--daemon-pid "$DAEMON_PID"} \
    ${WRITER_PID:+--writer "$WORK/writer" --writer-daemon-pid "$WRITER_PID"} \
    ${BASELINE_PID:+--baseline "$WORK/baseline" --baseline-daemon-pid "$BASELINE_PID" --baseline-bin "$BASELINE"} \
    --hostchanfs-bin "$HOSTCHANFS_BIN" --bin-dir "$HOSTCHANFS_BENCH_BIN_DIR" \
    ${STORE_BENCH:+--store-bench "$STORE_BENCH"} --size "$SIZE_BYTES" ${QUICK:+--quick} \
    ${REPS:+--reps "$REPS"} ${SECONDS_PER:+--seconds "$SECONDS_PER"} ${ONLY:+--only "$ONLY"} \
    --source-dir "$HOSTCHANFS_BENCH_SOURCE_DIR" --out "$OUT" --command "$COMMAND" &
HARNESS_PID=$!
rc=0
wait "$HARNESS_PID" || rc=$?
HARNESS_PID=""
exit "$rc"
