//! The lifecycle operations of runtime-spec runtime.md: create, start, state, kill, delete,
//! and `run`, which is create + start + wait.

use std::io::Write;
use std::path::{Path, PathBuf};

use berth_sys::process as p;

use crate::cgroups::CgroupError;
use crate::hooks::{self, HookError};
use crate::process::parent::{self, CreateError};
use crate::process::CreateOptions;
use crate::spec::{self, SpecError};
use crate::state::{self, ContainerDir, State, StateError, Status};

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Create(#[from] CreateError),
    #[error(transparent)]
    Sys(#[from] berth_sys::Error),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Hook(#[from] HookError),
    #[error(transparent)]
    Exec(#[from] crate::process::exec::ExecError),
    #[error("container {id:?} is {status}: {what}")]
    BadStatus {
        id: String,
        status: Status,
        what: &'static str,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("unknown signal {0:?}")]
    BadSignal(String),
}

/// The container's status now: the saved status, corrected by what the kernel says (the
/// process may have exited, or its pid may belong to another process by now).
pub fn current_status(dir: &ContainerDir, st: &State) -> Status {
    let alive = st.pid > 0
        && state::process_start_time(st.pid) == Some(st.start_time)
        && st.start_time != 0;
    if !alive {
        return match st.status {
            Status::Creating => Status::Creating,
            _ => Status::Stopped,
        };
    }
    if is_frozen(st) {
        return Status::Paused;
    }
    if dir.fifo_path().exists() {
        Status::Created
    } else {
        Status::Running
    }
}

fn is_frozen(st: &State) -> bool {
    st.cgroups.dirs.iter().any(|d| {
        std::fs::read_to_string(d.join("freezer.state")).is_ok_and(|s| s.trim() == "FROZEN")
            || std::fs::read_to_string(d.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1")
    })
}

/// `create`: everything but the user's process, which waits for `start`.
pub fn create(
    root: &Path,
    id: &str,
    bundle: &Path,
    opts: &CreateOptions,
) -> Result<(), ContainerError> {
    create_loaded(root, id, spec::load(bundle)?, opts)
}

/// `create` of a bundle already loaded.
fn create_loaded(
    root: &Path,
    id: &str,
    mut bundle: spec::Bundle,
    opts: &CreateOptions,
) -> Result<(), ContainerError> {
    bundle.prepare_seccomp(Some(&root.join(crate::seccomp::CACHE_DIR)))?;
    let dir = ContainerDir::create(root, id)?;
    let result = parent::create(&dir, &bundle, opts);
    match result {
        Ok(st) => match dir.save(&st) {
            Ok(()) => Ok(()),
            Err(e) => {
                destroy(&st);
                let _ = dir.remove();
                Err(e.into())
            }
        },
        Err(e) => {
            let _ = dir.remove();
            Err(e.into())
        }
    }
}

/// Kills what is left of a container and removes its cgroups.
fn destroy(st: &State) {
    let frozen = is_frozen(st);
    if st.pid > 0 && state::process_start_time(st.pid) == Some(st.start_time) {
        kill_init(st, libc::SIGKILL).ok();
    }
    for pid in st.cgroups.pids() {
        let _ = p::kill(pid, libc::SIGKILL);
    }
    // A frozen task acts on SIGKILL only once thawed (cgroup-v1/freezer-subsystem.rst).
    if frozen {
        let _ = crate::cgroups::freeze(&st.cgroups, false);
    }
    if st.pid > 0 {
        wait_gone(st.pid);
    }
    if let Some(e) = st.cgroups.remove() {
        tracing::warn!("{e}");
    }
}

/// Signals init through a pidfd: the signal cannot reach a process that reused the pid.
fn kill_init(st: &State, sig: i32) -> Result<(), ContainerError> {
    let fd = p::pidfd_open(st.pid)?;
    // The pid may have been reused between our check and pidfd_open: check again.
    if state::process_start_time(st.pid) != Some(st.start_time) {
        return Ok(());
    }
    p::pidfd_send_signal(std::os::fd::AsFd::as_fd(&fd), sig)?;
    Ok(())
}

/// Waits until `pid` is gone (reaped by whoever is its parent), up to ten seconds.
fn wait_gone(pid: i32) {
    for _ in 0..2000 {
        // If it is our child (run, or create's cleanup), reap it ourselves.
        let _ = p::waitpid(pid, true);
        if state::process_start_time(pid).is_none() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// `start`: lets the created container's process exec, then runs the poststart hooks.
/// Returns the pid of the process that now runs.
pub fn start(root: &Path, id: &str) -> Result<i32, ContainerError> {
    let dir = ContainerDir::open(root, id)?;
    let mut st = dir.load()?;
    let status = current_status(&dir, &st);
    if status != Status::Created {
        return Err(ContainerError::BadStatus {
            id: id.into(),
            status,
            what: "only a created container can start",
        });
    }
    let fifo_path = dir.fifo_path();
    let fifo_err = |op: &'static str| {
        let path = fifo_path.clone();
        move |source| ContainerError::Io { op, path, source }
    };
    // A read end of our own, to see init's end close: init holds the fifo's only other
    // descriptor (close-on-exec), so it closes when the user's process has replaced init, or
    // init died. Opened first: non-blocking, it needs no writer.
    let watch = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags_nonblock()
        .open(&fifo_path)
        .map_err(fifo_err("open exec fifo"))?;
    // Non-blocking: if init is gone there is no reader, and open fails with ENXIO at once.
    let mut fifo = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags_nonblock()
        .open(&fifo_path)
        .map_err(fifo_err("open exec fifo"))?;
    fifo.write_all(b"0").map_err(fifo_err("write exec fifo"))?;
    drop(fifo);
    std::fs::remove_file(&fifo_path).map_err(fifo_err("remove"))?;
    // Return once the process runs (runtime-spec: poststart hooks run after it started), so
    // an `exec` right after `start` finds the container's process, not the runtime still
    // setting up. A startContainer hook may take long: after 10 s we stop waiting.
    wait_for_hangup(&watch, 10_000);
    st.status = Status::Running;
    dir.save(&st)?;
    // runtime-spec: a failing poststart hook is logged; the container keeps running.
    if let Err(e) = hooks::run("poststart", &st.poststart, &st.spec_json()) {
        tracing::warn!("{e}");
    }
    Ok(st.pid)
}

/// Waits until no writer holds the fifo `watch` reads (POLLHUP), for at most `ms`.
fn wait_for_hangup(watch: &std::fs::File, ms: i64) {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(ms as u64);
    loop {
        // No events asked: poll still reports POLLHUP, and ignores the byte left for init.
        let mut fds = [PollFd::new(watch, PollFlags::empty())];
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            tracing::debug!("start: the container's process has not replaced init yet");
            return;
        }
        let t = Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: left.subsec_nanos() as i64,
        };
        match poll(&mut fds, Some(&t)) {
            Ok(_) if fds[0].revents().intersects(PollFlags::HUP | PollFlags::ERR) => return,
            Ok(_) | Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return,
        }
    }
}

trait NonBlock {
    fn custom_flags_nonblock(&mut self) -> &mut Self;
}

impl NonBlock for std::fs::OpenOptions {
    fn custom_flags_nonblock(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NONBLOCK)
    }
}

/// `state`: the runtime-spec state as JSON.
pub fn state(root: &Path, id: &str) -> Result<serde_json::Value, ContainerError> {
    let dir = ContainerDir::open(root, id)?;
    let mut st = dir.load()?;
    st.status = current_status(&dir, &st);
    if st.status == Status::Stopped {
        st.pid = 0;
    }
    Ok(st.spec_json())
}

/// Parses `9`, `KILL`, `SIGKILL`.
pub fn parse_signal(s: &str) -> Result<i32, ContainerError> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        return Err(ContainerError::BadSignal(s.to_string()));
    }
    let name = s.to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    let n = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "STKFLT" => libc::SIGSTKFLT,
        "CHLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => return Err(ContainerError::BadSignal(s.to_string())),
    };
    Ok(n)
}

