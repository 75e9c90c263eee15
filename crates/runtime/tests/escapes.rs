//! Known container escapes, each attempted and shown to fail.

mod common;
use common::*;
use serde_json::json;

#[test]
fn cve_2019_5736_runtime_binary_unreachable_from_a_shared_pid_namespace() {
    // A is created: its pid 1 is still the runtime binary, waiting to exec.
    let a = Bundle::sh("true");
    a.create("victim", &[]);
    let pid = a.state("victim")["pid"].as_i64().unwrap();
    // B shares A's pid namespace and tries to open A's /proc/1/exe (the runtime binary).
    let mut b = Bundle::sh("cat /proc/1/exe > /dev/null 2>&1 && echo OPENED || echo denied; readlink /proc/1/exe || echo no-link");
    b.edit(|c| {
        for ns in c["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "pid" {
                ns["path"] = json!(format!("/proc/{pid}/ns/pid"));
            }
        }
    });
    let out = b.run_ok("attacker");
    assert!(
        out.starts_with("denied"),
        "the runtime binary was reachable: {out}"
    );
    assert!(out.contains("no-link"), "{out}");
    a.runtime(&["delete", "--force", "victim"]);
}

#[test]
fn cve_2025_52565_planted_dev_console_symlink() {
    // /dev comes from the image (no tmpfs over it) with /dev/console pointing into /proc.
    let mut b = Bundle::sh("true");
    b.edit(|c| {
        c["process"]["terminal"] = json!(true);
        c["mounts"].as_array_mut().unwrap().retain(|m| m["destination"] != "/dev" && m["destination"] != "/dev/pts" && m["destination"] != "/dev/shm" && m["destination"] != "/dev/mqueue");
        c["mounts"].as_array_mut().unwrap().push(json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["newinstance", "ptmxmode=0666"]}));
    });
    std::os::unix::fs::symlink(
        "/proc/sys/kernel/core_pattern",
        b.rootfs().join("dev/console"),
    )
    .unwrap();
    let sock = b.tmp.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    listener.set_nonblocking(true).unwrap();
    let out = b.runtime(&[
        "create",
        "--console-socket",
        sock.to_str().unwrap(),
        "console",
    ]);
    assert!(
        !out.status.success(),
        "create must refuse the planted /dev/console"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/dev/console"), "{err}");
    assert_nothing_left(&b, "console");
}

#[test]
fn cve_2022_29162_no_inheritable_capabilities_beyond_the_config() {
    let mut b = Bundle::sh("grep CapInh /proc/self/status");
    b.edit(|c| c["process"]["capabilities"]["inheritable"] = json!([]));
    assert_eq!(b.run_ok("inh").trim(), "CapInh:\t0000000000000000");
}

#[test]
fn writes_to_proc_and_sys_are_refused_when_masked_or_read_only() {
    let mut b = Bundle::sh(
        "for f in /proc/sysrq-trigger /proc/sys/kernel/core_pattern /sys/kernel/uevent_helper; do \
         (echo x > $f) 2>/dev/null && echo \"WROTE $f\" || echo refused; done",
    );
    b.edit(|c| c["root"]["readonly"] = json!(true));
    let out = b.run_ok("procsys");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["refused", "refused", "refused"],
        "{out}"
    );
}

#[test]
fn cve_2025_31133_dev_null_replaced_by_a_symlink() {
    // /dev from the image (no tmpfs over it), its null a symlink to a host-wide /proc file:
    // masking with it would bind that file over the masked paths. The runtime makes its own
    // null node, so masks stay empty and nothing else is touched.
    let mut b = Bundle::sh("stat -c %F:%t:%T /dev/null; wc -c < /proc/timer_list");
    b.edit(|c| {
        c["mounts"].as_array_mut().unwrap().retain(|m| {
            m["destination"] != "/dev"
                && m["destination"] != "/dev/shm"
                && m["destination"] != "/dev/mqueue"
        });
        c["root"]["readonly"] = json!(false);
    });
    std::os::unix::fs::symlink("/proc/sys/kernel/core_pattern", b.rootfs().join("dev/null"))
        .unwrap();
    let before = read("/proc/sys/kernel/core_pattern");
    let out = b.run_ok("devnull");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["character special file:1:3", "0"],
        "{out}"
    );
    assert_eq!(read("/proc/sys/kernel/core_pattern"), before);
}

