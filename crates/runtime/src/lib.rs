//! berth-runtime: an OCI runtime (runtime-spec 1.2) with runc's command line.
//!
//! The binary starts no threads: the container's processes are forked from it, which is only
//! sound in a single-threaded process (see berth_sys::process::fork).

pub mod cgroups;
pub mod cli;
pub mod console;
pub mod container;
pub mod default_spec;
pub mod hooks;
pub mod logging;
pub mod namespaces;
pub mod process;
pub mod procfs;
pub mod rootfs;
pub mod rootless;
pub mod seccomp;
pub mod security;
pub mod spec;
pub mod state;
