#!/usr/bin/env python3
"""The measuring half of bench/run.sh: runs every workload on a kernel tmpfs and on a
hostchanfs channel that run.sh has mounted, alternating the two for each repetition, and
writes the table, the raw results (JSON, CSV) and a plot of the ratios.

run.sh owns the mounts and the daemon (a private mount namespace, torn down on exit); this
program only measures, so it can be read without any mount plumbing in the way.

Ratio: the median over the repetitions of each repetition's hostchanfs/tmpfs ratio (the
two sides of a repetition run back to back on the same CPU: a pair), oriented so that
> 1 always means hostchanfs did better: hostchanfs / tmpfs for figures where higher is
better (throughput, operations per second), tmpfs / hostchanfs where lower is better.
Memory rows have an absolute target instead of a ratio.
"""

import argparse
import contextlib
import csv
import ctypes
import datetime
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

MiB = 1 << 20


# --------------------------------------------------------------------------- sides

@dataclass
class Side:
    """One file system under test: its name, its mount point and, for hostchanfs, the
    daemon whose memory the memory workload reads."""
    name: str
    path: str
    daemon_pid: Optional[int] = None
    # "writer": hostchanfs --charge writer, whose file data is in its private backing
    # tmpfs (statfs of the mount reports it), not in the daemon's memory.
    charge: str = "channel"

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)


@dataclass
class Config:
    quick: bool
    size: int            # bytes of each mount
    reps: int
    seconds: float       # time budget of one timed measurement
    bin_dir: str         # helper programs (hostchanfs_bench_metadata, ..._ipc)
    io_bytes: int        # sequential file size (fio, dd bs=1M)
    dd1k_bytes: int      # the seed dd's size
    mem_bytes: int       # memory workload: bytes written
    cache_bytes: int     # page-cache workload: bytes written and read back
    readdir_entries: int
    big_dir_entries: int
    populate_seconds: float  # bound on filling the big directory (a swamped machine)
    meta_max: int
    inode_files: int     # empty files of the memory-per-inode workload


class MeasureError(Exception):
    """A workload could not be measured on one side: recorded, reported, not fatal."""


# --------------------------------------------------------------------------- helpers

