//! The lifecycle from the outside: create, state, start, kill, delete, run, list.

mod common;
use common::*;

#[test]
fn run_returns_the_exit_status() {
    let b = Bundle::sh("exit 3");
    let (_, err, code) = b.run("exit3");
    assert_eq!(code, 3, "{err}");
    assert_nothing_left(&b, "exit3");
}

#[test]
fn create_start_state_kill_delete() {
    let b = Bundle::sh("echo started > /tmp/started; sleep 100");
    let pid_file = b.tmp.path().join("pid");
    b.create("c1", &["--pid-file", pid_file.to_str().unwrap()]);
    let st = b.state("c1");
    assert_eq!(st["status"], "created");
    let pid = st["pid"].as_i64().unwrap();
    assert_eq!(
        read(&pid_file).trim(),
        pid.to_string(),
        "the pid file holds init's pid"
    );
    assert_eq!(st["bundle"], b.dir().to_string_lossy().as_ref());
    assert_eq!(st["id"], "c1");
    // Created: the user's process has not run.
    assert!(!b.rootfs().join("tmp/started").exists());
    // A container that is not running cannot be deleted without --force... but a created
    // one can (runc does the same); start a second one to check the running case.
    let out = b.runtime(&["start", "c1"]);
    assert!(
        out.status.success(),
        "start: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // start returns once the user's program has replaced init: pid 1 is busybox now, not
    // the runtime, so an `exec` right after `start` joins the container's process.
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(
        exe.ends_with("busybox"),
        "after start, init is still {}",
        exe.display()
    );
    wait_for("the process to run", || {
        b.rootfs().join("tmp/started").exists()
    });
    assert_eq!(b.state("c1")["status"], "running");
    let out = b.runtime(&["start", "c1"]);
    assert!(
        !out.status.success(),
        "a running container cannot start again"
    );
    let out = b.runtime(&["delete", "c1"]);
    assert!(
        !out.status.success(),
        "delete of a running container needs --force"
    );
    let out = b.runtime(&["kill", "c1", "KILL"]);
    assert!(
        out.status.success(),
        "kill: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("the container to stop", || {
        b.state("c1")["status"] == "stopped"
    });
    let out = b.runtime(&["delete", "c1"]);
    assert!(
        out.status.success(),
        "delete: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_nothing_left(&b, "c1");
    let out = b.runtime(&["delete", "--force", "c1"]);
    assert!(
        out.status.success(),
        "delete --force of a missing container succeeds"
    );
    let out = b.runtime(&["delete", "c1"]);
    assert!(
        !out.status.success(),
        "delete of a missing container fails without --force"
    );
}

#[test]
fn killed_with_sigkill_exits_137() {
    let b = Bundle::sh("sleep 100");
    let mut child = b.cmd(&["run", "k137"]).spawn().unwrap();
    wait_for("running", || {
        let out = b.runtime(&["state", "k137"]);
        out.status.success()
            && serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["status"]
                == "running"
    });
    let out = b.runtime(&["kill", "k137", "9"]);
    assert!(out.status.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(137));
    assert_nothing_left(&b, "k137");
}

#[test]
fn run_forwards_signals() {
    let b = Bundle::sh(
        "trap 'echo got-term; exit 7' TERM; echo ready > /tmp/ready; while :; do sleep 0.1; done",
    );
    let child = b
        .cmd(&["run", "fwd"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the trap", || b.rootfs().join("tmp/ready").exists());
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "got-term");
}

#[test]
fn list_and_detached_run() {
    let b = Bundle::sh("sleep 100");
    b.run_detached("l1");
    let out = b.runtime(&["list", "-q"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "l1");
    let out = b.runtime(&["list", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["status"], "running");
    let out = b.runtime(&["list"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ID"));
    let out = b.runtime(&["delete", "--force", "l1"]);
    assert!(out.status.success());
    assert_nothing_left(&b, "l1");
}

#[test]
fn state_notices_a_dead_process() {
    let b = Bundle::sh("exit 0");
    b.run_detached("dead");
    wait_for("stopped", || b.state("dead")["status"] == "stopped");
    let out = b.runtime(&["delete", "dead"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn version_and_features() {
    let out = std::process::Command::new(RUNTIME)
        .arg("--version")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("berth-runtime version "));
    assert!(text.contains("\ncommit: ") && text.contains("\nspec: "));
    let out = std::process::Command::new(RUNTIME)
        .arg("features")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n == "time"));
}

#[test]
fn systemd_cgroup_is_refused() {
    let out = std::process::Command::new(RUNTIME)
        .args(["--systemd-cgroup", "list"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("systemd"));
}

#[test]
fn json_log_for_containerd() {
    let b = Bundle::sh("true");
    let log = b.tmp.path().join("log.json");
    let out = b.runtime(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "start",
        "nope",
    ]);
    assert!(!out.status.success());
    let text = read(&log);
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "error");
    assert!(last["msg"].as_str().unwrap().contains("does not exist"));
    assert!(last["time"].as_str().unwrap().ends_with('Z'));
}

/// Many containers at once: each run's messages arrive in order (stage 1's InitPid before
/// init's first word, which once raced when init stopped waiting for the parent) and each
/// finds its own state.
#[test]
fn parallel_runs_keep_their_order() {
    std::thread::scope(|s| {
        for t in 0..4 {
            s.spawn(move || {
                // A bundle (and so a cgroup) per thread: runs in one cgroup would kill each
                // other's processes on delete.
                let b = Bundle::sh("true");
                for i in 0..10 {
                    let id = format!("p{t}-{i}");
                    let (_, err, code) = b.run(&id);
                    assert_eq!(code, 0, "{id}: {err}");
                }
            });
        }
    });
}
