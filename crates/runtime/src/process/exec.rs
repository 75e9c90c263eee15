//! `exec`: a new process in a running container. It enters every namespace of the
//! container's init, its cgroups, and gets its own process settings (runc exec).
//!
//! ```text
//! berth-runtime exec (parent)          stage 1 (fork)               the process (fork)
//!   fork ───────────────────────────► non-dumpable, setns(user first, mnt last)
//!                                     fork ─────────────────────────► (in the pid namespace)
//!   ◄──────────────── InitPid ─────── exits
//!   cgroup.procs ← pid ───────────── Placed ───────────────────────►  rlimits, user, caps
//!                                                                    execve: the sync socket
//!   EOF: exec succeeded ◄──────────── (or Failed) ──────────────────  closes on exec
//! ```

use std::convert::Infallible;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use berth_sys::process::{self as p, Fork};
use oci_spec::runtime::{LinuxNamespaceType, Process};

use super::init::{self, InitError};
use super::sync::{Channel, Message, SyncError};
use crate::namespaces::{clone_flag, proc_name, NAMESPACE_ORDER};
use crate::security::{self, CapSets};
use crate::state::State;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Sys(#[from] berth_sys::Error),
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error(transparent)]
    Cgroup(#[from] crate::cgroups::CgroupError),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Child(String),
}

pub struct ExecOptions {
    pub process: Process,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
    /// A sub-cgroup (relative to the container's) for the process.
    pub sub_cgroup: Option<String>,
    /// The container's seccomp filter: an exec'd process is held to it too.
    pub seccomp: Option<crate::seccomp::Filter>,
}