def die_with_parent() -> None:
    """In a child before exec: SIGTERM when the harness goes, so that an interrupted run
    leaves no fio or helper behind in a mount that is about to disappear."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


PR_SET_PDEATHSIG = 1


def run_cmd(argv, timeout=300) -> subprocess.CompletedProcess:
    try:
        cp = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                            preexec_fn=die_with_parent)
    except subprocess.TimeoutExpired as e:
        raise MeasureError(f"{os.path.basename(argv[0])} timed out after {timeout} s") from e
    if cp.returncode != 0:
        last = (cp.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise MeasureError(f"{os.path.basename(argv[0])} exited {cp.returncode}: {last}")
    return cp


def drop_caches() -> None:
    """Drops the page cache, dentries and inodes: a FUSE file's cached pages go, a
    tmpfs file's pages stay (they are its storage), which is the point of a cold read."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def write_file(path: str, size: int, chunk: int = MiB) -> None:
    """Writes `size` bytes of non-zero data (untimed preparation)."""
    block = (bytes(range(256)) * (chunk // 256 + 1))[:chunk]
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, chunk)
            f.write(block[:n])
            left -= n


def read_file(path: str) -> None:
    with open(path, "rb", buffering=0) as f:
        while f.read(MiB):
            pass


def remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def helper(cfg: Config, name: str) -> str:
    return os.path.join(cfg.bin_dir, name)


def helper_json(argv, timeout=300) -> dict:
    out = run_cmd(argv, timeout).stdout.strip().splitlines()
    if not out:
        raise MeasureError(f"{os.path.basename(argv[0])} printed no result")
    return json.loads(out[-1])


# --------------------------------------------------------------------------- workloads

Result = dict  # result name -> (value, extra dict)


@dataclass
class Workload:
    """A named measurement. `run(side, cfg)` returns {result name: (value, extra)}; most
    workloads have one result named like the workload. `prepare`/`finish` run once per
    side around all repetitions, untimed. `clients`: how many processes it drives at
    once; a one-client workload is pinned to one CPU per repetition (see `measure`)."""
    name: str
    run: Callable[[Side, Config], Result]
    prepare: Optional[Callable[[Side, Config], None]] = None
    finish: Optional[Callable[[Side, Config], None]] = None
    full_only: bool = False
    clients: int = 1


@dataclass
class ResultSpec:
    """How a result is reported: unit, which way is better, and issue 7's target."""
    unit: str
    higher_is_better: bool = True
    target: Optional[float] = None           # minimum ratio
    absolute_target: Optional[Callable[[Config], float]] = None   # hostchanfs median must be <= this
    target_text: str = ""


SPECS: dict[str, ResultSpec] = {}


def spec(name, unit, higher=True, target=None, absolute=None, text=""):
    if target is not None and not text:
        text = f">= {target:g}"
    SPECS[name] = ResultSpec(unit, higher, target, absolute, text)


# ---- the seed dd

def dd_workload(name: str, bs: int, bytes_of: Callable[[Config], int]) -> Workload:
    def run(side: Side, cfg: Config) -> Result:
        path = side.file(f"{name}.dat")
        count = max(1, bytes_of(cfg) // bs)
        start = time.perf_counter()
        run_cmd(["dd", "if=/dev/zero", f"of={path}", f"bs={bs}", f"count={count}"])
        elapsed = time.perf_counter() - start   # dd has closed the file when it exits
        remove(path)
        return {name: (count * bs / MiB / elapsed, {"bytes": count * bs, "seconds": elapsed})}
    return Workload(name, run)


# ---- fio

DATA_FILE = "fio-data.bin"


def prepare_data_file(side: Side, cfg: Config) -> None:
    path = side.file(DATA_FILE)
    if not os.path.exists(path) or os.path.getsize(path) != cfg.io_bytes:
        write_file(path, cfg.io_bytes)


def fio(side: Side, cfg: Config, job: list[str], timed: bool) -> dict:
    argv = ["fio", "--output-format=json", "--name=bench", "--ioengine=psync",
            "--group_reporting", "--fallocate=none"]
    if timed:
        argv += ["--time_based", f"--runtime={int(cfg.seconds * 1000)}ms",
                 "--norandommap", "--randrepeat=0"]
    cp = run_cmd(argv + job)
    # fio may print warnings before the JSON document.
    doc = json.loads(cp.stdout[cp.stdout.index("{"):])
    jobs = doc.get("jobs") or []
    if not jobs or jobs[0].get("error"):
        raise MeasureError(f"fio job failed: {jobs[0].get('error') if jobs else 'no job'}")
    return jobs[0]


def fio_seq_write(side: Side, cfg: Config) -> Result:
    path = side.file("fio-seqwrite.bin")
    remove(path)
    job = fio(side, cfg, [f"--filename={path}", "--rw=write", "--bs=1M", f"--size={cfg.io_bytes}",
                          "--end_fsync=0"], timed=False)
    remove(path)
    w = job["write"]
    return {"fio-seqwrite-1m": (w["bw_bytes"] / MiB, {"runtime_ms": w["runtime"]})}


def fio_seq_read(cold: bool) -> Callable[[Side, Config], Result]:
    name = "fio-seqread-1m-cold" if cold else "fio-seqread-1m-warm"

    def run(side: Side, cfg: Config) -> Result:
        path = side.file(DATA_FILE)
        if cold:
            drop_caches()
        else:
            read_file(path)
        # fio's invalidate=1 (its default) fadvises DONTNEED first: on a FUSE file that
        # drops the page cache, so a warm read must say invalidate=0.
        job = fio(side, cfg, [f"--filename={path}", "--rw=read", "--bs=1M", f"--size={cfg.io_bytes}",
                              f"--invalidate={1 if cold else 0}"], timed=False)
        r = job["read"]
        return {name: (r["bw_bytes"] / MiB, {"runtime_ms": r["runtime"]})}
    return run


def fio_random(rw: str, jobs: int,
               direct: bool = False) -> tuple[str, Callable[[Side, Config], Result], int]:
    kind = "randread" if rw == "randread" else "randwrite"
    name = f"fio-{kind}-4k-direct" if direct else f"fio-{kind}-4k-j{jobs}"

    def run(side: Side, cfg: Config) -> Result:
        path = side.file(DATA_FILE)
        if rw == "randread" and not direct:
            read_file(path)   # warm: the figure is the cached read path
        job = fio(side, cfg, [f"--filename={path}", f"--rw={rw}", "--bs=4k", f"--size={cfg.io_bytes}",
                              f"--numjobs={jobs}", "--invalidate=0", f"--direct={int(direct)}"],
                  timed=True)
        part = job["read" if rw == "randread" else "write"]
        return {name: (part["iops"], {"runtime_ms": part["runtime"],
                                      "lat_mean_ns": part.get("clat_ns", {}).get("mean")})}
    return name, run, jobs


# ---- metadata (bench/metadata.cpp)

def meta_workload(name: str, op: str) -> Workload:
    def run(side: Side, cfg: Config) -> Result:
        r = helper_json([helper(cfg, "hostchanfs_bench_metadata"), op, "--dir", side.path,
                         "--seconds", str(cfg.seconds), "--max", str(cfg.meta_max),
                         "--entries", str(cfg.readdir_entries)])
        return {name: (r["value"], {"ops": r["ops"], "seconds": r["seconds"]})}
    return Workload(name, run)


def populate_big_dir(side: Side, cfg: Config) -> None:
    # The directory stays until the channel is discarded: this workload runs last.
    if not os.path.isdir(side.file("big")):
        r = helper_json([helper(cfg, "hostchanfs_bench_metadata"), "populate", "--dir", side.path,
                         "--entries", str(cfg.big_dir_entries), "--seconds", str(cfg.populate_seconds)],
                        timeout=cfg.populate_seconds + 120)
        BIG_DIR_ENTRIES[side.name] = r["ops"]


BIG_DIR_ENTRIES: dict[str, int] = {}
CREATE_IN_RUNS: dict[str, int] = {}


def create_in_big_dir(side: Side, cfg: Config) -> Result:
    """Creates in the big directory, then at once in an empty one: the scale check compares
    the two figures of the same moment, not of two workloads minutes apart (the machine's
    load moves more than that)."""
    tool = helper(cfg, "hostchanfs_bench_metadata")
    common = ["--dir", side.path, "--seconds", str(cfg.seconds), "--max", str(cfg.meta_max)]
    # Which of the two goes first alternates from one repetition to the next.
    CREATE_IN_RUNS[side.name] = CREATE_IN_RUNS.get(side.name, 0) + 1
    if CREATE_IN_RUNS[side.name] % 2:
        big = helper_json([tool, "create-in", *common])
        empty = helper_json([tool, "create", *common])
    else:
        empty = helper_json([tool, "create", *common])
        big = helper_json([tool, "create-in", *common])
    return {"meta-create-in-100k": (big["value"], {"ops": big["ops"], "seconds": big["seconds"],
                                                   "entries": BIG_DIR_ENTRIES.get(side.name),
                                                   "empty_dir_ops_s": empty["value"]})}


# ---- shared-memory IPC (bench/ipc.cpp)

def ipc_pingpong(side: Side, cfg: Config) -> Result:
    r = helper_json([helper(cfg, "hostchanfs_bench_ipc"), "pingpong", "--dir", side.path,
                     "--seconds", str(cfg.seconds)])
    return {"ipc-pingpong": (r["value"], {"round_trips": r["round_trips"], "seconds": r["seconds"]})}


def ipc_stream(side: Side, cfg: Config) -> Result:
    # Two figures from one run: the stream, timed once both processes have mapped the
    # ring, and what the second process paid to attach (open, map, touch, close).
    r = helper_json([helper(cfg, "hostchanfs_bench_ipc"), "stream", "--dir", side.path,
                     "--seconds", str(cfg.seconds)])
    return {"ipc-stream": (r["value"], {"bytes": r["bytes"], "seconds": r["seconds"]}),
            "ipc-attach": (r["attach_seconds"] * 1000, {"ring_bytes": 4 * MiB,
                                                        "split_us": r.get("attach_split", {})})}


# ---- memory

def proc_status(pid: int) -> dict:
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if rest.strip().endswith("kB"):
                fields[key] = int(rest.split()[0]) * 1024
    return fields


def shared_memory_files_bytes(pid: int) -> int:
    """Bytes allocated in the memory files (memfds, /dev/shm) the daemon holds open or
    mapped. Counted from st_blocks, so a page counts whether or not the daemon has it
    mapped (pwrite into a memfd never shows up in VmRSS)."""
    seen, total = set(), 0
    for d in (f"/proc/{pid}/fd", f"/proc/{pid}/map_files"):
        try:
            entries = os.listdir(d)
        except OSError:
            continue
        for e in entries:
            p = os.path.join(d, e)
            try:
                target = os.readlink(p)
                if not (target.startswith("/memfd:") or target.startswith("/dev/shm/")):
                    continue
                st = os.stat(p)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def memory_of(side: Side) -> tuple[float, dict]:
    """What the side's data costs in memory, in MiB. tmpfs: the bytes it stores (statfs),
    which is what its pages cost. hostchanfs: the daemon's footprint, its private memory
    (RssAnon + RssFile) plus every allocated page of its memory files; VmRSS is kept in
    the raw results too."""
    with open("/proc/meminfo") as f:
        shmem = next(int(l.split()[1]) * 1024 for l in f if l.startswith("Shmem:"))
    sv = os.statvfs(side.path)
    used = (sv.f_blocks - sv.f_bfree) * sv.f_frsize
    if side.daemon_pid is None:
        return used / MiB, {"statfs_used": used, "meminfo_shmem": shmem}
    st = proc_status(side.daemon_pid)
    files = shared_memory_files_bytes(side.daemon_pid)
    footprint = st.get("RssAnon", 0) + st.get("RssFile", 0) + files
    # writer: the data's pages are the backing tmpfs's, which no descriptor of the daemon
    # shows once the files are closed; statfs of the mount counts them.
    backing = used if side.charge == "writer" else 0
    return (footprint + backing) / MiB, {"VmRSS": st.get("VmRSS"), "RssAnon": st.get("RssAnon"),
                                         "RssFile": st.get("RssFile"), "RssShmem": st.get("RssShmem"),
                                         "memory_files": files, "backing_used": backing,
                                         "meminfo_shmem": shmem}


def memory(side: Side, cfg: Config) -> Result:
    base, base_extra = memory_of(side)
    files = [side.file(f"mem-{i}.dat") for i in range(4)]
    for p in files:
        write_file(p, cfg.mem_bytes // len(files))
    written, written_extra = memory_of(side)
    for p in files:
        os.unlink(p)
    time.sleep(1.0)   # issue 7: back down within one second of deleting
    deleted, deleted_extra = memory_of(side)
    stored = cfg.mem_bytes / MiB
    return {"mem-after-write": (written, {"stored_mib": stored, "before": base, **written_extra,
                                          "before_detail": base_extra}),
            "mem-after-delete": (deleted, {"stored_mib": 0, **deleted_extra})}


def meminfo_bytes(*keys: str) -> int:
    total = 0
    with open("/proc/meminfo") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in keys:
                total += int(rest.split()[0]) * 1024
    return total


def page_cache_memory(side: Side, cfg: Config) -> Result:
    """Issue 17: what a file written and read back costs the machine, as Cached + Shmem of
    /proc/meminfo grow (both, as the issue counts them: a tmpfs or memfd page is in each,
    a FUSE page-cache page in Cached alone). tmpfs holds the data once; a channel-charged
    channel twice (the store's memfd and the FUSE page cache); a writer-charged one once
    (the backing tmpfs's pages, which passthrough reads and writes directly). The caches
    are dropped first; the rest of the machine moves these figures too."""
    path = side.file("cache.dat")
    drop_caches()
    before = meminfo_bytes("Cached", "Shmem")
    write_file(path, cfg.cache_bytes)
    read_file(path)
    after = meminfo_bytes("Cached", "Shmem")
    os.unlink(path)
    return {"mem-cache": (max(0, after - before) / MiB, {"bytes": cfg.cache_bytes, "before": before,
                                                         "after": after})}


def slab_bytes(caches=("shmem_inode_cache", "dentry")) -> int:
    """Kernel memory in the slab caches a tmpfs file lives in (its inode and dentry)."""
    total = 0
    with open("/proc/slabinfo") as f:
        for line in f:
            cols = line.split()
            if cols and cols[0] in caches:
                total += int(cols[1]) * int(cols[3])
    return total


def memory_per_inode(side: Side, cfg: Config) -> Result:
    """Memory per empty file: hostchanfs, the daemon's footprint growth (issue 7 wants it
    under 1 KiB); tmpfs, the growth of its inode and dentry slabs (an estimate: other
    work on the machine moves the dentry cache too). Each repetition keeps its files until
    the workload ends, so that the next one measures new inodes, not reused slots."""
    d = side.file(f"inodes.{len([e for e in os.listdir(side.path) if e.startswith('inodes.')])}")
    os.mkdir(d)
    n = cfg.inode_files
    before = memory_of(side)[0] * MiB if side.daemon_pid else slab_bytes()
    for i in range(n):
        os.mknod(os.path.join(d, f"f{i}"), 0o100644)
    after = memory_of(side)[0] * MiB if side.daemon_pid else slab_bytes()
    return {"mem-per-inode": (max(0.0, after - before) / n, {"files": n, "before": before, "after": after})}


def remove_inode_dirs(side: Side, cfg: Config) -> None:
    for e in os.listdir(side.path):
        if e.startswith("inodes."):
            shutil.rmtree(side.file(e))


# ---- the list, in the order they run

def workloads() -> list[Workload]:
    rand = [fio_random("randread", 1), fio_random("randread", 2),
            fio_random("randwrite", 1), fio_random("randwrite", 2),
            fio_random("randread", 1, direct=True)]
    return [
        # First, while the channel is fresh: the daemon's memory baseline is its own.
        Workload("mem", memory),
        Workload("mem-cache", page_cache_memory),
        Workload("mem-per-inode", memory_per_inode, finish=remove_inode_dirs),
        dd_workload("dd-1k", 1024, lambda c: c.dd1k_bytes),
        dd_workload("dd-1m", MiB, lambda c: c.io_bytes),
        Workload("fio-seqwrite-1m", fio_seq_write),
        Workload("fio-seqread-1m-cold", fio_seq_read(True), prepare=prepare_data_file),
        Workload("fio-seqread-1m-warm", fio_seq_read(False), prepare=prepare_data_file),
        *[Workload(n, r, prepare=prepare_data_file, clients=j) for n, r, j in rand],
        meta_workload("meta-create", "create"),
        meta_workload("meta-stat", "stat"),
        meta_workload("meta-unlink", "unlink"),
        meta_workload("meta-mkdir", "mkdir"),
        meta_workload("meta-rmdir", "rmdir"),
        meta_workload("meta-create-write4k-close", "create-write4k-close"),
        meta_workload("meta-readdir-10k", "readdir"),
        meta_workload("meta-rename", "rename"),
        Workload("ipc-pingpong", ipc_pingpong, clients=2),
        Workload("ipc-stream", ipc_stream, clients=2),
        # Last: it leaves a large directory behind, discarded with the channel.
        Workload("meta-create-in-100k", create_in_big_dir, prepare=populate_big_dir),
    ]


# Units, directions and issue 7's targets (hostchanfs ÷ tmpfs, medians).
spec("mem-after-write", "MiB", higher=False,
     absolute=lambda c: c.mem_bytes / MiB * 1.1 + 16, text="<= N+10%+16 MiB")
spec("mem-after-delete", "MiB", higher=False, absolute=lambda c: 16.0, text="<= 16 MiB after 1 s")
spec("mem-cache", "MiB", higher=False, target=1 / 1.15, text="<= 1.15x tmpfs")
spec("mem-per-inode", "bytes", higher=False, absolute=lambda c: 1024.0, text="<= 1 KiB")
spec("dd-1k", "MiB/s", target=0.04)
spec("dd-1m", "MiB/s")
spec("fio-seqwrite-1m", "MiB/s", target=0.3)
spec("fio-seqread-1m-cold", "MiB/s", target=0.4)
spec("fio-seqread-1m-warm", "MiB/s", target=0.9)
spec("fio-randread-4k-j1", "IOPS", target=0.9)
spec("fio-randread-4k-j2", "IOPS")
spec("fio-randwrite-4k-j1", "IOPS")
spec("fio-randwrite-4k-j2", "IOPS")
spec("fio-randread-4k-direct", "IOPS")
spec("meta-create", "ops/s", target=0.03)
spec("meta-stat", "ops/s", target=0.8)
spec("meta-unlink", "ops/s", target=0.06)
spec("meta-mkdir", "ops/s", target=0.03)
spec("meta-rmdir", "ops/s", target=0.06)
spec("meta-create-write4k-close", "ops/s", target=0.03)
spec("meta-readdir-10k", "entries/s")
spec("meta-rename", "ops/s")
spec("ipc-pingpong", "round trips/s", target=0.9)
spec("ipc-stream", "MiB/s", target=0.9)
spec("ipc-attach", "ms", higher=False)
spec("meta-create-in-100k", "ops/s", text="hostchanfs: within 20% of create in an empty dir")


# --------------------------------------------------------------------------- running

@dataclass
class Sample:
    result: str
    side: str
    rep: int
    value: Optional[float]
    unit: str
    extra: dict = field(default_factory=dict)
    error: Optional[str] = None


def pinned_cpu() -> Optional[int]:
    """The one CPU this process (and all it starts) may run on, as bench/run.sh --cpu sets
    it; None when it may use more than one, or the machine has only one."""
    allowed = os.sched_getaffinity(0)
    return next(iter(allowed)) if len(allowed) == 1 and (os.cpu_count() or 1) > 1 else None


@contextlib.contextmanager
def pinned_to(cpu: Optional[int]):
    """Runs this process, and so every client it starts, on `cpu` alone (None: on every
    CPU it may use), then restores its affinity."""
    allowed = os.sched_getaffinity(0)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, allowed)


def measure(selected: list[Workload], sides: list[Side], cfg: Config) -> list[Sample]:
    samples: list[Sample] = []
    # The CPUs of a virtual machine need not be equal: on the 2-core guest this was tuned
    # on, CPU 0 runs the same loop 1.8 times slower than CPU 1. Left to the scheduler, a
    # tmpfs repetition on the fast CPU met a hostchanfs one on the slow CPU, and meta-stat
    # read 0.60 or 0.90 by luck. So within a repetition both sides' one-client workloads
    # run on the same CPU, and the CPU rotates with the repetition: like against like.
    cpus = sorted(os.sched_getaffinity(0))
    everything_on = pinned_cpu()
    for i, w in enumerate(selected, 1):
        failed_prepare = {}
        for side in sides:
            if w.prepare:
                try:
                    progress(f"[{i:2}/{len(selected)}] {w.name}: preparing {side.name}")
                    w.prepare(side, cfg)
                except (MeasureError, OSError) as e:
                    failed_prepare[side.name] = str(e)
        for rep in range(cfg.reps):
            # Alternate which side goes first, so neither always runs on a warmer machine.
            order = sides if rep % 2 == 0 else list(reversed(sides))
            cpu = cpus[rep % len(cpus)] if w.clients == 1 else None
            # Where the repetition ran: its CPU, or (two clients) the one CPU of a --cpu run.
            ran_on = cpu if cpu is not None else everything_on
            for side in order:
                head = f"[{i:2}/{len(selected)}] {w.name:<26} rep {rep + 1}/{cfg.reps} {side.name:<10}"
                try:
                    if side.name in failed_prepare:
                        raise MeasureError(f"preparation failed: {failed_prepare[side.name]}")
                    with pinned_to(cpu):
                        results = w.run(side, cfg)
                    for result, (value, extra) in results.items():
                        # The load next to each figure: on a shared machine, the first
                        # suspect when two repetitions disagree.
                        extra = {**extra, "load1": round(os.getloadavg()[0], 2), "cpu": ran_on}
                        samples.append(Sample(result, side.name, rep, value, SPECS[result].unit, extra))
                        progress(f"{head} {result:<22} {fmt(value)} {SPECS[result].unit}")
                except (MeasureError, OSError, ValueError, KeyError) as e:
                    samples.append(Sample(w.name, side.name, rep, None, "", {}, str(e)))
                    progress(f"{head} ERROR {e}")
        for side in sides:
            if w.finish:
                try:
                    w.finish(side, cfg)
                except (MeasureError, OSError) as e:   # litter in a mount about to go
                    progress(f"[{i:2}/{len(selected)}] {w.name}: cleanup on {side.name} failed: {e}")
    return samples


def progress(line: str) -> None:
    print(line, flush=True)


def fmt(v: Optional[float]) -> str:
    if v is None:
        return "-"
    a = abs(v)
    if a >= 1e9:
        return f"{v / 1e9:.2f}G"
    if a >= 1e6:
        return f"{v / 1e6:.2f}M"
    if a >= 1e4:
        return f"{v / 1e3:.1f}k"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


@dataclass
class Row:
    result: str
    unit: str
    stats: dict            # side -> (median, min, max, n) or None
    ratio: Optional[float]     # hostchanfs (channel) / tmpfs
    target: str
    verdict: str           # "met", "MISSED", "" (no target), "?" (not measured)
    errors: list
    ratios: dict = field(default_factory=dict)   # every hostchanfs side -> its ratio to tmpfs


def paired_ratio(samples: list[Sample], higher_is_better: bool, side: str = "hostchanfs",
                 against: str = "tmpfs") -> Optional[float]:
    """The median of the per-repetition ratios. A ratio of the two sides' medians would
    pair a repetition on one CPU with one on another whenever the CPUs differ in speed
    (they do on a virtual machine, and not always the same one): an outlier on one side
    moves its median into the other CPU's class and the ratio with it."""
    by_rep: dict[int, dict[str, float]] = {}
    for s in samples:
        if s.value is not None and s.value > 0:
            by_rep.setdefault(s.rep, {})[s.side] = s.value
    ratios = [(r[side] / r[against]) if higher_is_better else (r[against] / r[side])
              for r in by_rep.values() if against in r and side in r]
    return statistics.median(ratios) if ratios else None


def summarize(samples: list[Sample], sides: list[Side], cfg: Config) -> list[Row]:
    order = []
    for s in samples:
        if s.value is not None and s.result not in order:
            order.append(s.result)
    failed = [s for s in samples if s.error]
    rows = []
    for result in order:
        sp = SPECS[result]
        stats = {}
        for side in sides:
            vals = [s.value for s in samples if s.result == result and s.side == side.name and s.value is not None]
            stats[side.name] = (statistics.median(vals), min(vals), max(vals), len(vals)) if vals else None
        t, h = stats.get("tmpfs"), stats.get("hostchanfs")
        ratio, ratios = None, {}
        if sp.absolute_target is None:
            for side in sides[1:]:
                ratios[side.name] = paired_ratio([s for s in samples if s.result == result],
                                                 sp.higher_is_better, side.name)
            ratio = ratios.get("hostchanfs")
        verdict = ""
        if sp.target is not None:
            verdict = "?" if ratio is None else ("met" if ratio >= sp.target else "MISSED")
        elif sp.absolute_target is not None:
            verdict = "?" if h is None else ("met" if h[0] <= sp.absolute_target(cfg) else "MISSED")
        rows.append(Row(result, sp.unit, stats, ratio, sp.target_text, verdict, [], ratios))
    # The scale check compares two hostchanfs rows with each other.
    by = {r.result: r for r in rows}
    if "meta-create-in-100k" in by:
        big_row = by["meta-create-in-100k"]
        rel = {}
        for side in sides:
            pairs = [s.value / s.extra["empty_dir_ops_s"] for s in samples
                     if s.result == "meta-create-in-100k" and s.side == side.name and s.value
                     and s.extra.get("empty_dir_ops_s")]
            if pairs:
                rel[side.name] = statistics.median(pairs)
        if "hostchanfs" in rel:
            # tmpfs's own figure shows how much of a difference is the machine's noise.
            big_row.target += " (" + ", ".join(f"{k} {v:.2f}x" for k, v in rel.items()) + ")"
            entries = {s.extra.get("entries") for s in samples if s.result == "meta-create-in-100k"}
            if entries != {cfg.big_dir_entries}:
                big_row.target += f" [directory of {'/'.join(str(e) for e in sorted(entries, key=str))} entries]"
            big_row.verdict = "met" if 0.8 <= rel["hostchanfs"] <= 1.2 else "MISSED"
    for s in failed:
        rows.append(Row(s.result, "", {}, None, "", "ERROR", [f"{s.side} rep {s.rep + 1}: {s.error}"]))
    return rows


def writer_vs_channel_lines(samples: list[Sample]) -> list[str]:
    """issue 17's metadata target compares the two hostchanfs modes with each other, not
    with tmpfs: writer against channel, paired by repetition as every other ratio."""
    cells = []
    for result in sorted({s.result for s in samples if s.result.startswith("meta-")}):
        ratio = paired_ratio([s for s in samples if s.result == result], SPECS[result].higher_is_better,
                             "writer", against="hostchanfs")
        if ratio is not None:
            cells.append(f"{result} {ratio:.2f}")
    if not cells:
        return []
    return ["writer / channel, metadata rows (median of each repetition's pair; issue 17's "
            "target: no worse than channel): " + ", ".join(cells)]


def cell(st) -> str:
    if not st:
        return "-"
    med, lo, hi, _ = st
    return f"{fmt(med)} ({fmt(lo)}-{fmt(hi)})"


def table_lines(rows: list[Row], sides: list[Side], markdown: bool) -> list[str]:
    others = [s.name for s in sides[1:]]
    ratio_heads = ["ratio"] if others == ["hostchanfs"] else [f"ratio {n}" for n in others]
    head = ["workload", "unit"] + [f"{s.name} median (min-max)" for s in sides] + ratio_heads + ["target"]
    body = []
    for r in rows:
        if r.verdict == "ERROR":
            body.append(([r.result, "", "ERROR"] + [""] * len(head))[:len(head) - 1] + ["; ".join(r.errors)])
            continue
        ratios = [f"{r.ratios[n]:.3f}" if r.ratios.get(n) is not None else "-" for n in others]
        target = f"{r.target} {r.verdict}".strip()
        body.append([r.result, r.unit] + [cell(r.stats.get(s.name)) for s in sides] + ratios + [target])
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(b) + " |" for b in body]
        return out
    widths = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]
    line = lambda cols: "  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip()
    return [line(head), line(["-" * w for w in widths])] + [line(b) for b in body]


