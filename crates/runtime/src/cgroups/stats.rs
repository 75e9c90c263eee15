//! Resource usage of a container, as `events --stats` reports it (runc's JSON shape).

use std::path::Path;

use serde_json::{json, Map, Value};

use super::Placement;

fn num(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// `key value` lines (memory.stat, cpu.stat) as a JSON object.
fn flat_keyed(p: &Path) -> Map<String, Value> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), json!(v.trim().parse::<u64>().ok()?)))
        })
        .collect()
}

fn find(p: &Placement, file: &str) -> Option<std::path::PathBuf> {
    p.dirs.iter().map(|d| d.join(file)).find(|f| f.exists())
}

/// Reads what the controllers expose; a controller that is not mounted is left out.
pub fn collect(p: &Placement) -> Value {
    let mut data = Map::new();
    if let Some(usage) = find(p, "cpuacct.usage") {
        let percpu: Vec<u64> = find(p, "cpuacct.usage_percpu")
            .and_then(|f| std::fs::read_to_string(f).ok())
            .map(|t| {
                t.split_whitespace()
                    .filter_map(|v| v.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        let stat = find(p, "cpuacct.stat")
            .map(|f| flat_keyed(&f))
            .unwrap_or_default();
        let throttle = find(p, "cpu.stat")
            .map(|f| flat_keyed(&f))
            .unwrap_or_default();
        data.insert(
            "cpu".into(),
            json!({
                "usage": {"total": num(&usage), "percpu": percpu, "user": stat.get("user"), "kernel": stat.get("system")},
                "throttling": {"periods": throttle.get("nr_periods"), "throttledPeriods": throttle.get("nr_throttled"),
                               "throttledTime": throttle.get("throttled_time")}
            }),
        );
    }
    if let Some(usage) = find(p, "memory.usage_in_bytes") {
        let dir = usage.parent().expect("a file in a directory");
        data.insert(
            "memory".into(),
            json!({
                "usage": {"usage": num(&usage), "max": num(&dir.join("memory.max_usage_in_bytes")),
                          "limit": num(&dir.join("memory.limit_in_bytes")), "failcnt": num(&dir.join("memory.failcnt"))},
                "raw": flat_keyed(&dir.join("memory.stat"))
            }),
        );
    }
    if let Some(current) = find(p, "pids.current") {
        let max = std::fs::read_to_string(current.with_file_name("pids.max")).unwrap_or_default();
        data.insert(
            "pids".into(),
            json!({"current": num(&current), "limit": max.trim().parse::<u64>().unwrap_or(0)}),
        );
    }
    if let Some(bytes) = find(p, "blkio.throttle.io_service_bytes") {
        let entries: Vec<Value> = std::fs::read_to_string(&bytes)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let (maj, min) = f.first()?.split_once(':')?;
                Some(
                    json!({"major": maj.parse::<u64>().ok()?, "minor": min.parse::<u64>().ok()?,
                            "op": f.get(1)?, "value": f.get(2)?.parse::<u64>().ok()?}),
                )
            })
            .collect();
        data.insert("blkio".into(), json!({"ioServiceBytesRecursive": entries}));
    }
    let hugetlb: Map<String, Value> = p
        .dirs
        .iter()
        .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let size = name
                .strip_prefix("hugetlb.")?
                .strip_suffix(".current")
                .or_else(|| {
                    name.strip_prefix("hugetlb.")?
                        .strip_suffix(".usage_in_bytes")
                })?;
            Some((size.to_string(), json!({"usage": num(&e.path())})))
        })
        .collect();
    if !hugetlb.is_empty() {
        data.insert("hugetlb".into(), Value::Object(hugetlb));
    }
    Value::Object(data)
}

/// How many processes the kernel OOM-killed in the container (v1 memory.oom_control
/// `oom_kill`, v2 memory.events `oom_kill`).
pub fn oom_kills(p: &Placement) -> Option<u64> {
    for file in ["memory.oom_control", "memory.events"] {
        if let Some(f) = find(p, file) {
            if let Some(v) = flat_keyed(&f).get("oom_kill").and_then(|v| v.as_u64()) {
                return Some(v);
            }
        }
    }
    None
}
