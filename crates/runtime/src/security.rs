//! The process's credentials and limits: rlimits, user and groups, capabilities,
//! no_new_privs, scheduling (runtime-spec config.md "Process", capabilities(7)).

use std::collections::HashSet;
use std::path::Path;

use caps::{CapSet, Capability};
use oci_spec::runtime::{
    IOPriorityClass, LinuxSchedulerFlag, LinuxSchedulerPolicy, PosixRlimitType, Process,
};

#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error(transparent)]
    Sys(#[from] berth_sys::Error),
    #[error("{op}: {source}")]
    Caps {
        op: String,
        source: caps::errors::CapsError,
    },
    #[error("process.capabilities: unknown capability {0}")]
    UnknownCap(String),
    #[error("process.oomScoreAdj: {0}")]
    OomScore(std::io::Error),
    #[error("{0}")]
    Groups(String),
    #[error("setrlimit {name} (soft {soft}, hard {hard}): {source}")]
    Rlimit {
        name: String,
        soft: u64,
        hard: u64,
        source: berth_sys::Error,
    },
}

fn caps_err(op: impl Into<String>) -> impl FnOnce(caps::errors::CapsError) -> SecurityError {
    let op = op.into();
    move |source| SecurityError::Caps { op, source }
}

/// The five capability sets, parsed from the config.
#[derive(Default, Debug)]
pub struct CapSets {
    pub bounding: HashSet<Capability>,
    pub effective: HashSet<Capability>,
    pub inheritable: HashSet<Capability>,
    pub permitted: HashSet<Capability>,
    pub ambient: HashSet<Capability>,
}

fn to_caps(
    set: &Option<oci_spec::runtime::Capabilities>,
) -> Result<HashSet<Capability>, SecurityError> {
    set.iter()
        .flatten()
        .map(|c| {
            let name = serde_json::to_value(c)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            name.parse::<Capability>()
                .map_err(|_| SecurityError::UnknownCap(name))
        })
        .collect()
}

impl CapSets {
    pub fn from_process(p: &Process) -> Result<CapSets, SecurityError> {
        let Some(c) = p.capabilities() else {
            return Ok(CapSets::default());
        };
        Ok(CapSets {
            bounding: to_caps(c.bounding())?,
            effective: to_caps(c.effective())?,
            inheritable: to_caps(c.inheritable())?,
            permitted: to_caps(c.permitted())?,
            ambient: to_caps(c.ambient())?,
        })
    }
}

/// Resource limits, OOM score, I/O priority, scheduler, personality: set while we are still
/// root in the container (raising a limit needs privileges that are dropped later).
pub fn apply_limits(p: &Process) -> Result<(), SecurityError> {
    if let Some(adj) = p.oom_score_adj() {
        // Through a private procfs, by our pid: no mount can redirect it (CVE-2025-52881).
        let me = rustix::process::getpid().as_raw_nonzero().get();
        crate::procfs::Procfs::open()
            .and_then(|p| {
                p.write(
                    &Path::new(&me.to_string()).join("oom_score_adj"),
                    &adj.to_string(),
                )
            })
            .map_err(|e| SecurityError::OomScore(std::io::Error::other(e.to_string())))?;
    }
    for r in p.rlimits().iter().flatten() {
        berth_sys::process::setrlimit(rlimit_resource(r.typ()), r.soft(), r.hard()).map_err(
            |source| SecurityError::Rlimit {
                name: format!("{:?}", r.typ()).to_uppercase(),
                soft: r.soft(),
                hard: r.hard(),
                source,
            },
        )?;
    }
    if let Some(io) = p.io_priority() {
        let class = match io.class() {
            IOPriorityClass::IoprioClassRt => 1,
            IOPriorityClass::IoprioClassBe => 2,
            IOPriorityClass::IoprioClassIdle => 3,
        };
        berth_sys::process::ioprio_set(class, io.priority() as i32)?;
    }
    if let Some(s) = p.scheduler() {
        let mut attr = berth_sys::process::SchedAttr {
            sched_policy: match s.policy() {
                LinuxSchedulerPolicy::SchedOther => 0,
                LinuxSchedulerPolicy::SchedFifo => 1,
                LinuxSchedulerPolicy::SchedRr => 2,
                LinuxSchedulerPolicy::SchedBatch => 3,
                LinuxSchedulerPolicy::SchedIso => 4,
                LinuxSchedulerPolicy::SchedIdle => 5,
                LinuxSchedulerPolicy::SchedDeadline => 6,
            },
            sched_nice: s.nice().unwrap_or(0),
            sched_priority: s.priority().unwrap_or(0) as u32,
            sched_runtime: s.runtime().unwrap_or(0),
            sched_deadline: s.deadline().unwrap_or(0),
            sched_period: s.period().unwrap_or(0),
            ..Default::default()
        };
        for f in s.flags().iter().flatten() {
            attr.sched_flags |= match f {
                LinuxSchedulerFlag::SchedResetOnFork => 0x01,
                LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
                LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
                LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
                LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
                LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
                LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
            };
        }
        berth_sys::process::sched_setattr(&mut attr)?;
    }
    Ok(())
}