/// Starts the process; returns its pid (in our pid namespace) once it has exec'd.
pub fn exec(state: &State, opts: &ExecOptions) -> Result<i32, ExecError> {
    let console = match &opts.console_socket {
        Some(path) => Some(UnixStream::connect(path).map_err(|source| ExecError::Io {
            op: "connect console socket",
            path: path.clone(),
            source,
        })?),
        None => None,
    };
    if opts.process.terminal() == Some(true) && console.is_none() {
        return Err(ExecError::Child(
            "process.terminal is set: a --console-socket is needed".into(),
        ));
    }
    // The namespaces to join: every one of init's that is not already ours.
    let mut join = Vec::new();
    for t in NAMESPACE_ORDER {
        let theirs = PathBuf::from(format!("/proc/{}/ns/{}", state.pid, proc_name(t)));
        let ours = PathBuf::from(format!("/proc/self/ns/{}", proc_name(t)));
        // A namespace type this kernel lacks is absent for both; any other failure to read
        // init's (permissions) is an error: skipping it would run the process outside.
        let a = match std::fs::read_link(&theirs) {
            Ok(a) => a,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(ExecError::Io {
                    op: "read",
                    path: theirs,
                    source,
                })
            }
        };
        let Ok(b) = std::fs::read_link(&ours) else {
            continue;
        };
        if a != b {
            let fd = std::fs::File::open(&theirs).map_err(|source| ExecError::Io {
                op: "open",
                path: theirs.clone(),
                source,
            })?;
            join.push((t, theirs, fd));
        }
    }
    let (ours, theirs) = UnixStream::pair().map_err(|source| ExecError::Io {
        op: "socketpair",
        path: "sync".into(),
        source,
    })?;
    // The process moves itself into the container's cgroups (cgroups::self_join_file)
    // through files opened here, on the host, before it joins the mount namespace; the
    // opener's credentials are what the kernel checks. If a file cannot be opened here, the
    // parent moves the process instead.
    let cgroup_files = open_cgroup_files(state, opts.sub_cgroup.as_deref());
    p::set_child_subreaper()?;
    let stage1 = match p::fork()? {
        Fork::Child => {
            drop(ours);
            let mut ch = Channel(theirs);
            let r = stage1(
                &join,
                &mut ch,
                opts,
                console.as_ref(),
                cgroup_files.as_ref(),
            );
            let _ = ch.send(&Message::Failed(match r {
                Err(e) => e.to_string(),
                Ok(never) => match never {},
            }));
            p::exit_now(1)
        }
        Fork::Parent(pid) => pid,
    };
    drop(theirs);
    drop(console);
    drop(cgroup_files);
    let mut ch = Channel(ours);
    let (pid, placed) = match ch.recv()? {
        Message::InitPid { pid, placed } => (pid, placed),
        Message::Failed(m) => {
            let _ = p::waitpid(stage1, false);
            return Err(ExecError::Child(m));
        }
        other => {
            return Err(SyncError::Unexpected {
                expected: "InitPid",
                got: other,
            }
            .into())
        }
    };
    p::waitpid(stage1, false)?;
    if !placed {
        if let Err(e) = place(state, pid, opts.sub_cgroup.as_deref()) {
            let _ = p::kill(pid, libc::SIGKILL);
            let _ = p::waitpid(pid, false);
            return Err(e);
        }
        ch.send(&Message::Placed)?;
    }
    // The socket closes at a successful exec (close-on-exec); a failure arrives as a message.
    loop {
        match ch.recv() {
            Err(SyncError::Closed) => break,
            Ok(Message::SeccompListener) => {
                hand_over_listener(&mut ch, opts.seccomp.as_ref(), pid, &state.spec_json())?;
            }
            Ok(Message::Failed(m)) => {
                let _ = p::waitpid(pid, false);
                return Err(ExecError::Child(m));
            }
            Ok(other) => {
                return Err(SyncError::Unexpected {
                    expected: "exec",
                    got: other,
                }
                .into())
            }
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(pf) = &opts.pid_file {
        std::fs::write(pf, pid.to_string()).map_err(|source| ExecError::Io {
            op: "write",
            path: pf.clone(),
            source,
        })?;
    }
    Ok(pid)
}

/// Receives the seccomp notification descriptor from the child and sends it to the listener.
pub(crate) fn hand_over_listener(
    ch: &mut Channel,
    filter: Option<&crate::seccomp::Filter>,
    pid: i32,
    state: &serde_json::Value,
) -> Result<(), ExecError> {
    let (fd, _) = berth_sys::console::recv_fd(std::os::fd::AsFd::as_fd(&ch.0))?;
    let (path, metadata) = filter.and_then(|f| f.listener.clone()).ok_or_else(|| {
        ExecError::Child("a seccomp listener arrived, but no listenerPath is set".into())
    })?;
    crate::seccomp::send_listener(&path, &metadata, std::os::fd::AsFd::as_fd(&fd), pid, state)
        .map_err(|e| ExecError::Child(format!("linux.seccomp: {e}")))?;
    ch.send(&Message::SeccompListenerSent)?;
    Ok(())
}

/// The container's cgroup directory on every hierarchy, or the sub-cgroup `sub` of it.
fn target_dirs(state: &State, sub: Option<&str>) -> Vec<PathBuf> {
    state
        .cgroups
        .dirs
        .iter()
        .map(|d| match sub {
            // Cleaned: a sub-cgroup stays under the container's.
            Some(s) => d.join(
                crate::cgroups::clean(Path::new(s))
                    .strip_prefix("/")
                    .unwrap_or(Path::new("")),
            ),
            None => d.clone(),
        })
        .collect()
}

/// What the exec'd process needs to move itself: for each hierarchy the
/// [`crate::cgroups::self_join_file`] to write `0` into (and whether it is cgroup2), and the
/// cgroup2 directory to be born in.
pub struct CgroupFiles {
    files: Vec<(std::fs::File, bool)>,
    v2_dir: Option<std::os::fd::OwnedFd>,
}

/// None when there is no cgroup or one file cannot be opened.
fn open_cgroup_files(state: &State, sub: Option<&str>) -> Option<CgroupFiles> {
    let dirs = target_dirs(state, sub);
    if dirs.is_empty() {
        return None;
    }
    let mut v2_dir = None;
    let mut files = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        let v1 = state.cgroups.is_v1(i);
        if !v1 {
            v2_dir = crate::cgroups::open_for_clone(d).ok();
        }
        let file = crate::cgroups::self_join_file(d, v1);
        files.push((
            std::fs::OpenOptions::new().write(true).open(&file).ok()?,
            !v1,
        ));
    }
    Some(CgroupFiles { files, v2_dir })
}

