//! The container's root filesystem: its mounts, /dev, pivot_root, masked and read-only paths
//! (runtime-spec config.md "Mounts", config-linux.md "Devices", "Masked Paths").
//!
//! Every mount target is resolved inside the rootfs with openat2(RESOLVE_IN_ROOT), and mounted
//! through /proc/self/fd/N of that O_PATH descriptor, so a symlink planted in the rootfs (or
//! swapped in while we work) cannot send a mount outside it (CVE-2021-30465).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use berth_sys::mount::{self as m, mount};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount, Spec};
use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::cgroups::{Hierarchy, Placement};
use crate::spec::is_bind;

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error(transparent)]
    Sys(#[from] berth_sys::Error),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("mount {dest}: {message}")]
    Mount { dest: PathBuf, message: String },
    #[error("{0}")]
    Unsafe(String),
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(rustix::io::Errno) -> RootfsError + 'a {
    move |e| RootfsError::Io {
        op,
        path: path.to_path_buf(),
        source: e.into(),
    }
}

/// What a mount's options ask for.
#[derive(Default, Debug, PartialEq, Eq)]
pub struct MountOptions {
    pub flags: libc::c_ulong,
    /// Propagation changes applied after the mount (MS_SHARED, MS_SLAVE|MS_REC, ...).
    pub propagation: Vec<libc::c_ulong>,
    /// Recursive attributes for mount_setattr(2): (set, clear).
    pub rec_set: u64,
    pub rec_clr: u64,
    /// Filesystem data (`mode=755,size=65536k`).
    pub data: String,
}

/// Splits mount options into flags, propagation, recursive attributes and filesystem data
/// (mount(8) "FILESYSTEM-INDEPENDENT MOUNT OPTIONS").
pub fn parse_options(options: &[String]) -> MountOptions {
    let mut o = MountOptions::default();
    let mut data = Vec::new();
    for opt in options {
        let (set, clear): (libc::c_ulong, libc::c_ulong) = match opt.as_str() {
            "ro" => (m::MS_RDONLY, 0),
            "rw" => (0, m::MS_RDONLY),
            "nosuid" => (m::MS_NOSUID, 0),
            "suid" => (0, m::MS_NOSUID),
            "nodev" => (m::MS_NODEV, 0),
            "dev" => (0, m::MS_NODEV),
            "noexec" => (m::MS_NOEXEC, 0),
            "exec" => (0, m::MS_NOEXEC),
            "sync" => (m::MS_SYNCHRONOUS, 0),
            "async" => (0, m::MS_SYNCHRONOUS),
            "dirsync" => (m::MS_DIRSYNC, 0),
            "remount" => (m::MS_REMOUNT, 0),
            "mand" => (m::MS_MANDLOCK, 0),
            "nomand" => (0, m::MS_MANDLOCK),
            "atime" => (0, m::MS_NOATIME),
            "noatime" => (m::MS_NOATIME, 0),
            "diratime" => (0, m::MS_NODIRATIME),
            "nodiratime" => (m::MS_NODIRATIME, 0),
            "relatime" => (m::MS_RELATIME, 0),
            "norelatime" => (0, m::MS_RELATIME),
            "strictatime" => (m::MS_STRICTATIME, 0),
            "nostrictatime" => (0, m::MS_STRICTATIME),
            "lazytime" => (m::MS_LAZYTIME, 0),
            "nolazytime" => (0, m::MS_LAZYTIME),
            "silent" => (m::MS_SILENT, 0),
            "loud" => (0, m::MS_SILENT),
            "iversion" => (libc::MS_I_VERSION, 0),
            "noiversion" => (0, libc::MS_I_VERSION),
            "nosymfollow" => (256, 0), // MS_NOSYMFOLLOW
            "symfollow" => (0, 256),
            "bind" => (m::MS_BIND, 0),
            "rbind" => (m::MS_BIND | m::MS_REC, 0),
            "defaults" => (0, 0),
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                o.propagation.push(propagation_flags(opt).unwrap_or(0));
                continue;
            }
            other => {
                if let Some((set, clr)) = recursive_attr(other) {
                    o.rec_set |= set;
                    o.rec_clr |= clr;
                } else {
                    data.push(other.to_string());
                }
                continue;
            }
        };
        o.flags = (o.flags | set) & !clear;
    }
    o.data = data.join(",");
    o
}

