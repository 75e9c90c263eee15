//! Processes: fork, namespaces (unshare, setns), exec, wait, signals, prctl and friends.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use crate::{check, cpath, cstr, Error, Result};

pub type Pid = libc::pid_t;

/// Who we are after fork(2).
pub enum Fork {
    Parent(Pid),
    Child,
}

/// fork(2).
///
/// Sound only in a single-threaded process: the child gets a copy of the calling thread alone,
/// so a lock held by another thread (the allocator's, stdio's) would stay locked forever.
/// berth-runtime starts no threads (see ../shared/design.md), which is why this is safe to call
/// there; do not call it from a program that has threads.
pub fn fork() -> Result<Fork> {
    // SAFETY: see the function's documentation: the runtime binary is single-threaded, so the
    // child's copy of the address space holds no lock owned by a vanished thread.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(Error::new(
            "fork",
            None::<&Path>,
            std::io::Error::last_os_error(),
        )),
        0 => Ok(Fork::Child),
        pid => Ok(Fork::Parent(pid)),
    }
}

/// `struct clone_args` of clone3(2), up to `cgroup` (CLONE_ARGS_SIZE_VER2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// fork(2) by clone3(2) with CLONE_INTO_CGROUP: the child is born in the cgroup2 directory
/// `cgroup`, so it never runs (or allocates) anywhere else. Kernels before 5.7 answer ENOSYS
/// or E2BIG; callers fall back to [`fork`] and move the child afterwards.
///
/// Sound only in a single-threaded process, as [`fork`]; in addition the child of a raw
/// clone3 runs no `pthread_atfork` handlers, which a single-threaded Rust program without
/// such handlers does not need.
///
/// `cgroup` is a raw descriptor number: the kernel checks it (EBADF), and a forked child that
/// inherited it holds no `OwnedFd` to borrow from.
pub fn fork_into_cgroup(cgroup: libc::c_int) -> Result<Fork> {
    let mut args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup as u64,
        ..Default::default()
    };
    // SAFETY: see the function's documentation (single-threaded caller). With `stack` 0 the
    // child continues on a copy of the caller's stack, exactly as after fork(2); `args` is a
    // valid clone_args of the size passed; a bad `cgroup` descriptor is an error (EBADF).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match rc {
        -1 => Err(Error::new(
            "clone3 into cgroup",
            None::<&Path>,
            std::io::Error::last_os_error(),
        )),
        0 => Ok(Fork::Child),
        pid => Ok(Fork::Parent(pid as Pid)),
    }
}

/// unshare(2) with CLONE_NEW* flags.
pub fn unshare(flags: libc::c_int) -> Result<()> {
    // SAFETY: unshare takes an integer only.
    let rc = unsafe { libc::unshare(flags) };
    check("unshare", None, rc.into()).map(drop)
}

/// setns(2): join the namespace that `fd` refers to; `nstype` 0 accepts any type.
pub fn setns(fd: BorrowedFd<'_>, nstype: libc::c_int, path: &Path) -> Result<()> {
    // SAFETY: `fd` is a valid open descriptor borrowed for the call.
    let rc = unsafe { libc::setns(fd.as_raw_fd(), nstype) };
    check("setns", Some(path), rc.into()).map(drop)
}

