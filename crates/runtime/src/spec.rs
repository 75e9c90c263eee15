//! config.json: loading and validating the bundle's configuration (runtime-spec config.md).
//!
//! Validation happens before anything is created, so a bad config leaves nothing behind.
//! A field the runtime does not apply is refused by name: a silently ignored seccomp profile
//! or device rule would be a security hole.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Mount, Spec};

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("open {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config.json: {path}: {message}")]
    Parse { path: String, message: String },
    #[error("config.json: {field}: {message}")]
    Invalid { field: String, message: String },
    #[error("config.json: {field}: {what} is not supported by berth-runtime yet")]
    Unsupported { field: String, what: String },
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

fn unsupported(field: impl Into<String>, what: impl Into<String>) -> SpecError {
    SpecError::Unsupported {
        field: field.into(),
        what: what.into(),
    }
}

/// The config of a bundle, with the rootfs made absolute.
pub struct Bundle {
    pub dir: PathBuf,
    pub spec: Spec,
    pub rootfs: PathBuf,
    /// The compiled seccomp filter, set by `prepare_seccomp` before anything is created;
    /// init inherits it through fork.
    pub seccomp: Option<crate::seccomp::Filter>,
}

/// Reads and validates `<bundle>/config.json`.
pub fn load(bundle: &Path) -> Result<Bundle, SpecError> {
    let dir = std::path::absolute(bundle).map_err(|source| SpecError::Open {
        path: bundle.to_path_buf(),
        source,
    })?;
    let path = dir.join("config.json");
    let bytes = std::fs::read(&path).map_err(|source| SpecError::Open {
        path: path.clone(),
        source,
    })?;
    let spec = parse(&bytes)?;
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| invalid("root", "missing: a container needs a root filesystem"))?;
    let rootfs = dir.join(root.path());
    match std::fs::metadata(&rootfs) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(invalid(
                "root.path",
                format!("{} is not a directory", rootfs.display()),
            ))
        }
        Err(e) => return Err(invalid("root.path", format!("{}: {e}", rootfs.display()))),
    }
    validate(&spec)?;
    let seccomp = None;
    Ok(Bundle {
        dir,
        spec,
        rootfs,
        seccomp,
    })
}

impl Bundle {
    /// Compiles (or finds in `cache`) the seccomp filter: a bad profile fails here, before
    /// anything is created.
    pub fn prepare_seccomp(&mut self, cache: Option<&Path>) -> Result<(), SpecError> {
        if let Some(s) = self
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().as_ref())
        {
            let f = crate::seccomp::prepare(s, cache)
                .map_err(|e| invalid("linux.seccomp", e.to_string()))?;
            self.seccomp = Some(f);
        }
        Ok(())
    }
}

/// Parses config.json; a type error names the JSON path of the field (`linux.namespaces[2].type`).
pub fn parse(bytes: &[u8]) -> Result<Spec, SpecError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| SpecError::Parse {
        path: match e.path().to_string() {
            p if p == "." => "(top level)".to_string(),
            p => p,
        },
        message: e.inner().to_string(),
    })
}

/// The mount options the runtime knows; anything else is refused (the kernel would otherwise
/// get it as filesystem data, or it would be dropped).
pub const MOUNT_FLAGS: &[&str] = &[
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "iversion",
    "lazytime",
    "loud",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "rbind",
    "relatime",
    "remount",
    "ro",
    "rprivate",
    "rshared",
    "rslave",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "unbindable",
    "rro",
    "rrw",
    "rnosuid",
    "rsuid",
    "rnodev",
    "rdev",
    "rnoexec",
    "rexec",
    "rnodiratime",
    "rdiratime",
    "rrelatime",
    "rnorelatime",
    "rnoatime",
    "ratime",
    "rstrictatime",
    "rnostrictatime",
    "rnosymfollow",
    "rsymfollow",
    "tmpcopyup",
    "idmap",
    "ridmap",
];

/// Filesystem types mounted by type; "bind" and "none" are bind mounts.
const MOUNT_TYPES: &[&str] = &[
    "bind",
    "none",
    "proc",
    "sysfs",
    "tmpfs",
    "devpts",
    "mqueue",
    "cgroup",
    "cgroup2",
    "ramfs",
    "overlay",
    "securityfs",
    "debugfs",
    "tracefs",
    "hugetlbfs",
    "fusectl",
    "configfs",
    "binfmt_misc",
    "pstore",
    "bpf",
    "efivarfs",
    "nfs",
    "ext4",
    "xfs",
    "btrfs",
    "fuse",
    "squashfs",
    "devtmpfs",
];

