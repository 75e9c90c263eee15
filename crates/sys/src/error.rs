//! The error of a failed syscall: the operation, the path it acted on, and errno.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failed syscall. Displays as `op path: errno text` (or `op: errno text`).
#[derive(Debug)]
pub struct Error {
    pub op: &'static str,
    pub path: Option<PathBuf>,
    pub source: io::Error,
}

impl Error {
    pub fn new(op: &'static str, path: Option<impl AsRef<Path>>, source: io::Error) -> Self {
        Error {
            op,
            path: path.map(|p| p.as_ref().to_path_buf()),
            source,
        }
    }

    /// The errno of the failed call, if the kernel gave one.
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // io::Error's Display appends " (os error N)"; the plain strerror text reads better.
        let text = match self.source.raw_os_error() {
            Some(errno) => strerror(errno),
            None => self.source.to_string(),
        };
        match &self.path {
            Some(p) => write!(f, "{} {}: {}", self.op, p.display(), text),
            None => write!(f, "{}: {}", self.op, text),
        }
    }
}

impl std::error::Error for Error {}

fn strerror(errno: i32) -> String {
    let s = io::Error::from_raw_os_error(errno).to_string();
    let s = match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    };
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().collect::<String>() + chars.as_str(),
        None => s,
    }
}
