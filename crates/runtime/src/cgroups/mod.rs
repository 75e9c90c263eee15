//! Control groups: find the hierarchies, place the container in its cgroup on every one of
//! them, and apply its limits (cgroups(7), kernel Documentation/admin-guide/cgroup-v1 and -v2).
//!
//! A host is v1 (one hierarchy per controller), v2 (one unified hierarchy) or hybrid (v1
//! controllers plus a cgroup2 hierarchy, as on this project's machines). We place the
//! container on every mounted hierarchy, so `ps`, `kill --all` and `delete` see all of it.
//!
//! One interface for all three: each resource goes to the v1 hierarchy that has its
//! controller, else to the cgroup2 directory if the controller is enabled there (so on a
//! hybrid host hugetlb, bound to cgroup2, is limited through v2 and the rest through v1).
//! Device rules go to the v1 devices controller where there is one, else to an eBPF program
//! attached to the container's cgroup2 directory.

pub mod devices;
pub mod stats;
pub mod v1;
pub mod v2;

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

use crate::spec::SpecError;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no cgroup hierarchy is mounted (read /proc/self/mountinfo)")]
    NoHierarchy,
    #[error("{field}: the {controller} cgroup controller is not mounted on this host")]
    NoController {
        controller: &'static str,
        field: &'static str,
    },
    #[error("{field}: write {value:?} to {path}: {source}")]
    Write {
        field: &'static str,
        path: PathBuf,
        value: String,
        source: std::io::Error,
    },
    #[error("linux.resources.devices: no devices controller and no cgroup2 hierarchy for an eBPF device program: a container would reach every device")]
    NoDeviceController,
    #[error("{field}: {why}")]
    Unsupported { field: &'static str, why: String },
    #[error("linux.resources.devices: {0}")]
    Device(String),
    #[error("linux.resources.memory.limit: {limit} is below the {usage} bytes the container uses now (checkBeforeUpdate)")]
    BelowUsage { limit: i64, usage: u64 },
}

impl CgroupError {
    /// The kernel refused us the cgroup filesystem (no root, no delegation).
    pub fn is_permission(&self) -> bool {
        match self {
            CgroupError::Io { source, .. } | CgroupError::Write { source, .. } => matches!(
                source.raw_os_error(),
                Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS)
            ),
            _ => false,
        }
    }
}

/// The first limit (other than device rules) that `r` asks for, by its config name.
pub fn limit_field(r: &LinuxResources) -> Option<&'static str> {
    if r.memory().is_some() {
        Some("linux.resources.memory")
    } else if r.cpu().is_some() {
        Some("linux.resources.cpu")
    } else if r.pids().is_some() {
        Some("linux.resources.pids")
    } else if r.block_io().is_some() {
        Some("linux.resources.blockIO")
    } else if r.network().is_some() {
        Some("linux.resources.network")
    } else if r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()) {
        Some("linux.resources.hugepageLimits")
    } else if r.rdma().as_ref().is_some_and(|h| !h.is_empty()) {
        Some("linux.resources.rdma")
    } else if r.unified().as_ref().is_some_and(|h| !h.is_empty()) {
        Some("linux.resources.unified")
    } else {
        None
    }
}

pub(crate) fn io<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// Where it is mounted (`/sys/fs/cgroup/memory`).
    pub mountpoint: PathBuf,
    /// The cgroup that the mount shows at its mountpoint (`/` on a host).
    pub root: PathBuf,
    /// v1 controllers (`cpu`, `name=systemd`); empty for cgroup2.
    pub controllers: Vec<String>,
    pub v2: bool,
}

/// Parses /proc/self/mountinfo (proc(5)) for cgroup and cgroup2 mounts.
pub fn parse_mountinfo(text: &str) -> Vec<Hierarchy> {
    let mut out: Vec<Hierarchy> = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if l.len() < 5 || r.len() < 3 {
            continue;
        }
        let (fstype, superopts) = (r[0], r[2]);
        let h = match fstype {
            "cgroup2" => Hierarchy {
                mountpoint: unescape(l[4]).into(),
                root: unescape(l[3]).into(),
                controllers: Vec::new(),
                v2: true,
            },
            "cgroup" => Hierarchy {
                mountpoint: unescape(l[4]).into(),
                root: unescape(l[3]).into(),
                controllers: superopts
                    .split(',')
                    .filter(|o| {
                        !matches!(
                            *o,
                            "rw" | "ro"
                                | "xattr"
                                | "clone_children"
                                | "noprefix"
                                | "cpuset_v2_mode"
                        ) && !o.starts_with("release_agent=")
                    })
                    .map(str::to_string)
                    .collect(),
                v2: false,
            },
            _ => continue,
        };
        // A hierarchy mounted twice is used once: keep the first mountpoint.
        if !out
            .iter()
            .any(|o| o.v2 == h.v2 && o.controllers == h.controllers && o.root == h.root)
        {
            out.push(h);
        }
    }
    out
}

