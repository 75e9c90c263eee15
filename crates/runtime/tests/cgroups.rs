//! The cgroup managers on whatever host runs the tests: this hybrid machine, and the pure v2
//! and pure v1 VMs of scripts/vm-cgroup-matrix. Each test checks what the kernel does or what
//! the container sees, and says which mode it expects what of.

mod common;
use common::*;
use serde_json::json;

use berth_runtime::cgroups;

/// The host's cgroup2 mountpoint, if any (v2: /sys/fs/cgroup; hybrid: /sys/fs/cgroup/unified).
fn cgroup2() -> Option<std::path::PathBuf> {
    cgroups::hierarchies()
        .unwrap()
        .into_iter()
        .find(|h| h.v2)
        .map(|h| h.mountpoint)
}

/// The eBPF device program alone, without the v1 device controller: a shell moved into a
/// cgroup2 directory with the program attached may use /dev/null and read /dev/zero, and
/// nothing else. (On the hybrid host the shell's v1 device cgroup allows everything, so
/// only the program can refuse.)
#[test]
fn ebpf_device_program_allows_only_its_rules() {
    require_root();
    let Some(top) = cgroup2() else {
        eprintln!("no cgroup2 hierarchy (pure v1 host): the eBPF device program is not used");
        return;
    };
    let dir = top.join(format!("berth-test-bpf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rule = |allow, kind, major, minor, access: &str| cgroups::devices::Rule {
        allow,
        kind,
        major,
        minor,
        access: access.to_string(),
    };
    let rules = [
        rule(false, 'a', None, None, "rwm"),
        rule(true, 'c', Some(1), Some(3), "rwm"),
        rule(true, 'c', Some(1), Some(5), "r"),
    ];
    cgroups::devices::attach(&dir, &rules).unwrap();
    let script = format!(
        "echo $$ > {}/cgroup.procs || exit 9
         echo x > /dev/null && echo null-write
         head -c1 /dev/zero >/dev/null && echo zero-read
         echo x > /dev/zero 2>/dev/null || echo zero-write-denied
         head -c1 /dev/full >/dev/null 2>&1 || echo full-denied",
        dir.display()
    );
    let out = std::process::Command::new("/bin/busybox")
        .args(["sh", "-c", &script])
        .output()
        .unwrap();
    // Attaching again replaces the program rather than adding a second one.
    cgroups::devices::attach(&dir, &rules[..2]).unwrap();
    let ids = {
        use std::os::fd::AsFd;
        let f = std::fs::File::open(&dir).unwrap();
        berth_sys::bpf::attached_device_programs(f.as_fd(), &dir).unwrap()
    };
    std::fs::remove_dir(&dir).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        [
            "null-write",
            "zero-read",
            "zero-write-denied",
            "full-denied"
        ],
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ids.len(), 1, "one program after a second attach: {ids:?}");
}

/// hugepageLimits land in the hugetlb controller wherever it is: v1's
/// hugetlb.<size>.limit_in_bytes, or v2's hugetlb.<size>.max (on this hybrid host hugetlb is
/// bound to cgroup2).
#[test]
fn hugepage_limits() {
    let mut b = Bundle::sh(
        "cat /sys/fs/cgroup/hugetlb/hugetlb.2MB.limit_in_bytes 2>/dev/null \
         || cat /sys/fs/cgroup/unified/hugetlb.2MB.max 2>/dev/null \
         || cat /sys/fs/cgroup/hugetlb.2MB.max",
    );
    b.edit(|c| {
        c["linux"]["resources"]["hugepageLimits"] = json!([{"pageSize": "2MB", "limit": 4194304}])
    });
    assert_eq!(b.run_ok("huge").trim(), "4194304");
}

