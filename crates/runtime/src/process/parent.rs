//! The runtime's side of create: cgroups, the exec fifo, the forks, the id maps, the hooks
//! that run in the runtime's namespaces, and cleanup when anything fails.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use berth_sys::process::{self as p, Fork};
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType};

use super::init::{self, InitContext};
use super::sync::{Channel, Message, SyncError};
use super::CreateOptions;
use crate::cgroups::{self, CgroupError};
use crate::hooks::{self, HookError};
use crate::namespaces::{NamespaceError, Plan};
use crate::spec::Bundle;
use crate::state::{ContainerDir, State, Status};

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error(transparent)]
    Sys(#[from] berth_sys::Error),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error(transparent)]
    Hook(#[from] HookError),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A child's own report of the step that failed.
    #[error("{0}")]
    Child(String),
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> CreateError + 'a {
    move |source| CreateError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Creates the container's processes; on success init waits on the exec fifo and `state` is
/// what to save. On failure nothing is left: no process, no cgroup (the state directory is
/// the caller's).
pub fn create(
    dir: &ContainerDir,
    bundle: &Bundle,
    opts: &CreateOptions,
) -> Result<State, CreateError> {
    let spec = &bundle.spec;
    let linux = spec
        .linux()
        .as_ref()
        .expect("validated: linux section present");
    let namespaces = linux.namespaces().clone().unwrap_or_default();
    let plan = Plan::new(&namespaces)?;
    let hierarchies = cgroups::hierarchies()?;
    let cgroups_path = linux
        .cgroups_path()
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("/berth/{}", dir.id)));
    let placement = match cgroups::create(
        &hierarchies,
        &cgroups_path,
        linux.resources().as_ref(),
        linux.devices().as_deref().unwrap_or(&[]),
    ) {
        Ok(p) => p,
        // Without root and without a delegated, writable cgroup there is none to create: the
        // container runs in ours, as runc's rootless mode does, unless it asks for limits.
        Err(e) if crate::rootless::is_rootless() && e.is_permission() => {
            if let Some(field) = linux.resources().as_ref().and_then(cgroups::limit_field) {
                return Err(CreateError::Child(format!(
                    "{field}: a limit needs a cgroup we may write, and without root there is none ({e})"
                )));
            }
            tracing::debug!("rootless: no writable cgroup, the container stays in ours: {e}");
            cgroups::Placement::default()
        }
        Err(e) => return Err(e.into()),
    };
    let mut state = State {
        oci_version: spec.version().clone(),
        id: dir.id.clone(),
        status: Status::Creating,
        pid: 0,
        bundle: bundle.dir.clone(),
        annotations: spec.annotations().clone().unwrap_or_default(),
        rootfs: bundle.rootfs.clone(),
        created: crate::logging::rfc3339_now(),
        start_time: 0,
        cgroups: placement,
        poststart: spec
            .hooks()
            .as_ref()
            .and_then(|h| h.poststart().clone())
            .unwrap_or_default(),
        poststop: spec
            .hooks()
            .as_ref()
            .and_then(|h| h.poststop().clone())
            .unwrap_or_default(),
        owner: String::new(),
    };
    let mut children = Children::default();
    match spawn(
        dir,
        bundle,
        opts,
        plan,
        &hierarchies,
        &mut state,
        &mut children,
    ) {
        Ok(()) => Ok(state),
        Err(e) => {
            children.kill();
            state.cgroups.remove();
            Err(e)
        }
    }
}

/// The processes we forked, to kill if create fails.
#[derive(Default)]
struct Children {
    stage1: Option<p::Pid>,
    init: Option<p::Pid>,
}

impl Children {
    fn kill(&mut self) {
        for pid in [self.init.take(), self.stage1.take()].into_iter().flatten() {
            let _ = p::kill(pid, libc::SIGKILL);
            // We are a subreaper during create, so init is our child even after stage 1 exits.
            let _ = p::waitpid(pid, false);
        }
    }
}

