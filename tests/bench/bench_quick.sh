#!/bin/sh
# ctest bench.quick: bench/run.sh --quick on a tiny size must exit 0 and write the table,
# the raw results (JSON, CSV) and the plot. Timing is never asserted.
# Needs root and /dev/fuse: skips (77) without them, but fails in CI (CI=true), as
# HOSTCHANFS_REQUIRE_FUSE() does for the C++ tests.
set -eu
if [ "$(id -u)" != 0 ] || [ ! -w /dev/fuse ]; then
    if [ "${CI:-}" = true ]; then echo "required in CI: needs root and /dev/fuse" >&2; exit 1; fi
    echo "[  SKIPPED ] needs root and /dev/fuse"; exit 77
fi
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="$(mktemp -d /tmp/hostchanfs-bench-test.XXXXXX)"
trap 'rm -rf "$OUT"' EXIT

"$ROOT/bench/run.sh" --quick --size 64M --out "$OUT"

for f in table.txt table.md results.json results.csv ratios.png; do
    [ -s "$OUT/$f" ] || { echo "bench.quick: $f is missing or empty" >&2; exit 1; }
done
grep -q '^workload .*tmpfs median.*hostchanfs median.*writer median.*ratio hostchanfs.*ratio writer' "$OUT/table.txt" ||
    { echo "bench.quick: table.txt has no table header" >&2; exit 1; }
# Every workload was measured on every side (tmpfs, hostchanfs --charge channel and
# --charge writer), every repetition is in the JSON.
python3 - "$OUT/results.json" <<'PY'
import json, os, statistics, sys
doc = json.load(open(sys.argv[1]))
samples = doc["samples"]
reps = doc["config"]["reps"]
names = {s["result"] for s in samples}
bad = [n for n in sorted(names) for side in ("tmpfs", "hostchanfs", "writer")
       if sorted(s["rep"] for s in samples if s["result"] == n and s["side"] == side) != list(range(reps))]
if len(names) < 20 or bad:
    sys.exit(f"bench.quick: results.json lacks repetitions for {bad or 'most workloads'}")
# Like against like: in each repetition of a one-client workload both sides ran on the
# same single CPU, and the CPU rotates over the repetitions (two-client ones: unpinned).
two_clients = {"fio-randread-4k-j2", "fio-randwrite-4k-j2", "ipc-pingpong", "ipc-stream", "ipc-attach"}
cpus = {}
for s in samples:
    if s["error"] is None:
        cpus.setdefault((s["result"], s["rep"]), set()).add(s["extra"].get("cpu", "absent"))
ncpu = len(os.sched_getaffinity(0))
for (name, rep), seen in sorted(cpus.items()):
    want = None if name in two_clients else sorted(os.sched_getaffinity(0))[rep % ncpu]
    if seen != {want}:
        sys.exit(f"bench.quick: {name} rep {rep} ran on CPUs {seen}, expected {want} for both sides")
# The ratio is what the README says: the median of the per-repetition ratios.
for row in doc["summary"]:
    if row["ratio"] is None:
        continue
    # The ratio rows where less is better: milliseconds, and issue 17's page-cache memory.
    lower_is_better = row["result"] in ("ipc-attach", "mem-cache")
    pairs = {}
    for s in samples:
        if s["result"] == row["result"] and s["value"]:
            pairs.setdefault(s["rep"], {})[s["side"]] = s["value"]
    want = statistics.median((p["tmpfs"] / p["hostchanfs"]) if lower_is_better else (p["hostchanfs"] / p["tmpfs"])
                             for p in pairs.values() if "tmpfs" in p and "hostchanfs" in p)
    if abs(row["ratio"] - want) > 1e-9 * want:
        sys.exit(f"bench.quick: {row['result']} ratio {row['ratio']} is not the median of the pairs ({want})")
for key in ("cores", "kernel", "libfuse", "loadavg_start"):
    if key not in doc["machine"]:
        sys.exit(f"bench.quick: results.json lacks machine.{key}")
