//! Docker drives berth-runtime: a private dockerd (own data-root, exec-root and socket,
//! `--add-runtime berth=...`), the busybox image from ../shared/images, and the commands a
//! user runs: run with limits, exec, top, pause/unpause, update, stats, stop.

mod common;
use common::*;

use std::path::Path;
use std::process::{Child, Command};

struct Dockerd {
    child: Child,
    dir: tempfile::TempDir,
}

impl Dockerd {
    fn start() -> Dockerd {
        require_root();
        assert!(
            Path::new("/usr/sbin/dockerd").exists(),
            "apt-get install docker.io"
        );
        let dir = tempfile::Builder::new()
            .prefix("berth-dockerd")
            .tempdir()
            .unwrap();
        let p = |s: &str| dir.path().join(s).to_string_lossy().into_owned();
        let log = std::fs::File::create(dir.path().join("dockerd.log")).unwrap();
        let child = Command::new("/usr/sbin/dockerd")
            .args([
                "--data-root",
                &p("data"),
                "--exec-root",
                &p("exec"),
                "--pidfile",
                &p("dockerd.pid"),
            ])
            .args(["-H", &format!("unix://{}", p("docker.sock"))])
            .args(["--bridge=none", "--iptables=false", "--ip6tables=false"])
            .args([
                "--exec-opt",
                "native.cgroupdriver=cgroupfs",
                "--containerd-namespace",
                "berth-docker-test",
            ])
            .arg(format!("--add-runtime=berth={RUNTIME}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let d = Dockerd { child, dir };
        wait_for_long("dockerd's socket", || {
            d.docker(&["info"])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        });
        d
    }

    fn docker(&self, args: &[&str]) -> Command {
        let mut c = Command::new("docker");
        c.arg("-H")
            .arg(format!(
                "unix://{}",
                self.dir.path().join("docker.sock").display()
            ))
            .args(args);
        c
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args).output().unwrap();
        assert!(
            out.status.success(),
            "docker {args:?}: {}\ndockerd log (tail):\n{}",
            String::from_utf8_lossy(&out.stderr),
            read(self.dir.path().join("dockerd.log"))
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .join("\n")
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Dockerd {
    /// Stopped by its pid, as the test started it (it stops its own containerd).
    fn drop(&mut self) {
        let _ = self.docker(&["rm", "-f", "lim"]).output();
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let _ = self.child.wait();
    }
}

fn wait_for_long(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..300 {
        if f() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn docker_run_exec_pause_update_stats_stop() {
    let d = Dockerd::start();
    let images = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/images/oci");
    let tar = d.dir.path().join("busybox.tar");
    let st = Command::new("skopeo")
        .args(["copy", "-q"])
        .arg(format!("oci:{}:busybox-latest", images.display()))
        .arg(format!("docker-archive:{}:busybox:latest", tar.display()))
        .status()
        .expect("skopeo: apt-get install skopeo");
    assert!(st.success());
    d.ok(&["load", "-i", tar.to_str().unwrap()]);

    // Docker always sends a seccomp profile; the container runs under it.
    let out = d.ok(&[
        "run",
        "--rm",
        "--runtime",
        "berth",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo hello; grep Seccomp: /proc/self/status",
    ]);
    assert_eq!(out.lines().collect::<Vec<_>>(), ["hello", "Seccomp:\t2"]);

    d.ok(&[
        "run",
        "-d",
        "--name",
        "lim",
        "--runtime",
        "berth",
        "--network",
        "none",
        "--memory",
        "64m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "50",
        "busybox",
        "sleep",
        "1000",
    ]);
    let out = d.ok(&[
        "exec",
        "lim",
        "cat",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        "/sys/fs/cgroup/pids/pids.max",
        "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
    ]);
    assert_eq!(out.lines().collect::<Vec<_>>(), ["67108864", "50", "50000"]);
    assert!(d.ok(&["top", "lim"]).contains("sleep 1000"));
    d.ok(&["pause", "lim"]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "lim"]).trim(),
        "paused"
    );
    d.ok(&["unpause", "lim"]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "lim"]).trim(),
        "running"
    );
    d.ok(&["update", "--memory", "128m", "--memory-swap", "256m", "lim"]);
    assert_eq!(
        d.ok(&[
            "exec",
            "lim",
            "cat",
            "/sys/fs/cgroup/memory/memory.limit_in_bytes"
        ])
        .trim(),
        "134217728"
    );
    let stats = d.ok(&["stats", "--no-stream", "--format", "{{.MemUsage}}", "lim"]);
    assert!(stats.contains("128MiB"), "{stats}");
    // An exec of a missing program fails.
    let out = d
        .docker(&["exec", "lim", "no-such-program"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    d.ok(&["stop", "-t", "1", "lim"]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.ExitCode}}", "lim"])
            .trim(),
        "137"
    );
    d.ok(&["rm", "lim"]);
}
