//! What a process sees inside the container: namespaces, mounts, ids, capabilities, limits.

mod common;
use common::*;
use serde_json::json;

#[test]
fn default_config_from_the_inside() {
    let b = Bundle::sh(
        "echo pid=$$; hostname; id -u; id -g; grep CapEff /proc/self/status; \
         grep CapBnd /proc/self/status; grep NoNewPrivs /proc/self/status; ulimit -n; \
         ls /sys/class/net; ls /proc/self/fd | tr '\\n' ' '; echo",
    );
    let out = b.run_ok("inside");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "pid=1", "{out}");
    assert_eq!(lines[1], "runc");
    assert_eq!(lines[2], "0");
    assert_eq!(lines[3], "0");
    // CAP_KILL (5), CAP_NET_BIND_SERVICE (10), CAP_AUDIT_WRITE (29).
    assert_eq!(lines[4], "CapEff:\t0000000020000420");
    assert_eq!(lines[5], "CapBnd:\t0000000020000420");
    assert_eq!(lines[6], "NoNewPrivs:\t1");
    assert_eq!(lines[7], "1024");
    assert_eq!(lines[8], "lo", "a new network namespace holds only lo");
    // 0, 1, 2 and the descriptor ls uses to read the directory: nothing of the runtime.
    assert_eq!(
        lines[9].split_whitespace().count(),
        4,
        "leaked descriptors: {}",
        lines[9]
    );
}

#[test]
fn masked_and_readonly_paths() {
    let mut b = Bundle::sh(
        "echo timer_list=$(wc -c < /proc/timer_list); stat -c %t:%T /proc/timer_list; echo firmware=$(ls /sys/firmware | wc -l); \
         (echo 1 > /proc/sys/kernel/domainname) 2>/dev/null && echo sys-writable || echo sys-ro; \
         (echo h > /proc/sysrq-trigger) 2>/dev/null && echo sysrq-writable || echo sysrq-ro; \
         touch /newfile 2>/dev/null && echo root-writable || echo root-ro; \
         touch /sys/x 2>/dev/null && echo sysfs-writable || echo sysfs-ro",
    );
    b.edit(|c| c["root"]["readonly"] = json!(true));
    let out = b.run_ok("masked");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "timer_list=0",
            "1:3",
            "firmware=0",
            "sys-ro",
            "sysrq-ro",
            "root-ro",
            "sysfs-ro"
        ],
        "{out}"
    );
}

#[test]
fn mounts_in_config_order_with_options() {
    let mut b = Bundle::sh("grep -E ' /(data|scratch|ro-bind) ' /proc/self/mountinfo | cut -d' ' -f5,6,9; cat /ro-bind/hello");
    let host = b.tmp.path().join("host-dir");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("hello"), "from the host\n").unwrap();
    b.edit(|c| {
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.push(json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "size=1m"]}));
        mounts.push(json!({"destination": "/ro-bind", "type": "bind", "source": host, "options": ["rbind", "ro"]}));
        mounts.push(json!({"destination": "/data", "type": "bind", "source": host, "options": ["bind", "rprivate"]}));
    });
    let out = b.run_ok("mounts");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "/scratch rw,nosuid,nodev,relatime tmpfs", "{out}");
    assert!(lines[1].starts_with("/ro-bind ro,"), "{out}");
    assert!(lines[2].starts_with("/data rw,"), "{out}");
    assert_eq!(lines[3], "from the host");
}

#[test]
fn mount_through_a_symlink_stays_in_the_rootfs() {
    // CVE-2021-30465's shape: the mount destination is a symlink to a host path.
    let mut b =
        Bundle::sh("ls /escape; cat /proc/self/mountinfo | grep -c ' /host-target ' || true");
    let outside = b.tmp.path().join("host-target");
    std::fs::create_dir(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, b.rootfs().join("escape")).unwrap();
    b.edit(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/escape", "type": "tmpfs", "source": "tmpfs"}));
    });
    b.run_ok("symlink");
    // The tmpfs landed inside the rootfs, where the symlink points when resolved in it.
    let inside = b.rootfs().join(outside.strip_prefix("/").unwrap());
    assert!(inside.is_dir(), "the target was created inside the rootfs");
    assert!(
        std::fs::read_dir(&outside).unwrap().next().is_none(),
        "nothing happened on the host"
    );
}