/// execve(2) of `path` with `args` and `env`; returns only on failure.
pub fn execve(path: &Path, args: &[String], env: &[String]) -> Error {
    let build = || -> Result<(CString, Vec<CString>, Vec<CString>)> {
        let p = cpath("exec", path)?;
        let a = args
            .iter()
            .map(|s| cstr("exec", s))
            .collect::<Result<Vec<_>>>()?;
        let e = env
            .iter()
            .map(|s| cstr("exec", s))
            .collect::<Result<Vec<_>>>()?;
        Ok((p, a, e))
    };
    let (p, a, e) = match build() {
        Ok(v) => v,
        Err(e) => return e,
    };
    let mut argv: Vec<*const libc::c_char> = a.iter().map(|s| s.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = e.iter().map(|s| s.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: `p`, and every string that `argv` and `envp` point to, are CStrings alive until
    // the call returns; both arrays end with a null pointer as execve(2) requires.
    unsafe { libc::execve(p.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    Error::new("exec", Some(path), std::io::Error::last_os_error())
}

/// The status of a child that waitpid(2) reaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitStatus {
    Exited(i32),
    Signaled(i32),
}

impl WaitStatus {
    /// The shell's convention: the exit code, or 128 + the signal number.
    pub fn code(self) -> i32 {
        match self {
            WaitStatus::Exited(c) => c,
            WaitStatus::Signaled(s) => 128 + s,
        }
    }
}

fn decode(status: libc::c_int) -> Option<WaitStatus> {
    if libc::WIFEXITED(status) {
        Some(WaitStatus::Exited(libc::WEXITSTATUS(status)))
    } else if libc::WIFSIGNALED(status) {
        Some(WaitStatus::Signaled(libc::WTERMSIG(status)))
    } else {
        None
    }
}

/// waitpid(2) for `pid` (or -1 for any child), retrying EINTR. With `nohang`, returns None
/// when no child has changed state.
pub fn waitpid(pid: Pid, nohang: bool) -> Result<Option<(Pid, WaitStatus)>> {
    let flags = if nohang { libc::WNOHANG } else { 0 };
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: `status` is a valid out-pointer for the duration of the call.
        let rc = unsafe { libc::waitpid(pid, &mut status, flags) };
        if rc == -1 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(Error::new("waitpid", None::<&Path>, err));
        }
        if rc == 0 {
            return Ok(None);
        }
        if let Some(ws) = decode(status) {
            return Ok(Some((rc, ws)));
        }
    }
}

/// kill(2). Signal 0 checks that the process exists.
pub fn kill(pid: Pid, sig: libc::c_int) -> Result<()> {
    // SAFETY: kill takes integers only.
    let rc = unsafe { libc::kill(pid, sig) };
    check("kill", None, rc.into()).map(drop)
}

/// pidfd_open(2): a descriptor that names this process and no later reuse of its pid.
pub fn pidfd_open(pid: Pid) -> Result<OwnedFd> {
    // SAFETY: pidfd_open takes integers only and returns a new descriptor or -1.
    let rc = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = check("pidfd_open", None, rc)?;
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// pidfd_send_signal(2): signal the process the pidfd names, never a reused pid.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: libc::c_int) -> Result<()> {
    // SAFETY: the pidfd is a valid descriptor; a null siginfo is allowed and means "as kill(2)".
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    check("pidfd_send_signal", None, rc).map(drop)
}

fn prctl(op: &'static str, option: libc::c_int, arg: libc::c_ulong) -> Result<()> {
    // SAFETY: every prctl option used here takes integer arguments only.
    let rc = unsafe { libc::prctl(option, arg, 0, 0, 0) };
    check(op, None, rc.into()).map(drop)
}

/// PR_SET_NO_NEW_PRIVS: execve can no longer grant privileges (setuid bits, file caps).
pub fn set_no_new_privs() -> Result<()> {
    prctl("prctl(PR_SET_NO_NEW_PRIVS)", libc::PR_SET_NO_NEW_PRIVS, 1)
}

/// PR_SET_KEEPCAPS: keep the permitted capabilities across a change of uid away from 0.
pub fn set_keepcaps(on: bool) -> Result<()> {
    prctl("prctl(PR_SET_KEEPCAPS)", libc::PR_SET_KEEPCAPS, on.into())
}

/// PR_SET_CHILD_SUBREAPER: orphaned descendants are re-parented to us.
pub fn set_child_subreaper() -> Result<()> {
    prctl(
        "prctl(PR_SET_CHILD_SUBREAPER)",
        libc::PR_SET_CHILD_SUBREAPER,
        1,
    )
}

/// PR_SET_PDEATHSIG: the signal we get when our parent dies.
pub fn set_parent_death_signal(sig: libc::c_int) -> Result<()> {
    prctl(
        "prctl(PR_SET_PDEATHSIG)",
        libc::PR_SET_PDEATHSIG,
        sig as libc::c_ulong,
    )
}

/// PR_SET_DUMPABLE. A non-dumpable process's /proc/<pid> files belong to root and
/// /proc/<pid>/exe cannot be opened by a process of the container (CVE-2019-5736).
pub fn set_dumpable(on: bool) -> Result<()> {
    prctl("prctl(PR_SET_DUMPABLE)", libc::PR_SET_DUMPABLE, on.into())
}

/// setsid(2): a new session, so a terminal can become the controlling one.
pub fn setsid() -> Result<()> {
    // SAFETY: setsid takes no arguments.
    let rc = unsafe { libc::setsid() };
    check("setsid", None, rc.into()).map(drop)
}

/// prlimit(2) on ourselves: set one resource limit.
pub fn setrlimit(resource: libc::c_int, soft: u64, hard: u64) -> Result<()> {
    let lim = libc::rlimit64 {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `lim` is a valid rlimit64 read by the kernel during the call; old limit is null.
    let rc = unsafe {
        libc::prlimit64(
            0,
            resource as libc::__rlimit_resource_t,
            &lim,
            std::ptr::null_mut(),
        )
    };
    check("setrlimit", None, rc.into()).map(drop)
}

/// personality(2).
pub fn personality(domain: libc::c_ulong) -> Result<()> {
    // SAFETY: personality takes an integer only.
    let rc = unsafe { libc::personality(domain) };
    check("personality", None, rc.into()).map(drop)
}

/// ioprio_set(2) for the calling process (IOPRIO_WHO_PROCESS, 0).
pub fn ioprio_set(class: i32, level: i32) -> Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_int = 1;
    const IOPRIO_CLASS_SHIFT: i32 = 13;
    let prio = (class << IOPRIO_CLASS_SHIFT) | level;
    // SAFETY: ioprio_set takes integers only.
    let rc = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, prio) };
    check("ioprio_set", None, rc).map(drop)
}