def plot(rows: list[Row], out_dir: str) -> Optional[str]:
    """A bar per workload: the ratio on a log scale, 1 = parity with tmpfs."""
    data = [(r.result, r.ratio) for r in rows if r.ratio]
    if not data or not shutil.which("gnuplot"):
        return None
    dat = os.path.join(out_dir, "ratios.dat")
    with open(dat, "w") as f:
        for i, (name, ratio) in enumerate(data):
            f.write(f"{i} {ratio:.6g} \"{name}\"\n")
    png = os.path.join(out_dir, "ratios.png")
    script = f"""
set terminal pngcairo size 1200,700 font ",10"
set output "{png}"
set title "hostchanfs / tmpfs (median; > 1: hostchanfs better)"
set logscale y
set yrange [0.001:10]
set grid ytics
set style fill solid 0.7
set boxwidth 0.7
set xtics rotate by -45 left
set key off
set rmargin 12
set bmargin 10
set arrow from graph 0, first 1 to graph 1, first 1 nohead lc rgb "red" dt 2
plot "{dat}" using 1:2:xtic(3) with boxes lc rgb "steelblue"
"""
    gp = os.path.join(out_dir, "ratios.gp")
    with open(gp, "w") as f:
        f.write(script)
    run_cmd(["gnuplot", gp])
    return png