#[test]
fn user_groups_umask_cwd_env() {
    let mut b = Bundle::sh("id; umask; pwd; echo $GREETING; grep CapEff /proc/self/status");
    b.edit(|c| {
        c["process"]["user"] =
            json!({"uid": 1000, "gid": 1000, "additionalGids": [10], "umask": 63});
        c["process"]["cwd"] = json!("/tmp/work");
        c["root"]["readonly"] = json!(false);
        c["process"]["env"]
            .as_array_mut()
            .unwrap()
            .push(json!("GREETING=hi"));
    });
    let out = b.run_ok("user");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0], "uid=1000(user) gid=1000(user) groups=10(wheel)",
        "{out}"
    );
    assert_eq!(lines[1], "0077");
    assert_eq!(lines[2], "/tmp/work");
    assert_eq!(lines[3], "hi");
    // A non-root user keeps only the ambient capabilities, and an ambient capability must be
    // inheritable: the default spec's inheritable set is empty, so none (as with runc).
    assert_eq!(lines[4], "CapEff:\t0000000000000000");
}

#[test]
fn capabilities_all_five_sets() {
    let mut b = Bundle::sh("grep -E '^Cap' /proc/self/status");
    b.edit(|c| {
        c["process"]["capabilities"] = json!({
            "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"],
            "effective": ["CAP_CHOWN"],
            "permitted": ["CAP_CHOWN", "CAP_KILL"],
            "inheritable": ["CAP_KILL"],
            "ambient": ["CAP_KILL"]
        });
        c["process"]["noNewPrivileges"] = json!(false);
    });
    let out = b.run_ok("caps");
    // After exec as root: permitted and effective are recomputed from the bounding set
    // (capabilities(7)); inheritable and ambient stay as set.
    assert!(out.contains("CapInh:\t0000000000000020"), "{out}");
    assert!(out.contains("CapBnd:\t0000000000002021"), "{out}");
    assert!(out.contains("CapAmb:\t0000000000000020"), "{out}");
}

#[test]
fn rlimits_oom_score_and_sysctl() {
    let mut b = Bundle::sh(
        "ulimit -n; ulimit -Hn; cat /proc/self/oom_score_adj; cat /proc/sys/net/ipv4/ip_forward",
    );
    b.edit(|c| {
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 4096}]);
        c["process"]["oomScoreAdj"] = json!(500);
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    });
    let out = b.run_ok("limits");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["2048", "4096", "500", "1"],
        "{out}"
    );
}

#[test]
fn user_namespace_with_mappings() {
    let mut b = Bundle::sh("cat /proc/self/uid_map; cat /proc/self/gid_map; id -u; touch /tmp/mine; stat -c %u /tmp/mine");
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        // A mount namespace owned by a user namespace cannot mount v1 cgroups or sysfs.
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .retain(|m| m["destination"] != "/sys/fs/cgroup" && m["destination"] != "/sys");
        c["root"]["readonly"] = json!(false);
    });
    // The rootfs must be writable by the mapped root.
    std::process::Command::new("chown")
        .args(["-R", "100000:100000"])
        .arg(b.rootfs())
        .status()
        .unwrap();
    let out = b.run_ok("userns");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["0", "100000", "65536"],
        "{out}"
    );
    assert_eq!(lines[2], "0");
    assert_eq!(lines[3], "0");
    let host_uid = std::os::unix::fs::MetadataExt::uid(
        &std::fs::metadata(b.rootfs().join("tmp/mine")).unwrap(),
    );
    assert_eq!(
        host_uid, 100000,
        "a file made by the container's root belongs to the mapped uid on the host"
    );
}

#[test]
fn time_namespace_offsets() {
    let mut b = Bundle::sh("cut -d. -f1 /proc/uptime");
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "time"}));
        c["linux"]["timeOffsets"] = json!({"boottime": {"secs": 1000000, "nanosecs": 0}});
    });
    let out = b.run_ok("timens");
    let up: u64 = out.trim().parse().unwrap();
    assert!(up >= 1_000_000, "uptime {up} should include the offset");
}

#[test]
fn joins_a_namespace_by_path() {
    let a = Bundle::sh("sleep 100");
    a.run_detached("ns-owner");
    let pid = a.state("ns-owner")["pid"].as_i64().unwrap();
    let want = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    let mut b = Bundle::sh("readlink /proc/self/ns/net");
    b.edit(|c| {
        for ns in c["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "network" {
                ns["path"] = json!(format!("/proc/{pid}/ns/net"));
            }
        }
    });
    let out = b.run_ok("ns-joiner");
    assert_eq!(out.trim(), want.to_string_lossy());
    a.runtime(&["delete", "--force", "ns-owner"]);
}

