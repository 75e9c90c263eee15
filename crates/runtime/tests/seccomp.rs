//! seccomp from the inside: a blocked syscall returns the configured errno, a killed
//! process shows SIGSYS, argument conditions pick the calls they name.

mod common;
use common::*;
use serde_json::json;

fn with_filter(script: &str, syscalls: serde_json::Value, nnp: bool) -> Bundle {
    let mut b = Bundle::sh(script);
    b.edit(|c| {
        c["process"]["noNewPrivileges"] = json!(nnp);
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": syscalls
        });
    });
    b
}

#[test]
fn errno_action_with_errno_ret() {
    let b = with_filter(
        "mkdir /tmp/x 2>&1; echo rc=$?",
        json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]),
        true,
    );
    let out = b.run_ok("sc-errno");
    assert!(
        out.contains("Permission denied") && out.contains("rc=1"),
        "{out}"
    );
    assert!(!b.rootfs().join("tmp/x").exists());
}

#[test]
fn kill_action_shows_sigsys() {
    // busybox runs `uname` inside the shell itself: the shell, pid 1, is killed.
    let b = with_filter(
        "echo before; uname; echo after",
        json!([{"names": ["uname"], "action": "SCMP_ACT_KILL_PROCESS"}]),
        false,
    );
    let (out, _, code) = b.run("sc-kill");
    assert_eq!(code, 159, "128 + SIGSYS (31)");
    assert!(!out.contains("after"), "{out}");
}

#[test]
fn argument_conditions() {
    // kill(pid, 0) is refused; kill(pid, SIGCONT) is not.
    let b = with_filter(
        "kill -0 $$ 2>/dev/null; echo zero=$?; kill -CONT $$; echo cont=$?",
        json!([{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]}]),
        true,
    );
    assert_eq!(
        b.run_ok("sc-args").lines().collect::<Vec<_>>(),
        ["zero=1", "cont=0"]
    );
}

#[test]
fn exec_is_held_to_the_filter_too() {
    let b = with_filter(
        "sleep 100",
        json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]),
        true,
    );
    b.run_detached("sc-exec");
    let out = b.runtime(&[
        "exec",
        "sc-exec",
        "sh",
        "-c",
        "mkdir /tmp/y 2>&1; echo rc=$?",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Operation not permitted") && text.contains("rc=1"),
        "{text}"
    );
}

#[test]
fn a_notify_listener_answers_for_the_kernel() {
    use std::os::fd::AsFd;
    let mut b = with_filter(
        "mkdir /tmp/n; echo rc=$?; test -d /tmp/n && echo exists || echo faked",
        json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]),
        true,
    );
    let sock = b.tmp.path().join("listener.sock");
    b.edit(|c| {
        c["linux"]["seccomp"]["listenerPath"] = json!(sock);
        c["linux"]["seccomp"]["listenerMetadata"] = json!("from-the-test");
    });
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    // The listener: takes the notification fd, then fakes success for every mkdir.
    std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let (fd, payload) = berth_sys::console::recv_fd(conn.as_fd()).unwrap();
        tx.send(payload).unwrap();
        while let Ok(n) = berth_sys::process::seccomp_notif_recv(fd.as_fd()) {
            tx.send(format!("syscall {}", n.nr)).unwrap();
            let _ = berth_sys::process::seccomp_notif_send(fd.as_fd(), n.id, 0, 0);
        }
    });
    let out = b.run_ok("notify");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["rc=0", "faked"],
        "the listener answered mkdir: {out}"
    );
    let wait = std::time::Duration::from_secs(5);
    let payload: serde_json::Value = serde_json::from_str(&rx.recv_timeout(wait).unwrap()).unwrap();
    assert_eq!(payload["fds"], json!(["seccompFd"]));
    assert_eq!(payload["metadata"], "from-the-test");
    assert_eq!(payload["state"]["id"], "notify");
    assert!(payload["pid"].as_i64().unwrap() > 1);
    let first = rx.recv_timeout(wait).unwrap();
    let mkdirs = [
        format!("syscall {}", libc::SYS_mkdir),
        format!("syscall {}", libc::SYS_mkdirat),
    ];
    assert!(mkdirs.contains(&first), "{first}");
}