fn rlimit_resource(t: PosixRlimitType) -> libc::c_int {
    (match t {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    }) as libc::c_int
}

/// Drops the bounding set (needs CAP_SETPCAP, so it comes while we are still root).
pub fn drop_bounding(sets: &CapSets) -> Result<(), SecurityError> {
    for cap in caps::runtime::thread_all_supported() {
        if !sets.bounding.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap)
                .map_err(caps_err(format!("drop {cap} from the bounding set")))?;
        }
    }
    Ok(())
}

/// Becomes the config's user: groups, gid, uid. The permitted capabilities survive the change
/// of uid (PR_SET_KEEPCAPS) so that `set_capabilities` can choose them.
///
/// In a user namespace whose gid_map an unprivileged user wrote itself, setgroups(2) is
/// denied (user_namespaces(7)): there the groups stay as they are, and additionalGids are
/// refused by name rather than dropped. A map written by newgidmap allows setgroups, so a
/// rootless container with subordinate gids gets its additionalGids.
pub fn set_user(p: &Process) -> Result<(), SecurityError> {
    let u = p.user();
    let extra: Vec<u32> = u.additional_gids().clone().unwrap_or_default();
    if setgroups_allowed() {
        berth_sys::user::setgroups(&extra)?;
    } else if !extra.is_empty() {
        return Err(SecurityError::Groups(
            "process.user.additionalGids: setgroups(2) is denied in this user namespace \
             (its gid_map was written without newgidmap: add a range to /etc/subgid)"
                .into(),
        ));
    }
    fix_stdio_owner(u.uid(), u.gid());
    berth_sys::process::set_keepcaps(true)?;
    berth_sys::user::setresgid(u.gid())?;
    berth_sys::user::setresuid(u.uid())?;
    berth_sys::process::set_keepcaps(false)?;
    Ok(())
}

/// Whether this user namespace lets us call setgroups(2): /proc/self/setgroups says "deny"
/// when it does not (and is absent before Linux 3.19 or outside a user namespace).
fn setgroups_allowed() -> bool {
    std::fs::read_to_string("/proc/self/setgroups").map_or(true, |s| s.trim() != "deny")
}

/// Gives stdio (and the pty) to the container's user, as runc's fixStdioPermissions: a
/// non-root process must be able to reopen /dev/stdout, /proc/self/fd/1 or /dev/tty. /dev/null
/// is left alone; a descriptor we may not chown (from outside a user namespace) stays as is.
fn fix_stdio_owner(uid: u32, gid: u32) {
    use std::os::fd::AsFd;
    let (i, o, e) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
    for fd in [i.as_fd(), o.as_fd(), e.as_fd()] {
        let Ok(st) = rustix::fs::fstat(fd) else {
            continue;
        };
        let is_char = rustix::fs::FileType::from_raw_mode(st.st_mode)
            == rustix::fs::FileType::CharacterDevice;
        if (is_char && st.st_rdev == rustix::fs::makedev(1, 3)) || st.st_uid == uid {
            continue;
        }
        let _ = rustix::fs::fchown(
            fd,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        );
    }
}

/// Sets the effective, permitted, inheritable and ambient sets to exactly the config's.
/// CVE-2022-29162: the inheritable set is the config's, never more; with an empty inheritable
/// set, file capabilities of a program cannot grant what the container was not given.
pub fn set_capabilities(sets: &CapSets) -> Result<(), SecurityError> {
    let supported: HashSet<Capability> = caps::runtime::thread_all_supported();
    let keep =
        |s: &HashSet<Capability>| s.intersection(&supported).copied().collect::<HashSet<_>>();
    // Permitted first: effective and inheritable may only shrink it... and permitted is the
    // ceiling of the two, so widen effective last.
    caps::set(None, CapSet::Effective, &HashSet::new())
        .map_err(caps_err("clear the effective set"))?;
    caps::set(None, CapSet::Inheritable, &keep(&sets.inheritable))
        .map_err(caps_err("set the inheritable set"))?;
    caps::set(None, CapSet::Permitted, &keep(&sets.permitted))
        .map_err(caps_err("set the permitted set"))?;
    caps::set(None, CapSet::Effective, &keep(&sets.effective))
        .map_err(caps_err("set the effective set"))?;
    caps::clear(None, CapSet::Ambient).map_err(caps_err("clear the ambient set"))?;
    for cap in keep(&sets.ambient) {
        // An ambient capability must be permitted and inheritable; runc skips the others too.
        if sets.permitted.contains(&cap) && sets.inheritable.contains(&cap) {
            caps::raise(None, CapSet::Ambient, cap)
                .map_err(caps_err(format!("raise {cap} in the ambient set")))?;
        }
    }
    Ok(())
}

/// PR_SET_NO_NEW_PRIVS when the config asks for it.
pub fn apply_no_new_privs(p: &Process) -> Result<(), SecurityError> {
    if p.no_new_privileges() == Some(true) {
        berth_sys::process::set_no_new_privs()?;
    }
    Ok(())
}
