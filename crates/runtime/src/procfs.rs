//! Writes into /proc that no mount can redirect (CVE-2025-52881).
//!
//! After the container's mounts, a path under the container's /proc may have a mount on it:
//! a bind of /proc/sysrq-trigger over /proc/sys/kernel/domainname, say, turns a sysctl into
//! a write to the host's sysrq trigger. So the runtime opens its /proc files through a
//! private procfs instance (fsopen + fsmount: a detached mount nobody else can mount over)
//! and refuses any path that crosses a mount, follows a symlink or leaves procfs. Where the
//! kernel will not make a new procfs instance (before Linux 5.2, or a user namespace whose
//! /proc is not fully visible) the container's /proc is used with the same refusals, which
//! still catch a mount on any component of the path.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};

/// A handle on a procfs instance of the caller's pid namespace.
pub struct Procfs {
    root: OwnedFd,
}

#[derive(Debug, thiserror::Error)]
#[error("{op} /proc/{path}: {source}")]
pub struct ProcfsError {
    pub op: &'static str,
    pub path: PathBuf,
    pub source: std::io::Error,
}

impl Procfs {
    /// A new, detached procfs instance; else the one at /proc.
    pub fn open() -> Result<Procfs, ProcfsError> {
        use rustix::mount::{
            fsconfig_create, fsmount, fsopen, FsMountFlags, FsOpenFlags, MountAttrFlags,
        };
        let private = fsopen("proc", FsOpenFlags::FSOPEN_CLOEXEC).and_then(|fs| {
            fsconfig_create(&fs)?;
            fsmount(
                &fs,
                FsMountFlags::FSMOUNT_CLOEXEC,
                MountAttrFlags::MOUNT_ATTR_NOSUID
                    | MountAttrFlags::MOUNT_ATTR_NODEV
                    | MountAttrFlags::MOUNT_ATTR_NOEXEC,
            )
        });
        let root = match private {
            Ok(fd) => fd,
            Err(e) => {
                tracing::debug!("no private procfs ({e}): using /proc without crossing mounts");
                rustix::fs::open(
                    "/proc",
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| ProcfsError {
                    op: "open",
                    path: PathBuf::new(),
                    source: e.into(),
                })?
            }
        };
        Ok(Procfs { root })
    }

    /// Writes `value` to `/proc/<rel>` in one write(2), as procfs files want.
    pub fn write(&self, rel: &Path, value: &str) -> Result<(), ProcfsError> {
        let err = |op, source: std::io::Error| ProcfsError {
            op,
            path: rel.to_path_buf(),
            source,
        };
        let fd = rustix::fs::openat2(
            self.root.as_fd(),
            rel,
            OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_XDEV | ResolveFlags::NO_SYMLINKS,
        )
        .map_err(|e| {
            let why = if e == rustix::io::Errno::XDEV {
                std::io::Error::other(
                    "the path crosses a mount or leaves /proc; refusing to write through it",
                )
            } else {
                e.into()
            };
            err("open", why)
        })?;
        let fs = rustix::fs::fstatfs(&fd).map_err(|e| err("statfs", e.into()))?;
        if fs.f_type != rustix::fs::PROC_SUPER_MAGIC {
            return Err(err(
                "check",
                std::io::Error::other("not a procfs file; refusing to write"),
            ));
        }
        std::fs::File::from(fd)
            .write_all(value.as_bytes())
            .map_err(|e| err("write", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_symlinks_and_climbing_out() {
        let p = Procfs::open().unwrap();
        // /proc/self is a symlink: the caller names its pid instead.
        let e = p.write(Path::new("self/comm"), "x").unwrap_err();
        assert_eq!(e.source.raw_os_error(), Some(libc::ELOOP), "{e}");
        let e = p.write(Path::new("../etc/passwd"), "x").unwrap_err();
        assert!(e.to_string().contains("crosses a mount"), "{e}");
        // Our own comm is ours to change.
        let me = std::process::id();
        let before = std::fs::read_to_string(format!("/proc/{me}/comm")).unwrap();
        p.write(&Path::new(&me.to_string()).join("comm"), before.trim())
            .unwrap();
    }
}