/// struct sched_attr of sched_setattr(2), size version 1 (56 bytes, with the util clamps).
#[repr(C)]
#[derive(Default)]
pub struct SchedAttr {
    pub size: u32,
    pub sched_policy: u32,
    pub sched_flags: u64,
    pub sched_nice: i32,
    pub sched_priority: u32,
    pub sched_runtime: u64,
    pub sched_deadline: u64,
    pub sched_period: u64,
    pub sched_util_min: u32,
    pub sched_util_max: u32,
}

/// sched_setattr(2) for the calling thread.
pub fn sched_setattr(attr: &mut SchedAttr) -> Result<()> {
    attr.size = std::mem::size_of::<SchedAttr>() as u32;
    // SAFETY: `attr` points to a valid struct sched_attr whose size field is set; the kernel
    // only reads it during the call.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, attr as *mut SchedAttr, 0) };
    check("sched_setattr", None, rc).map(drop)
}

/// keyctl(KEYCTL_JOIN_SESSION_KEYRING): a new anonymous session keyring, so the container
/// does not share the host's (runc does the same unless --no-new-keyring).
pub fn join_session_keyring() -> Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_int = 1;
    // SAFETY: a null name asks for a new anonymous keyring; no pointer is dereferenced.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    };
    check("keyctl(KEYCTL_JOIN_SESSION_KEYRING)", None, rc).map(drop)
}

/// sethostname(2).
pub fn sethostname(name: &str) -> Result<()> {
    // SAFETY: the pointer and length describe `name`'s bytes, alive for the call.
    let rc = unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) };
    check("sethostname", None, rc.into()).map(drop)
}

/// setdomainname(2).
pub fn setdomainname(name: &str) -> Result<()> {
    // SAFETY: the pointer and length describe `name`'s bytes, alive for the call.
    let rc = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    check("setdomainname", None, rc.into()).map(drop)
}

/// close_range(2) with CLOSE_RANGE_CLOEXEC: every descriptor from `first` on is closed at
/// exec, so nothing of the runtime leaks into the container (CVE-2024-21626).
pub fn cloexec_from(first: u32) -> Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range takes integers only; with CLOEXEC it closes nothing now.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    check("close_range", None, rc).map(drop)
}

/// Clears FD_CLOEXEC on `fd`, so it survives exec (for --preserve-fds and stdio).
pub fn clear_cloexec(fd: i32) -> Result<()> {
    // SAFETY: fcntl F_SETFD takes an integer; an invalid fd fails with EBADF.
    let rc = unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    check("fcntl(F_SETFD)", None, rc.into()).map(drop)
}

/// dup3(2): `old` is duplicated onto `new` (used for stdio).
pub fn dup2(old: i32, new: i32) -> Result<()> {
    if old == new {
        return clear_cloexec(new);
    }
    // SAFETY: dup3 takes integers only; invalid descriptors fail with EBADF.
    let rc = unsafe { libc::dup3(old, new, 0) };
    check("dup3", None, rc.into()).map(drop)
}

/// A set of signals for sigprocmask(2) and sigwaitinfo(2).
pub struct SigSet(libc::sigset_t);

impl SigSet {
    /// Every signal that can be caught: what `run` forwards to the container.
    pub fn all() -> SigSet {
        // SAFETY: sigfillset initializes the plain-data sigset_t.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid sigset_t.
        unsafe { libc::sigfillset(&mut set) };
        SigSet(set)
    }

