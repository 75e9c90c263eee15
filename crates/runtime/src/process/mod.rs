//! The processes that make a container, and what each one does.
//!
//! ```text
//! berth-runtime create (parent)                stage 1 (fork)                 init (fork)
//!   cgroups created, device rules written
//!   exec fifo made
//!   fork ─────────────────────────────────────► setns(joined namespaces)
//!                                               unshare(user) ─ MappingRequest ─►
//!   writes /proc/<pid>/{uid,gid}_map ◄──────────────────────── MappingWritten ◄─
//!                                               unshare(pid, net, ipc, uts, mnt, time)
//!                                               fork ───────────────────────────► (pid 1)
//!                                                 (clone3 into the cgroup2 directory)
//!   ◄──────────────────────────── InitPid ───── exits                `0` > each v1 tasks
//!   reaps stage 1; in a user namespace only:
//!     puts init in its cgroups ─────────────────────────── Placed ────────────────►
//!                                                                  unshare(cgroup): its root
//!                                                                    is now the container's
//!                                                                  mounts, /dev
//!   runs prestart, createRuntime hooks ◄─────── HooksRequest ───────────────── (if any)
//!   ──────────────────────────────────────────── HooksDone ──────────────────►
//!                                                                  createContainer hooks
//!                                                                  pivot_root, sysctl, masks
//!                                                                  rlimits, user, caps
//!   writes pid file, state.json ◄────────────── Ready ───────────────────────
//!   exits: init waits on the exec fifo
//! berth-runtime start: writes a byte into the fifo ───────────────►  startContainer hooks
//!                                                                  execve(process.args)
//! ```
//!
//! Stage 1 exists because a process cannot enter a new pid namespace itself: unshare
//! (CLONE_NEWPID) and setns(pid) only apply to the children it forks afterwards.

pub mod exec;
pub mod init;
pub mod parent;
pub mod sync;

use std::path::PathBuf;

/// The create flags that reach the processes.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
}