/// Whether a mount is a bind mount: its type says so, or its options do.
pub fn is_bind(m: &Mount) -> bool {
    matches!(m.typ().as_deref(), Some("bind") | Some("none") | None)
        || m.options()
            .iter()
            .flatten()
            .any(|o| o == "bind" || o == "rbind")
}

fn validate(spec: &Spec) -> Result<(), SpecError> {
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| invalid("process", "missing: nothing to run"))?;
    match process.args() {
        Some(a) if !a.is_empty() && !a[0].is_empty() => {}
        _ => return Err(invalid("process.args", "empty: nothing to run")),
    }
    if !process.cwd().is_absolute() {
        return Err(invalid(
            "process.cwd",
            format!("{:?} is not an absolute path", process.cwd()),
        ));
    }
    if process.command_line().is_some() {
        return Err(invalid("process.commandLine", "is for Windows containers"));
    }
    if process.user().username().is_some() {
        return Err(invalid(
            "process.user.username",
            "is for Windows containers",
        ));
    }
    if process
        .apparmor_profile()
        .as_deref()
        .is_some_and(|p| !p.is_empty())
    {
        return Err(unsupported("process.apparmorProfile", "AppArmor"));
    }
    if process
        .selinux_label()
        .as_deref()
        .is_some_and(|p| !p.is_empty())
    {
        return Err(unsupported("process.selinuxLabel", "SELinux"));
    }
    if process.exec_cpu_affinity().is_some() {
        return Err(unsupported("process.execCPUAffinity", "CPU affinity"));
    }
    if let Some(rl) = process.rlimits() {
        let mut seen = HashSet::new();
        for (i, r) in rl.iter().enumerate() {
            if !seen.insert(format!("{:?}", r.typ())) {
                return Err(invalid(
                    format!("process.rlimits[{i}]"),
                    format!("{:?} given twice", r.typ()),
                ));
            }
            if r.soft() > r.hard() {
                return Err(invalid(
                    format!("process.rlimits[{i}]"),
                    "soft limit above hard limit",
                ));
            }
        }
    }
    if spec.solaris().is_some()
        || spec.windows().is_some()
        || spec.vm().is_some()
        || spec.zos().is_some()
    {
        return Err(invalid(
            "(top level)",
            "solaris, windows, vm and zos sections are for other platforms",
        ));
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        validate_mount(i, m)?;
    }
    let Some(linux) = spec.linux() else {
        return Err(invalid(
            "linux",
            "missing: berth-runtime runs Linux containers",
        ));
    };
    let mut types = HashSet::new();
    for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
        if !types.insert(ns.typ()) {
            return Err(invalid(
                format!("linux.namespaces[{i}].type"),
                format!("namespace {:?} given twice", ns.typ()),
            ));
        }
        if let Some(path) = ns.path() {
            crate::namespaces::check_path(ns.typ(), path)
                .map_err(|m| invalid(format!("linux.namespaces[{i}].path"), m))?;
        }
    }
    let has = |t: LinuxNamespaceType| types.contains(&t);
    if (linux.uid_mappings().is_some() || linux.gid_mappings().is_some())
        && !has(LinuxNamespaceType::User)
    {
        return Err(invalid(
            "linux.uidMappings",
            "id mappings need a user namespace",
        ));
    }
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty()) && !has(LinuxNamespaceType::Uts) {
        return Err(invalid(
            "hostname",
            "setting the hostname needs a uts namespace",
        ));
    }
    if spec.domainname().as_deref().is_some_and(|h| !h.is_empty()) && !has(LinuxNamespaceType::Uts)
    {
        return Err(invalid(
            "domainname",
            "setting the domainname needs a uts namespace",
        ));
    }
    if linux.time_offsets().is_some() && !has(LinuxNamespaceType::Time) {
        return Err(invalid(
            "linux.timeOffsets",
            "time offsets need a time namespace",
        ));
    }
    if let Some(offsets) = linux.time_offsets() {
        for clock in offsets.keys() {
            if clock != "monotonic" && clock != "boottime" {
                return Err(invalid(
                    format!("linux.timeOffsets.{clock}"),
                    "only monotonic and boottime can be offset",
                ));
            }
        }
    }
    for key in linux.sysctl().iter().flat_map(|m| m.keys()) {
        check_sysctl(key, &has).map_err(|m| invalid(format!("linux.sysctl.{key}"), m))?;
    }
    if let Some(p) = linux.personality() {
        if p.flags().as_ref().is_some_and(|f| !f.is_empty()) {
            return Err(unsupported("linux.personality.flags", "personality flags"));
        }
    }
    if linux.intel_rdt().is_some() {
        return Err(unsupported("linux.intelRdt", "Intel RDT"));
    }
    if linux.memory_policy().is_some() {
        return Err(unsupported("linux.memoryPolicy", "a NUMA memory policy"));
    }
    if linux.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
        return Err(unsupported("linux.netDevices", "moving network devices"));
    }
    if linux
        .mount_label()
        .as_deref()
        .is_some_and(|l| !l.is_empty())
    {
        return Err(unsupported("linux.mountLabel", "SELinux"));
    }
    if let Some(p) = linux.rootfs_propagation() {
        if ![
            "",
            "private",
            "rprivate",
            "slave",
            "rslave",
            "shared",
            "rshared",
            "unbindable",
            "runbindable",
        ]
        .contains(&p.as_str())
        {
            return Err(invalid(
                "linux.rootfsPropagation",
                format!("unknown propagation {p:?}"),
            ));
        }
    }
    if let Some(r) = linux.resources() {
        crate::cgroups::validate(r)?;
    }
    for (i, d) in linux.devices().iter().flatten().enumerate() {
        if !d.path().is_absolute() {
            return Err(invalid(
                format!("linux.devices[{i}].path"),
                "not an absolute path",
            ));
        }
        use oci_spec::runtime::LinuxDeviceType as T;
        if matches!(d.typ(), T::A) {
            return Err(invalid(
                format!("linux.devices[{i}].type"),
                "a device node is c, b, u or p",
            ));
        }
    }
    Ok(())
}

