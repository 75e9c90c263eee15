//! seccomp filters from `linux.seccomp` (runtime-spec config-linux.md "Seccomp",
//! seccomp(2)), compiled by libseccomp.

use std::path::Path;
use std::str::FromStr;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("{what}: {source}")]
    Libseccomp {
        what: String,
        source: libseccomp::error::SeccompError,
    },
    #[error("{0}")]
    Invalid(String),
}

fn lib(what: impl Into<String>) -> impl FnOnce(libseccomp::error::SeccompError) -> SeccompError {
    let what = what.into();
    move |source| SeccompError::Libseccomp { what, source }
}

/// The action, with the errno (for SCMP_ACT_ERRNO) or the tracer's value (SCMP_ACT_TRACE);
/// EPERM when the config gives none, as runc does.
fn action(a: LinuxSeccompAction, ret: Option<u32>) -> Result<ScmpAction, SeccompError> {
    let ret = ret.unwrap_or(libc::EPERM as u32);
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(ret as i32),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(ret as u16),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
    })
}

fn compare(
    op: LinuxSeccompOperator,
    value: u64,
    value_two: Option<u64>,
    index: usize,
) -> ScmpArgCompare {
    let (op, datum) = match op {
        LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, value),
        LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, value),
        LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, value),
        LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, value),
        LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, value),
        LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, value),
        // (arg & value) == valueTwo
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            (ScmpCompareOp::MaskedEqual(value), value_two.unwrap_or(0))
        }
    };
    ScmpArgCompare::new(index as u32, op, datum)
}