/// mountinfo escapes space, tab, newline and backslash as octal (`\040`).
fn unescape(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup of this process on each hierarchy, from /proc/self/cgroup
/// (`hierarchy-id:controllers:path`).
pub fn parse_proc_cgroup(text: &str) -> Vec<(Vec<String>, PathBuf)> {
    text.lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let _id = parts.next()?;
            let ctrl = parts.next()?;
            let path = parts.next()?;
            let ctrls = if ctrl.is_empty() {
                Vec::new()
            } else {
                ctrl.split(',').map(str::to_string).collect()
            };
            Some((ctrls, PathBuf::from(path)))
        })
        .collect()
}

/// Where a container's cgroups live, kept in state.json for `delete`, `kill --all` and `ps`.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct Placement {
    /// The container's cgroup directory on every hierarchy, in the order of the hierarchies.
    pub dirs: Vec<PathBuf>,
    /// The v1 controllers of each of `dirs` (empty for cgroup2).
    #[serde(default)]
    pub controllers: Vec<Vec<String>>,
    /// The container's cgroup2 directory, on v2 and hybrid hosts.
    #[serde(default)]
    pub unified: Option<PathBuf>,
    /// Directories we created (the leaf and missing parents), deepest first: what delete
    /// removes. Parents that existed before us are left alone.
    pub created: Vec<PathBuf>,
}

/// The cgroup directory on one hierarchy for `cgroups_path`: absolute paths are from the
/// hierarchy's root; relative ones from our own cgroup on it.
fn dir_for(h: &Hierarchy, own: &[(Vec<String>, PathBuf)], cgroups_path: &Path) -> PathBuf {
    let rel = if cgroups_path.is_absolute() {
        cgroups_path.to_path_buf()
    } else {
        let mine = own
            .iter()
            .find(|(c, _)| {
                if h.v2 {
                    c.is_empty()
                } else {
                    *c == h.controllers
                }
            })
            .map(|(_, p)| p.clone())
            .unwrap_or_else(|| PathBuf::from("/"));
        mine.join(cgroups_path)
    };
    // `..` never climbs above the hierarchy's root (runc's CleanPath): a hostile cgroupsPath
    // must not make us create directories or write limits outside /sys/fs/cgroup.
    let rel = clean(&rel);
    // The mount shows `root` at `mountpoint`: strip it (inside a container that is not `/`).
    let under = rel.strip_prefix(&h.root).unwrap_or(&rel);
    let under = under.strip_prefix("/").unwrap_or(under);
    h.mountpoint.join(under)
}

/// `path` made absolute with `.` and `..` resolved lexically, never above `/`.
pub fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            std::path::Component::Normal(n) => out.push(n),
            std::path::Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// The host's hierarchies, read once per command.
pub fn hierarchies() -> Result<Vec<Hierarchy>, CgroupError> {
    let p = Path::new("/proc/self/mountinfo");
    let text = std::fs::read_to_string(p).map_err(io("read", p))?;
    let hs = parse_mountinfo(&text);
    if hs.is_empty() {
        return Err(CgroupError::NoHierarchy);
    }
    Ok(hs)
}