fn spawn(
    dir: &ContainerDir,
    bundle: &Bundle,
    opts: &CreateOptions,
    plan: Plan,
    hierarchies: &[cgroups::Hierarchy],
    state: &mut State,
    children: &mut Children,
) -> Result<(), CreateError> {
    let spec = &bundle.spec;
    let fifo = dir.fifo_path();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o622),
        0,
    )
    .map_err(|e| io("mkfifo", &fifo)(e.into()))?;
    let fifo_fd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .map_err(io("open", &fifo))?;
    let console = match &opts.console_socket {
        Some(path) => Some(UnixStream::connect(path).map_err(io("connect console socket", path))?),
        None => None,
    };
    let terminal = spec.process().as_ref().and_then(|p| p.terminal()) == Some(true);
    if terminal && console.is_none() {
        return Err(CreateError::Child(
            "process.terminal is set: a --console-socket is needed to receive the terminal".into(),
        ));
    }
    let (ours, theirs) = UnixStream::pair().map_err(io("socketpair", Path::new("sync")))?;
    // Orphans come to us: init stays our child after stage 1 exits, so we can reap it if
    // create fails, and `run` can wait for it.
    p::set_child_subreaper()?;
    // Init is born in the container's cgroup2 directory where the kernel allows (stage 1
    // forks it with clone3 CLONE_INTO_CGROUP); the descriptor goes with the fork.
    // Not in a user namespace: its root may not write the host's cgroup.procs, and a clone3
    // refused after the kernel gave out pid 1 of a new pid namespace leaves that namespace
    // unable to take any process (alloc_pid fails with ENOMEM from then on).
    let in_user_ns = plan.new_user
        || plan
            .join
            .iter()
            .any(|(t, _, _)| *t == LinuxNamespaceType::User)
        || crate::rootless::is_rootless();
    let cgroup_dir = match state.cgroups.unified.as_ref().filter(|_| !in_user_ns) {
        Some(dir) => Some(cgroups::open_for_clone(dir)?),
        None => None,
    };
    match p::fork()? {
        Fork::Child => {
            drop(ours);
            let ctx = InitContext {
                bundle,
                opts,
                plan: &plan,
                hierarchies,
                placement: &state.cgroups,
                fifo: &fifo,
                fifo_fd,
                console,
                lock_fd: dir.lock_fd(),
                cgroup_fd: cgroup_dir.as_ref().map_or(-1, |d| d.as_raw_fd()),
                self_place: !in_user_ns,
            };
            init::stage1(ctx, Channel(theirs))
        }
        Fork::Parent(pid) => children.stage1 = Some(pid),
    }
    drop(theirs);
    drop(console);
    drop(fifo_fd);
    drop(cgroup_dir);
    let mut ch = Channel(ours);
    let linux = spec.linux().as_ref().expect("validated");
    let stage1_fd = children.stage1.map(p::pidfd_open).transpose()?;
    loop {
        if let (Some(pid), Some(fd)) = (children.stage1, &stage1_fd) {
            wait_message_or_death(&ch, pid, fd, children)?;
        }
        match ch.recv()? {
            Message::MappingRequest { pid } => {
                write_id_map(
                    pid,
                    "uid_map",
                    linux.uid_mappings().as_deref().unwrap_or(&[]),
                )?;
                write_id_map(
                    pid,
                    "gid_map",
                    linux.gid_mappings().as_deref().unwrap_or(&[]),
                )?;
                ch.send(&Message::MappingWritten)?;
            }
            Message::InitPid { pid, placed } => {
                children.init = Some(pid);
                if let Some(s1) = children.stage1.take() {
                    p::waitpid(s1, false)?;
                }
                state.pid = pid;
                state.start_time = crate::state::process_start_time(pid).unwrap_or(0);
                if !placed {
                    state.cgroups.add(pid)?;
                    ch.send(&Message::Placed)?;
                }
            }
            Message::HooksRequest => {
                if let Some(h) = spec.hooks() {
                    let st = state.spec_json();
                    // prestart is deprecated but still called, before createRuntime.
                    hooks::run("prestart", h.prestart().as_deref().unwrap_or(&[]), &st)?;
                    hooks::run(
                        "createRuntime",
                        h.create_runtime().as_deref().unwrap_or(&[]),
                        &st,
                    )?;
                }
                ch.send(&Message::HooksDone)?;
            }
            Message::SeccompListener => {
                let st = state.spec_json();
                super::exec::hand_over_listener(&mut ch, bundle.seccomp.as_ref(), state.pid, &st)
                    .map_err(|e| CreateError::Child(e.to_string()))?;
            }
            Message::Ready => break,
            Message::Failed(msg) => return Err(CreateError::Child(msg)),
            other => {
                return Err(SyncError::Unexpected {
                    expected: "a message from the container's init",
                    got: other,
                }
                .into())
            }
        }
    }
    state.status = Status::Created;
    if let Some(pf) = &opts.pid_file {
        write_pid_file(pf, state.pid)?;
    }
    // Success: init lives on without us.
    children.init = None;
    Ok(())
}

