//! cgroup v2 (kernel Documentation/admin-guide/cgroup-v2.rst): the files of the unified
//! hierarchy, the v1 values of the OCI config converted as runc and crun convert them, the
//! controllers enabled down the path, and cgroup.freeze.

use std::path::Path;

use oci_spec::runtime::LinuxResources;

use super::v1::{self, w, Write};
use super::{io, CgroupError};

/// A value that v2 cannot express: an error naming the field if the resource lands on v2.
fn refused(controller: &'static str, field: &'static str, why: &str) -> Write {
    Write {
        controller,
        file: String::new(),
        value: String::new(),
        field,
        optional: false,
        refused: Some(why.to_string()),
    }
}

/// cpu.shares [2, 262144] (default 1024) → cpu.weight [1, 10000] (default 100).
///
/// The quadratic-in-log formula of runc ≥ 1.3.2 and crun ≥ 1.23 (opencontainers/cgroups#20):
/// it maps 2 → 1, 1024 → 100 and 262144 → 10000. The older linear formula of runc 1.1
/// (1 + (shares - 2) * 9999 / 262142) gave the default 1024 shares a weight of 39, so a
/// container with default shares got 39 % of a host process's CPU.
pub fn cpu_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    if shares <= 2 {
        return 1;
    }
    if shares >= 262_144 {
        return 10_000;
    }
    let l = (shares as f64).log2();
    let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
    (10f64.powf(exponent).ceil() as u64).clamp(1, 10_000)
}

/// blkio.weight [10, 1000] → io.weight [1, 10000] (runc's ConvertBlkIOToIOWeightValue).
pub fn io_weight(blkio: u16) -> u64 {
    if blkio == 0 {
        return 0;
    }
    1 + (u64::from(blkio).saturating_sub(10)) * 9999 / 990
}

/// cpu.max: `$QUOTA $PERIOD`, `max` for no quota; None when neither is set.
pub fn cpu_max(quota: Option<i64>, period: Option<u64>) -> Option<String> {
    let quota = quota.unwrap_or(0);
    let period = period.unwrap_or(0);
    if quota == 0 && period == 0 {
        return None;
    }
    let q = if quota > 0 {
        quota.to_string()
    } else {
        "max".to_string()
    };
    // A period alone keeps the quota unlimited; the kernel's default period is 100 ms.
    let p = if period != 0 { period } else { 100_000 };
    Some(format!("{q} {p}"))
}

/// The spec's swap is memory + swap (v1's memsw); v2's memory.swap.max is swap alone.
fn swap_max(swap: i64, limit: Option<i64>) -> Result<String, String> {
    if swap == -1 {
        return Ok("max".to_string());
    }
    match limit {
        None | Some(0) | Some(-1) => {
            Err("a swap limit needs a memory limit (the spec's swap is memory + swap)".into())
        }
        Some(l) if l > swap => Err(format!(
            "{swap} is below the memory limit {l} (the spec's swap is memory + swap)"
        )),
        Some(l) => Ok((swap - l).to_string()),
    }
}

fn bytes(v: i64) -> String {
    if v < 0 {
        "max".to_string()
    } else {
        v.to_string()
    }
}