# --------------------------------------------------------------------------- store

def store_bench(binary: str, out_dir: str, quick: bool) -> list[dict]:
    """The store's micro-benchmarks (Google Benchmark, no FUSE): what an operation costs
    before the kernel round trip."""
    out = os.path.join(out_dir, "store_bench.json")
    progress(f"store micro-benchmarks: {binary}")
    run_cmd([binary, f"--benchmark_out={out}", "--benchmark_out_format=json",
             f"--benchmark_min_time={0.05 if quick else 0.2}"], timeout=600)
    with open(out) as f:
        doc = json.load(f)
    rows = []
    for b in doc.get("benchmarks", []):
        scale = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b.get("time_unit", "ns")]
        rows.append({"name": b["name"], "ns_per_op": b["real_time"] * scale,
                     "cpu_ns_per_op": b["cpu_time"] * scale,
                     "bytes_per_second": b.get("bytes_per_second"),
                     "items_per_second": b.get("items_per_second")})
    return rows


def store_throughput(r: dict) -> str:
    if r["bytes_per_second"]:
        return f"{r['bytes_per_second'] / MiB:.0f} MiB/s"
    if r["items_per_second"]:
        return f"{fmt(r['items_per_second'])} op/s"
    return ""


def store_markdown(rows: list[dict]) -> list[str]:
    out = ["Store micro-benchmarks (no FUSE; Google Benchmark):", "",
           "| benchmark | real/op | cpu/op | throughput (per CPU second) |", "|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['name']} | {r['ns_per_op']:.0f} ns | {r['cpu_ns_per_op']:.0f} ns | {store_throughput(r)} |")
    return out