/// CVE-2025-52881: a mount in the container's /proc turns the runtime's own /proc writes into
/// writes somewhere else. Here config mounts sit on the sysctl file and on init's
/// oom_score_adj. The runtime writes through a private procfs instance that has no mounts on
/// it, so the values reach the kernel and no decoy is written. (Where the kernel gives no
/// private instance, the runtime refuses the crossing and create fails: also safe.)
#[test]
fn cve_2025_52881_proc_writes_not_redirected_by_mounts() {
    // The domainname that the container's UTS namespace really has.
    let real_domainname = |b: &Bundle, id: &str| {
        let pid = b.state(id)["pid"].as_i64().unwrap().to_string();
        let out = std::process::Command::new("nsenter")
            .args(["-u", "-t", &pid, "cat", "/proc/sys/kernel/domainname"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    // 1. A regular file mounted on the sysctl's /proc/sys file; 2. another procfs file (the
    // fs-type check alone would pass that one: redirected, the write would set the
    // container's hostname).
    for (case, source) in [("file", None), ("proc", Some("/proc/sys/kernel/hostname"))] {
        let mut b = Bundle::sh("hostname");
        let decoy = b.tmp.path().join("decoy");
        std::fs::write(&decoy, "untouched").unwrap();
        b.edit(|c| {
            let src = source.map_or(json!(decoy), |s| json!(s));
            c["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/proc/sys/kernel/domainname", "type": "bind",
                "source": src, "options": ["bind"]
            }));
            c["hostname"] = json!("box");
            c["linux"]["sysctl"] = json!({"kernel.domainname": "pwned"});
        });
        let id = format!("sysctl-{case}");
        b.create(&id, &[]);
        assert_eq!(
            real_domainname(&b, &id),
            "pwned",
            "{case}: the sysctl is set"
        );
        let out = b.runtime(&["start", &id]);
        assert!(out.status.success());
        wait_for("the container to exit", || {
            b.state(&id)["status"] == "stopped"
        });
        assert_eq!(
            std::fs::read_to_string(&decoy).unwrap(),
            "untouched",
            "{case}"
        );
        b.runtime(&["delete", &id]);
        assert_nothing_left(&b, &id);
    }

    // 3. oom_score_adj with a decoy on init's /proc/1/oom_score_adj: the value reaches init
    // (its children inherit it) and the decoy stays as it was.
    let mut b = Bundle::sh("cat /proc/self/oom_score_adj; cat /proc/1/oom_score_adj");
    let decoy = b.tmp.path().join("decoy");
    std::fs::write(&decoy, "untouched").unwrap();
    b.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/proc/1/oom_score_adj", "type": "bind",
            "source": decoy, "options": ["bind"]
        }));
        c["process"]["oomScoreAdj"] = json!(500);
    });
    let out = b.run_ok("oom-adj");
    assert_eq!(out.lines().collect::<Vec<_>>(), ["500", "untouched"]);
    assert_eq!(std::fs::read_to_string(&decoy).unwrap(), "untouched");
}

/// CVE-2021-30465, the race: while containers are created, the host keeps swapping a mount
/// destination between a directory and a symlink that climbs out of the rootfs (renameat2
/// RENAME_EXCHANGE, atomic). Whatever the timing, the tmpfs must land inside the rootfs
/// (seen in the container's own mountinfo) or create must fail cleanly; an escaped mount
/// would sit on a host directory and vanish from the container's view at pivot_root.
#[test]
fn cve_2021_30465_racing_symlink_destination_stays_in_the_rootfs() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let outside = tempfile::Builder::new()
        .prefix("berth-race-host")
        .tempdir()
        .unwrap();
    std::fs::write(outside.path().join("marker"), "host").unwrap();
    let mut b = Bundle::sh("grep berth-race /proc/self/mountinfo | cut -d' ' -f5");
    b.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/race/target", "type": "tmpfs", "source": "berth-race",
            "options": ["size=1m"]
        }));
    });
    let race = b.rootfs().join("race");
    std::fs::create_dir_all(race.join("target")).unwrap();
    let climb = format!("../../../../../../../../..{}", outside.path().display());
    std::os::unix::fs::symlink(&climb, race.join("other")).unwrap();
    let stop = AtomicBool::new(false);
    // Stops the swapping thread even when an assertion fails (the scope joins it first).
    struct Stop<'a>(&'a AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let (mut ran, mut failed, mut swaps) = (0, 0, 0u64);
    std::thread::scope(|s| {
        let flipper = s.spawn(|| {
            let dir = rustix::fs::open(&race, rustix::fs::OFlags::PATH, rustix::fs::Mode::empty())
                .unwrap();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                rustix::fs::renameat_with(
                    &dir,
                    "target",
                    &dir,
                    "other",
                    rustix::fs::RenameFlags::EXCHANGE,
                )
                .unwrap();
                n += 1;
            }
            n
        });
        let _stop = Stop(&stop);
        for i in 0..40 {
            let id = format!("race{i}");
            let (out, err, code) = b.run(&id);
            if code == 0 {
                ran += 1;
                // Seen at all means inside: /race/target, /race/other (the directory we
                // mounted on was renamed after the mount) or the symlink's target resolved
                // in the rootfs (/tmp/berth-race-host...).
                let at = out.trim();
                assert!(
                    at.starts_with("/race/") || at.starts_with("/tmp/berth-race-host"),
                    "run {i}: the tmpfs is not inside the container: {out:?} {err}"
                );
            } else {
                failed += 1;
                assert!(!err.is_empty(), "run {i} failed silently");
            }
            b.runtime(&["delete", "--force", &id]);
            assert_nothing_left(&b, &id);
        }
        stop.store(true, Ordering::Relaxed);
        swaps = flipper.join().unwrap();
    });
    assert!(swaps > 40, "the destination was swapped {swaps} times");
    assert!(ran > 0, "no run succeeded ({failed} failed)");
    let host: Vec<_> = std::fs::read_dir(outside.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        host,
        ["marker"],
        "something was created in the host directory"
    );
    eprintln!("{ran} runs succeeded, {failed} failed cleanly, {swaps} swaps");
}