/// Creates the container's cgroup on every hierarchy and applies the resource limits.
/// On failure everything created is removed again.
pub fn create(
    hierarchies: &[Hierarchy],
    cgroups_path: &Path,
    resources: Option<&LinuxResources>,
    devices: &[oci_spec::runtime::LinuxDevice],
) -> Result<Placement, CgroupError> {
    let own_text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let own = parse_proc_cgroup(&own_text);
    let mut placement = Placement::default();
    let pure_v2 = hierarchies
        .iter()
        .all(|h| h.v2 || h.controllers.iter().all(|c| c.starts_with("name=")));
    let result = (|| {
        for h in hierarchies {
            let dir = dir_for(h, &own, cgroups_path);
            mkdir_all(&dir, &h.mountpoint, &mut placement.created)?;
            if h.controllers.iter().any(|c| c == "cpuset") {
                v1::fill_cpusets(&h.mountpoint, &dir)?;
            }
            placement.dirs.push(dir.clone());
            placement.controllers.push(h.controllers.clone());
            if h.v2 {
                // On a v2 host every controller, as runc does, so stats and `update` find
                // them later; on a hybrid host only what the config limits through v2.
                if pure_v2 {
                    v2::enable_controllers(&h.mountpoint, &dir, None);
                } else if let Some(r) = resources {
                    let needed = v2_controllers_needed(hierarchies, r);
                    if !needed.is_empty() {
                        v2::enable_controllers(&h.mountpoint, &dir, Some(&needed));
                    }
                }
                placement.unified = Some(dir);
            }
        }
        let rules = devices::rules(resources, devices);
        if let Some(i) = placement
            .controllers
            .iter()
            .position(|c| c.iter().any(|c| c == "devices"))
        {
            // The v1 list enforces the rules on v1 and hybrid hosts: the same rules as an
            // eBPF program on the cgroup2 side would only cost start time.
            v1::apply_devices(&placement.dirs[i], &rules)?;
        } else if let Some(u) = &placement.unified {
            devices::attach(u, &rules)?;
        } else {
            // Without a device controller nothing would stop a container with CAP_MKNOD
            // from opening the host's disks: refuse, even when the config lists no rules.
            return Err(CgroupError::NoDeviceController);
        }
        if let Some(r) = resources {
            apply(&placement, r)?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(placement),
        Err(e) => {
            placement.remove();
            Err(e)
        }
    }
}

/// The v2 names of the controllers that `r` limits and no v1 hierarchy of this host has.
fn v2_controllers_needed(hierarchies: &[Hierarchy], r: &LinuxResources) -> Vec<&'static str> {
    let on_v1 = |c: &str| {
        hierarchies
            .iter()
            .any(|h| h.controllers.iter().any(|v| v == v1_name(c)))
    };
    let mut out: Vec<&'static str> = v2::resource_writes(r)
        .iter()
        .map(|w| w.controller)
        .filter(|c| !on_v1(c))
        .filter(|c| !matches!(*c, "core" | "unified"))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The v1 controller that does the work of a v2 one.
fn v1_name(v2: &str) -> &str {
    match v2 {
        "io" => "blkio",
        c => c,
    }
}

/// Writes the limits of `r` into the container's directories: each resource through the v1
/// hierarchy that has its controller, else through cgroup2 when the controller is enabled
/// there; a resource with neither fails, naming its field.
pub fn apply(p: &Placement, r: &LinuxResources) -> Result<(), CgroupError> {
    let v1_dirs: Vec<(Vec<String>, PathBuf)> = p
        .controllers
        .iter()
        .zip(&p.dirs)
        .filter(|(c, _)| !c.is_empty())
        .map(|(c, d)| (c.clone(), d.clone()))
        .collect();
    let on_v1 = |controller: &str| {
        v1_dirs
            .iter()
            .any(|(c, _)| c.iter().any(|c| c == controller))
    };
    let mut writes: Vec<(PathBuf, v1::Write)> = Vec::new();
    for w in v1::resource_writes(r) {
        if let Some((_, d)) = v1_dirs
            .iter()
            .find(|(c, _)| c.iter().any(|c| c == w.controller))
        {
            writes.push((d.clone(), w));
        } else if p.unified.is_none() {
            return Err(CgroupError::NoController {
                controller: w.controller,
                field: w.field,
            });
        }
    }
    if let Some(u) = &p.unified {
        let available = v2::available(u);
        for w in v2::resource_writes(r) {
            // `unified` entries are cgroup2 files by definition: never redirected to v1.
            if w.field != "linux.resources.unified" && on_v1(v1_name(w.controller)) {
                continue;
            }
            if let Some(why) = w.refused {
                return Err(CgroupError::Unsupported {
                    field: w.field,
                    why,
                });
            }
            if w.controller != "core" && !available.iter().any(|c| c == w.controller) {
                return Err(CgroupError::NoController {
                    controller: w.controller,
                    field: w.field,
                });
            }
            writes.push((u.clone(), w));
        }
    } else if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        return Err(CgroupError::Unsupported {
            field: "linux.resources.unified",
            why: "this host has no cgroup2 hierarchy".into(),
        });
    }
    for (dir, w) in writes {
        v1::write_one(&dir, &w)?;
    }
    Ok(())
}

fn mkdir_all(dir: &Path, top: &Path, created: &mut Vec<PathBuf>) -> Result<(), CgroupError> {
    let mut missing = Vec::new();
    let mut p = dir;
    while p != top && !p.exists() {
        missing.push(p.to_path_buf());
        match p.parent() {
            Some(parent) => p = parent,
            None => break,
        }
    }
    for d in missing.iter().rev() {
        match std::fs::create_dir(d) {
            Ok(()) => created.insert(0, d.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io("mkdir", d)(e)),
        }
    }
    Ok(())
}

impl Placement {
    /// Whether the container's directory on hierarchy `i` is a v1 one.
    pub fn is_v1(&self, i: usize) -> bool {
        self.controllers.get(i).is_some_and(|c| !c.is_empty())
    }

    /// Moves `pid` into the container's cgroup on every hierarchy.
    pub fn add(&self, pid: i32) -> Result<(), CgroupError> {
        for d in &self.dirs {
            let p = d.join("cgroup.procs");
            std::fs::write(&p, pid.to_string()).map_err(io("write", &p))?;
        }
        Ok(())
    }

    /// The pids in the container's cgroup (from the first hierarchy that answers).
    pub fn pids(&self) -> Vec<i32> {
        for d in &self.dirs {
            if let Ok(text) = std::fs::read_to_string(d.join("cgroup.procs")) {
                return text.lines().filter_map(|l| l.trim().parse().ok()).collect();
            }
        }
        Vec::new()
    }

    /// Removes what we created, deepest first. A cgroup whose last process just exited can
    /// stay busy for a moment, so rmdir of the container's own cgroup is retried briefly; a
    /// parent that another container now uses stays. Returns the first error.
    pub fn remove(&self) -> Option<CgroupError> {
        let mut first = None;
        for d in &self.created {
            let mut tries = 0;
            loop {
                match std::fs::remove_dir(d) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) && !self.dirs.contains(d) => {
                        break
                    }
                    Err(e)
                        if e.raw_os_error() == Some(libc::EBUSY)
                            && tries < 100
                            && self.dirs.contains(d) =>
                    {
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                    Err(e) => {
                        first.get_or_insert(io("rmdir", d)(e));
                        break;
                    }
                }
            }
        }
        first
    }
}