/// Compiles the filter. Syscalls unknown to libseccomp (newer than it) are skipped, as runc
/// does, so one profile serves kernels old and new.
pub fn compile(s: &LinuxSeccomp) -> Result<ScmpFilterContext, SeccompError> {
    if s.default_action() == LinuxSeccompAction::ScmpActNotify {
        // Every syscall, the runtime's own included, would wait on the listener.
        return Err(SeccompError::Invalid(
            "defaultAction: SCMP_ACT_NOTIFY cannot be the default".into(),
        ));
    }
    if uses_notify(s) && s.listener_path().is_none() {
        return Err(SeccompError::Invalid(
            "listenerPath: SCMP_ACT_NOTIFY needs a listener".into(),
        ));
    }
    let default = action(s.default_action(), s.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default).map_err(lib("create the filter"))?;
    // We set no_new_privs ourselves when the config asks for it; libseccomp would force it.
    ctx.set_ctl_nnp(false)
        .map_err(lib("clear the nnp attribute"))?;
    for arch in s.architectures().iter().flatten() {
        let name = arch.to_string();
        let a = ScmpArch::from_str(&name).map_err(lib(format!("architecture {name}")))?;
        if !ctx.is_arch_present(a).unwrap_or(false) {
            ctx.add_arch(a)
                .map_err(lib(format!("add architecture {name}")))?;
        }
    }
    for f in s.flags().iter().flatten() {
        match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => ctx.set_ctl_log(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => ctx.set_ctl_tsync(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => ctx.set_ctl_ssb(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => ctx.set_ctl_waitkill(true),
        }
        .map_err(lib(format!("flag {f:?}")))?;
    }
    for (i, rule) in s.syscalls().iter().flatten().enumerate() {
        let act = action(rule.action(), rule.errno_ret())
            .map_err(|e| SeccompError::Invalid(format!("syscalls[{i}]: {e}")))?;
        // libseccomp refuses a rule that does what the default does: it is a no-op anyway.
        if act == default {
            continue;
        }
        let args = rule.args().clone().unwrap_or_default();
        let conds: Vec<ScmpArgCompare> = args
            .iter()
            .map(|a| compare(a.op(), a.value(), a.value_two(), a.index()))
            .collect();
        // Conditions on distinct arguments are one rule (all must hold); several conditions on
        // the same argument cannot be, so each becomes a rule of its own (any may hold).
        let mut idx: Vec<usize> = args.iter().map(|a| a.index()).collect();
        idx.sort_unstable();
        idx.dedup();
        let distinct = idx.len() == args.len();
        for name in rule.names() {
            let Ok(sc) = ScmpSyscall::from_name(name) else {
                tracing::debug!(syscall = %name, "unknown to libseccomp: skipped");
                continue;
            };
            let what = || format!("syscalls[{i}] {name}");
            if conds.is_empty() {
                ctx.add_rule(act, sc).map_err(lib(what()))?;
            } else if distinct {
                ctx.add_rule_conditional(act, sc, &conds)
                    .map_err(lib(what()))?;
            } else {
                for c in &conds {
                    ctx.add_rule_conditional(act, sc, std::slice::from_ref(c))
                        .map_err(lib(what()))?;
                }
            }
        }
    }
    Ok(ctx)
}

/// The cache's directory under the state root: `@` is not allowed in a container id, so no
/// container can take this name.
pub const CACHE_DIR: &str = "@seccomp-cache";

/// A compiled filter: the BPF program and the seccomp(2) flags to install it with.
#[derive(Debug, Clone)]
pub struct Filter {
    bpf: Vec<u8>,
    flags: u32,
    /// Where the listener of SCMP_ACT_NOTIFY waits for the notification descriptor, and the
    /// opaque metadata it gets with it.
    pub listener: Option<(std::path::PathBuf, String)>,
}

fn uses_notify(s: &LinuxSeccomp) -> bool {
    s.syscalls()
        .iter()
        .flatten()
        .any(|r| r.action() == LinuxSeccompAction::ScmpActNotify)
}

fn listener(s: &LinuxSeccomp) -> Option<(std::path::PathBuf, String)> {
    if !uses_notify(s) {
        return None;
    }
    let path = s.listener_path().clone()?;
    Some((path, s.listener_metadata().clone().unwrap_or_default()))
}

/// The seccomp(2) flags the profile asks for.
fn flags(s: &LinuxSeccomp) -> u32 {
    s.flags()
        .iter()
        .flatten()
        .map(|f| match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => 1,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => 2,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => 4,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => 32,
        })
        .fold(0, |a, b| a | b)
}

/// The compiled program for `s`, from `cache` (`<root>/seccomp/<key>.bpf`) when a container
/// with the same profile compiled it before: compiling Docker's profile costs milliseconds,
/// reading it back microseconds. The key covers the profile and the libseccomp version.
pub fn prepare(s: &LinuxSeccomp, cache: Option<&Path>) -> Result<Filter, SeccompError> {
    use std::hash::{Hash, Hasher};
    let profile = serde_json::to_vec(s).unwrap_or_default();
    let v = libseccomp::ScmpVersion::current()
        .map(|v| (v.major, v.minor, v.micro))
        .unwrap_or_default();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (profile, v, "berth-seccomp-1").hash(&mut h);
    let file = cache.map(|dir| dir.join(format!("{:016x}.bpf", h.finish())));
    if let Some(bpf) = file
        .as_ref()
        .and_then(|f| std::fs::read(f).ok())
        .filter(|b| !b.is_empty() && b.len() % 8 == 0)
    {
        return Ok(Filter {
            bpf,
            flags: flags(s),
            listener: listener(s),
        });
    }
    let ctx = compile(s)?;
    let mut tmp = tempfile_in(cache)?;
    ctx.export_bpf(&tmp.0).map_err(lib("export the filter"))?;
    let mut bpf = Vec::new();
    std::io::Seek::rewind(&mut tmp.0)
        .map_err(|e| SeccompError::Invalid(format!("read the filter back: {e}")))?;
    std::io::Read::read_to_end(&mut tmp.0, &mut bpf)
        .map_err(|e| SeccompError::Invalid(format!("read the filter back: {e}")))?;
    if let (Some(file), Some(path)) = (file, tmp.1) {
        // Atomic: a concurrent create reads the old absence or the whole program.
        let _ = std::fs::rename(&path, file);
    }
    Ok(Filter {
        bpf,
        flags: flags(s),
        listener: listener(s),
    })
}

/// A temporary file for the exported program: in the cache directory (to rename into place)
/// or, without one, an unlinked file in the temporary directory.
fn tempfile_in(
    cache: Option<&Path>,
) -> Result<(std::fs::File, Option<std::path::PathBuf>), SeccompError> {
    let err = |e: std::io::Error| SeccompError::Invalid(format!("seccomp cache: {e}"));
    let dir = cache.map_or_else(std::env::temp_dir, Path::to_path_buf);
    std::fs::create_dir_all(&dir).map_err(err)?;
    let path = dir.join(format!(".berth-seccomp-{}", std::process::id()));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(err)?;
    if cache.is_none() {
        let _ = std::fs::remove_file(&path);
        return Ok((f, None));
    }
    Ok((f, Some(path)))
}

/// Installs the filter for this process (seccomp(2)); needs no_new_privs or CAP_SYS_ADMIN.
/// With SCMP_ACT_NOTIFY rules, returns the listener descriptor for the runtime to hand over.
pub fn load(f: &Filter) -> Result<Option<std::os::fd::OwnedFd>, SeccompError> {
    let mut flags = f.flags;
    if f.listener.is_some() {
        flags |= berth_sys::process::SECCOMP_FILTER_FLAG_NEW_LISTENER;
    }
    berth_sys::process::seccomp_set_mode_filter(&f.bpf, flags)
        .map_err(|e| SeccompError::Invalid(e.to_string()))
}

/// Sends the notification descriptor to the listener at `path` (runtime-spec config-linux.md
/// "Seccomp": SCM_RIGHTS with the ContainerProcessState as payload).
pub fn send_listener(
    path: &Path,
    metadata: &str,
    fd: std::os::fd::BorrowedFd<'_>,
    pid: i32,
    state: &serde_json::Value,
) -> Result<(), SeccompError> {
    let payload = serde_json::json!({
        "ociVersion": "1.2.0",
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": metadata,
        "state": state,
    });
    let conn = std::os::unix::net::UnixStream::connect(path).map_err(|e| {
        SeccompError::Invalid(format!("connect listenerPath {}: {e}", path.display()))
    })?;
    berth_sys::console::send_fd(std::os::fd::AsFd::as_fd(&conn), fd, &payload.to_string())
        .map_err(|e| SeccompError::Invalid(format!("send to listenerPath {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_docker_like_rules() {
        let s: LinuxSeccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": ["read", "write", "no_such_syscall_anywhere"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}
            ]
        }))
        .unwrap();
        let ctx = compile(&s).unwrap();
        let f = tempfile::tempfile().unwrap();
        ctx.export_bpf(&f).unwrap();
        assert!(f.metadata().unwrap().len() > 0);
    }

    #[test]
    fn notify_needs_a_listener_and_is_no_default() {
        let s: LinuxSeccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
        }))
        .unwrap();
        let err = compile(&s).unwrap_err().to_string();
        assert!(err.contains("listenerPath"), "{err}");
        let s: LinuxSeccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/x"
        }))
        .unwrap();
        assert!(compile(&s)
            .unwrap_err()
            .to_string()
            .contains("defaultAction"));
    }
}