/// The mount(2) flags for a propagation name.
pub fn propagation_flags(name: &str) -> Option<libc::c_ulong> {
    Some(match name {
        "private" => m::MS_PRIVATE,
        "rprivate" => m::MS_PRIVATE | m::MS_REC,
        "shared" => m::MS_SHARED,
        "rshared" => m::MS_SHARED | m::MS_REC,
        "slave" => m::MS_SLAVE,
        "rslave" => m::MS_SLAVE | m::MS_REC,
        "unbindable" => m::MS_UNBINDABLE,
        "runbindable" => m::MS_UNBINDABLE | m::MS_REC,
        _ => return None,
    })
}

/// The `r*` options (runtime-spec 1.1): attributes applied to a whole mount tree.
fn recursive_attr(name: &str) -> Option<(u64, u64)> {
    Some(match name {
        "rro" => (m::MOUNT_ATTR_RDONLY, 0),
        "rrw" => (0, m::MOUNT_ATTR_RDONLY),
        "rnosuid" => (m::MOUNT_ATTR_NOSUID, 0),
        "rsuid" => (0, m::MOUNT_ATTR_NOSUID),
        "rnodev" => (m::MOUNT_ATTR_NODEV, 0),
        "rdev" => (0, m::MOUNT_ATTR_NODEV),
        "rnoexec" => (m::MOUNT_ATTR_NOEXEC, 0),
        "rexec" => (0, m::MOUNT_ATTR_NOEXEC),
        "rnodiratime" => (m::MOUNT_ATTR_NODIRATIME, 0),
        "rdiratime" => (0, m::MOUNT_ATTR_NODIRATIME),
        "rnosymfollow" => (m::MOUNT_ATTR_NOSYMFOLLOW, 0),
        "rsymfollow" => (0, m::MOUNT_ATTR_NOSYMFOLLOW),
        // The atime mode is one field: clearing MOUNT_ATTR__ATIME selects it anew.
        "rrelatime" => (m::MOUNT_ATTR_RELATIME, m::MOUNT_ATTR__ATIME),
        "rnoatime" => (m::MOUNT_ATTR_NOATIME, m::MOUNT_ATTR__ATIME),
        "rstrictatime" => (m::MOUNT_ATTR_STRICTATIME, m::MOUNT_ATTR__ATIME),
        "rnorelatime" | "ratime" | "rnostrictatime" => {
            (m::MOUNT_ATTR_RELATIME, m::MOUNT_ATTR__ATIME)
        }
        _ => return None,
    })
}

/// The path of a descriptor as mount(2) can take it: a magic link the kernel follows to the
/// very inode we opened, whatever the path now says.
pub fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// `path` inside the root as a relative path ("/dev/pts" → "dev/pts").
fn relative(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect()
}

const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// Opens `path` inside `root` (symlinks resolved as if `root` were `/`).
pub fn open_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
    flags: OFlags,
) -> rustix::io::Result<OwnedFd> {
    let rel = relative(path);
    let rel = if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    };
    rustix::fs::openat2(root, &rel, flags | OFlags::CLOEXEC, Mode::empty(), IN_ROOT)
}

/// Creates `path` inside `root` (directories, and a file at the end unless `dir`), and returns
/// an O_PATH descriptor of it. Each component is created by name in its resolved parent; a
/// dangling symlink on the way is followed, inside the root, as runc's MkdirAllInRoot does.
pub fn create_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
    dir: bool,
) -> Result<OwnedFd, RootfsError> {
    create_in_root_depth(root, &relative(path), dir, 0)
}