# Unpinned, the daemons may run on every CPU this test may.
if doc["machine"].get("pinned_cpu", "absent") is not None:
    sys.exit(f"bench.quick: an unpinned run records pinned_cpu {doc['machine'].get('pinned_cpu', 'absent')}")
daemons = doc["machine"].get("daemon_cpus", {})
if sorted(daemons) != ["hostchanfs", "writer"] or any(c != sorted(os.sched_getaffinity(0)) for c in daemons.values()):
    sys.exit(f"bench.quick: daemon_cpus {daemons}, expected both daemons on {sorted(os.sched_getaffinity(0))}")
# issue 17's metadata target compares the two modes: the line under the table gives, per
# meta-* row, the median of each repetition's writer/channel pair.
table = open(os.path.join(os.path.dirname(sys.argv[1]), "table.txt")).read()
line = next((l for l in table.splitlines() if l.startswith("writer / channel, metadata rows")), None)
if line is None:
    sys.exit("bench.quick: table.txt has no writer / channel line")
shown = dict(item.rsplit(" ", 1) for item in line.split("): ", 1)[1].split(", "))
for name in sorted(n for n in names if n.startswith("meta-")):
    pairs = {}
    for s in samples:
        if s["result"] == name and s["value"] and s["side"] in ("hostchanfs", "writer"):
            pairs.setdefault(s["rep"], {})[s["side"]] = s["value"]
    want = statistics.median(p["writer"] / p["hostchanfs"] for p in pairs.values() if len(p) == 2)
    if name not in shown or shown[name] != f"{want:.2f}":
        sys.exit(f"bench.quick: writer / channel of {name} is {shown.get(name)}, not {want:.2f}")
PY

# --cpu N: the programs, the harness and the daemons (read from the daemons themselves)
# all on CPU N, and the table says so.
CPU="$(python3 -c 'import os; print(max(os.sched_getaffinity(0)))')"
"$ROOT/bench/run.sh" --quick --size 64M --cpu "$CPU" --only '^meta-stat$' --out "$OUT/pinned"
python3 - "$OUT/pinned/results.json" "$CPU" <<'PY'
import json, os, sys
doc, cpu = json.load(open(sys.argv[1])), int(sys.argv[2])
m = doc["machine"]
if m.get("pinned_cpu") != cpu:
    sys.exit(f"bench.quick: --cpu {cpu} recorded pinned_cpu {m.get('pinned_cpu')}")
if sorted(m.get("daemon_cpus", {})) != ["hostchanfs", "writer"] or any(c != [cpu] for c in m["daemon_cpus"].values()):
    sys.exit(f"bench.quick: --cpu {cpu}, but the daemons may run on {m.get('daemon_cpus')}")
ran = {s["extra"].get("cpu") for s in doc["samples"] if s["error"] is None}
if not doc["samples"] or ran != {cpu}:
    sys.exit(f"bench.quick: --cpu {cpu}, but repetitions ran on {ran}")
head = open(os.path.join(os.path.dirname(sys.argv[1]), "table.txt")).readline()
if f"everything on CPU {cpu} (--cpu)" not in head:
    sys.exit(f"bench.quick: the table's first line does not say --cpu {cpu}: {head.strip()}")
PY
# A CPU this test may not run on: one line, exit 2, no results directory.
rc=0
"$ROOT/bench/run.sh" --quick --cpu 4096 --out "$OUT/bad" 2>"$OUT/bad.err" || rc=$?
if [ "$rc" != 2 ] || [ "$(wc -l <"$OUT/bad.err")" != 1 ] || ! grep -q "^bench/run.sh: --cpu '4096' is not a CPU" "$OUT/bad.err" ||
    [ -e "$OUT/bad" ]; then
    echo "bench.quick: --cpu 4096 gave exit $rc and: $(cat "$OUT/bad.err")" >&2; exit 1
fi
echo "bench.quick: ok"