#[test]
fn devices_config_and_cgroup_rules() {
    let mut b = Bundle::sh(
        "stat -c '%t:%T %a' /dev/fuse; \
         mknod /tmp/mem c 1 1 && (head -c1 /tmp/mem >/dev/null 2>&1 && echo mem-open || echo mem-denied); \
         echo x > /dev/null && echo null-ok",
    );
    b.edit(|c| {
        c["linux"]["devices"] =
            json!([{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 384}]);
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_MKNOD"));
        }
        c["root"]["readonly"] = json!(false);
    });
    let out = b.run_ok("devices");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["a:e5 600", "mem-denied", "null-ok"],
        "{out}"
    );
}

#[test]
fn hostname_domainname_and_readonly_root_off() {
    let mut b = Bundle::sh("hostname; cat /proc/sys/kernel/domainname; touch /rw && echo rw-ok");
    b.edit(|c| {
        c["hostname"] = json!("box");
        c["domainname"] = json!("example.test");
        c["root"]["readonly"] = json!(false);
    });
    assert_eq!(
        b.run_ok("uts").lines().collect::<Vec<_>>(),
        ["box", "example.test", "rw-ok"]
    );
}

#[test]
fn no_pivot_uses_move_and_chroot() {
    let b = Bundle::sh("ls / | head -1; echo ok");
    let out = b.runtime(&["run", "--no-pivot", "nopivot"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
}

#[test]
fn preserve_fds_passes_extra_descriptors() {
    let b = Bundle::sh("cat <&3");
    let secret = b.tmp.path().join("secret");
    std::fs::write(&secret, "passed through fd 3\n").unwrap();
    let script = format!(
        "exec 3<{} && exec {} --root {} run --preserve-fds 1 pfd",
        secret.display(),
        RUNTIME,
        b.root().display()
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .current_dir(b.dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "passed through fd 3\n"
    );
}

#[test]
fn terminal_through_the_console_socket() {
    use std::io::Read;
    use std::os::fd::AsFd;
    let mut b = Bundle::sh("tty; stty size; stat -c %t /dev/console; echo on-the-pty");
    b.edit(|c| {
        c["process"]["terminal"] = json!(true);
        c["process"]["consoleSize"] = json!({"height": 30, "width": 100});
    });
    let sock_path = b.tmp.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    b.create("tty", &["--console-socket", sock_path.to_str().unwrap()]);
    let (conn, _) = listener.accept().unwrap();
    let (master, name) = berth_sys::console::recv_fd(conn.as_fd()).unwrap();
    assert!(name.starts_with("/dev/pts/"), "{name}");
    let out = b.runtime(&["start", "tty"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut text = String::new();
    let mut f = std::fs::File::from(master);
    let mut buf = [0u8; 4096];
    // The pty reports EIO once the slave side is closed by the exiting process.
    while let Ok(n) = f.read(&mut buf) {
        if n == 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    // stdio is the pty slave, also bind-mounted on /dev/console (major 136 = 0x88).
    assert_eq!(
        lines,
        [name.as_str(), "30 100", "88", "on-the-pty"],
        "{text:?}"
    );
    wait_for("stopped", || b.state("tty")["status"] == "stopped");
    b.runtime(&["delete", "tty"]);
}

#[test]
fn a_non_root_user_can_reopen_its_stdio() {
    // Opening /proc/self/fd/1 reopens the file itself: that needs permission on it.
    let mut b = Bundle::sh(": >> /proc/self/fd/1 && : >> /proc/self/fd/2 && echo ok");
    b.edit(|c| c["process"]["user"] = json!({"uid": 1000, "gid": 1000}));
    assert_eq!(b.run_ok("stdio").trim(), "ok");
}

#[test]
fn foreground_run_with_a_terminal_and_no_console_socket() {
    use std::io::Write;
    // As `runc run` with runc's default spec: the runtime holds the pty and copies stdio.
    let mut b = Bundle::sh("tty; read x; echo got $x; exit 6");
    b.edit(|c| c["process"]["terminal"] = json!(true));
    let mut child = b
        .cmd(&["run", "fg-tty"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(6), "{text}");
    assert!(text.contains("/dev/pts/0"), "{text}");
    assert!(text.contains("got hello"), "{text}");
    assert_nothing_left(&b, "fg-tty");
}
