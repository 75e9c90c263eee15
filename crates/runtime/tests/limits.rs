//! cgroup limits seen acting from the inside: a fork bomb stops at pids.max, a process over
//! its memory limit is OOM-killed, and the limits show in the container's own cgroup files.

mod common;
use common::*;
use serde_json::json;

#[test]
fn pids_limit_stops_a_fork_bomb() {
    let mut b = Bundle::sh(&format!(
        "cat {}; (for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; \
         do sleep 5 & done) 2>/dev/null; set -- /proc/[0-9]*; echo running=$#",
        cg("pids/pids.max", "pids.max")
    ));
    b.edit(|c| c["linux"]["resources"]["pids"] = json!({"limit": 10}));
    let out = b.run_ok("pids");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "10", "{out}");
    let running: u32 = lines[1].trim_start_matches("running=").parse().unwrap();
    assert!(running <= 10, "{running} processes under pids.max 10");
}

#[test]
fn memory_limit_oom_kills() {
    let mut b = Bundle::sh(&format!(
        "cat {}; dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo dd=$?",
        cg("memory/memory.limit_in_bytes", "memory.max")
    ));
    b.edit(|c| c["linux"]["resources"]["memory"] = json!({"limit": 33554432}));
    let (out, err, code) = b.run("oom");
    assert_eq!(out.lines().next(), Some("33554432"), "{out}{err}");
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines().nth(1),
        Some("dd=137"),
        "dd with a 64 MiB buffer must be OOM-killed: {out}"
    );
}

#[test]
fn cpu_limits_are_written() {
    let mut b = if cgroup_v2() {
        Bundle::sh(
            "cat /sys/fs/cgroup/cpu.weight /sys/fs/cgroup/cpu.max /sys/fs/cgroup/cpuset.cpus",
        )
    } else {
        Bundle::sh("cat /sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us /sys/fs/cgroup/cpuset/cpuset.cpus")
    };
    b.edit(|c| {
        c["linux"]["resources"]["cpu"] =
            json!({"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"})
    });
    let want: &[&str] = if cgroup_v2() {
        // 512 shares are weight 59 (runc >= 1.3.2's conversion: 1024 is 100).
        &["59", "50000 100000", "0"]
    } else {
        &["512", "50000", "100000", "0"]
    };
    assert_eq!(b.run_ok("cpu").lines().collect::<Vec<_>>(), want);
}

#[test]
fn runs_under_a_512_kib_memory_limit() {
    // runc cannot (its init alone needs more); the runtime's own work in the container's
    // cgroup stays below 512 KiB.
    let mut b = Bundle::new(&["/bin/true"]);
    b.edit(|c| c["linux"]["resources"]["memory"] = json!({"limit": 524288}));
    for i in 0..5 {
        let (_, err, code) = b.run(&format!("small{i}"));
        assert_eq!(code, 0, "run {i} under 512 KiB: {err}");
    }
}