fn create_in_root_depth(
    root: BorrowedFd<'_>,
    rel: &Path,
    dir: bool,
    depth: u32,
) -> Result<OwnedFd, RootfsError> {
    if let Ok(fd) = open_in_root(root, rel, OFlags::PATH) {
        return Ok(fd);
    }
    if depth > 40 {
        return Err(io("create", rel)(rustix::io::Errno::LOOP));
    }
    let comps: Vec<_> = rel.components().collect();
    let mut parent = open_in_root(root, Path::new("."), OFlags::PATH | OFlags::DIRECTORY)
        .map_err(io("open", rel))?;
    let mut sofar = PathBuf::new();
    for (i, c) in comps.iter().enumerate() {
        sofar.push(c);
        let last = i + 1 == comps.len();
        match open_in_root(root, &sofar, OFlags::PATH) {
            Ok(fd) => {
                parent = fd;
                continue;
            }
            Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(io("open", &sofar)(e)),
        }
        let made = if last && !dir {
            rustix::fs::openat(
                parent.as_fd(),
                c.as_os_str(),
                OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                Mode::from_raw_mode(0o644),
            )
            .map(drop)
        } else {
            rustix::fs::mkdirat(parent.as_fd(), c.as_os_str(), Mode::from_raw_mode(0o755))
        };
        match made {
            Ok(()) => {}
            Err(rustix::io::Errno::EXIST) | Err(rustix::io::Errno::LOOP) => {
                // The name exists but does not resolve: a dangling symlink. Follow it.
                let target = rustix::fs::readlinkat(parent.as_fd(), c.as_os_str(), Vec::new())
                    .map_err(io("readlink", &sofar))?;
                let target = PathBuf::from(std::ffi::OsStr::from_bytes(target.as_bytes()));
                let base = if target.is_absolute() {
                    relative(&target)
                } else {
                    sofar.parent().unwrap_or(Path::new("")).join(target)
                };
                let rest: PathBuf = comps[i + 1..].iter().collect();
                return create_in_root_depth(root, &normalize(&base.join(rest)), dir, depth + 1);
            }
            Err(e) => return Err(io("create", &Path::new("/").join(&sofar))(e)),
        }
        parent = open_in_root(root, &sofar, OFlags::PATH).map_err(io("open", &sofar))?;
    }
    Ok(parent)
}

/// Resolves `.` and `..` lexically, never above the root.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// The context the mounts need besides the spec.
pub struct Context<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub in_userns: bool,
    pub new_cgroupns: bool,
    pub hierarchies: &'a [Hierarchy],
    pub placement: &'a Placement,
    pub terminal: bool,
}

/// Before pivot_root: propagation, the rootfs as a mount point, the config's mounts, /dev.
pub fn prepare(ctx: &Context<'_>) -> Result<OwnedFd, RootfsError> {
    let linux = ctx.spec.linux().as_ref();
    let prop = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .filter(|p| !p.is_empty())
        .and_then(propagation_flags)
        .unwrap_or(m::MS_SLAVE | m::MS_REC);
    // Our mount namespace is a copy of the host's: make it a slave (by default) so nothing we
    // mount propagates back to the host, while the host's new mounts may still reach us.
    mount(None, Path::new("/"), None, prop | m::MS_REC, None)?;
    if prop & m::MS_SHARED != 0 {
        make_parent_private(ctx.rootfs)?;
    }
    // pivot_root needs the new root to be a mount point.
    mount(
        Some(&ctx.rootfs.to_string_lossy()),
        ctx.rootfs,
        None,
        m::MS_BIND | m::MS_REC,
        None,
    )?;
    let root = rustix::fs::open(
        ctx.rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io("open", ctx.rootfs))?;
    let mounts = ctx.spec.mounts().as_deref().unwrap_or(&[]);
    for (i, mnt) in mounts.iter().enumerate() {
        // Name the config's mount: the syscalls only see /proc/self/fd/N.
        mount_one(ctx, root.as_fd(), mnt).map_err(|e| match e {
            e @ RootfsError::Mount { .. } => e,
            e => RootfsError::Mount {
                dest: mnt.destination().clone(),
                message: format!("mounts[{i}]: {e}"),
            },
        })?;
    }
    let dev_is_bind = mounts
        .iter()
        .any(|x| x.destination() == Path::new("/dev") && is_bind(x));
    if !dev_is_bind {
        default_devices(root.as_fd(), ctx.in_userns)?;
        dev_symlinks(root.as_fd())?;
    }
    let devices = linux.and_then(|l| l.devices().as_deref()).unwrap_or(&[]);
    for d in devices {
        create_device(root.as_fd(), d, ctx.in_userns)?;
    }
    if ctx.terminal {
        create_in_root(root.as_fd(), Path::new("/dev/console"), false)?;
    }
    Ok(root)
}