/// `kill`: a signal to init, or with `all` to every process of the container.
pub fn kill(root: &Path, id: &str, sig: i32, all: bool) -> Result<(), ContainerError> {
    let dir = ContainerDir::open(root, id)?;
    let st = dir.load()?;
    let status = current_status(&dir, &st);
    if all {
        for pid in st.cgroups.pids() {
            let _ = p::kill(pid, sig);
        }
        return Ok(());
    }
    if !matches!(status, Status::Created | Status::Running | Status::Paused) {
        return Err(ContainerError::BadStatus {
            id: id.into(),
            status,
            what: "there is no process to signal",
        });
    }
    kill_init(&st, sig)
}

/// `delete`: removes a stopped container (or, with `force`, kills it first), runs the
/// poststop hooks. With `force`, a container that does not exist is no error.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<(), ContainerError> {
    let dir = match ContainerDir::open(root, id) {
        Ok(d) => d,
        Err(StateError::NotFound(_)) if force => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let st = dir.load()?;
    let status = current_status(&dir, &st);
    match status {
        Status::Stopped => {}
        // A created container has not run the user's process: delete may kill it.
        Status::Created => {}
        _ if force => {}
        _ => {
            return Err(ContainerError::BadStatus {
                id: id.into(),
                status,
                what: "stop it first, or use --force",
            })
        }
    }
    destroy(&st);
    dir.remove()?;
    // runtime-spec: a failing poststop hook is logged; delete goes on.
    if let Err(e) = hooks::run("poststop", &st.poststop, &st.spec_json()) {
        tracing::warn!("{e}");
    }
    Ok(())
}