    /// Blocks (`true`) or unblocks these signals for the calling thread.
    pub fn set_blocked(&self, block: bool) -> Result<()> {
        let how = if block {
            libc::SIG_BLOCK
        } else {
            libc::SIG_UNBLOCK
        };
        // SAFETY: `self.0` is an initialized sigset_t; the old mask is not asked for.
        let rc = unsafe { libc::pthread_sigmask(how, &self.0, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(Error::new(
                "sigprocmask",
                None::<&Path>,
                std::io::Error::from_raw_os_error(rc),
            ));
        }
        Ok(())
    }

    /// sigwaitinfo(2): waits for one of these (blocked) signals and returns its number.
    pub fn wait(&self) -> Result<libc::c_int> {
        loop {
            // SAFETY: `self.0` is an initialized sigset_t; a null siginfo is allowed.
            let rc = unsafe { libc::sigwaitinfo(&self.0, std::ptr::null_mut()) };
            if rc == -1 {
                let err = std::io::Error::last_os_error();
                if err.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(Error::new("sigwaitinfo", None::<&Path>, err));
            }
            return Ok(rc);
        }
    }
}

/// Restores every signal disposition to its default and unblocks all signals, as a new
/// process expects (the runtime blocks signals to forward them).
pub fn reset_signals() -> Result<()> {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: SIG_DFL is always a valid disposition; invalid numbers (32, 33 in glibc)
        // fail with EINVAL, which we ignore.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    SigSet::all().set_blocked(false)
}

/// The current umask is replaced by `mask`.
pub fn umask(mask: u32) {
    // SAFETY: umask takes an integer and cannot fail.
    unsafe { libc::umask(mask as libc::mode_t) };
}

/// getpid(2).
pub fn getpid() -> Pid {
    std::process::id() as Pid
}

/// Exits the process at once, without running atexit handlers or flushing stdio buffers
/// inherited from the parent (for a child after fork).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes an integer and never returns.
    unsafe { libc::_exit(code) }
}

/// ioctl(NS_GET_NSTYPE): the CLONE_NEW* type of the namespace that `fd` refers to.
pub fn ns_type(fd: BorrowedFd<'_>, path: &Path) -> Result<libc::c_int> {
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703; // _IO(0xb7, 0x3), <linux/nsfs.h>
                                                 // SAFETY: NS_GET_NSTYPE takes no argument; a non-namespace fd fails with ENOTTY.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE) };
    check("ioctl(NS_GET_NSTYPE)", Some(path), rc.into()).map(|t| t as libc::c_int)
}

/// Brings the loopback interface up (netdevice(7) SIOCSIFFLAGS): a new network namespace
/// has `lo` down, and runc brings it up.
pub fn loopback_up() -> Result<()> {
    // SAFETY: socket takes integers and returns a new descriptor or -1.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    check("socket", None, fd.into())?;
    // SAFETY: the kernel just returned this descriptor; we are its only owner.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: `req` is a valid ifreq with a NUL-terminated name; the kernel fills ifru_flags.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) };
    check("ioctl(SIOCGIFFLAGS) lo", None, rc.into())?;
    // SAFETY: SIOCGIFFLAGS set the flags member of the union, which we read and update.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: as above; the kernel reads the name and flags.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) };
    check("ioctl(SIOCSIFFLAGS) lo", None, rc.into()).map(drop)
}

/// Whether `fd` is an open descriptor (fcntl(F_GETFD) succeeds).
pub fn fd_is_open(fd: i32) -> bool {
    // SAFETY: F_GETFD takes no argument and only reads the descriptor table.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// Closes a descriptor inherited through fork that this process must not keep (the child's
/// copy of the parent's state lock). Closing a number that is not open is harmless (EBADF).
pub fn close_inherited(fd: i32) {
    // SAFETY: the caller names a descriptor this process owns through fork and never uses
    // again; no Rust object in the child refers to it afterwards.
    unsafe { libc::close(fd) };
}

/// seccomp(SECCOMP_SET_MODE_FILTER): installs a compiled classic-BPF program (an array of
/// struct sock_filter, 8 bytes each) with SECCOMP_FILTER_FLAG_* `flags`; with
/// SECCOMP_FILTER_FLAG_NEW_LISTENER, returns the listener's descriptor.
pub fn seccomp_set_mode_filter(bpf: &[u8], flags: u32) -> Result<Option<OwnedFd>> {
    const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
    let insns = bpf.len() / std::mem::size_of::<libc::sock_filter>();
    if insns == 0
        || !bpf
            .len()
            .is_multiple_of(std::mem::size_of::<libc::sock_filter>())
        || insns > u16::MAX as usize
    {
        return Err(Error::new(
            "seccomp",
            None::<&Path>,
            std::io::Error::from_raw_os_error(libc::EINVAL),
        ));
    }
    // The bytes may not be aligned for sock_filter: copy them into a properly typed buffer.
    let prog: Vec<libc::sock_filter> = bpf
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    let fprog = libc::sock_fprog {
        len: insns as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `fprog` points at `prog`, `len` instructions long; both live until the call
    // returns, and the kernel copies the program.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            flags,
            &fprog as *const libc::sock_fprog,
        )
    };
    let rc = check("seccomp(SECCOMP_SET_MODE_FILTER)", None, rc)?;
    if flags & SECCOMP_FILTER_FLAG_NEW_LISTENER != 0 {
        // SAFETY: with NEW_LISTENER the kernel returns a new descriptor that only we own.
        return Ok(Some(unsafe { OwnedFd::from_raw_fd(rc as i32) }));
    }
    Ok(None)
}