/// Waits until stage 1 has sent something, or has died without a word: a stage 1 killed by a
/// signal (the OOM killer of a tiny cgroup, say) must fail create, not hang it while init,
/// which holds the other end of the socket, waits for us.
fn wait_message_or_death(
    ch: &Channel,
    stage1: p::Pid,
    pidfd: &std::os::fd::OwnedFd,
    children: &mut Children,
) -> Result<(), CreateError> {
    use rustix::event::{poll, PollFd, PollFlags};
    loop {
        let mut fds = [
            PollFd::new(&ch.0, PollFlags::IN),
            PollFd::new(pidfd, PollFlags::IN),
        ];
        match poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(io("poll", Path::new("sync"))(e.into())),
        }
        // A message (or EOF) first: stage 1 sends before it exits.
        if !fds[0].revents().is_empty() {
            return Ok(());
        }
        if !fds[1].revents().is_empty() {
            if let Some((_, status)) = p::waitpid(stage1, true)? {
                children.stage1 = None;
                return Err(CreateError::Child(format!(
                    "stage 1 of create died before init started ({}); out of memory in the container's cgroup?",
                    match status {
                        p::WaitStatus::Exited(c) => format!("exit status {c}"),
                        p::WaitStatus::Signaled(s) => format!("killed by signal {s}"),
                    }
                )));
            }
        }
    }
}

/// Writes /proc/<pid>/uid_map or gid_map (user_namespaces(7)): one `inside outside count`
/// line per mapping, in a single write as the kernel requires.
fn write_id_map(pid: i32, file: &str, maps: &[LinuxIdMapping]) -> Result<(), CreateError> {
    if maps.is_empty() {
        return Ok(());
    }
    if crate::rootless::is_rootless() && !only_own_id(file, maps) {
        return map_with_helper(pid, file, maps);
    }
    // An unprivileged writer of gid_map must first give up setgroups(2) in the namespace.
    if file == "gid_map" && crate::rootless::is_rootless() {
        let path = PathBuf::from(format!("/proc/{pid}/setgroups"));
        std::fs::write(&path, "deny").map_err(io("write", &path))?;
    }
    let text: String = maps
        .iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect();
    let path = PathBuf::from(format!("/proc/{pid}/{file}"));
    std::fs::write(&path, text).map_err(io("write", &path))
}

/// Whether the maps give the namespace our own uid (or gid) only: what an unprivileged user
/// may write itself.
fn only_own_id(file: &str, maps: &[LinuxIdMapping]) -> bool {
    let own = if file == "uid_map" {
        rustix::process::geteuid().as_raw()
    } else {
        rustix::process::getegid().as_raw()
    };
    maps.len() == 1 && maps[0].host_id() == own && maps[0].size() == 1
}

/// More than our own id needs the setuid helpers of the uidmap package, which check the
/// ranges /etc/subuid and /etc/subgid grant us (newuidmap(1)).
fn map_with_helper(pid: i32, file: &str, maps: &[LinuxIdMapping]) -> Result<(), CreateError> {
    let helper = if file == "uid_map" {
        "/usr/bin/newuidmap"
    } else {
        "/usr/bin/newgidmap"
    };
    let mut cmd = std::process::Command::new(helper);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.args([
            m.container_id().to_string(),
            m.host_id().to_string(),
            m.size().to_string(),
        ]);
    }
    let out = cmd.output().map_err(|e| {
        CreateError::Child(format!(
            "linux.{}Mappings: more than your own id needs {helper} (the uidmap package): {e}",
            if file == "uid_map" { "uid" } else { "gid" }
        ))
    })?;
    if !out.status.success() {
        return Err(CreateError::Child(format!(
            "{helper}: {} (are the ranges in /etc/sub{}id?)",
            String::from_utf8_lossy(&out.stderr).trim(),
            if file == "uid_map" { "u" } else { "g" }
        )));
    }
    Ok(())
}

/// The pid file, written atomically: containerd reads it as soon as create returns.
fn write_pid_file(path: &Path, pid: i32) -> Result<(), CreateError> {
    let path = std::path::absolute(path).map_err(io("pid file", path))?;
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    std::fs::write(&tmp, pid.to_string()).map_err(io("write", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(io("rename", &path))
}

/// Whether the container gets a new user namespace or joins one.
pub fn in_userns(plan: &Plan) -> bool {
    plan.new_user
        || plan
            .join
            .iter()
            .any(|(t, _, _)| *t == LinuxNamespaceType::User)
}