/// `list`: every container's state.
pub fn list(root: &Path) -> Result<Vec<State>, ContainerError> {
    let mut out = Vec::new();
    for id in state::list_ids(root)? {
        let Ok(dir) = ContainerDir::open(root, &id) else {
            continue;
        };
        let Ok(mut st) = dir.load() else { continue };
        st.status = current_status(&dir, &st);
        if st.status == Status::Stopped {
            st.pid = 0;
        }
        out.push(st);
    }
    Ok(out)
}

/// `run`: create, start, then (unless detached) wait for the process, forwarding the
/// signals we get, and return its exit status; the container is deleted unless `keep`.
pub fn run(
    root: &Path,
    id: &str,
    bundle: &Path,
    opts: &CreateOptions,
    detach: bool,
    keep: bool,
) -> Result<i32, ContainerError> {
    // Blocked before the forks, so no SIGCHLD and no signal meant for the container is lost;
    // init unblocks everything before it execs.
    let signals = p::SigSet::all();
    if !detach {
        signals.set_blocked(true)?;
    }
    let bundle = spec::load(bundle)?;
    let terminal = bundle.spec.process().as_ref().and_then(|p| p.terminal()) == Some(true);
    // A terminal in the foreground without a console socket: we are the console, as runc.
    let own_console = if terminal && !detach && opts.console_socket.is_none() {
        let c =
            crate::console::OwnConsole::bind(root, id).map_err(|source| ContainerError::Io {
                op: "bind console socket in",
                path: root.to_path_buf(),
                source,
            })?;
        Some(c)
    } else {
        None
    };
    let mut opts = opts.clone();
    if let Some(c) = &own_console {
        opts.console_socket = Some(c.path.clone());
    }
    create_loaded(root, id, bundle, &opts)?;
    let master = match own_console.as_ref().map(|c| c.master()).transpose() {
        Ok(m) => m,
        Err(e) => {
            let _ = delete(root, id, true);
            return Err(e.into());
        }
    };
    let pid = match start(root, id) {
        Ok(pid) => pid,
        Err(e) => {
            let _ = delete(root, id, true);
            return Err(e);
        }
    };
    if detach {
        return Ok(0);
    }
    let code = match master {
        Some(m) => crate::console::proxy(m, pid, &signals)?,
        None => wait_forwarding(pid, &signals)?,
    };
    if !keep {
        delete(root, id, true)?;
    }
    Ok(code)
}

/// Waits for our child `pid`, forwarding every signal we get to it (signals blocked by the
/// caller before the fork); returns its exit status as a shell would.
fn wait_forwarding(pid: i32, signals: &p::SigSet) -> Result<i32, ContainerError> {
    loop {
        let sig = signals.wait()?;
        if sig == libc::SIGCHLD {
            let mut exited = None;
            while let Some((child, status)) = p::waitpid(-1, true).ok().flatten() {
                if child == pid {
                    exited = Some(status.code());
                }
            }
            if let Some(code) = exited {
                return Ok(code);
            }
        } else {
            let _ = p::kill(pid, sig);
        }
    }
}

