#!/bin/sh
# Install every Debian package hostchanfs needs to build, test, demo and benchmark.
# Idempotent: apt-get is only called when something is missing.
set -eu
PACKAGES="build-essential cmake ninja-build pkg-config g++
libfuse3-dev fuse3 libboost-dev libspdlog-dev libfmt-dev libcli11-dev nlohmann-json3-dev
libgtest-dev libgmock-dev libbenchmark-dev
runc crun podman golang-github-containers-common catatonit fio busybox-static gnuplot-nox attr acl procps psmisc util-linux python3
prometheus-cpp-dev prometheus"
missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "deps: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
