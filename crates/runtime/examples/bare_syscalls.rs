//! The floor for `berth-runtime run`: only the syscalls that runc's default spec asks for,
//! in a straight line, with nothing parsed, checked, recorded or synchronised. bench/
//! runtime-start.sh times it beside the runtimes ("within 1.5x of the bare syscalls").
//!
//! What it does, as the default config: a cgroup on every v1 hierarchy (and cgroup2), new
//! mount, pid, uts, ipc, net and cgroup namespaces, the default mounts (proc, /dev tmpfs,
//! devpts, shm, mqueue, sysfs, the cgroup tmpfs with one mount per hierarchy), the six device
//! nodes and four /dev symlinks, pivot_root, the masked and read-only paths, hostname,
//! bounding set, capabilities, no_new_privs, RLIMIT_NOFILE, exec; then wait and rmdir.
//! Not a runtime: no error is recovered and nothing is cleaned up after a failure.
//!
//! Usage: bare_syscalls ROOTFS PROGRAM [ARGS...]   (as root)

use std::path::{Path, PathBuf};

use berth_sys::mount::{self as m, mount};
use berth_sys::process::{self as p, Fork};

const MASKED: [&str; 9] = [
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];
const READONLY: [&str; 6] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
    "/proc/asound",
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (rootfs, program) = (PathBuf::from(&args[1]), args[2..].to_vec());
    let hierarchies = berth_runtime::cgroups::hierarchies().unwrap();
    let name = format!("bare-{}", std::process::id());
    let dirs: Vec<PathBuf> = hierarchies
        .iter()
        .map(|h| h.mountpoint.join(&name))
        .collect();
    for (h, d) in hierarchies.iter().zip(&dirs) {
        std::fs::create_dir(d).unwrap();
        if h.controllers.iter().any(|c| c == "cpuset") {
            berth_runtime::cgroups::v1::inherit_cpuset(d).unwrap();
        }
        if h.controllers.iter().any(|c| c == "devices") {
            std::fs::write(d.join("devices.deny"), "a").unwrap();
            for r in [
                "c 1:3 rwm",
                "c 1:5 rwm",
                "c 1:7 rwm",
                "c 1:8 rwm",
                "c 1:9 rwm",
                "c 5:0 rwm",
                "c 5:2 rwm",
                "c 136:* rwm",
            ] {
                std::fs::write(d.join("devices.allow"), r).unwrap();
            }
        }
    }
    p::set_child_subreaper().unwrap();
    match p::fork().unwrap() {
        Fork::Child => {
            // As berth-runtime's init: `0` into each v1 `tasks` moves this one thread without
            // the global threadgroup lock (and its RCU grace period).
            for (h, d) in hierarchies.iter().zip(&dirs) {
                let file = if h.v2 { "cgroup.procs" } else { "tasks" };
                std::fs::write(d.join(file), "0").unwrap();
            }
            p::unshare(
                libc::CLONE_NEWNS
                    | libc::CLONE_NEWPID
                    | libc::CLONE_NEWUTS
                    | libc::CLONE_NEWIPC
                    | libc::CLONE_NEWNET
                    | libc::CLONE_NEWCGROUP,
            )
            .unwrap();
            match p::fork().unwrap() {
                Fork::Child => init(&rootfs, &program, &hierarchies),
                Fork::Parent(_) => p::exit_now(0),
            }
        }
        Fork::Parent(_) => {
            // The middle process, then init.
            let mut status = 0;
            while let Ok(Some((_, ws))) = p::waitpid(-1, false) {
                status = ws.code();
            }
            for d in &dirs {
                let _ = std::fs::remove_dir(d);
            }
            std::process::exit(status);
        }
    }
}