/// Puts the process in the container's cgroup on every hierarchy (or a sub-cgroup of it).
fn place(state: &State, pid: i32, sub: Option<&str>) -> Result<(), ExecError> {
    for dir in target_dirs(state, sub) {
        let p = dir.join("cgroup.procs");
        std::fs::write(&p, pid.to_string()).map_err(|source| ExecError::Io {
            op: "write",
            path: p.clone(),
            source,
        })?;
    }
    Ok(())
}

fn stage1(
    join: &[(LinuxNamespaceType, PathBuf, std::fs::File)],
    ch: &mut Channel,
    opts: &ExecOptions,
    console: Option<&UnixStream>,
    cgroup_files: Option<&CgroupFiles>,
) -> Result<Infallible, InitError> {
    // CVE-2019-5736: until exec we are the runtime binary inside the container's namespaces;
    // non-dumpable, our /proc/<pid>/exe cannot be opened by the container's processes.
    p::set_dumpable(false)?;
    p::set_parent_death_signal(libc::SIGKILL)?;
    for (t, path, fd) in join {
        p::setns(std::os::fd::AsFd::as_fd(fd), clone_flag(*t), path)?;
    }
    // The child must not speak before we said InitPid: it waits for this pipe to close.
    let (said_r, said_w) = super::sync::turn_pipe().map_err(|source| InitError::Io {
        op: "pipe",
        path: PathBuf::new(),
        source,
    })?;
    // Born in the cgroup2 directory where the kernel lets us; a refusal (permissions, from a
    // user namespace) costs nothing here: the pid namespace joined already has its init.
    let mut born = false;
    let forked = match cgroup_files.and_then(|c| c.v2_dir.as_ref()) {
        Some(dir) => match p::fork_into_cgroup(std::os::fd::AsRawFd::as_raw_fd(dir)) {
            Ok(f) => {
                born = true;
                f
            }
            Err(_) => p::fork()?,
        },
        None => p::fork()?,
    };
    match forked {
        Fork::Parent(pid) => {
            ch.send(&Message::InitPid {
                pid,
                placed: cgroup_files.is_some(),
            })?;
            drop(said_w);
            p::exit_now(0)
        }
        Fork::Child => drop(said_w),
    }
    match cgroup_files {
        Some(c) => {
            for (f, v2) in &c.files {
                if *v2 && born {
                    continue;
                }
                use std::io::Write;
                let mut f: &std::fs::File = f;
                f.write_all(b"0").map_err(|source| InitError::Io {
                    op: "join the container's cgroup",
                    path: PathBuf::new(),
                    source,
                })?;
            }
            // Host files: not kept until exec (CVE-2024-21626). The copies in this process
            // are never dropped: it execs or exits.
            for (f, _) in &c.files {
                p::close_inherited(std::os::fd::AsRawFd::as_raw_fd(f));
            }
            if let Some(d) = &c.v2_dir {
                p::close_inherited(std::os::fd::AsRawFd::as_raw_fd(d));
            }
            super::sync::wait_for_turn(said_r);
        }
        None => {
            drop(said_r);
            ch.expect("Placed", |m| matches!(m, Message::Placed))?;
        }
    }
    let process = &opts.process;
    if process.terminal() == Some(true) {
        init::setup_terminal(process, console.expect("checked before fork"), false)?;
    }
    let caps = CapSets::from_process(process)?;
    security::apply_limits(process)?;
    let nnp = process.no_new_privileges() == Some(true);
    if let (false, Some(filter)) = (nnp, &opts.seccomp) {
        init::load_seccomp(filter, ch)?;
    }
    security::drop_bounding(&caps)?;
    security::set_user(process)?;
    security::set_capabilities(&caps)?;
    let cwd = process.cwd();
    std::env::set_current_dir(cwd).map_err(|source| InitError::Io {
        op: "chdir",
        path: cwd.clone(),
        source,
    })?;
    init::check_cwd_inside()?;
    let env = process.env().clone().unwrap_or_default();
    let args = process.args().clone().unwrap_or_default();
    let exe = init::find_executable(args.first().map(String::as_str).unwrap_or(""), &env)?;
    p::umask(process.user().umask().unwrap_or(0o022));
    security::apply_no_new_privs(process)?;
    if let (true, Some(filter)) = (nnp, &opts.seccomp) {
        init::load_seccomp(filter, ch)?;
    }
    init::exec(&exe, &args, &env, opts.preserve_fds)
}