/// The file through which a process moves itself into the cgroup directory `dir`, writing
/// `0`. On v1 that is `tasks`: a `0` there moves the writing thread alone, and the kernel
/// then skips the global threadgroup lock that a write to cgroup.procs takes, whose RCU
/// synchronisation costs 6-8 ms whenever no other migration happened in the last moments (a
/// lone `docker run`; `bench/cgroup-migration.py`). cgroup2 has only cgroup.procs, which
/// takes the lock: there a process is best born in place (clone3 CLONE_INTO_CGROUP).
pub fn self_join_file(dir: &Path, v1: bool) -> PathBuf {
    dir.join(if v1 { "tasks" } else { "cgroup.procs" })
}

/// An O_PATH descriptor of a cgroup2 directory, for clone3(CLONE_INTO_CGROUP).
pub fn open_for_clone(dir: &Path) -> Result<std::os::fd::OwnedFd, CgroupError> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io("open", dir)(e.into()))
}

/// Fills in `controllers` for a state written before it was recorded.
fn with_controllers(p: &Placement) -> Placement {
    if p.controllers.len() == p.dirs.len() {
        return p.clone();
    }
    let hs = hierarchies().unwrap_or_default();
    let mut out = p.clone();
    out.controllers = p
        .dirs
        .iter()
        .map(|d| {
            hs.iter()
                .filter(|h| d.starts_with(&h.mountpoint))
                .max_by_key(|h| h.mountpoint.as_os_str().len())
                .map(|h| h.controllers.clone())
                .unwrap_or_default()
        })
        .collect();
    out
}

/// New limits for an existing container (`update`). With `checkBeforeUpdate`, a memory
/// limit below what the container uses now is refused instead of OOM-killing it.
pub fn update(p: &Placement, r: &LinuxResources) -> Result<(), CgroupError> {
    let p = with_controllers(p);
    if let Some(m) = r
        .memory()
        .as_ref()
        .filter(|m| m.check_before_update() == Some(true))
    {
        if let Some(limit) = m.limit().filter(|&l| l > 0) {
            let usage = ["memory.usage_in_bytes", "memory.current"]
                .iter()
                .flat_map(|f| p.dirs.iter().map(move |d| d.join(f)))
                .find_map(|f| std::fs::read_to_string(f).ok()?.trim().parse::<u64>().ok());
            if let Some(usage) = usage.filter(|&u| u > limit as u64) {
                return Err(CgroupError::BelowUsage { limit, usage });
            }
        }
    }
    apply(&p, r)
}

