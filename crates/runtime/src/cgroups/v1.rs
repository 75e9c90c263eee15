//! cgroup v1 controllers (kernel Documentation/admin-guide/cgroup-v1/).

use std::path::Path;

use oci_spec::runtime::LinuxResources;

use super::devices::Rule;
use super::{io, CgroupError};

/// One file to write in a controller's directory, with the config field it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub controller: &'static str,
    pub file: String,
    pub value: String,
    pub field: &'static str,
    /// Absent on kernels without the feature (e.g. swap accounting), in which case runc
    /// skips it; the skip is logged.
    pub optional: bool,
    /// Why this cgroup version cannot express the value: an error naming `field` if the
    /// resource is applied on this version.
    pub refused: Option<String>,
}

pub(super) fn w(
    controller: &'static str,
    file: &str,
    value: impl ToString,
    field: &'static str,
) -> Write {
    Write {
        controller,
        file: file.to_string(),
        value: value.to_string(),
        field,
        optional: false,
        refused: None,
    }
}

/// The v1 files and values for `linux.resources`, in the order they must be written
/// (cgroup-v1/memory.rst, sched-bwc.rst, cpusets.rst, pids.rst, blkio-controller.rst).
pub fn resource_writes(r: &LinuxResources) -> Vec<Write> {
    let mut out = Vec::new();
    if let Some(m) = r.memory() {
        if let Some(l) = m.limit().filter(|&v| v != 0) {
            out.push(w(
                "memory",
                "memory.limit_in_bytes",
                l,
                "linux.resources.memory.limit",
            ));
        }
        if let Some(s) = m.swap().filter(|&v| v != 0) {
            // memory.memsw is memory + swap, as the spec's swap; written after the limit,
            // which it may not be below.
            let mut wr = w(
                "memory",
                "memory.memsw.limit_in_bytes",
                s,
                "linux.resources.memory.swap",
            );
            wr.optional = true;
            out.push(wr);
        }
        if let Some(v) = m.reservation().filter(|&v| v != 0) {
            out.push(w(
                "memory",
                "memory.soft_limit_in_bytes",
                v,
                "linux.resources.memory.reservation",
            ));
        }
        if let Some(v) = m.swappiness().filter(|&v| v <= 100) {
            out.push(w(
                "memory",
                "memory.swappiness",
                v,
                "linux.resources.memory.swappiness",
            ));
        }
        if m.disable_oom_killer() == Some(true) {
            out.push(w(
                "memory",
                "memory.oom_control",
                1,
                "linux.resources.memory.disableOOMKiller",
            ));
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(v) = c.shares().filter(|&v| v != 0) {
            out.push(w("cpu", "cpu.shares", v, "linux.resources.cpu.shares"));
        }
        if let Some(v) = c.period().filter(|&v| v != 0) {
            out.push(w(
                "cpu",
                "cpu.cfs_period_us",
                v,
                "linux.resources.cpu.period",
            ));
        }
        if let Some(v) = c.quota().filter(|&v| v != 0) {
            out.push(w("cpu", "cpu.cfs_quota_us", v, "linux.resources.cpu.quota"));
        }
        if let Some(v) = c.burst() {
            out.push(w("cpu", "cpu.cfs_burst_us", v, "linux.resources.cpu.burst"));
        }
        if let Some(v) = c.realtime_period().filter(|&v| v != 0) {
            out.push(w(
                "cpu",
                "cpu.rt_period_us",
                v,
                "linux.resources.cpu.realtimePeriod",
            ));
        }
        if let Some(v) = c.realtime_runtime().filter(|&v| v != 0) {
            out.push(w(
                "cpu",
                "cpu.rt_runtime_us",
                v,
                "linux.resources.cpu.realtimeRuntime",
            ));
        }
        out.extend(cpu_common_writes(c));
    }
    out.extend(pids_write(r));
    if let Some(b) = r.block_io() {
        if let Some(v) = b.weight().filter(|&v| v != 0) {
            out.push(w(
                "blkio",
                "blkio.weight",
                v,
                "linux.resources.blockIO.weight",
            ));
        }
        if let Some(v) = b.leaf_weight().filter(|&v| v != 0) {
            out.push(w(
                "blkio",
                "blkio.leaf_weight",
                v,
                "linux.resources.blockIO.leafWeight",
            ));
        }
        for d in b.weight_device().iter().flatten() {
            if let Some(v) = d.weight() {
                let value = format!("{}:{} {v}", d.major(), d.minor());
                out.push(w(
                    "blkio",
                    "blkio.weight_device",
                    value,
                    "linux.resources.blockIO.weightDevice",
                ));
            }
            if let Some(v) = d.leaf_weight() {
                let value = format!("{}:{} {v}", d.major(), d.minor());
                out.push(w(
                    "blkio",
                    "blkio.leaf_weight_device",
                    value,
                    "linux.resources.blockIO.weightDevice",
                ));
            }
        }
        for (list, file, _, field) in throttles(b) {
            for d in list.iter().flatten() {
                out.push(w(
                    "blkio",
                    file,
                    format!("{}:{} {}", d.major(), d.minor(), d.rate()),
                    field,
                ));
            }
        }
    }
    out.extend(hugetlb_writes(r, "limit_in_bytes", |v| v.to_string()));
    out.extend(rdma_writes(r));
    if let Some(n) = r.network() {
        if let Some(id) = n.class_id() {
            out.push(w(
                "net_cls",
                "net_cls.classid",
                id,
                "linux.resources.network.classID",
            ));
        }
        for p in n.priorities().iter().flatten() {
            out.push(w(
                "net_prio",
                "net_prio.ifpriomap",
                format!("{} {}", p.name(), p.priority()),
                "linux.resources.network.priorities",
            ));
        }
    }
    out
}

/// cpu.idle, cpuset.cpus and cpuset.mems: the same files and values on v1 and v2.
pub(super) fn cpu_common_writes(c: &oci_spec::runtime::LinuxCpu) -> Vec<Write> {
    let mut out = Vec::new();
    if let Some(v) = c.idle() {
        out.push(w("cpu", "cpu.idle", v, "linux.resources.cpu.idle"));
    }
    if let Some(v) = c.cpus().as_deref().filter(|v| !v.is_empty()) {
        out.push(w("cpuset", "cpuset.cpus", v, "linux.resources.cpu.cpus"));
    }
    if let Some(v) = c.mems().as_deref().filter(|v| !v.is_empty()) {
        out.push(w("cpuset", "cpuset.mems", v, "linux.resources.cpu.mems"));
    }
    out
}

/// pids.max, the same file on v1 and v2; zero means "not set" (Docker sends zeros), as runc
/// reads it, and a negative limit is `max`.
pub(super) fn pids_write(r: &LinuxResources) -> Option<Write> {
    let p = r.pids().filter(|p| p.limit() != 0)?;
    let v = if p.limit() > 0 {
        p.limit().to_string()
    } else {
        "max".to_string()
    };
    Some(w("pids", "pids.max", v, "linux.resources.pids.limit"))
}

/// The four blkio throttles: the devices, the v1 file, the key of v2's io.max, the field.
pub(super) fn throttles(
    b: &oci_spec::runtime::LinuxBlockIo,
) -> [(
    &Option<Vec<oci_spec::runtime::LinuxThrottleDevice>>,
    &'static str,
    &'static str,
    &'static str,
); 4] {
    [
        (
            b.throttle_read_bps_device(),
            "blkio.throttle.read_bps_device",
            "rbps",
            "linux.resources.blockIO.throttleReadBpsDevice",
        ),
        (
            b.throttle_write_bps_device(),
            "blkio.throttle.write_bps_device",
            "wbps",
            "linux.resources.blockIO.throttleWriteBpsDevice",
        ),
        (
            b.throttle_read_iops_device(),
            "blkio.throttle.read_iops_device",
            "riops",
            "linux.resources.blockIO.throttleReadIOPSDevice",
        ),
        (
            b.throttle_write_iops_device(),
            "blkio.throttle.write_iops_device",
            "wiops",
            "linux.resources.blockIO.throttleWriteIOPSDevice",
        ),
    ]
}

/// hugetlb.<size>.<limit> for each page size, and the reservation limit
/// hugetlb.<size>.rsvd.<limit> where the kernel has it (Linux 5.7: a mmap(MAP_HUGETLB) is
/// charged to it first). v1 names the file `limit_in_bytes`, v2 `max`.
pub(super) fn hugetlb_writes(
    r: &LinuxResources,
    limit: &str,
    value: fn(i64) -> String,
) -> Vec<Write> {
    let mut out = Vec::new();
    for h in r.hugepage_limits().iter().flatten() {
        let size = h.page_size();
        let field = "linux.resources.hugepageLimits";
        out.push(w(
            "hugetlb",
            &format!("hugetlb.{size}.{limit}"),
            value(h.limit()),
            field,
        ));
        let mut rsvd = w(
            "hugetlb",
            &format!("hugetlb.{size}.rsvd.{limit}"),
            value(h.limit()),
            field,
        );
        rsvd.optional = true;
        out.push(rsvd);
    }
    out
}

/// rdma.max lines, the same file on v1 and v2 (cgroup-v1/rdma.rst): one device per line,
/// `max` for a count the config leaves unset.
pub fn rdma_writes(r: &LinuxResources) -> Vec<Write> {
    let mut devices: Vec<_> = r.rdma().iter().flatten().collect();
    devices.sort_by(|a, b| a.0.cmp(b.0));
    devices
        .into_iter()
        .map(|(dev, l)| {
            let n = |v: Option<u32>| v.map_or("max".to_string(), |v| v.to_string());
            w(
                "rdma",
                "rdma.max",
                format!(
                    "{dev} hca_handle={} hca_object={}",
                    n(l.hca_handles()),
                    n(l.hca_objects())
                ),
                "linux.resources.rdma",
            )
        })
        .collect()
}

/// Writes one value into `dir` (a v1 or v2 cgroup directory).
pub fn write_one(dir: &Path, wr: &Write) -> Result<(), CgroupError> {
    let file = dir.join(&wr.file);
    if wr.optional && !file.exists() {
        tracing::debug!(file = %file.display(), "not supported by this kernel: skipped, as runc does");
        return Ok(());
    }
    std::fs::write(&file, &wr.value).map_err(|source| CgroupError::Write {
        field: wr.field,
        path: file.clone(),
        value: wr.value.clone(),
        source,
    })
}

/// Writes the device rules in order to devices.allow / devices.deny
/// (cgroup-v1/devices.rst): a later rule overrides an earlier one.
pub fn apply_devices(dir: &Path, rules: &[Rule]) -> Result<(), CgroupError> {
    for r in rules {
        let file = dir.join(if r.allow {
            "devices.allow"
        } else {
            "devices.deny"
        });
        std::fs::write(&file, r.to_string()).map_err(io("write", &file))?;
    }
    Ok(())
}

/// Gives every cpuset from below `top` down to `dir` the cpus and mems of its parent where it
/// has none (a new v1 cpuset starts empty and takes no task until given some). Every level,
/// not only the ones we created: a parent another runtime created a moment ago may still be
/// empty (two containers under a new /berth-test at once), as runc does.
pub fn fill_cpusets(top: &Path, dir: &Path) -> Result<(), CgroupError> {
    let Ok(rel) = dir.strip_prefix(top) else {
        return Ok(());
    };
    let mut cur = top.to_path_buf();
    for part in rel.components() {
        cur.push(part);
        inherit_cpuset(&cur)?;
    }
    Ok(())
}

/// Copies cpuset.cpus and cpuset.mems from the parent when they are empty.
pub fn inherit_cpuset(dir: &Path) -> Result<(), CgroupError> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let mine = dir.join(f);
        let current = std::fs::read_to_string(&mine).map_err(io("read", &mine))?;
        if current.trim().is_empty() {
            let p = parent.join(f);
            let value = std::fs::read_to_string(&p).map_err(io("read", &p))?;
            std::fs::write(&mine, value.trim()).map_err(io("write", &mine))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translates_resources_in_order() {
        let r: LinuxResources = serde_json::from_value(serde_json::json!({
            "memory": {"limit": 67108864, "swap": 134217728},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"},
            "pids": {"limit": 100},
            "blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]}
        }))
        .unwrap();
        let got: Vec<(String, String)> = resource_writes(&r)
            .into_iter()
            .map(|w| (w.file, w.value))
            .collect();
        let want = [
            ("memory.limit_in_bytes", "67108864"),
            ("memory.memsw.limit_in_bytes", "134217728"),
            ("cpu.shares", "512"),
            ("cpu.cfs_period_us", "100000"),
            ("cpu.cfs_quota_us", "50000"),
            ("cpuset.cpus", "0"),
            ("pids.max", "100"),
            ("blkio.throttle.read_bps_device", "8:0 1048576"),
        ];
        assert_eq!(got, want.map(|(a, b)| (a.to_string(), b.to_string())));
    }

    #[test]
    fn unlimited_pids_and_missing_controller() {
        let r: LinuxResources =
            serde_json::from_value(serde_json::json!({"pids": {"limit": -1}})).unwrap();
        let writes = resource_writes(&r);
        assert_eq!(writes[0].value, "max");
        let err = super::super::apply(&super::super::Placement::default(), &r).unwrap_err();
        assert!(
            err.to_string().contains("linux.resources.pids.limit"),
            "{err}"
        );
    }

    #[test]
    fn writes_rules_to_the_right_file() {
        let dir = std::env::temp_dir().join(format!("berth-v1-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rules = [
            Rule {
                allow: false,
                kind: 'a',
                major: None,
                minor: None,
                access: "rwm".into(),
            },
            Rule {
                allow: true,
                kind: 'c',
                major: Some(1),
                minor: Some(3),
                access: "rwm".into(),
            },
        ];
        apply_devices(&dir, &rules).unwrap();
        // Each write replaces the file in a plain directory; the kernel appends instead.
        assert_eq!(
            std::fs::read_to_string(dir.join("devices.deny")).unwrap(),
            "a *:* rwm"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("devices.allow")).unwrap(),
            "c 1:3 rwm"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