/// `exec`: a new process in the running container; waits for it unless `detach`.
pub fn exec(
    root: &Path,
    id: &str,
    opts: &crate::process::exec::ExecOptions,
    detach: bool,
) -> Result<i32, ContainerError> {
    let st = {
        let dir = ContainerDir::open(root, id)?;
        let st = dir.load()?;
        let status = current_status(&dir, &st);
        if status != Status::Running {
            return Err(ContainerError::BadStatus {
                id: id.into(),
                status,
                what: "exec needs a running container",
            });
        }
        st
    };
    let signals = p::SigSet::all();
    if !detach {
        signals.set_blocked(true)?;
    }
    let pid = crate::process::exec::exec(&st, opts)?;
    if detach {
        return Ok(0);
    }
    wait_forwarding(pid, &signals)
}

/// `pause` and `resume`: the freezer (v1 freezer.state, v2 cgroup.freeze).
pub fn freeze(root: &Path, id: &str, frozen: bool) -> Result<(), ContainerError> {
    let dir = ContainerDir::open(root, id)?;
    let st = dir.load()?;
    let status = current_status(&dir, &st);
    let ok = if frozen {
        status == Status::Running
    } else {
        status == Status::Paused
    };
    if !ok {
        let what = if frozen {
            "only a running container can pause"
        } else {
            "only a paused container can resume"
        };
        return Err(ContainerError::BadStatus {
            id: id.into(),
            status,
            what,
        });
    }
    crate::cgroups::freeze(&st.cgroups, frozen)?;
    Ok(())
}

/// `ps`: the pids of the container (json), or ps(1)'s lines for them.
pub fn ps(root: &Path, id: &str, json: bool, ps_args: &[String]) -> Result<String, ContainerError> {
    let dir = ContainerDir::open(root, id)?;
    let st = dir.load()?;
    let pids = st.cgroups.pids();
    if json {
        return Ok(serde_json::to_string(&pids).unwrap_or_default());
    }
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .map_err(|source| ContainerError::Io {
            op: "run",
            path: "ps".into(),
            source,
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|c| c == "PID")
        .ok_or_else(|| ContainerError::Io {
            op: "ps: no PID column in",
            path: args.join(" ").into(),
            source: std::io::Error::from(std::io::ErrorKind::InvalidData),
        })?;
    let mut res = format!("{header}\n");
    for l in lines {
        let pid: Option<i32> = l.split_whitespace().nth(col).and_then(|p| p.parse().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            res.push_str(l);
            res.push('\n');
        }
    }
    Ok(res)
}

/// `events --stats`: one JSON object with the container's resource usage.
pub fn stats(root: &Path, id: &str) -> Result<serde_json::Value, ContainerError> {
    let dir = ContainerDir::open(root, id)?;
    let st = dir.load()?;
    Ok(
        serde_json::json!({"type": "stats", "id": id, "data": crate::cgroups::stats::collect(&st.cgroups)}),
    )
}

/// `events`: statistics every `interval`, and an `oom` event whenever the kernel OOM-kills a
/// process of the container; ends when the container stops.
pub fn events(root: &Path, id: &str, interval: std::time::Duration) -> Result<(), ContainerError> {
    let mut last_oom = None;
    let mut next_stats = std::time::Instant::now();
    loop {
        let (st, status) = {
            let dir = ContainerDir::open(root, id)?;
            let st = dir.load()?;
            let status = current_status(&dir, &st);
            (st, status)
        };
        if status == Status::Stopped {
            return Ok(());
        }
        let ooms = crate::cgroups::stats::oom_kills(&st.cgroups);
        if let (Some(before), Some(now)) = (last_oom, ooms) {
            if now > before {
                println!("{}", serde_json::json!({"type": "oom", "id": id}));
            }
        }
        last_oom = ooms;
        if std::time::Instant::now() >= next_stats {
            let data = crate::cgroups::stats::collect(&st.cgroups);
            println!(
                "{}",
                serde_json::json!({"type": "stats", "id": id, "data": data})
            );
            next_stats += interval;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// `update`: new limits for a running (or created, or paused) container.
pub fn update(
    root: &Path,
    id: &str,
    r: &oci_spec::runtime::LinuxResources,
) -> Result<(), ContainerError> {
    let dir = ContainerDir::open(root, id)?;
    let st = dir.load()?;
    crate::cgroups::update(&st.cgroups, r)?;
    Ok(())
}