/// Only sysctls that belong to one of the container's own namespaces may be set: anything
/// else (kernel.core_pattern, vm.*) would change the host (runc's validator, sysctl(8)).
fn check_sysctl(key: &str, has: &dyn Fn(LinuxNamespaceType) -> bool) -> Result<(), String> {
    let ipc = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let needs = if ipc.contains(&key) || key.starts_with("fs.mqueue.") {
        LinuxNamespaceType::Ipc
    } else if key.starts_with("net.") {
        LinuxNamespaceType::Network
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        LinuxNamespaceType::Uts
    } else {
        return Err("not a namespaced sysctl: it would change the host".into());
    };
    if !has(needs) {
        return Err(format!("needs a new {needs:?} namespace"));
    }
    Ok(())
}

fn validate_mount(i: usize, m: &Mount) -> Result<(), SpecError> {
    let field = |f: &str| format!("mounts[{i}].{f}");
    if !m.destination().is_absolute() {
        return Err(invalid(
            field("destination"),
            format!("{:?} is not an absolute path", m.destination()),
        ));
    }
    if let Some(t) = m.typ() {
        if !t.is_empty() && !MOUNT_TYPES.contains(&t.as_str()) {
            return Err(invalid(
                field("type"),
                format!("unknown filesystem type {t:?}"),
            ));
        }
    }
    if m.uid_mappings().is_some() || m.gid_mappings().is_some() {
        return Err(unsupported(field("uidMappings"), "id-mapped mounts"));
    }
    let bind = is_bind(m);
    for o in m.options().iter().flatten() {
        if o == "idmap" || o == "ridmap" {
            return Err(unsupported(field("options"), format!("mount option {o:?}")));
        }
        if o == "tmpcopyup" {
            return Err(unsupported(field("options"), "tmpcopyup"));
        }
        if MOUNT_FLAGS.contains(&o.as_str()) {
            continue;
        }
        // Other options are filesystem data (`mode=755`, `size=65536k`, `newinstance`):
        // bind mounts have none.
        if bind {
            return Err(invalid(
                field("options"),
                format!("unknown mount option {o:?}"),
            ));
        }
        if o.is_empty() {
            return Err(invalid(field("options"), "empty mount option"));
        }
    }
    if bind && m.source().is_none() {
        return Err(invalid(field("source"), "a bind mount needs a source"));
    }
    Ok(())
}