/// pivot_root(2) needs the parent of the new root to be a non-shared mount.
fn make_parent_private(rootfs: &Path) -> Result<(), RootfsError> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| RootfsError::Io {
        op: "read",
        path: "/proc/self/mountinfo".into(),
        source: e,
    })?;
    let parent = rootfs.parent().unwrap_or(Path::new("/"));
    let mp = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|p| parent.starts_with(p))
        .max_by_key(|p| p.as_os_str().len())
        .unwrap_or_else(|| PathBuf::from("/"));
    mount(None, &mp, None, m::MS_PRIVATE, None)?;
    Ok(())
}

fn mount_one(ctx: &Context<'_>, root: BorrowedFd<'_>, mnt: &Mount) -> Result<(), RootfsError> {
    let dest = mnt.destination();
    let opts = parse_options(mnt.options().as_deref().unwrap_or(&[]));
    let typ = mnt.typ().as_deref().unwrap_or("none");
    tracing::debug!(dest = %dest.display(), typ, "mount");
    if is_bind(mnt) {
        let source = mnt.source().clone().unwrap_or_default();
        let meta = std::fs::metadata(&source).map_err(|e| RootfsError::Mount {
            dest: dest.clone(),
            message: format!("bind source {}: {e}", source.display()),
        })?;
        let target = create_in_root(root, dest, meta.is_dir())?;
        let tpath = fd_path(target.as_fd());
        let rec = opts.flags & m::MS_REC;
        mount(
            Some(&source.to_string_lossy()),
            &tpath,
            None,
            m::MS_BIND | rec,
            None,
        )?;
        let extra = opts.flags & !(m::MS_BIND | m::MS_REC | m::MS_REMOUNT);
        // A bind mount takes its flags only from a remount; reopen the target, now the new
        // mount's root, so the remount acts on it.
        let target = open_in_root(root, dest, OFlags::PATH).map_err(io("open", dest))?;
        let tpath = fd_path(target.as_fd());
        if extra != 0 {
            remount_bind(&tpath, extra)?;
        }
        finish_mount(&tpath, &opts, target.as_fd())?;
        return Ok(());
    }
    if typ == "cgroup" || (typ == "cgroup2" && !ctx.hierarchies.iter().any(|h| h.v2)) {
        return mount_cgroups(ctx, root, dest, &opts);
    }
    let target = create_in_root(root, dest, true)?;
    let tpath = fd_path(target.as_fd());
    let source = mnt
        .source()
        .as_ref()
        .map(|s| s.to_string_lossy().into_owned());
    let data = (!opts.data.is_empty()).then_some(opts.data.as_str());
    let flags = opts.flags & !m::MS_REMOUNT;
    mount(
        source.as_deref().or(Some(typ)),
        &tpath,
        Some(typ),
        flags,
        data,
    )
    .map_err(|e| RootfsError::Mount {
        dest: dest.clone(),
        message: format!("mount {typ}: {}", e.source),
    })?;
    let target = open_in_root(root, dest, OFlags::PATH).map_err(io("open", dest))?;
    finish_mount(&fd_path(target.as_fd()), &opts, target.as_fd())
}

