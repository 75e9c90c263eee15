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
    } else if let Some(stat) = p
        .unified
        .as_ref()
        .map(|u| flat_keyed(&u.join("cpu.stat")))
        .filter(|s| s.contains_key("usage_usec"))
    {
        // cgroup2 counts microseconds; runc's JSON has nanoseconds.
        let ns = |k: &str| stat.get(k).and_then(Value::as_u64).map(|v| v * 1000);
        data.insert(
            "cpu".into(),
            json!({
                "usage": {"total": ns("usage_usec"), "percpu": [], "user": ns("user_usec"), "kernel": ns("system_usec")},
                "throttling": {"periods": stat.get("nr_periods"), "throttledPeriods": stat.get("nr_throttled"),
                               "throttledTime": ns("throttled_usec")}
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
    } else if let Some(current) = find(p, "memory.current") {
        let dir = current.parent().expect("a file in a directory");
        let max = std::fs::read_to_string(dir.join("memory.max")).unwrap_or_default();
        let events = flat_keyed(&dir.join("memory.events"));
        data.insert(
            "memory".into(),
            json!({
                "usage": {"usage": num(&current), "max": num(&dir.join("memory.peak")),
                          "limit": max.trim().parse::<u64>().unwrap_or(u64::MAX), "failcnt": events.get("max")},
                "swap_usage": {"usage": num(&dir.join("memory.swap.current"))},
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
    } else if let Some(stat) = find(p, "io.stat") {
        // `8:0 rbytes=1 wbytes=2 rios=3 wios=4 ...` per device.
        let mut bytes = Vec::new();
        let mut ios = Vec::new();
        for l in std::fs::read_to_string(&stat).unwrap_or_default().lines() {
            let mut f = l.split_whitespace();
            let Some((maj, min)) = f.next().and_then(|d| d.split_once(':')) else {
                continue;
            };
            let (Ok(major), Ok(minor)) = (maj.parse::<u64>(), min.parse::<u64>()) else {
                continue;
            };
            for kv in f {
                let Some((k, v)) = kv.split_once('=') else {
                    continue;
                };
                let Ok(value) = v.parse::<u64>() else {
                    continue;
                };
                let (list, op) = match k {
                    "rbytes" => (&mut bytes, "Read"),
                    "wbytes" => (&mut bytes, "Write"),
                    "rios" => (&mut ios, "Read"),
                    "wios" => (&mut ios, "Write"),
                    _ => continue,
                };
                list.push(json!({"major": major, "minor": minor, "op": op, "value": value}));
            }
        }
        data.insert(
            "blkio".into(),
            json!({"ioServiceBytesRecursive": bytes, "ioServicedRecursive": ios}),
        );
    }
    let hugetlb: Map<String, Value> = p
        .dirs
        .iter()
        .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.contains(".rsvd.") {
                return None;
            }
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
