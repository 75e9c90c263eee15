//! Thin wrappers around the Linux syscalls Berth needs: the only crate with unsafe code.
//!
//! One function per syscall. Each failure is an [`Error`] that names the operation and, where
//! there is one, the path: `mount proc on /proc: operation not permitted`.

pub mod bpf;
pub mod console;
pub mod mount;
pub mod process;
pub mod user;

mod error;

pub use error::{Error, Result};

use std::ffi::CString;
use std::path::Path;

/// Converts a path to a C string; a path with a NUL byte cannot name a file.
pub(crate) fn cpath(op: &'static str, path: &Path) -> Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        Error::new(
            op,
            Some(path),
            std::io::Error::from_raw_os_error(libc::EINVAL),
        )
    })
}

/// Converts a string to a C string, failing with EINVAL on an inner NUL byte.
pub(crate) fn cstr(op: &'static str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| {
        Error::new(
            op,
            None::<&Path>,
            std::io::Error::from_raw_os_error(libc::EINVAL),
        )
    })
}

/// Turns a `-1` return into an error carrying errno, retrying nothing.
pub(crate) fn check(
    op: &'static str,
    path: Option<&Path>,
    rc: libc::c_long,
) -> Result<libc::c_long> {
    if rc == -1 {
        Err(Error::new(op, path, std::io::Error::last_os_error()))
    } else {
        Ok(rc)
    }
}
