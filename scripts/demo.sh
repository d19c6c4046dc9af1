#!/bin/sh
# The seed scenario, shown step by step (iSulad's --host-channel, re-done with hostchanfs):
#   hostchanfs run --host-channel /testdir:/testdir:rw:32M -- sh -c 'dd ... of=/testdir/test.file'
# a host process sees the container's file while it runs; afterwards the channel, its host
# path and its daemon are gone. Installs what it needs (Debian 12, as root) and builds.
#   scripts/demo.sh                    # build in build/ (BUILD_DIR=... to change)
#   DEMO_PAUSE=1 scripts/demo.sh       # wait for Enter between steps
set -eu
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build}"
HOST_PATH=/testdir

say()  { printf '\n\033[1m== %s\033[0m\n' "$*"; [ -z "${DEMO_PAUSE:-}" ] || { printf '(Enter) '; read -r _; }; }
show() { printf '\033[36m$ %s\033[0m\n' "$*"; sh -c "$*"; }

if [ "$(id -u)" != 0 ]; then echo "demo: run me as root (FUSE mounts and namespaces)" >&2; exit 2; fi

say "1. Install the Debian packages and build hostchanfs (in $BUILD_DIR/)"
scripts/deps.sh
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)" --target hostchanfs
HC="$(pwd)/$BUILD_DIR/cli/hostchanfs"
export PATH="$(dirname "$HC"):$PATH"

if [ -e "$HOST_PATH" ] || [ -L "$HOST_PATH" ]; then
    echo "demo: $HOST_PATH exists already; a channel needs a host path that does not exist (remove it, or run 'hostchanfs umount $HOST_PATH' if it is a channel)" >&2
    exit 2
fi
RUN_DIR="${HOSTCHANFS_RUN_DIR:-/run/hostchanfs}"
controller_before="$(cat "$RUN_DIR/controller.pid" 2>/dev/null || true)"
run_pid=""
cleanup() {
    [ -z "$run_pid" ] || kill "$run_pid" 2>/dev/null || true
    if grep -q " $HOST_PATH fuse.hostchanfs " /proc/mounts 2>/dev/null; then "$HC" umount "$HOST_PATH" || true; fi
    # Stop the controller only if this demo started it.
    pid="$(cat "$RUN_DIR/controller.pid" 2>/dev/null || true)"
    if [ -n "$pid" ] && [ "$pid" != "$controller_before" ]; then kill "$pid" 2>/dev/null || true; fi
}
trap cleanup EXIT INT TERM

say "2. Start a container with a 32M host channel at $HOST_PATH; it fills the channel with dd"
cat <<'TXT'
The container (hostchanfs run: an OCI runtime, crun where it can run here, else runc, with
its default sandbox and a user namespace; the root is the host's / alone, read-only) runs
the seed's dd, then waits for the host to write back.
TXT
CONTAINER_SCRIPT='dd if=/dev/zero of=/testdir/test.file bs=1024 count=64K
echo "container: dd is done; waiting for the host"
touch /testdir/.dd-done
while [ ! -e /testdir/from-host ]; do sleep 0.1; done
echo "container: the host says: $(cat /testdir/from-host)"'
printf '\033[36m$ hostchanfs run --host-channel %s:/testdir:rw:32M -- sh -c '"'"'dd if=/dev/zero of=/testdir/test.file bs=1024 count=64K; ...'"'"' &\033[0m\n' "$HOST_PATH"
hostchanfs run --host-channel "$HOST_PATH:/testdir:rw:32M" -- sh -c "$CONTAINER_SCRIPT" &
run_pid=$!
i=0
until [ -e "$HOST_PATH/.dd-done" ]; do
    if ! kill -0 "$run_pid" 2>/dev/null; then echo "demo: the container ended early" >&2; exit 1; fi
    i=$((i + 1)); [ $i -lt 1200 ] || { echo "demo: dd did not finish" >&2; exit 1; }
    sleep 0.1
done

say "3. Meanwhile, on the host: the container's file, the full channel, the controller's view"
show "ls -l $HOST_PATH"
show "df -h $HOST_PATH"
show "grep ' $HOST_PATH ' /proc/mounts"
show "hostchanfs ls"

say "4. The host frees the channel (the memory goes back at once) and answers through it"
show "rm $HOST_PATH/test.file && df -h $HOST_PATH"
show "echo 'hello from the host' > $HOST_PATH/from-host"
wait "$run_pid"
status=$?
run_pid=""
echo "hostchanfs run exited with status $status (the container command's)"

say "5. The container is gone: so are the channel, its host path and its daemon"
show "ls -ld $HOST_PATH 2>&1 || true"
show "grep -c ' $HOST_PATH ' /proc/mounts || true"
show "hostchanfs ls"
show "ps -eo pid,args | grep '[h]ostchanfs serve .*$HOST_PATH' || echo 'no channel daemon left'"

say "6. A read-only channel: the container cannot write, not even as root"
show "hostchanfs run --host-channel $HOST_PATH:/testdir:ro:1M -- sh -c 'touch /testdir/x; mount -i -o remount,rw /testdir; ls -la /testdir' || true"

say "7. The seed's note: a container limited to 24M writes 48 MiB into a 64M channel, and is not OOM-killed"
cat <<'TXT'
The channel's memory is its daemon's, not the container's. The same write into a tmpfs of
the container's own is charged to the container, and the kernel kills it (status 137).
TXT
show "hostchanfs run --memory 24M --host-channel $HOST_PATH:/testdir:rw:64M -- sh -c 'dd if=/dev/zero of=/testdir/big bs=1M count=48 && ls -l /testdir/big'"
show "hostchanfs run --memory 24M --host-channel $HOST_PATH:/testdir:rw:64M -- sh -c 'dd if=/dev/zero of=/tmp/big bs=1M count=48' || echo \"status \$? (killed by the OOM killer)\""
show "ls -ld $HOST_PATH 2>&1 || true"

say "8. By hand, for any container engine: mount prints the bind mount to hand over"
show "hostchanfs mount $HOST_PATH:/testdir:rw:32M"
show "hostchanfs ls"
show "hostchanfs umount $HOST_PATH && ls -ld $HOST_PATH 2>&1 || true"

say "Done."