/// A bind mount's flags come from a remount. The kernel refuses to clear flags that are
/// locked on the source (in a user namespace), so those are kept.
fn remount_bind(target: &Path, flags: libc::c_ulong) -> Result<(), RootfsError> {
    let base = m::MS_BIND | m::MS_REMOUNT;
    match mount(None, target, None, base | flags, None) {
        Err(e) if e.errno() == Some(libc::EPERM) => {
            let st = rustix::fs::statvfs(target).map_err(io("statvfs", target))?;
            let locked = st.f_flag.bits() as libc::c_ulong
                & (m::MS_RDONLY
                    | m::MS_NOSUID
                    | m::MS_NODEV
                    | m::MS_NOEXEC
                    | m::MS_NOATIME
                    | m::MS_NODIRATIME);
            mount(None, target, None, base | flags | locked, None)?;
            Ok(())
        }
        r => Ok(r?),
    }
}

fn finish_mount(target: &Path, opts: &MountOptions, fd: BorrowedFd<'_>) -> Result<(), RootfsError> {
    for &p in &opts.propagation {
        mount(None, target, None, p, None)?;
    }
    if opts.rec_set != 0 || opts.rec_clr != 0 {
        m::mount_setattr_recursive(fd, Path::new(""), opts.rec_set, opts.rec_clr, 0)?;
    }
    Ok(())
}

/// A `cgroup` mount: on a v2 host the unified hierarchy; on v1 and hybrid hosts a tmpfs with
/// one directory per hierarchy, as the host has it. In a new cgroup namespace each hierarchy
/// is mounted afresh (the kernel shows the container's cgroup as its root); otherwise the
/// container's own cgroup directory is bind-mounted, so it sees no sibling.
fn mount_cgroups(
    ctx: &Context<'_>,
    root: BorrowedFd<'_>,
    dest: &Path,
    opts: &MountOptions,
) -> Result<(), RootfsError> {
    let flags = opts.flags & !(m::MS_REMOUNT | m::MS_BIND | m::MS_REC);
    let pure_v2 = ctx.hierarchies.len() == 1 && ctx.hierarchies[0].v2;
    let target = create_in_root(root, dest, true)?;
    if pure_v2 {
        mount_hierarchy(ctx, &ctx.hierarchies[0], 0, root, dest, flags)?;
        return Ok(());
    }
    mount(
        Some("tmpfs"),
        &fd_path(target.as_fd()),
        Some("tmpfs"),
        flags & !m::MS_RDONLY,
        Some("mode=755"),
    )?;
    for (i, h) in ctx.hierarchies.iter().enumerate() {
        let name = h
            .mountpoint
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("unified"));
        let sub = create_in_root(root, &dest.join(&name), true)?;
        drop(sub);
        mount_hierarchy(ctx, h, i, root, &dest.join(&name), flags)?;
    }
    // Co-mounted controllers (cpu,cpuacct) are also reachable by each name, as on the host
    // and as runc lays them out: cpu -> cpu,cpuacct.
    let dir = open_in_root(root, dest, OFlags::DIRECTORY).map_err(io("open", dest))?;
    for h in ctx.hierarchies {
        let Some(name) = h
            .mountpoint
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
        else {
            continue;
        };
        if !name.contains(',') {
            continue;
        }
        for link in name.split(',') {
            match rustix::fs::symlinkat(name.as_str(), &dir, link) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(io("symlink", &dest.join(link))(e)),
            }
        }
    }
    drop(dir);
    if flags & m::MS_RDONLY != 0 {
        let target = open_in_root(root, dest, OFlags::PATH).map_err(io("open", dest))?;
        mount(
            None,
            &fd_path(target.as_fd()),
            None,
            m::MS_REMOUNT | flags,
            Some("mode=755"),
        )?;
    }
    let target = open_in_root(root, dest, OFlags::PATH).map_err(io("open", dest))?;
    finish_mount(&fd_path(target.as_fd()), opts, target.as_fd())
}