fn init(rootfs: &Path, program: &[String], hierarchies: &[berth_runtime::cgroups::Hierarchy]) -> ! {
    let r = |rel: &str| rootfs.join(rel.trim_start_matches('/'));
    let nse = libc::MS_NOSUID | libc::MS_NOEXEC | libc::MS_NODEV;
    mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )
    .unwrap();
    mount(
        Some(&rootfs.to_string_lossy()),
        rootfs,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )
    .unwrap();
    mount(Some("proc"), &r("/proc"), Some("proc"), nse, None).unwrap();
    mount(
        Some("tmpfs"),
        &r("/dev"),
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )
    .unwrap();
    for d in ["/dev/pts", "/dev/shm", "/dev/mqueue"] {
        std::fs::create_dir(r(d)).unwrap();
    }
    mount(
        Some("devpts"),
        &r("/dev/pts"),
        Some("devpts"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )
    .unwrap();
    mount(
        Some("shm"),
        &r("/dev/shm"),
        Some("tmpfs"),
        nse,
        Some("mode=1777,size=65536k"),
    )
    .unwrap();
    mount(Some("mqueue"), &r("/dev/mqueue"), Some("mqueue"), nse, None).unwrap();
    mount(
        Some("sysfs"),
        &r("/sys"),
        Some("sysfs"),
        nse | libc::MS_RDONLY,
        None,
    )
    .unwrap();
    mount(
        Some("tmpfs"),
        &r("/sys/fs/cgroup"),
        Some("tmpfs"),
        nse,
        Some("mode=755"),
    )
    .unwrap();
    for h in hierarchies {
        let name = h.mountpoint.file_name().unwrap();
        let target = r("/sys/fs/cgroup").join(name);
        std::fs::create_dir(&target).unwrap();
        let (typ, data) = if h.v2 {
            ("cgroup2", String::new())
        } else {
            ("cgroup", h.controllers.join(","))
        };
        mount(
            Some(typ),
            &target,
            Some(typ),
            nse | libc::MS_RDONLY,
            (!data.is_empty()).then_some(data.as_str()),
        )
        .unwrap();
    }
    mount(
        None,
        &r("/sys/fs/cgroup"),
        None,
        libc::MS_REMOUNT | nse | libc::MS_RDONLY,
        Some("mode=755"),
    )
    .unwrap();
    for (node, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            r("/dev").join(node),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o666),
            rustix::fs::makedev(major, minor),
        )
        .unwrap();
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(target, r("/dev").join(link)).unwrap();
    }
    std::os::unix::fs::symlink("pts/ptmx", r("/dev/ptmx")).unwrap();
    std::env::set_current_dir(rootfs).unwrap();
    m::pivot_root(Path::new("."), Path::new(".")).unwrap();
    m::umount2(Path::new("."), libc::MNT_DETACH).unwrap();
    std::env::set_current_dir("/").unwrap();
    for path in MASKED {
        let p = Path::new(path);
        if p.is_dir() {
            let _ = mount(Some("tmpfs"), p, Some("tmpfs"), libc::MS_RDONLY, None);
        } else if p.exists() {
            let _ = mount(Some("/dev/null"), p, None, libc::MS_BIND, None);
        }
    }
    for path in READONLY {
        let p = Path::new(path);
        if p.exists() {
            mount(Some(path), p, None, libc::MS_BIND | libc::MS_REC, None).unwrap();
            mount(
                None,
                p,
                None,
                libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | nse,
                None,
            )
            .unwrap();
        }
    }
    p::sethostname("runc").unwrap();
    p::setrlimit(libc::RLIMIT_NOFILE as i32, 1024, 1024).unwrap();
    use caps::Capability::*;
    let keep = [CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE];
    for c in caps::all() {
        if !keep.contains(&c) {
            caps::drop(None, caps::CapSet::Bounding, c).unwrap();
        }
    }
    let set: caps::CapsHashSet = keep.into_iter().collect();
    caps::set(None, caps::CapSet::Inheritable, &caps::CapsHashSet::new()).unwrap();
    caps::set(None, caps::CapSet::Effective, &set).unwrap();
    caps::set(None, caps::CapSet::Permitted, &set).unwrap();
    p::set_no_new_privs().unwrap();
    let env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()];
    let e = p::execve(Path::new(&program[0]), program, &env);
    panic!("{e}");
}
