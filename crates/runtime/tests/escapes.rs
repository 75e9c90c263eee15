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