/// The v2 files and values for `linux.resources`, `unified` last so it overrides.
pub fn resource_writes(r: &LinuxResources) -> Vec<Write> {
    let mut out = Vec::new();
    if let Some(m) = r.memory() {
        if let Some(l) = m.limit().filter(|&v| v != 0) {
            out.push(w(
                "memory",
                "memory.max",
                bytes(l),
                "linux.resources.memory.limit",
            ));
        }
        if let Some(s) = m.swap().filter(|&v| v != 0) {
            match swap_max(s, m.limit()) {
                Ok(v) => out.push(w(
                    "memory",
                    "memory.swap.max",
                    v,
                    "linux.resources.memory.swap",
                )),
                Err(why) => out.push(refused("memory", "linux.resources.memory.swap", &why)),
            }
        }
        if let Some(v) = m.reservation().filter(|&v| v != 0) {
            out.push(w(
                "memory",
                "memory.low",
                bytes(v),
                "linux.resources.memory.reservation",
            ));
        }
        if m.swappiness().is_some_and(|v| v <= 100) {
            out.push(refused(
                "memory",
                "linux.resources.memory.swappiness",
                "cgroup v2 has no per-cgroup swappiness",
            ));
        }
        if m.disable_oom_killer() == Some(true) {
            out.push(refused(
                "memory",
                "linux.resources.memory.disableOOMKiller",
                "cgroup v2 cannot disable the OOM killer",
            ));
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(v) = c.shares().filter(|&v| v != 0) {
            out.push(w(
                "cpu",
                "cpu.weight",
                cpu_weight(v),
                "linux.resources.cpu.shares",
            ));
        }
        if let Some(v) = cpu_max(c.quota(), c.period()) {
            let field = if c.quota().is_some_and(|q| q != 0) {
                "linux.resources.cpu.quota"
            } else {
                "linux.resources.cpu.period"
            };
            out.push(w("cpu", "cpu.max", v, field));
        }
        if let Some(v) = c.burst() {
            out.push(w("cpu", "cpu.max.burst", v, "linux.resources.cpu.burst"));
        }
        if c.realtime_period().is_some_and(|v| v != 0)
            || c.realtime_runtime().is_some_and(|v| v != 0)
        {
            out.push(refused(
                "cpu",
                "linux.resources.cpu.realtimeRuntime",
                "cgroup v2 has no real-time CPU budget",
            ));
        }
        out.extend(v1::cpu_common_writes(c));
    }
    out.extend(v1::pids_write(r));
    if let Some(b) = r.block_io() {
        if let Some(v) = b.weight().filter(|&v| v != 0) {
            // With BFQ the kernel takes the v1 scale as it is; otherwise io.weight's.
            let mut bfq = w("io", "io.bfq.weight", v, "linux.resources.blockIO.weight");
            bfq.optional = true;
            out.push(bfq);
            out.push(w(
                "io",
                "io.weight",
                format!("default {}", io_weight(v)),
                "linux.resources.blockIO.weight",
            ));
        }
        if b.leaf_weight().is_some_and(|v| v != 0) {
            out.push(refused(
                "io",
                "linux.resources.blockIO.leafWeight",
                "cgroup v2 has no leaf weight",
            ));
        }
        for d in b.weight_device().iter().flatten() {
            if let Some(v) = d.weight() {
                out.push(w(
                    "io",
                    "io.weight",
                    format!("{}:{} {}", d.major(), d.minor(), io_weight(v)),
                    "linux.resources.blockIO.weightDevice",
                ));
            }
        }
        for (list, _, key, field) in v1::throttles(b) {
            for d in list.iter().flatten() {
                // 0 means "no limit" in blkio.throttle.*; io.max says it with "max".
                let rate = if d.rate() == 0 {
                    "max".to_string()
                } else {
                    d.rate().to_string()
                };
                out.push(w(
                    "io",
                    "io.max",
                    format!("{}:{} {key}={rate}", d.major(), d.minor()),
                    field,
                ));
            }
        }
    }
    out.extend(v1::hugetlb_writes(r, "max", bytes));
    out.extend(v1::rdma_writes(r));
    if let Some(n) = r.network() {
        if n.class_id().is_some() || n.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
            out.push(refused(
                "net_cls",
                "linux.resources.network",
                "cgroup v2 has no net_cls or net_prio; classify with an eBPF program instead",
            ));
        }
    }
    let mut unified: Vec<(&String, &String)> = r.unified().iter().flatten().collect();
    unified.sort();
    for (key, value) in unified {
        out.push(unified_write(key, value));
    }
    out
}

