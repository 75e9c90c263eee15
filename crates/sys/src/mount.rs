//! mount(2), umount2(2), pivot_root(2), mount_setattr(2), chroot(2).

use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::Path;

use crate::{check, cpath, cstr, Result};

pub use libc::{
    MNT_DETACH, MS_BIND, MS_DIRSYNC, MS_LAZYTIME, MS_MANDLOCK, MS_MOVE, MS_NOATIME, MS_NODEV,
    MS_NODIRATIME, MS_NOEXEC, MS_NOSUID, MS_PRIVATE, MS_RDONLY, MS_REC, MS_RELATIME, MS_REMOUNT,
    MS_SHARED, MS_SILENT, MS_SLAVE, MS_STRICTATIME, MS_SYNCHRONOUS, MS_UNBINDABLE,
};

/// mount(2). `op` names the step for the error (e.g. "mount proc").
pub fn mount(
    source: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<()> {
    const OP: &str = "mount";
    let target_c = cpath(OP, target)?;
    let source_c = source.map(|s| cstr(OP, s)).transpose()?;
    let fstype_c = fstype.map(|s| cstr(OP, s)).transpose()?;
    let data_c = data.map(|s| cstr(OP, s)).transpose()?;
    let ptr = |c: &Option<std::ffi::CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is either null or a NUL-terminated CString that lives until the
    // call returns; mount(2) copies the strings and keeps no pointer.
    let rc = unsafe {
        libc::mount(
            ptr(&source_c),
            target_c.as_ptr(),
            ptr(&fstype_c),
            flags,
            ptr(&data_c).cast(),
        )
    };
    check(OP, Some(target), rc.into()).map(drop)
}

/// umount2(2).
pub fn umount2(target: &Path, flags: libc::c_int) -> Result<()> {
    let target_c = cpath("umount", target)?;
    // SAFETY: `target_c` is a NUL-terminated string alive for the call.
    let rc = unsafe { libc::umount2(target_c.as_ptr(), flags) };
    check("umount", Some(target), rc.into()).map(drop)
}

/// pivot_root(2): `new_root` becomes `/`, the old root is moved to `put_old`.
pub fn pivot_root(new_root: &Path, put_old: &Path) -> Result<()> {
    let new_c = cpath("pivot_root", new_root)?;
    let old_c = cpath("pivot_root", put_old)?;
    // SAFETY: both are NUL-terminated CStrings that outlive the call; pivot_root keeps no pointer.
    let rc = unsafe { libc::syscall(libc::SYS_pivot_root, new_c.as_ptr(), old_c.as_ptr()) };
    check("pivot_root", Some(new_root), rc).map(drop)
}

/// chroot(2).
pub fn chroot(path: &Path) -> Result<()> {
    let c = cpath("chroot", path)?;
    // SAFETY: `c` is a NUL-terminated string alive for the call.
    let rc = unsafe { libc::chroot(c.as_ptr()) };
    check("chroot", Some(path), rc.into()).map(drop)
}

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR__ATIME: u64 = 0x70;
pub const MOUNT_ATTR_RELATIME: u64 = 0x0;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;

/// struct mount_attr of <linux/mount.h> (size version 0, 32 bytes).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// mount_setattr(2) with AT_RECURSIVE on the mount at `path` (relative to `dirfd`, or an
/// empty path with AT_EMPTY_PATH for the fd itself): sets and clears mount attributes on the
/// whole tree, which the old mount(2) API can only do one mount at a time.
pub fn mount_setattr_recursive(
    dirfd: BorrowedFd<'_>,
    path: &Path,
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
) -> Result<()> {
    let c = cpath("mount_setattr", path)?;
    let attr = MountAttr {
        attr_set,
        attr_clr,
        propagation,
        userns_fd: 0,
    };
    let mut flags = libc::AT_RECURSIVE as libc::c_uint;
    if path.as_os_str().is_empty() {
        flags |= libc::AT_EMPTY_PATH as libc::c_uint;
    }
    // SAFETY: `c` is NUL-terminated and `attr` is a properly laid out struct mount_attr whose
    // size we pass; both outlive the call and the kernel only reads them.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd.as_raw_fd(),
            c.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check("mount_setattr", Some(path), rc).map(drop)
}
