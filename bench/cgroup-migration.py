#!/usr/bin/env python3
"""How long one process takes to move itself into a v1 cgroup after a quiet moment: by
writing `0` to cgroup.procs (the kernel takes the global threadgroup lock, whose RCU
synchronisation runs again once the lock has been idle) against `0` to `tasks` (one thread:
no global lock). This is why berth-runtime's init and exec move themselves through `tasks`
(crates/runtime/src/cgroups/mod.rs, self_join_file).

Usage: bench/cgroup-migration.py [rounds] [hierarchy]   (as root, on a host with cgroup v1;
default 5 rounds in /sys/fs/cgroup/cpu). Each write runs in a fresh child after 300 ms of
quiet; times include Python's open and close of the file.
"""
import os
import sys
import time

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
hierarchy = sys.argv[2] if len(sys.argv) > 2 else "/sys/fs/cgroup/cpu"
cgroup = os.path.join(hierarchy, f"berth-bench-migration-{os.getpid()}")


def move_self(file):
    pid = os.fork()
    if pid == 0:
        start = time.perf_counter()
        with open(os.path.join(cgroup, file), "w") as f:
            f.write("0")
        print(f"{file:13} {1e6 * (time.perf_counter() - start):8.0f} us", flush=True)
        os._exit(0)
    os.waitpid(pid, 0)


os.mkdir(cgroup)
try:
    for _ in range(rounds):
        for file in ("cgroup.procs", "tasks"):
            time.sleep(0.3)
            move_self(file)
finally:
    os.rmdir(cgroup)