fn mount_hierarchy(
    ctx: &Context<'_>,
    h: &Hierarchy,
    i: usize,
    root: BorrowedFd<'_>,
    dest: &Path,
    flags: libc::c_ulong,
) -> Result<(), RootfsError> {
    let fd = open_in_root(root, dest, OFlags::PATH).map_err(io("open", dest))?;
    let target = &fd_path(fd.as_fd());
    if ctx.new_cgroupns {
        let (typ, data) = if h.v2 {
            ("cgroup2", String::new())
        } else {
            ("cgroup", h.controllers.join(","))
        };
        let data = (!data.is_empty()).then_some(data.as_str());
        mount(Some(typ), target, Some(typ), flags, data)?;
    } else if let Some(dir) = ctx.placement.dirs.get(i) {
        mount(Some(&dir.to_string_lossy()), target, None, m::MS_BIND, None)?;
        // The remount acts on the new mount: reopen its root.
        let fd = open_in_root(root, dest, OFlags::PATH).map_err(io("open", dest))?;
        remount_bind(&fd_path(fd.as_fd()), flags)?;
    }
    Ok(())
}

/// The devices every container gets (runtime-spec config-linux.md "Default Devices").
const DEFAULT_DEVICES: [(&str, u32, u32); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

fn default_devices(root: BorrowedFd<'_>, in_userns: bool) -> Result<(), RootfsError> {
    for (path, major, minor) in DEFAULT_DEVICES {
        make_node(
            root,
            Path::new(path),
            rustix::fs::FileType::CharacterDevice,
            major,
            minor,
            0o666,
            0,
            0,
            in_userns,
        )?;
    }
    Ok(())
}

fn create_device(
    root: BorrowedFd<'_>,
    d: &LinuxDevice,
    in_userns: bool,
) -> Result<(), RootfsError> {
    use rustix::fs::FileType;
    let ft = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => FileType::CharacterDevice,
        LinuxDeviceType::B => FileType::BlockDevice,
        LinuxDeviceType::P => FileType::Fifo,
        LinuxDeviceType::A => {
            return Err(RootfsError::Unsafe(format!(
                "device {}: type a",
                d.path().display()
            )))
        }
    };
    make_node(
        root,
        d.path(),
        ft,
        d.major() as u32,
        d.minor() as u32,
        d.file_mode().unwrap_or(0o666),
        d.uid().unwrap_or(0),
        d.gid().unwrap_or(0),
        in_userns,
    )
}