/// One `linux.resources.unified` entry: a file of the cgroup directory, named by its
/// controller prefix (`memory.high` belongs to memory).
fn unified_write(key: &str, value: &str) -> Write {
    let field = "linux.resources.unified";
    if key.is_empty() || key.contains('/') || key.starts_with('.') || !key.contains('.') {
        return refused(
            "unified",
            field,
            &format!("{key:?} is not the name of a cgroup file"),
        );
    }
    let controller = key.split('.').next().unwrap_or_default();
    // The files of the cgroup core are not the container's to change.
    if controller == "cgroup" && !matches!(key, "cgroup.max.depth" | "cgroup.max.descendants") {
        return refused(
            "unified",
            field,
            &format!("{key}: the cgroup core files are the runtime's"),
        );
    }
    let controller: &'static str = match controller {
        "memory" => "memory",
        "cpu" => "cpu",
        "cpuset" => "cpuset",
        "io" => "io",
        "pids" => "pids",
        "hugetlb" => "hugetlb",
        "rdma" => "rdma",
        "misc" => "misc",
        _ => "",
    };
    Write {
        // Files without a controller (cgroup.max.depth, *.pressure) are always there.
        controller: if controller.is_empty() {
            "core"
        } else {
            controller
        },
        file: key.to_string(),
        value: value.to_string(),
        field,
        optional: false,
        refused: None,
    }
}

/// The controllers available in `dir` (its parent enabled them), from cgroup.controllers.
pub fn available(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("cgroup.controllers"))
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Enables `want` (or, when None, every available controller) in cgroup.subtree_control of
/// each directory from `top` down to `dir`'s parent, so `dir` gets them. A directory that has
/// processes of its own cannot give domain controllers to its children (the "no internal
/// processes" rule): that is not an error here; a limit that then finds its controller
/// missing fails, naming its field.
pub fn enable_controllers(top: &Path, dir: &Path, want: Option<&[&str]>) {
    let Ok(rel) = dir.strip_prefix(top) else {
        return;
    };
    let mut cur = top.to_path_buf();
    for part in rel.parent().into_iter().flat_map(|p| p.components()) {
        enable_in(&cur, want);
        cur.push(part);
    }
    enable_in(&cur, want);
}

fn enable_in(dir: &Path, want: Option<&[&str]>) {
    let have = available(dir);
    let enabled = std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
    let enabled: Vec<&str> = enabled.split_whitespace().collect();
    let add: Vec<String> = have
        .iter()
        .filter(|c| want.is_none_or(|w| w.contains(&c.as_str())))
        .filter(|c| !enabled.contains(&c.as_str()))
        .map(|c| format!("+{c}"))
        .collect();
    if add.is_empty() {
        return;
    }
    let file = dir.join("cgroup.subtree_control");
    if std::fs::write(&file, add.join(" ")).is_err() {
        // One at a time, so one controller that cannot be enabled does not hold back the rest.
        for a in add {
            if let Err(e) = std::fs::write(&file, &a) {
                tracing::debug!(file = %file.display(), controller = %a, "not enabled: {e}");
            }
        }
    }
}

