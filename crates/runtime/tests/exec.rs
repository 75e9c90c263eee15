//! exec, pause/resume, update, ps and events on a running container.

mod common;
use common::*;

fn running(cmd: &str) -> Bundle {
    let b = Bundle::sh(cmd);
    b.run_detached("c");
    b
}

fn ok(b: &Bundle, args: &[&str]) -> String {
    let out = b.runtime(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn exec_enters_every_namespace_and_the_cgroup() {
    let b = running("sleep 100");
    let init = b.state("c")["pid"].as_i64().unwrap();
    let out = ok(&b, &["exec", "c", "sh", "-c", "echo $$; hostname; readlink /proc/self/ns/net; cat /proc/1/cmdline; echo; ls /proc/self/fd | wc -l"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_ne!(lines[0], "1", "exec'd process is not init");
    assert_eq!(lines[1], "runc");
    let host_net = std::fs::read_link(format!("/proc/{init}/ns/net")).unwrap();
    assert_eq!(
        lines[2],
        host_net.to_string_lossy(),
        "same network namespace as init"
    );
    assert!(
        lines[3].starts_with("sleep"),
        "pid 1 is the container's init: {}",
        lines[3]
    );
    assert_eq!(
        lines[4], "4",
        "no descriptor of the runtime leaks into exec"
    );
    let procs = read(format!("/proc/{init}/cgroup"));
    assert!(procs.contains("berth-test"), "{procs}");
    // The exec'd process sits in the container's cgroup on every hierarchy: seen through
    // the container's cgroup namespace, each of its lines is the root.
    let mine = ok(&b, &["exec", "c", "cat", "/proc/self/cgroup"]);
    assert!(!mine.is_empty());
    for line in mine.lines() {
        assert!(
            line.ends_with(":/"),
            "exec'd process outside the container's cgroup: {mine}"
        );
    }
    // Exit status, user, env and cwd.
    let out = b.runtime(&["exec", "c", "sh", "-c", "exit 4"]);
    assert_eq!(out.status.code(), Some(4));
    let out = ok(
        &b,
        &[
            "exec",
            "-u",
            "1000:1000",
            "--cwd",
            "/tmp",
            "-e",
            "X=y",
            "c",
            "sh",
            "-c",
            "id -u; pwd; echo $X",
        ],
    );
    assert_eq!(out.lines().collect::<Vec<_>>(), ["1000", "/tmp", "y"]);
    // A missing program is an error, not exit 0.
    let out = b.runtime(&["exec", "c", "no-such-program"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("executable file not found"));
}

#[test]
fn exec_with_a_process_json_detached() {
    let b = running("sleep 100");
    let proc_json = b.tmp.path().join("process.json");
    std::fs::write(
        &proc_json,
        serde_json::to_vec(&serde_json::json!({
            "args": ["sh", "-c", "echo from-process-json > /tmp/pj"], "cwd": "/", "env": ["PATH=/bin"],
            "user": {"uid": 0, "gid": 0}
        }))
        .unwrap(),
    )
    .unwrap();
    let pid_file = b.tmp.path().join("exec.pid");
    ok(
        &b,
        &[
            "exec",
            "--process",
            proc_json.to_str().unwrap(),
            "-d",
            "--pid-file",
            pid_file.to_str().unwrap(),
            "c",
        ],
    );
    assert!(read(&pid_file).trim().parse::<i32>().unwrap() > 0);
    wait_for("the exec'd process", || b.rootfs().join("tmp/pj").exists());
}

#[test]
fn pause_stops_progress_until_resumed() {
    let b = running("i=0; while :; do i=$((i+1)); echo $i > /tmp/counter; sleep 0.05; done");
    wait_for("counting", || b.rootfs().join("tmp/counter").exists());
    ok(&b, &["pause", "c"]);
    assert_eq!(b.state("c")["status"], "paused");
    let before = read(b.rootfs().join("tmp/counter"));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        read(b.rootfs().join("tmp/counter")),
        before,
        "a frozen container makes no progress"
    );
    ok(&b, &["resume", "c"]);
    assert_eq!(b.state("c")["status"], "running");
    wait_for("counting again", || {
        read(b.rootfs().join("tmp/counter")) != before
    });
}

#[test]
fn update_raises_a_memory_limit_the_container_then_uses() {
    let mut b = Bundle::sh("sleep 100");
    b.edit(|c| c["linux"]["resources"]["memory"] = serde_json::json!({"limit": 33554432}));
    b.run_detached("c");
    let out = b.runtime(&[
        "exec",
        "c",
        "sh",
        "-c",
        "dd if=/dev/zero of=/dev/null bs=48M count=1 2>/dev/null; echo $?",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "137",
        "48 MiB do not fit in 32 MiB"
    );
    ok(&b, &["update", "--memory", "128m", "c"]);
    let script = format!(
        "cat {}; dd if=/dev/zero of=/dev/null bs=48M count=1 2>/dev/null; echo $?",
        cg("memory/memory.limit_in_bytes", "memory.max")
    );
    let out = ok(&b, &["exec", "c", "sh", "-c", &script]);
    assert_eq!(out.lines().collect::<Vec<_>>(), ["134217728", "0"]);
    // containerd sends LinuxResources JSON on stdin.
    let out = b.runtime_with_stdin(
        &["update", "--resources", "-", "c"],
        br#"{"pids": {"limit": 42}}"#,
    );
    assert!(out.status.success());
    assert_eq!(
        ok(&b, &["exec", "c", "cat", &cg("pids/pids.max", "pids.max")]).trim(),
        "42"
    );
}

#[test]
fn ps_and_stats() {
    let b = running("sleep 100");
    let init = b.state("c")["pid"].as_i64().unwrap();
    let pids: Vec<i64> = serde_json::from_str(&ok(&b, &["ps", "--format", "json", "c"])).unwrap();
    assert_eq!(pids, vec![init]);
    let table = ok(&b, &["ps", "c"]);
    assert!(table.lines().next().unwrap().contains("PID"));
    assert!(table.contains("sleep 100"), "{table}");
    let stats: serde_json::Value =
        serde_json::from_str(&ok(&b, &["events", "--stats", "c"])).unwrap();
    assert_eq!(stats["type"], "stats");
    assert_eq!(stats["data"]["pids"]["current"], 1);
    assert!(stats["data"]["memory"]["usage"]["usage"].as_u64().unwrap() > 0);
    assert!(stats["data"]["cpu"]["usage"]["total"].as_u64().is_some());
}

#[test]
fn events_report_an_oom_kill() {
    let mut b = Bundle::sh("sleep 1; dd if=/dev/zero of=/dev/null bs=64M count=1; sleep 2");
    b.edit(|c| c["linux"]["resources"]["memory"] = serde_json::json!({"limit": 33554432}));
    b.run_detached("c");
    let out = b
        .cmd(&["events", "--interval", "10s", "c"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().any(|l| l.contains(r#""type":"oom""#)),
        "{text}"
    );
}

#[test]
fn delete_force_of_a_paused_container() {
    let b = running("sleep 100");
    ok(&b, &["pause", "c"]);
    ok(&b, &["delete", "--force", "c"]);
    assert_nothing_left(&b, "c");
}