/// `unified` writes cgroup2 files as given; without a cgroup2 hierarchy it is refused by name.
#[test]
fn unified_keys() {
    let mut b = Bundle::sh(
        "cat /sys/fs/cgroup/unified/cgroup.max.descendants 2>/dev/null \
         || cat /sys/fs/cgroup/cgroup.max.descendants",
    );
    b.edit(|c| c["linux"]["resources"]["unified"] = json!({"cgroup.max.descendants": "7"}));
    if cgroup2().is_none() {
        let (_, err, code) = b.run("unified");
        assert_ne!(code, 0);
        assert!(err.contains("linux.resources.unified"), "{err}");
        assert_nothing_left(&b, "unified");
        return;
    }
    assert_eq!(b.run_ok("unified").trim(), "7");
    // A key that is not a file of the cgroup is refused, naming the field.
    b.edit(|c| c["linux"]["resources"]["unified"] = json!({"../../cgroup.procs": "1"}));
    let (_, err, code) = b.run("unified-bad");
    assert_ne!(code, 0);
    assert!(err.contains("linux.resources.unified"), "{err}");
    assert_nothing_left(&b, "unified-bad");
}

/// Values v2 cannot express fail on a v2 host, naming the field, and leave nothing behind;
/// on v1 and hybrid hosts they apply.
#[test]
fn swappiness_is_v1_only() {
    let mut b = Bundle::sh(&format!(
        "cat {}",
        cg("memory/memory.swappiness", "memory.max")
    ));
    b.edit(|c| c["linux"]["resources"]["memory"] = json!({"swappiness": 10}));
    let (out, err, code) = b.run("swappiness");
    if cgroup_v2() {
        assert_ne!(code, 0, "{out}");
        assert!(err.contains("linux.resources.memory.swappiness"), "{err}");
        assert_nothing_left(&b, "swappiness");
    } else {
        assert_eq!((out.trim(), code), ("10", 0), "{err}");
    }
}

/// With checkBeforeUpdate, a memory limit below what the container already uses is refused
/// instead of OOM-killing it; the old limit stays.
#[test]
fn check_before_update() {
    let mut b = Bundle::sh(
        // tmpfs pages are charged to the cgroup that wrote them, and stay.
        "dd if=/dev/zero of=/dev/shm/fill bs=1M count=20 2>/dev/null; echo ready > /tmp/r; sleep 100",
    );
    b.edit(|c| c["linux"]["resources"]["memory"] = json!({"limit": 268435456}));
    b.run_detached("c");
    wait_for("the container to fill 20 MB", || {
        b.rootfs().join("tmp/r").exists()
    });
    let out = b.runtime_with_stdin(
        &["update", "--resources", "-", "c"],
        br#"{"memory": {"limit": 10485760, "checkBeforeUpdate": true}}"#,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("checkBeforeUpdate"), "{err}");
    let limit = b.runtime(&[
        "exec",
        "c",
        "cat",
        &cg("memory/memory.limit_in_bytes", "memory.max"),
    ]);
    assert_eq!(String::from_utf8_lossy(&limit.stdout).trim(), "268435456");
    assert_eq!(b.state("c")["status"], "running");
    b.runtime(&["delete", "--force", "c"]);
}

/// `events --stats` reports cpu, memory and pids on every kind of host.
#[test]
fn stats_on_any_host() {
    let mut b = Bundle::sh("sleep 100");
    b.edit(|c| {
        c["linux"]["resources"] = json!({"memory": {"limit": 67108864}, "pids": {"limit": 50}})
    });
    b.run_detached("c");
    let out = b.runtime(&["events", "--stats", "c"]);
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let d = &stats["data"];
    assert_eq!(d["pids"]["current"], 1, "{stats}");
    assert_eq!(d["pids"]["limit"], 50, "{stats}");
    assert_eq!(d["memory"]["usage"]["limit"], 67108864, "{stats}");
    assert!(
        d["memory"]["usage"]["usage"].as_u64().unwrap() > 0,
        "{stats}"
    );
    assert!(d["cpu"]["usage"]["total"].as_u64().unwrap() > 0, "{stats}");
    b.runtime(&["delete", "--force", "c"]);
}
