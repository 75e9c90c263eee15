//! Running without root: where state goes, and what an unprivileged user may do
//! (user_namespaces(7): an unprivileged process may map its own uid and gid only, and only
//! after writing "deny" to /proc/<pid>/setgroups).

use std::path::PathBuf;

/// Whether the runtime was started without root. Decided once, at the first call (main makes
/// it before anything else): a forked child that became root in its own user namespace still
/// answers for the runtime it was forked from.
pub fn is_rootless() -> bool {
    static ROOTLESS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ROOTLESS.get_or_init(|| !rustix::process::geteuid().is_root())
}

/// The default state root: /run/berth-runtime for root; for anyone else
/// $XDG_RUNTIME_DIR/berth-runtime, or /tmp/berth-runtime-<uid> without one.
pub fn default_root() -> PathBuf {
    if !is_rootless() {
        return PathBuf::from("/run/berth-runtime");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("berth-runtime"),
        _ => PathBuf::from(format!(
            "/tmp/berth-runtime-{}",
            rustix::process::geteuid().as_raw()
        )),
    }
}