/// With this flag, seccomp(2) returns the descriptor of a user-space notification listener.
pub const SECCOMP_FILTER_FLAG_NEW_LISTENER: u32 = 8;

/// One syscall a filter handed to user space (struct seccomp_notif, seccomp_unotify(2)).
#[repr(C)]
#[derive(Default, Debug, Clone, Copy)]
pub struct SeccompNotif {
    pub id: u64,
    pub pid: u32,
    pub flags: u32,
    pub nr: i32,
    pub arch: u32,
    pub instruction_pointer: u64,
    pub args: [u64; 6],
}

#[repr(C)]
struct SeccompNotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

/// SECCOMP_IOCTL_NOTIF_RECV: waits for the next notification on a listener.
pub fn seccomp_notif_recv(listener: BorrowedFd<'_>) -> Result<SeccompNotif> {
    const SECCOMP_IOCTL_NOTIF_RECV: libc::c_ulong = 0xc050_2100; // _IOWR('!', 0, struct seccomp_notif)
                                                                 // The kernel requires a zeroed struct.
    let mut n = SeccompNotif::default();
    // SAFETY: `n` is a writable struct seccomp_notif of the size the ioctl number encodes.
    let rc = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            SECCOMP_IOCTL_NOTIF_RECV,
            &mut n as *mut SeccompNotif,
        )
    };
    check("ioctl(SECCOMP_IOCTL_NOTIF_RECV)", None, rc.into())?;
    Ok(n)
}

/// SECCOMP_IOCTL_NOTIF_SEND: answers notification `id`: the syscall returns `val`, or fails
/// with `error` (a negative errno) when it is not 0.
pub fn seccomp_notif_send(listener: BorrowedFd<'_>, id: u64, val: i64, error: i32) -> Result<()> {
    const SECCOMP_IOCTL_NOTIF_SEND: libc::c_ulong = 0xc018_2101; // _IOWR('!', 1, struct seccomp_notif_resp)
    let mut r = SeccompNotifResp {
        id,
        val,
        error,
        flags: 0,
    };
    // SAFETY: `r` is a struct seccomp_notif_resp of the size the ioctl number encodes.
    let rc = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            SECCOMP_IOCTL_NOTIF_SEND,
            &mut r as *mut SeccompNotifResp,
        )
    };
    check("ioctl(SECCOMP_IOCTL_NOTIF_SEND)", None, rc.into()).map(drop)
}

impl SigSet {
    /// signalfd(2): a descriptor that reads these (blocked) signals, so that a poll loop can
    /// wait for signals and descriptors at once.
    pub fn signalfd(&self) -> Result<OwnedFd> {
        // SAFETY: `self.0` is an initialized sigset_t; -1 asks for a new descriptor.
        let fd = unsafe { libc::signalfd(-1, &self.0, libc::SFD_CLOEXEC) };
        check("signalfd", None, fd.into())?;
        // SAFETY: the kernel just returned this descriptor; we are its only owner.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

/// Reads one signal from a signalfd: its number.
pub fn read_signal(fd: BorrowedFd<'_>) -> Result<i32> {
    // SAFETY: signalfd_siginfo is plain data; zeroed is a valid value.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: `info` is writable for `size` bytes, the size of one record.
    let n = unsafe {
        libc::read(
            fd.as_raw_fd(),
            (&mut info as *mut libc::signalfd_siginfo).cast(),
            size,
        )
    };
    check("read signalfd", None, n as libc::c_long)?;
    Ok(info.ssi_signo as i32)
}