/// Freezes or thaws every process of the container, and waits until the kernel says so:
/// the v1 freezer where there is one, else cgroup.freeze.
pub fn freeze(p: &Placement, frozen: bool) -> Result<(), CgroupError> {
    if let Some(d) = p.dirs.iter().find(|d| d.join("freezer.state").exists()) {
        let path = d.join("freezer.state");
        let value = if frozen { "FROZEN" } else { "THAWED" };
        std::fs::write(&path, value).map_err(io("write", &path))?;
        // v1 goes through FREEZING while tasks are caught.
        for _ in 0..1000 {
            let now = std::fs::read_to_string(&path).map_err(io("read", &path))?;
            if now.trim() == value {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        return Err(io("freeze", &path)(std::io::Error::from(
            std::io::ErrorKind::TimedOut,
        )));
    }
    if let Some(u) = p
        .unified
        .as_ref()
        .filter(|u| u.join("cgroup.freeze").exists())
    {
        return v2::freeze(u, frozen);
    }
    Err(CgroupError::NoController {
        controller: "freezer",
        field: "pause",
    })
}

/// Refuses the limits this runtime does not apply yet, by name, before anything is created.
pub fn validate(r: &LinuxResources) -> Result<(), SpecError> {
    for (i, d) in r.devices().iter().flatten().enumerate() {
        devices::check_access(d.access().as_deref().unwrap_or("rwm")).map_err(|m| {
            SpecError::Invalid {
                field: format!("linux.resources.devices[{i}].access"),
                message: m,
            }
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn hybrid_host() {
        let hs = parse_mountinfo(HYBRID);
        assert_eq!(hs.len(), 4);
        assert_eq!(hs[0].controllers, vec!["cpu"]);
        assert_eq!(hs[2].controllers, vec!["name=systemd"]);
        assert!(hs[3].v2);
        assert_eq!(hs[3].mountpoint, Path::new("/sys/fs/cgroup/unified"));
    }

    #[test]
    fn paths_absolute_and_relative() {
        let hs = parse_mountinfo(HYBRID);
        let own = parse_proc_cgroup("4:memory:/user/1\n2:cpu:/\n0::/session\n");
        assert_eq!(
            dir_for(&hs[1], &own, Path::new("/a/b")),
            Path::new("/sys/fs/cgroup/memory/a/b")
        );
        assert_eq!(
            dir_for(&hs[1], &own, Path::new("c")),
            Path::new("/sys/fs/cgroup/memory/user/1/c")
        );
        assert_eq!(
            dir_for(&hs[3], &own, Path::new("c")),
            Path::new("/sys/fs/cgroup/unified/session/c")
        );
    }

    #[test]
    fn dotdot_stays_in_the_hierarchy() {
        let hs = parse_mountinfo(HYBRID);
        let own = parse_proc_cgroup("4:memory:/user\n");
        assert_eq!(
            dir_for(&hs[1], &own, Path::new("/../../../etc/x")),
            Path::new("/sys/fs/cgroup/memory/etc/x")
        );
        assert_eq!(
            dir_for(&hs[1], &own, Path::new("../../../etc")),
            Path::new("/sys/fs/cgroup/memory/etc")
        );
    }

    #[test]
    fn mount_root_is_stripped() {
        let hs = parse_mountinfo("1 0 0:1 /docker/x /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
        let own = parse_proc_cgroup("0::/docker/x\n");
        assert_eq!(
            dir_for(&hs[0], &own, Path::new("c")),
            Path::new("/sys/fs/cgroup/c")
        );
    }

    #[test]
    fn unescapes_spaces() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
    }

    #[test]
    fn mkdir_all_records_what_it_made() {
        let top = std::env::temp_dir().join(format!("berth-cg-{}", std::process::id()));
        std::fs::create_dir_all(top.join("existing")).unwrap();
        let mut created = Vec::new();
        mkdir_all(&top.join("existing/a/b"), &top, &mut created).unwrap();
        assert_eq!(
            created,
            vec![top.join("existing/a/b"), top.join("existing/a")]
        );
        let p = Placement {
            created,
            ..Default::default()
        };
        assert!(p.remove().is_none());
        assert!(top.join("existing").exists() && !top.join("existing/a").exists());
        std::fs::remove_dir_all(&top).unwrap();
    }
}