def store_lines(rows: list[dict]) -> list[str]:
    # On a shared machine the CPU time is the steadier figure; throughput is per CPU second.
    out = ["store micro-benchmarks (no FUSE; Google Benchmark)",
           f"{'benchmark':<24} {'real/op':>12} {'cpu/op':>12} {'throughput':>14}"]
    for r in rows:
        out.append(f"{r['name']:<24} {r['ns_per_op']:>9.0f} ns {r['cpu_ns_per_op']:>9.0f} ns "
                   f"{store_throughput(r):>14}")
    return out


# --------------------------------------------------------------------------- restart

RESTART_KILLS = 10


def restart_bench(binary: str, work: str, kills: int) -> dict:
    """Restart time (issue 15): a channel made by a controller of its own (its keeper
    restarts a dead daemon on the same connection), its daemon SIGKILLed `kills` times;
    each figure runs from the kill to the answer of the first request sent after it (a
    stat of a new name: a LOOKUP that only the next daemon can answer)."""
    run_dir = os.path.join(work, "restart-run")
    host = os.path.join(work, "restart-channel")
    os.makedirs(run_dir, mode=0o700, exist_ok=True)
    env = {**os.environ, "HOSTCHANFS_RUN_DIR": run_dir}

    def cli(*argv) -> str:
        cp = subprocess.run([binary, *argv], capture_output=True, text=True, timeout=60,
                            env=env, preexec_fn=die_with_parent)
        if cp.returncode != 0:
            raise MeasureError(f"hostchanfs {argv[0]} exited {cp.returncode}: {cp.stderr.strip()}")
        return cp.stdout

    def channel() -> dict:
        listed = json.loads(cli("ls", "--json"))
        if len(listed) != 1:
            raise MeasureError(f"the restart channel is not listed: {listed}")
        return listed[0]

    progress(f"restart: {kills} SIGKILLs of a channel's daemon")
    times = []
    cli("mount", f"{host}:/restart::16M")
    try:
        for k in range(kills):
            old = channel()["daemon_pid"]
            start = time.perf_counter()
            os.kill(old, signal.SIGKILL)
            try:
                os.stat(os.path.join(host, f"probe-{k}"))
            except FileNotFoundError:
                pass
            times.append((time.perf_counter() - start) * 1000)
            deadline = time.monotonic() + 30
            while channel()["daemon_pid"] in (0, old):   # the keeper records the new pid
                if time.monotonic() > deadline:
                    raise MeasureError("the keeper did not record the restarted daemon")
                time.sleep(0.01)
        restarts = channel()["restarts"]
    finally:
        try:
            cli("umount", host)
        finally:
            pid_file = os.path.join(run_dir, "controller.pid")
            if os.path.exists(pid_file):
                with open(pid_file) as f:
                    pid = int(f.read().strip() or 0)
                if pid > 0:
                    os.kill(pid, signal.SIGTERM)   # the controller started above, and only it
                    deadline = time.monotonic() + 30
                    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
                        time.sleep(0.05)
            shutil.rmtree(run_dir, ignore_errors=True)
    return {"kills": kills, "restarts_listed": restarts, "ms": times,
            "median_ms": statistics.median(times), "max_ms": max(times)}