/// mknod(2) in the rootfs; inside a user namespace, where mknod is refused, the host's node
/// is bind-mounted onto an empty file instead (as runc does).
#[allow(clippy::too_many_arguments)]
fn make_node(
    root: BorrowedFd<'_>,
    path: &Path,
    ft: rustix::fs::FileType,
    major: u32,
    minor: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    in_userns: bool,
) -> Result<(), RootfsError> {
    let parent_path = path.parent().unwrap_or(Path::new("/"));
    let name = path
        .file_name()
        .ok_or_else(|| RootfsError::Unsafe(format!("device path {}", path.display())))?;
    let parent = create_in_root(root, parent_path, true)?;
    let parent = rustix::fs::openat(
        parent.as_fd(),
        ".",
        OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io("open", parent_path))?;
    if in_userns {
        let target = create_in_root(root, path, false)?;
        mount(
            Some(&path.to_string_lossy()),
            &fd_path(target.as_fd()),
            None,
            m::MS_BIND,
            None,
        )?;
        return Ok(());
    }
    // An existing node (from the image) is replaced: its numbers may be anything.
    let _ = rustix::fs::unlinkat(parent.as_fd(), name, rustix::fs::AtFlags::empty());
    rustix::fs::mknodat(
        parent.as_fd(),
        name,
        ft,
        Mode::from_raw_mode(mode & 0o7777),
        rustix::fs::makedev(major, minor),
    )
    .map_err(io("mknod", path))?;
    // mknod obeys the umask; the config's mode is what the container must see.
    rustix::fs::chmodat(
        parent.as_fd(),
        name,
        Mode::from_raw_mode(mode & 0o7777),
        rustix::fs::AtFlags::empty(),
    )
    .map_err(io("chmod", path))?;
    rustix::fs::chownat(
        parent.as_fd(),
        name,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(io("chown", path))?;
    Ok(())
}

fn dev_symlinks(root: BorrowedFd<'_>) -> Result<(), RootfsError> {
    let dev = open_in_root(root, Path::new("/dev"), OFlags::DIRECTORY)
        .map_err(io("open", Path::new("/dev")))?;
    for (target, name) in [
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("pts/ptmx", "ptmx"),
    ] {
        let _ = rustix::fs::unlinkat(dev.as_fd(), name, rustix::fs::AtFlags::empty());
        rustix::fs::symlinkat(target, dev.as_fd(), name)
            .map_err(io("symlink", &Path::new("/dev").join(name)))?;
    }
    Ok(())
}

/// Makes the prepared rootfs the root: pivot_root, or with `no_pivot` (a ramfs root, where
/// pivot_root is refused) a move of the rootfs onto `/` and chroot.
pub fn switch_root(
    rootfs: BorrowedFd<'_>,
    rootfs_path: &Path,
    no_pivot: bool,
) -> Result<(), RootfsError> {
    rustix::process::fchdir(rootfs).map_err(io("chdir", rootfs_path))?;
    if no_pivot {
        mount(Some("."), Path::new("/"), None, m::MS_MOVE, None)?;
        m::chroot(Path::new("."))?;
    } else {
        // pivot_root(".", ".") stacks the old root on top of the new one at "/"; it is then
        // unmounted from under us, with no directory needed to hold it.
        m::pivot_root(Path::new("."), Path::new("."))?;
        // Make oldroot rslave so our unmounts don't propagate to the host.
        mount(None, Path::new("."), None, m::MS_SLAVE | m::MS_REC, None)?;
        m::umount2(Path::new("."), m::MNT_DETACH)?;
    }
    rustix::process::chdir("/").map_err(io("chdir", Path::new("/")))?;
    Ok(())
}

/// After the switch: sysctls, masked and read-only paths, a read-only root.
pub fn finish(spec: &Spec) -> Result<(), RootfsError> {
    let linux = spec.linux().as_ref();
    if let Some(sysctl) = linux
        .and_then(|l| l.sysctl().as_ref())
        .filter(|s| !s.is_empty())
    {
        // Through a private procfs: a mount on /proc/sys/... cannot redirect the write.
        let proc = crate::procfs::Procfs::open()
            .map_err(|e| RootfsError::Unsafe(format!("linux.sysctl: {e}")))?;
        let mut keys: Vec<_> = sysctl.iter().collect();
        keys.sort();
        for (k, v) in keys {
            if k.contains("..") || k.contains('/') || k.is_empty() {
                return Err(RootfsError::Unsafe(format!("linux.sysctl: bad key {k:?}")));
            }
            let p = PathBuf::from("sys").join(k.replace('.', "/"));
            proc.write(&p, v)
                .map_err(|e| RootfsError::Unsafe(format!("linux.sysctl.{k}: {e}")))?;
        }
    }
    let root = rustix::fs::open(
        "/",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io("open", Path::new("/")))?;
    // Read-only paths first, as runc does.
    let readonly = linux.and_then(|l| l.readonly_paths().as_ref());
    for p in readonly.into_iter().flatten() {
        readonly_path(root.as_fd(), Path::new(p))?;
    }
    let masked = linux.and_then(|l| l.masked_paths().as_ref());
    for p in masked.into_iter().flatten() {
        mask_path(root.as_fd(), Path::new(p))?;
    }
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        remount_bind(Path::new("/"), m::MS_RDONLY)?;
    }
    Ok(())
}

