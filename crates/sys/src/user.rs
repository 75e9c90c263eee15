//! Credentials: setresuid(2), setresgid(2), setgroups(2).
//!
//! The raw syscalls change the calling thread only; berth-runtime is single-threaded, so that
//! is the whole process.

use crate::{check, Result};

/// setresgid(2) with the same gid for real, effective and saved.
pub fn setresgid(gid: u32) -> Result<()> {
    // SAFETY: integer arguments only.
    let rc = unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) };
    check("setresgid", None, rc).map(drop)
}

/// setresuid(2) with the same uid for real, effective and saved.
pub fn setresuid(uid: u32) -> Result<()> {
    // SAFETY: integer arguments only.
    let rc = unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) };
    check("setresuid", None, rc).map(drop)
}

/// setgroups(2): the supplementary groups become exactly `gids`.
pub fn setgroups(gids: &[u32]) -> Result<()> {
    // SAFETY: the pointer and length describe `gids`, alive and only read during the call.
    let rc = unsafe { libc::syscall(libc::SYS_setgroups, gids.len(), gids.as_ptr()) };
    check("setgroups", None, rc).map(drop)
}