#[test]
fn a_bad_profile_is_refused_before_anything_exists() {
    let b = with_filter(
        "true",
        json!([{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]),
        true,
    );
    let out = b.runtime(&["create", "sc-bad"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("linux.seccomp") && err.contains("listenerPath"),
        "{err}"
    );
    assert_nothing_left(&b, "sc-bad");
}

#[test]
fn the_compiled_filter_is_cached_and_still_enforced() {
    let b = with_filter(
        "mkdir /tmp/z 2>/dev/null; echo rc=$?",
        json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]),
        true,
    );
    assert_eq!(b.run_ok("cache1").trim(), "rc=1");
    let cache = b.root().join("@seccomp-cache");
    let files: Vec<_> = std::fs::read_dir(&cache).unwrap().flatten().collect();
    assert_eq!(
        files.len(),
        1,
        "one compiled program in {}",
        cache.display()
    );
    // The second container reads the program back instead of compiling it.
    assert_eq!(b.run_ok("cache2").trim(), "rc=1");
    assert_eq!(
        b.runtime(&["list", "-q"]).stdout,
        b"",
        "the cache is no container"
    );
}

#[test]
fn every_operator() {
    // kill(pid, sig): the rule refuses (EPERM) when `sig OP value`; `kill -N $$` tells which
    // signal numbers got through. SIGCONT (18), SIGWINCH (28) and 0 are harmless to the shell.
    let cases = [
        ("SCMP_CMP_EQ", 18, None, "0 ok 18 no 28 ok"),
        ("SCMP_CMP_NE", 18, None, "0 no 18 ok 28 no"),
        ("SCMP_CMP_LT", 18, None, "0 no 18 ok 28 ok"),
        ("SCMP_CMP_LE", 18, None, "0 no 18 no 28 ok"),
        ("SCMP_CMP_GT", 18, None, "0 ok 18 ok 28 no"),
        ("SCMP_CMP_GE", 18, None, "0 ok 18 no 28 no"),
        // (sig & 0x10) == 0x10: 18 and 28 have the bit, 0 has not.
        ("SCMP_CMP_MASKED_EQ", 16, Some(16), "0 ok 18 no 28 no"),
    ];
    for (op, value, value_two, want) in cases {
        let mut arg = json!({"index": 1, "value": value, "op": op});
        if let Some(v2) = value_two {
            arg["valueTwo"] = json!(v2);
        }
        let b = with_filter(
            "for s in 0 18 28; do kill -$s $$ 2>/dev/null && r=ok || r=no; printf '%s %s ' $s $r; done",
            json!([{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [arg]}]),
            true,
        );
        assert_eq!(b.run_ok("op").trim(), want, "{op}");
    }
}

#[test]
fn every_action() {
    // mkdir(2) under each action: its result is visible to the shell.
    let probe = "mkdir /tmp/a 2>/dev/null; echo rc=$?";
    let run = |action: &str| {
        let b = with_filter(
            probe,
            json!([{"names": ["mkdir", "mkdirat"], "action": action}]),
            true,
        );
        b.run("act")
    };
    assert_eq!(run("SCMP_ACT_ALLOW").0.trim(), "rc=0");
    assert_eq!(run("SCMP_ACT_LOG").0.trim(), "rc=0", "log allows the call");
    assert_eq!(run("SCMP_ACT_ERRNO").0.trim(), "rc=1");
    // Without a tracer, a traced syscall fails (ENOSYS).
    assert_eq!(run("SCMP_ACT_TRACE").0.trim(), "rc=1");
    // mkdir is a forked applet: trap and kill end it with SIGSYS, and the shell reports 159.
    for action in ["SCMP_ACT_TRAP", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL"] {
        assert_eq!(run(action).0.trim(), "rc=159", "{action}");
    }
}