/// Freezes or thaws with cgroup.freeze and waits until cgroup.events says it is done.
pub fn freeze(dir: &Path, frozen: bool) -> Result<(), CgroupError> {
    let file = dir.join("cgroup.freeze");
    std::fs::write(&file, if frozen { "1" } else { "0" }).map_err(io("write", &file))?;
    let events = dir.join("cgroup.events");
    let want = if frozen { "frozen 1" } else { "frozen 0" };
    for _ in 0..2000 {
        let text = std::fs::read_to_string(&events).map_err(io("read", &events))?;
        if text.lines().any(|l| l.trim() == want) {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    Err(io("freeze", &file)(std::io::Error::from(
        std::io::ErrorKind::TimedOut,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_shares_to_weight() {
        assert_eq!(cpu_weight(0), 0);
        assert_eq!(cpu_weight(2), 1);
        assert_eq!(cpu_weight(1024), 100);
        assert_eq!(cpu_weight(262_144), 10_000);
        assert_eq!(cpu_weight(1_000_000), 10_000);
        // Monotonic over the whole range.
        let mut last = 0;
        for s in (2..262_144).step_by(97) {
            let v = cpu_weight(s);
            assert!(v >= last, "{s}: {v} < {last}");
            last = v;
        }
    }

    #[test]
    fn converts_blkio_weight_and_cpu_max() {
        assert_eq!(io_weight(10), 1);
        assert_eq!(io_weight(1000), 10_000);
        assert_eq!(io_weight(500), 4950);
        assert_eq!(
            cpu_max(Some(50_000), Some(100_000)).unwrap(),
            "50000 100000"
        );
        assert_eq!(cpu_max(Some(-1), Some(20_000)).unwrap(), "max 20000");
        assert_eq!(cpu_max(Some(25_000), None).unwrap(), "25000 100000");
        assert_eq!(cpu_max(None, None), None);
    }

    #[test]
    fn translates_resources() {
        let r: LinuxResources = serde_json::from_value(serde_json::json!({
            "memory": {"limit": 67108864, "swap": 134217728, "reservation": 1048576},
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0"},
            "pids": {"limit": -1},
            "blockIO": {"weight": 500, "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 10}]},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
            "unified": {"memory.high": "50000000"}
        }))
        .unwrap();
        let got: Vec<(String, String)> = resource_writes(&r)
            .into_iter()
            .map(|w| (w.file, w.value))
            .collect();
        let want = [
            ("memory.max", "67108864"),
            ("memory.swap.max", "67108864"),
            ("memory.low", "1048576"),
            ("cpu.weight", "100"),
            ("cpu.max", "50000 100000"),
            ("cpuset.cpus", "0"),
            ("pids.max", "max"),
            ("io.bfq.weight", "500"),
            ("io.weight", "default 4950"),
            ("io.max", "8:0 wiops=10"),
            ("hugetlb.2MB.max", "4194304"),
            ("hugetlb.2MB.rsvd.max", "4194304"),
            ("memory.high", "50000000"),
        ];
        assert_eq!(got, want.map(|(a, b)| (a.to_string(), b.to_string())));
    }

    #[test]
    fn refuses_what_v2_cannot_say() {
        let r: LinuxResources = serde_json::from_value(serde_json::json!({
            "memory": {"swap": 134217728, "swappiness": 10},
            "cpu": {"realtimeRuntime": 1000},
            "network": {"classID": 1},
            "unified": {"../memory.max": "1", "cgroup.procs": "1", "memory.high": "1"}
        }))
        .unwrap();
        let refused: Vec<&str> = resource_writes(&r)
            .iter()
            .filter(|w| w.refused.is_some())
            .map(|w| w.field)
            .collect();
        assert_eq!(
            refused,
            [
                "linux.resources.memory.swap",
                "linux.resources.memory.swappiness",
                "linux.resources.cpu.realtimeRuntime",
                "linux.resources.network",
                "linux.resources.unified",
                "linux.resources.unified",
            ]
        );
    }

    #[test]
    fn enables_controllers_down_the_path() {
        let top = tempfile::tempdir().unwrap();
        let dir = top.path().join("a/b/c");
        std::fs::create_dir_all(&dir).unwrap();
        for d in [
            top.path().to_path_buf(),
            top.path().join("a"),
            top.path().join("a/b"),
        ] {
            std::fs::write(d.join("cgroup.controllers"), "cpu memory pids").unwrap();
            std::fs::write(d.join("cgroup.subtree_control"), "cpu").unwrap();
        }
        enable_controllers(top.path(), &dir, Some(&["memory", "pids", "io"]));
        for d in [
            top.path().to_path_buf(),
            top.path().join("a"),
            top.path().join("a/b"),
        ] {
            // A plain file is replaced where the kernel would add: the last write shows.
            assert_eq!(
                std::fs::read_to_string(d.join("cgroup.subtree_control")).unwrap(),
                "+memory +pids"
            );
        }
        assert!(!dir.join("cgroup.subtree_control").exists());
    }
}
