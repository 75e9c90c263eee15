//! Linux namespaces: which to create, which to join, in which order (namespaces(7), setns(2)).

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};

#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("open namespace {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Sys(#[from] berth_sys::Error),
}

/// The user namespace comes first: joined before the others, it gives the capabilities to
/// join them, and namespaces created after it are owned by it. The mount namespace comes last
/// among the joined ones, so the other paths were already opened from the runtime's view.
pub const NAMESPACE_ORDER: [LinuxNamespaceType; 8] = [
    LinuxNamespaceType::User,
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::Time,
    LinuxNamespaceType::Mount,
];

/// The CLONE_NEW* flag of a namespace type.
pub fn clone_flag(t: LinuxNamespaceType) -> libc::c_int {
    match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => 0x80, // CLONE_NEWTIME
    }
}

/// The name of a namespace under /proc/<pid>/ns/.
pub fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// Checks that `path` is a namespace of type `t` (runtime-spec: "a namespace of a different
/// type MUST generate an error"). Returns the message for the config error.
pub fn check_path(t: LinuxNamespaceType, path: &Path) -> Result<(), String> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let actual = berth_sys::process::ns_type(file.as_fd(), path).map_err(|e| e.to_string())?;
    if actual != clone_flag(t) {
        return Err(format!(
            "{} is not a {} namespace",
            path.display(),
            proc_name(t)
        ));
    }
    Ok(())
}

/// What the container's namespaces ask of the process that sets them up.
pub struct Plan {
    /// Namespaces to join, opened now, in NAMESPACE_ORDER.
    pub join: Vec<(LinuxNamespaceType, PathBuf, OwnedFd)>,
    /// CLONE_NEW* flags of the namespaces to create, without the user namespace.
    pub create: libc::c_int,
    /// A new user namespace is to be created (its id maps are written by the parent).
    pub new_user: bool,
}

impl Plan {
    /// Opens every namespace to join, so that no path is resolved after we moved.
    pub fn new(namespaces: &[LinuxNamespace]) -> Result<Plan, NamespaceError> {
        let mut plan = Plan {
            join: Vec::new(),
            create: 0,
            new_user: false,
        };
        for t in NAMESPACE_ORDER {
            let Some(ns) = namespaces.iter().find(|n| n.typ() == t) else {
                continue;
            };
            match ns.path() {
                Some(path) => {
                    let fd = File::open(path).map_err(|source| NamespaceError::Open {
                        path: path.clone(),
                        source,
                    })?;
                    plan.join.push((t, path.clone(), fd.into()));
                }
                None if t == LinuxNamespaceType::User => plan.new_user = true,
                None => plan.create |= clone_flag(t),
            }
        }
        Ok(plan)
    }

    pub fn creates(&self, t: LinuxNamespaceType) -> bool {
        if t == LinuxNamespaceType::User {
            return self.new_user;
        }
        self.create & clone_flag(t) != 0
    }

    /// setns(2) into every namespace to join, in order.
    pub fn join_all(&self) -> Result<(), NamespaceError> {
        for (t, path, fd) in &self.join {
            tracing::debug!(ns = proc_name(*t), path = %path.display(), "setns");
            berth_sys::process::setns(fd.as_fd(), clone_flag(*t), path)?;
        }
        Ok(())
    }
}
