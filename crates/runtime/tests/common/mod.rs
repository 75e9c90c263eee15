//! Test fixtures: busybox bundles, the runtime binary with a private --root, and checks that
//! a container left nothing behind. Tests run real containers and need root.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub const RUNTIME: &str = env!("CARGO_BIN_EXE_berth-runtime");

/// Fails loudly when not root: these tests create namespaces, mounts and cgroups.
pub fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "integration tests run real containers and must run as root (CI does)"
    );
}

/// A busybox bundle in a temporary directory, with a state root of its own.
pub struct Bundle {
    pub tmp: tempfile::TempDir,
    pub config: Value,
}

impl Bundle {
    /// A bundle from `berth-runtime spec`, running `args` without a terminal.
    pub fn new(args: &[&str]) -> Bundle {
        require_root();
        let tmp = tempfile::Builder::new()
            .prefix("berth-test")
            .tempdir()
            .unwrap();
        let rootfs = tmp.path().join("bundle/rootfs");
        for d in ["bin", "etc", "tmp", "root", "proc", "sys", "dev"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
            .expect("/bin/busybox: apt-get install busybox-static");
        let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" {
                std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
            }
        }
        std::fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/tmp:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        )
        .unwrap();
        std::fs::write(
            rootfs.join("etc/group"),
            "root:x:0:\nwheel:x:10:\nuser:x:1000:\nnogroup:x:65534:\n",
        )
        .unwrap();
        let out = Command::new(RUNTIME)
            .args(["spec", "--bundle"])
            .arg(tmp.path().join("bundle"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "spec: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(tmp.path().join("bundle/config.json")).unwrap();
        let mut config: Value = serde_json::from_str(&text).unwrap();
        config["process"]["terminal"] = Value::Bool(false);
        // The probes write to /tmp; tests of a read-only root set it back.
        config["root"]["readonly"] = Value::Bool(false);
        // Tests run in parallel: each bundle has a cgroup of its own.
        let name = tmp
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        config["linux"]["cgroupsPath"] = Value::String(format!("/berth-test/{name}"));
        config["process"]["args"] = args.iter().map(|s| Value::String(s.to_string())).collect();
        let b = Bundle { tmp, config };
        b.save();
        b
    }

    /// A bundle running `sh -c script`.
    pub fn sh(script: &str) -> Bundle {
        Bundle::new(&["sh", "-c", script])
    }

    pub fn dir(&self) -> PathBuf {
        self.tmp.path().join("bundle")
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir().join("rootfs")
    }

    pub fn root(&self) -> PathBuf {
        self.tmp.path().join("state")
    }

    /// Writes the (changed) config.
    pub fn save(&self) {
        std::fs::write(
            self.dir().join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }

    /// Changes the config and saves it.
    pub fn edit(&mut self, f: impl FnOnce(&mut Value)) {
        f(&mut self.config);
        self.save();
    }

    /// `berth-runtime --root <ours> ARGS` (or another runtime binary).
    pub fn cmd_with(&self, binary: &str, args: &[&str]) -> Command {
        let mut c = Command::new(binary);
        c.arg("--root")
            .arg(self.root())
            .args(args)
            .current_dir(self.dir());
        c
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        self.cmd_with(RUNTIME, args)
    }

    /// Runs a command with stdout and stderr in files, not pipes: a container that outlives
    /// the command (create, run -d, a create that wrongly succeeds) must not hang the test.
    pub fn output(&self, mut cmd: Command) -> Output {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let (o, e) = (
            self.tmp.path().join(format!("out.{n}")),
            self.tmp.path().join(format!("err.{n}")),
        );
        let status = cmd
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&o).unwrap())
            .stderr(std::fs::File::create(&e).unwrap())
            .status()
            .unwrap();
        Output {
            status,
            stdout: std::fs::read(&o).unwrap(),
            stderr: std::fs::read(&e).unwrap(),
        }
    }

    /// `berth-runtime ARGS` with `input` on its stdin (`update --resources -`, as containerd).
    pub fn runtime_with_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        use std::io::Write;
        let mut child = self
            .cmd(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }

    pub fn runtime(&self, args: &[&str]) -> Output {
        self.output(self.cmd(args))
    }

    /// `run ID` in the foreground: the output and the exit code.
    pub fn run_with(&self, binary: &str, id: &str) -> (String, String, i32) {
        let out = self.output(self.cmd_with(binary, &["run", id]));
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.status.code().unwrap_or(-1),
        )
    }

    pub fn run(&self, id: &str) -> (String, String, i32) {
        self.run_with(RUNTIME, id)
    }

    /// Runs and asserts success; returns stdout.
    pub fn run_ok(&self, id: &str) -> String {
        let (out, err, code) = self.run(id);
        assert_eq!(
            code, 0,
            "run {id}: exit {code}\nstdout: {out}\nstderr: {err}"
        );
        out
    }

    /// `create ID ARGS`, with stdio not ours (init keeps it until it exits).
    pub fn create(&self, id: &str, args: &[&str]) {
        use std::process::Stdio;
        let errfile = self.tmp.path().join(format!("{id}.stderr"));
        let mut all = vec!["create"];
        all.extend_from_slice(args);
        all.push(id);
        let status = self
            .cmd(&all)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&errfile).unwrap())
            .status()
            .unwrap();
        assert!(status.success(), "create {id}: {}", read(&errfile));
    }

    /// `run -d ID`, with stdio not ours: a detached container keeps its stdio open, and a
    /// pipe from us would never see EOF.
    pub fn run_detached(&self, id: &str) {
        use std::process::Stdio;
        let errfile = self.tmp.path().join(format!("{id}.stderr"));
        let status = self
            .cmd(&["run", "-d", id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&errfile).unwrap())
            .status()
            .unwrap();
        assert!(status.success(), "run -d {id}: {}", read(&errfile));
    }

    pub fn state(&self, id: &str) -> Value {
        let out = self.runtime(&["state", id]);
        assert!(
            out.status.success(),
            "state {id}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for Bundle {
    /// A failed test must not leave its containers running.
    fn drop(&mut self) {
        let Ok(out) = self.cmd(&["list", "-q"]).output() else {
            return;
        };
        for id in String::from_utf8_lossy(&out.stdout).lines() {
            let _ = self.cmd(&["delete", "--force", id]).output();
        }
    }
}

/// Every trace a container could leave: its state directory, a cgroup on any hierarchy, a
/// mount under the bundle, a process that mentions the state root.
pub fn assert_nothing_left(b: &Bundle, id: &str) {
    assert!(
        !b.root().join(id).exists(),
        "state directory {} left behind",
        b.root().join(id).display()
    );
    let cgroup = b.config["linux"]["cgroupsPath"]
        .as_str()
        .unwrap()
        .trim_start_matches('/');
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let p = h.path().join(cgroup);
        assert!(!p.exists(), "cgroup {} left behind", p.display());
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let bundle = b.dir();
    assert!(
        !mountinfo.contains(&*bundle.to_string_lossy()),
        "a mount under {} is left behind",
        bundle.display()
    );
    let root = b.root().to_string_lossy().into_owned();
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(p.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(
            !cmdline.contains(&root),
            "process {:?} left behind: {cmdline}",
            p.file_name()
        );
    }
}

/// Waits until `f` holds, up to five seconds.
pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("timed out waiting for {what}");
}

pub fn read(p: impl AsRef<Path>) -> String {
    std::fs::read_to_string(p.as_ref())
        .unwrap_or_else(|e| panic!("read {}: {e}", p.as_ref().display()))
}

/// The host runs cgroup v2 alone (the VM matrix's v2 mode): a container sees the cgroup2
/// hierarchy itself at /sys/fs/cgroup, not one directory per v1 controller.
pub fn cgroup_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// A cgroup file as the container sees it: `v1` (`memory/memory.limit_in_bytes`) on v1 and
/// hybrid hosts, `v2` (`memory.max`) on a v2 host; under /sys/fs/cgroup.
pub fn cg(v1: &str, v2: &str) -> String {
    format!("/sys/fs/cgroup/{}", if cgroup_v2() { v2 } else { v1 })
}