def restart_lines(r: dict) -> list[str]:
    return [f"restart (SIGKILL of the daemon to the first answered request, {r['kills']} kills): "
            f"median {r['median_ms']:.1f} ms, max {r['max_ms']:.1f} ms "
            f"(ls shows {r['restarts_listed']} restarts)"]


# --------------------------------------------------------------------------- machine

def first(cmd: list[str]) -> str:
    """The output of a command's output, or "" when it cannot run."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError:
        return ""


def machine(args) -> dict:
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_total = next(int(l.split()[1]) * 1024 for l in f if l.startswith("MemTotal:"))
    src = args.source_dir or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return {
        "hostname": platform.node(),
        "cores": os.cpu_count(),
        "cpu": model,
        "mem_total": mem_total,
        "kernel": platform.release(),
        "libfuse": first(["pkg-config", "--modversion", "fuse3"]) or first(["fusermount3", "-V"]),
        "fio": first(["fio", "--version"]),
        "loadavg_start": os.getloadavg(),
        "commit": (os.environ.get("HOSTCHANFS_BENCH_COMMIT")
                   or first(["git", "-C", src, "describe", "--always", "--dirty"]) or "unknown"),
        "hostchanfs_bin": args.hostchanfs_bin,
        **({"baseline_bin": args.baseline_bin, "baseline_commit": build_commit(args.baseline_bin)}
           if args.baseline else {}),
        # --cpu: the one CPU everything runs on (None: every CPU), and where each daemon may
        # run, read from the daemon itself.
        "pinned_cpu": pinned_cpu(),
        "daemon_cpus": {name: sorted(os.sched_getaffinity(pid)) for name, pid in
                        (("hostchanfs", args.daemon_pid), ("writer", args.writer_daemon_pid),
                         ("baseline", args.baseline_daemon_pid)) if pid},
    }


def build_commit(binary: str) -> str:
    """`git describe` of the source tree a build's cli/hostchanfs was configured from."""
    cache = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(binary))), "CMakeCache.txt")
    try:
        with open(cache) as f:
            src = next((l.split("=", 1)[1].strip() for l in f if l.startswith("CMAKE_HOME_DIRECTORY:")), "")
    except OSError:
        src = ""
    return (src and first(["git", "-C", src, "describe", "--always", "--dirty"])) or "unknown"


