//! The container's side of create: stage 1 enters the namespaces, init (pid 1) builds the
//! container around itself and waits to exec the user's process.
//!
//! Both run after fork in a copy of the runtime and never return: they exit, or exec.

use std::convert::Infallible;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use berth_sys::process::{self as p, Fork};
use oci_spec::runtime::{LinuxNamespaceType, Process};

use super::parent::in_userns;
use super::sync::{Channel, Message, SyncError};
use super::CreateOptions;
use crate::cgroups::{Hierarchy, Placement};
use crate::hooks::{self, HookError};
use crate::namespaces::{clone_flag, NamespaceError, Plan};
use crate::rootfs::{self, RootfsError};
use crate::security::{self, CapSets, SecurityError};
use crate::spec::Bundle;

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Sys(#[from] berth_sys::Error),
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    #[error(transparent)]
    Security(#[from] SecurityError),
    #[error(transparent)]
    Hook(#[from] HookError),
    #[error("seccomp: {0}")]
    Seccomp(#[from] crate::seccomp::SeccompError),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("exec: {0:?}: executable file not found in $PATH")]
    NotFound(String),
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> InitError + 'a {
    move |source| InitError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// What the forked processes need; they run in a copy of the parent's memory.
pub struct InitContext<'a> {
    pub bundle: &'a Bundle,
    pub opts: &'a CreateOptions,
    pub plan: &'a Plan,
    pub hierarchies: &'a [Hierarchy],
    pub placement: &'a Placement,
    pub fifo: &'a Path,
    /// The exec fifo, opened read-write by the parent (a fifo opened so never blocks): init
    /// needs no path to it, which a user namespace's root could not reach.
    pub fifo_fd: std::fs::File,
    pub console: Option<UnixStream>,
    /// The parent's state lock, inherited through fork: closed first thing.
    pub lock_fd: i32,
    /// The container's cgroup2 directory (O_PATH), for init to be born in; -1 if none.
    /// Closed by stage 1 once init is forked, and by init first thing.
    pub cgroup_fd: i32,
    /// Init puts itself in its cgroups (not in a user namespace, whose root may not write
    /// the host's cgroup files); otherwise the parent does, and says `Placed`.
    pub self_place: bool,
}

/// Reports a failure to the parent, then exits. The one place a child both logs (sends) an
/// error and stops: the parent turns the message into the command's error.
fn fail(ch: &mut Channel, e: impl std::fmt::Display) -> ! {
    let _ = ch.send(&Message::Failed(e.to_string()));
    p::exit_now(1)
}

/// Stage 1: enter or create the namespaces, then fork init into them and exit.
pub fn stage1(ctx: InitContext<'_>, mut ch: Channel) -> ! {
    match enter_namespaces(&ctx, &mut ch) {
        Ok(()) => {}
        Err(e) => fail(&mut ch, e),
    }
    // Init must not speak before stage 1 has said InitPid (they share the socket): init
    // waits for the end of this pipe, which closes when stage 1 exits.
    let (said_r, said_w) = match super::sync::turn_pipe() {
        Ok(p) => p,
        Err(e) => fail(&mut ch, e),
    };
    let (forked, born_in_cgroup) = fork_init(ctx.cgroup_fd);
    match forked {
        Ok(Fork::Parent(pid)) => {
            p::close_inherited(ctx.cgroup_fd);
            let _ = ch.send(&Message::InitPid {
                pid,
                placed: ctx.self_place,
            });
            drop(said_w);
            p::exit_now(0)
        }
        Ok(Fork::Child) => {
            drop(said_w);
            match init(ctx, &mut ch, born_in_cgroup, said_r) {
                Ok(never) => match never {},
                Err(e) => fail(&mut ch, e),
            }
        }
        Err(e) => fail(&mut ch, e),
    }
}

/// Forks init: into the container's cgroup2 directory at birth (clone3 CLONE_INTO_CGROUP),
/// so init never runs or allocates in the runtime's cgroup while stage 1 stays out of the
/// container's (its memory is not the container's to pay). Kernels without clone3 or
/// CLONE_INTO_CGROUP (before 5.7) refuse before creating anything: then a plain fork, and
/// the parent moves init. Any other refusal is an error: in a new pid namespace a failed
/// first fork leaves the namespace unable to take a process. (The parent passes no
/// descriptor where the kernel would refuse for permissions: in a user namespace.)
/// Returns whether init was born in the cgroup.
fn fork_init(cgroup_fd: i32) -> (berth_sys::Result<Fork>, bool) {
    if cgroup_fd >= 0 {
        // The parent's O_PATH directory, inherited and open until stage 1 exits.
        match p::fork_into_cgroup(cgroup_fd) {
            Ok(f) => return (Ok(f), true),
            Err(e) if matches!(e.errno(), Some(libc::ENOSYS | libc::E2BIG | libc::EINVAL)) => {
                tracing::debug!("{e}: fork, then the parent moves init")
            }
            Err(e) => return (Err(e), false),
        }
    }
    (p::fork(), false)
}

/// Init moves itself into the container's cgroups, writing `0` into each
/// [`crate::cgroups::self_join_file`]; the cgroup2 one only where clone3 could not give it birth
/// there.
fn place_self(placement: &Placement, born_in_cgroup: bool) -> Result<(), InitError> {
    for (i, dir) in placement.dirs.iter().enumerate() {
        let v1 = placement.is_v1(i);
        if !v1 && born_in_cgroup && placement.unified.as_ref() == Some(dir) {
            continue;
        }
        let file = crate::cgroups::self_join_file(dir, v1);
        std::fs::write(&file, "0").map_err(io("write", &file))?;
    }
    Ok(())
}

fn enter_namespaces(ctx: &InitContext<'_>, ch: &mut Channel) -> Result<(), InitError> {
    // CVE-2024-21626: nothing of the host's may stay open in the container, not even until exec.
    p::close_inherited(ctx.lock_fd);
    // CVE-2019-5736: we are the runtime binary inside namespaces that others may share.
    p::set_dumpable(false)?;
    // If the runtime dies now, so do we: nobody would ever reap or start us.
    p::set_parent_death_signal(libc::SIGKILL)?;
    ctx.plan.join_all()?;
    if ctx.plan.new_user {
        p::unshare(libc::CLONE_NEWUSER)?;
        // A non-dumpable process's /proc/<pid> files belong to root: an unprivileged parent
        // could not open our uid_map. Dumpable only while it writes them (as runc does).
        p::set_dumpable(true)?;
        ch.send(&Message::MappingRequest { pid: p::getpid() })?;
        ch.expect("MappingWritten", |m| matches!(m, Message::MappingWritten))?;
        p::set_dumpable(false)?;
        // We are the overflow uid until we take a mapped one: become the namespace's root.
        // A change of credentials clears the parent-death signal, so set it again.
        let linux = ctx.bundle.spec.linux().as_ref().expect("validated");
        if maps_zero(linux.gid_mappings().as_deref()) {
            berth_sys::user::setresgid(0)?;
        }
        if maps_zero(linux.uid_mappings().as_deref()) {
            berth_sys::user::setresuid(0)?;
        }
        p::set_parent_death_signal(libc::SIGKILL)?;
    }
    // The cgroup namespace is created by init once it sits in its cgroup: the namespace's
    // root is the cgroup of the process that creates it.
    let flags = ctx.plan.create & !clone_flag(LinuxNamespaceType::Cgroup);
    if flags != 0 {
        p::unshare(flags)?;
    }
    if ctx.plan.creates(LinuxNamespaceType::Time) {
        write_time_offsets(ctx)?;
    }
    Ok(())
}

fn maps_zero(maps: Option<&[oci_spec::runtime::LinuxIdMapping]>) -> bool {
    maps.unwrap_or(&[])
        .iter()
        .any(|m| m.container_id() == 0 && m.size() > 0)
}

/// /proc/self/timens_offsets (time_namespaces(7)): written after unshare, before the first
/// process enters the namespace.
fn write_time_offsets(ctx: &InitContext<'_>) -> Result<(), InitError> {
    let linux = ctx.bundle.spec.linux().as_ref().expect("validated");
    let Some(offsets) = linux.time_offsets() else {
        return Ok(());
    };
    let mut text = String::new();
    for (clock, off) in offsets {
        text.push_str(&format!(
            "{clock} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    let path = Path::new("/proc/self/timens_offsets");
    std::fs::write(path, text).map_err(io("write", path))
}

/// Init: becomes the container, then waits on the exec fifo and execs the user's process.
fn init(
    mut ctx: InitContext<'_>,
    ch: &mut Channel,
    born_in_cgroup: bool,
    stage1_said: std::os::fd::OwnedFd,
) -> Result<Infallible, InitError> {
    let spec = &ctx.bundle.spec;
    let process = spec.process().as_ref().expect("validated: process present");
    // CVE-2019-5736: until exec, this process is the runtime binary. Non-dumpable, its
    // /proc/<pid>/exe cannot be opened by a process of the container.
    p::set_dumpable(false)?;
    // CVE-2024-21626: the host's cgroup directory is not ours to keep.
    p::close_inherited(ctx.cgroup_fd);
    if ctx.self_place {
        place_self(ctx.placement, born_in_cgroup)?;
        // Stage 1 has sent InitPid once it is gone: our messages come after it.
        super::sync::wait_for_turn(stage1_said);
    } else {
        drop(stage1_said);
        ch.expect("Placed", |m| matches!(m, Message::Placed))?;
    }
    if ctx.plan.creates(LinuxNamespaceType::Cgroup) {
        p::unshare(libc::CLONE_NEWCGROUP)?;
    }
    if ctx.plan.creates(LinuxNamespaceType::Network) {
        p::loopback_up()?;
    }
    let terminal = process.terminal() == Some(true);
    let root = rootfs::prepare(&rootfs::Context {
        spec,
        rootfs: &ctx.bundle.rootfs,
        in_userns: in_userns(ctx.plan),
        new_cgroupns: ctx.plan.creates(LinuxNamespaceType::Cgroup),
        hierarchies: ctx.hierarchies,
        placement: ctx.placement,
        terminal,
    })?;
    // The parent runs prestart and createRuntime hooks; without any, no round trip.
    let parent_hooks = spec.hooks().as_ref().is_some_and(|h| {
        h.prestart().as_ref().is_some_and(|v| !v.is_empty())
            || h.create_runtime().as_ref().is_some_and(|v| !v.is_empty())
    });
    if parent_hooks {
        ch.send(&Message::HooksRequest)?;
        ch.expect("HooksDone", |m| matches!(m, Message::HooksDone))?;
    }
    if let Some(h) = spec.hooks() {
        let state = serde_json::json!({
            "ociVersion": spec.version(), "id": container_id(&ctx), "status": "creating",
            "pid": p::getpid(), "bundle": ctx.bundle.dir,
        });
        hooks::run(
            "createContainer",
            h.create_container().as_deref().unwrap_or(&[]),
            &state,
        )?;
    }
    rootfs::switch_root(root.as_fd(), &ctx.bundle.rootfs, ctx.opts.no_pivot)?;
    drop(root);
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        p::sethostname(h)?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        p::setdomainname(d)?;
    }
    rootfs::finish(spec)?;
    if terminal {
        setup_terminal(
            process,
            ctx.console.as_ref().expect("checked by the parent"),
            true,
        )?;
    }
    if !ctx.opts.no_new_keyring {
        p::join_session_keyring()?;
    }
    let caps = CapSets::from_process(process)?;
    security::apply_limits(process)?;
    if let Some(pers) = spec.linux().as_ref().and_then(|l| l.personality().as_ref()) {
        let domain = match pers.domain() {
            oci_spec::runtime::LinuxPersonalityDomain::PerLinux => 0x0000,
            oci_spec::runtime::LinuxPersonalityDomain::PerLinux32 => 0x0008,
        };
        p::personality(domain)?;
    }
    // runc creates a missing cwd, as root, before becoming the user.
    let cwd = process.cwd();
    std::fs::create_dir_all(cwd).map_err(io("mkdir", cwd))?;
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it while we have it
    // (runc does the same); with no_new_privs, as late as possible, right before exec.
    let nnp = process.no_new_privileges() == Some(true);
    if !nnp {
        if let Some(filter) = &ctx.bundle.seccomp {
            load_seccomp(filter, ch)?;
        }
    }
    security::drop_bounding(&caps)?;
    security::set_user(process)?;
    security::set_capabilities(&caps)?;
    std::env::set_current_dir(cwd).map_err(io("chdir", cwd))?;
    check_cwd_inside()?;
    let env = process.env().clone().unwrap_or_default();
    let args = process.args().clone().unwrap_or_default();
    let exe = find_executable(&args[0], &env)?;
    if let Some(mask) = process.user().umask() {
        p::umask(mask);
    } else {
        p::umask(0o022);
    }
    security::apply_no_new_privs(process)?;
    if nnp {
        if let Some(filter) = &ctx.bundle.seccomp {
            load_seccomp(filter, ch)?;
        }
    }
    ch.send(&Message::Ready)?;

    let mut byte = [0u8; 1];
    let fifo = &mut ctx.fifo_fd;
    loop {
        match fifo.read(&mut byte) {
            Ok(1) => break,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io("read", ctx.fifo)(e)),
        }
    }
    if let Some(h) = spec.hooks() {
        let state = serde_json::json!({
            "ociVersion": spec.version(), "id": container_id(&ctx), "status": "created",
            "pid": p::getpid(), "bundle": ctx.bundle.dir,
        });
        hooks::run(
            "startContainer",
            h.start_container().as_deref().unwrap_or(&[]),
            &state,
        )?;
    }
    exec(&exe, &args, &env, ctx.opts.preserve_fds)
}

fn container_id(ctx: &InitContext<'_>) -> String {
    ctx.fifo
        .parent()
        .and_then(|d| d.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The last step: no descriptor of the runtime survives, signals are as a new process
/// expects them, and the user's program replaces us.
pub(crate) fn exec(
    exe: &Path,
    args: &[String],
    env: &[String],
    preserve_fds: u32,
) -> Result<Infallible, InitError> {
    // CVE-2024-21626: every descriptor above stdio and the preserved ones closes at exec.
    for fd in 3..3 + preserve_fds {
        p::clear_cloexec(fd as i32)?;
    }
    p::cloexec_from(3 + preserve_fds)?;
    p::reset_signals()?;
    Err(p::execve(exe, args, env).into())
}

/// A pseudo-terminal for the process: its master goes to the console socket, its slave
/// becomes /dev/console, stdio and the controlling terminal.
pub(crate) fn setup_terminal(
    process: &Process,
    console: &UnixStream,
    mount_console: bool,
) -> Result<(), InitError> {
    let (master, slave_path) = berth_sys::console::open_pty()?;
    if let Some(size) = process.console_size() {
        berth_sys::console::set_window_size(
            master.as_fd(),
            size.height() as u16,
            size.width() as u16,
        )?;
    }
    if mount_console {
        mount_console_over(&slave_path)?;
    }
    berth_sys::console::send_fd(
        console.as_fd(),
        master.as_fd(),
        &slave_path.to_string_lossy(),
    )?;
    drop(master);
    p::setsid()?;
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&slave_path)
        .map_err(io("open", &slave_path))?;
    berth_sys::console::set_controlling_terminal(slave.as_fd())?;
    for fd in 0..3 {
        p::dup2(std::os::fd::AsRawFd::as_raw_fd(&slave), fd)?;
    }
    Ok(())
}

/// Installs the seccomp filter; a notification listener goes to the parent, which hands it to
/// the config's listenerPath (a host path we may no longer reach).
pub(crate) fn load_seccomp(
    filter: &crate::seccomp::Filter,
    ch: &mut Channel,
) -> Result<(), InitError> {
    if let Some(listener) = crate::seccomp::load(filter)? {
        ch.send(&Message::SeccompListener)?;
        berth_sys::console::send_fd(ch.0.as_fd(), listener.as_fd(), "")?;
        ch.expect("SeccompListenerSent", |m| {
            matches!(m, Message::SeccompListenerSent)
        })?;
    }
    Ok(())
}

/// CVE-2024-21626: the working directory must be inside the container's root. A cwd reached
/// through a descriptor of the host has no path from our root: getcwd(3) fails or returns a
/// path that does not start with '/' ("(unreachable)").
pub(crate) fn check_cwd_inside() -> Result<(), InitError> {
    match std::env::current_dir() {
        Ok(p) if p.is_absolute() => Ok(()),
        Ok(p) => Err(io("getcwd", &p)(std::io::Error::from_raw_os_error(
            libc::ENOENT,
        ))),
        Err(e) => Err(io("getcwd", Path::new("."))(e)),
    }
}

/// Bind-mounts the pty slave over /dev/console. CVE-2025-52565: the target is opened without
/// following a symlink and must be the plain file we made, so a planted /dev/console cannot
/// redirect the mount onto /proc or anything else.
fn mount_console_over(slave: &Path) -> Result<(), InitError> {
    use rustix::fs::{FileType, Mode, OFlags};
    let console = Path::new("/dev/console");
    let fd = match rustix::fs::open(
        console,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(io("open", console)(e.into())),
    };
    let st = rustix::fs::fstat(&fd).map_err(|e| io("stat", console)(e.into()))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(io("mount the terminal on", console)(std::io::Error::other(
            "not the regular file the runtime made (a symlink or device was planted)",
        )));
    }
    let target = crate::rootfs::fd_path(fd.as_fd());
    berth_sys::mount::mount(
        Some(&slave.to_string_lossy()),
        &target,
        None,
        berth_sys::mount::MS_BIND,
        None,
    )?;
    Ok(())
}

/// Finds the program as execvp(3) would, with the container's PATH.
pub(crate) fn find_executable(name: &str, env: &[String]) -> Result<PathBuf, InitError> {
    use std::os::unix::fs::PermissionsExt;
    let is_exe = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if name.contains('/') {
        let p = PathBuf::from(name);
        return if is_exe(&p) {
            Ok(p)
        } else {
            Err(io("exec", &p)(std::io::Error::from_raw_os_error(
                libc::ENOENT,
            )))
        };
    }
    let path = env
        .iter()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .find(|p| is_exe(p))
        .ok_or_else(|| InitError::NotFound(name.to_string()))
}