/// Hides a path: a read-only empty tmpfs over a directory, /dev/null over anything else.
fn mask_path(root: BorrowedFd<'_>, path: &Path) -> Result<(), RootfsError> {
    let target = match open_in_root(root, path, OFlags::PATH) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(io("open", path)(e)),
    };
    let st = rustix::fs::fstat(&target).map_err(io("stat", path))?;
    let tpath = fd_path(target.as_fd());
    if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory {
        mount(Some("tmpfs"), &tpath, Some("tmpfs"), m::MS_RDONLY, None)?;
        return Ok(());
    }
    // CVE-2025-31133: the container may have replaced /dev/null with a symlink or another
    // file; bind-mount only a real null device (char 1:3), opened without following links.
    let null = open_in_root(
        root,
        Path::new("/dev/null"),
        OFlags::PATH | OFlags::NOFOLLOW,
    )
    .map_err(io("open", Path::new("/dev/null")))?;
    let nst = rustix::fs::fstat(&null).map_err(io("stat", Path::new("/dev/null")))?;
    let is_null = rustix::fs::FileType::from_raw_mode(nst.st_mode)
        == rustix::fs::FileType::CharacterDevice
        && rustix::fs::major(nst.st_rdev) == 1
        && rustix::fs::minor(nst.st_rdev) == 3;
    if !is_null {
        return Err(RootfsError::Unsafe(format!(
            "mask {}: /dev/null in the container is not the null device",
            path.display()
        )));
    }
    mount(
        Some(&fd_path(null.as_fd()).to_string_lossy()),
        &tpath,
        None,
        m::MS_BIND,
        None,
    )?;
    Ok(())
}

/// Makes a path read-only: bind it onto itself, then remount the bind read-only.
fn readonly_path(root: BorrowedFd<'_>, path: &Path) -> Result<(), RootfsError> {
    let target = match open_in_root(root, path, OFlags::PATH) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(io("open", path)(e)),
    };
    let tpath = fd_path(target.as_fd());
    mount(
        Some(&tpath.to_string_lossy()),
        &tpath,
        None,
        m::MS_BIND | m::MS_REC,
        None,
    )?;
    let target = open_in_root(root, path, OFlags::PATH).map_err(io("open", path))?;
    let tpath = fd_path(target.as_fd());
    // A bind remount replaces every flag: keep the ones the mount has (runc's readonlyPath).
    let st = rustix::fs::statvfs(&tpath).map_err(io("statvfs", path))?;
    let keep = st.f_flag.bits() as libc::c_ulong & (m::MS_NOSUID | m::MS_NODEV | m::MS_NOEXEC);
    remount_bind(&tpath, m::MS_RDONLY | keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(o: &[&str]) -> MountOptions {
        parse_options(&o.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_and_data() {
        let o = opts(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
        assert_eq!(o.flags, m::MS_NOSUID | m::MS_STRICTATIME);
        assert_eq!(o.data, "mode=755,size=65536k");
        let o = opts(&["ro", "rw", "rbind", "rprivate", "rro"]);
        assert_eq!(o.flags, m::MS_BIND | m::MS_REC);
        assert_eq!(o.propagation, vec![m::MS_PRIVATE | m::MS_REC]);
        assert_eq!(o.rec_set, m::MOUNT_ATTR_RDONLY);
    }

    #[test]
    fn relative_paths_stay_inside() {
        assert_eq!(relative(Path::new("/dev/pts")), Path::new("dev/pts"));
        assert_eq!(relative(Path::new("/../../etc")), Path::new("etc"));
    }

    #[test]
    fn create_in_root_keeps_symlinks_inside() {
        let dir = std::env::temp_dir().join(format!("berth-rootfs-{}", std::process::id()));
        let outside = std::env::temp_dir().join(format!("berth-outside-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        // A symlink that points at an absolute host path must resolve inside the root.
        std::os::unix::fs::symlink(&outside, dir.join("evil")).unwrap();
        let root = rustix::fs::open(&dir, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        create_in_root(root.as_fd(), Path::new("/evil/x/file"), false).unwrap();
        assert!(!outside.join("x").exists(), "created outside the root");
        assert!(dir
            .join(outside.strip_prefix("/").unwrap())
            .join("x/file")
            .exists());
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&outside).unwrap();
    }
}