# --------------------------------------------------------------------------- main

def config(args) -> Config:
    quick, size = args.quick, args.size
    # Every size is bounded by a fraction of the mount so that a tiny channel (the CI
    # test) runs the same workloads, only smaller.
    cap = lambda full, short: max(MiB, min(short if quick else full, size // 8) // MiB * MiB)
    return Config(
        quick=quick, size=size,
        reps=args.reps or (2 if quick else 5),
        seconds=args.seconds or (0.2 if quick else 1.0),
        bin_dir=args.bin_dir,
        io_bytes=cap(256 * MiB, 32 * MiB),
        dd1k_bytes=cap(32 * MiB, 4 * MiB),
        mem_bytes=cap(256 * MiB, 32 * MiB),
        # Issue 17's memory target is for 256 MiB: up to half of the mount, not an eighth.
        cache_bytes=max(MiB, min(32 * MiB if quick else 256 * MiB, size // 2) // MiB * MiB),
        readdir_entries=2000 if quick else 10000,
        big_dir_entries=10000 if quick else 100000,
        populate_seconds=15 if quick else 150,   # ~1 s and ~15 s on a quiet machine
        meta_max=10000 if quick else 50000,
        inode_files=min(2000 if quick else 10000, size // 4096 // 16),
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tmpfs", required=True, help="kernel tmpfs mount point")
    p.add_argument("--hostchanfs", required=True, help="hostchanfs mount point")
    p.add_argument("--daemon-pid", type=int, help="the hostchanfs daemon (memory workload)")
    p.add_argument("--writer", default="", help="a hostchanfs --charge writer mount point (a third column)")
    p.add_argument("--writer-daemon-pid", type=int, help="its daemon")
    p.add_argument("--baseline", default="", help="another build's --charge channel mount point (a column 'baseline')")
    p.add_argument("--baseline-daemon-pid", type=int, help="its daemon")
    p.add_argument("--baseline-bin", default="", help="its binary, recorded with the results")
    p.add_argument("--hostchanfs-bin", default="")
    p.add_argument("--bin-dir", required=True, help="directory of the bench helper programs")
    p.add_argument("--store-bench", default="", help="store micro-benchmark binary (full run)")
    p.add_argument("--size", type=int, required=True, help="bytes of each mount")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--reps", type=int, default=0)
    p.add_argument("--seconds", type=float, default=0.0)
    p.add_argument("--only", default="", help="regular expression on workload names")
    p.add_argument("--out", required=True, help="results directory")
    p.add_argument("--command", default="", help="the command line, recorded with the results")
    p.add_argument("--source-dir", default="", help="source tree of the measured binaries")
    args = p.parse_args()

    cfg = config(args)
    os.makedirs(args.out, exist_ok=True)
    sides = [Side("tmpfs", args.tmpfs), Side("hostchanfs", args.hostchanfs, args.daemon_pid)]
    if args.writer:
        sides.append(Side("writer", args.writer, args.writer_daemon_pid, "writer"))
    if args.baseline:
        sides.append(Side("baseline", args.baseline, args.baseline_daemon_pid))
    only = re.compile(args.only) if args.only else None
    selected = [w for w in workloads()
                if (not only or only.search(w.name)) and not (w.full_only and cfg.quick)]
    info = machine(args)
    progress(f"bench: {len(selected)} workloads x {cfg.reps} reps on tmpfs and hostchanfs, "
             f"size {cfg.size // MiB} MiB, {info['cores']} cores, kernel {info['kernel']}, "
             f"libfuse {info['libfuse']}, load {' '.join(f'{x:.2f}' for x in info['loadavg_start'])}")

    started = time.time()
    samples = measure(selected, sides, cfg)
    store_rows, store_error = [], None
    if args.store_bench and not cfg.quick and (not only or only.search("store")):
        try:
            store_rows = store_bench(args.store_bench, args.out, cfg.quick)
        except (MeasureError, OSError, ValueError) as e:
            store_error = str(e)
    restart, restart_error = None, None
    if args.hostchanfs_bin and args.daemon_pid and (not only or only.search("restart")):
        try:
            restart = restart_bench(args.hostchanfs_bin, os.path.dirname(args.hostchanfs), RESTART_KILLS)
        except (MeasureError, OSError, ValueError, KeyError) as e:
            restart_error = str(e)
    info["loadavg_end"] = os.getloadavg()
    info["duration_s"] = round(time.time() - started, 1)

    rows = summarize(samples, sides, cfg)
    text = table_lines(rows, sides, markdown=False)
    md = table_lines(rows, sides, markdown=True)
    if modes := writer_vs_channel_lines(samples):
        text += [""] + modes
        md += [""] + modes
    if store_rows:
        text += [""] + store_lines(store_rows)
        md += [""] + store_markdown(store_rows)
    if store_error:
        text += ["", f"store micro-benchmarks: ERROR {store_error}"]
    if restart:
        text += [""] + restart_lines(restart)
        md += [""] + restart_lines(restart)
    if restart_error:
        text += ["", f"restart: ERROR {restart_error}"]
    note = ("ratio: the median of each repetition's hostchanfs/tmpfs (both sides on the same CPU; "
            "'hostchanfs' is --charge channel, 'writer' is --charge writer), "
            "oriented so that > 1 means hostchanfs is better (tmpfs/hostchanfs for lower-is-better "
            "figures); memory rows have absolute targets")
    header = (f"{datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, "
              f"{info['cores']} cores, kernel {info['kernel']}, libfuse {info['libfuse']}, "
              f"commit {info['commit']}"
              f"{', baseline ' + info['baseline_commit'] if 'baseline_commit' in info else ''}, load {info['loadavg_start'][0]:.2f}->{info['loadavg_end'][0]:.2f}, "
              f"{cfg.reps} reps, size {cfg.size // MiB} MiB, {info['duration_s']} s")
    if info["pinned_cpu"] is not None:
        # No request then waits for a halted CPU to wake: the ratios are of the work alone.
        header += (f", everything on CPU {info['pinned_cpu']} (--cpu): ratios of CPU work, "
                   "not the targets' (they are read unpinned)")

    with open(os.path.join(args.out, "table.txt"), "w") as f:
        f.write("\n".join([header, note, ""] + text) + "\n")
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write("\n".join([header, "", f"`{args.command}`", ""] + md) + "\n")
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"machine": info, "command": args.command,
                   "config": {k: v for k, v in vars(cfg).items() if k != "bin_dir"},
                   "ratio_definition": note,
                   "samples": [vars(s) for s in samples],
                   "summary": [{"result": r.result, "unit": r.unit, "ratio": r.ratio, "target": r.target,
                                "verdict": r.verdict, "errors": r.errors,
                                "stats": {k: (dict(zip(("median", "min", "max", "n"), v)) if v else None)
                                          for k, v in r.stats.items()}} for r in rows],
                   "store_bench": store_rows, "store_bench_error": store_error,
                   "restart": restart, "restart_error": restart_error}, f, indent=1)
    with open(os.path.join(args.out, "results.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["workload", "unit", "fs", "rep", "value", "error"])
        for s in samples:
            w.writerow([s.result, s.unit, s.side, s.rep + 1, "" if s.value is None else f"{s.value:.6g}", s.error or ""])
    png = None
    try:
        png = plot(rows, args.out)
    except MeasureError as e:
        progress(f"plot: {e}")

    print()
    print(header)
    print(note)
    print()
    print("\n".join(text))
    print()
    print(f"results: {args.out} (table.txt, table.md, results.json, results.csv{', ratios.png' if png else ''})")
    errors = [s for s in samples if s.error]
    if errors or store_error or restart_error:
        print(f"bench: {len(errors) + bool(store_error) + bool(restart_error)} measurement(s) failed "
              "(see ERROR rows)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
