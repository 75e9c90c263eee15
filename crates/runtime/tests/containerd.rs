//! containerd drives berth-runtime as it drives runc: a private containerd (own socket, root
//! and state), the busybox image from ../shared/images, and `ctr run --runc-binary`.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

/// The test images beside the checkout (`../shared/images/oci`).
fn images() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/images/oci");
    assert!(
        p.join("index.json").exists(),
        "test images missing at {}",
        p.display()
    );
    p
}

struct Containerd {
    child: Child,
    dir: tempfile::TempDir,
}

impl Containerd {
    fn start() -> Containerd {
        require_root();
        assert!(
            Path::new("/usr/bin/containerd").exists(),
            "apt-get install containerd"
        );
        let dir = tempfile::Builder::new()
            .prefix("berth-ctd")
            .tempdir()
            .unwrap();
        let d = dir.path().display();
        std::fs::write(
            dir.path().join("config.toml"),
            format!(
                "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{d}/containerd.sock\"\n\
                 [ttrpc]\n  address = \"{d}/containerd.sock.ttrpc\"\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("containerd.log")).unwrap();
        let child = Command::new("/usr/bin/containerd")
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let c = Containerd { child, dir };
        wait_for("containerd's socket", || {
            c.ctr(&["version"])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        });
        c
    }

    fn ctr(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ctr");
        c.arg("-a")
            .arg(self.dir.path().join("containerd.sock"))
            .args(["-n", "berth-test"])
            .args(args);
        c
    }

    fn ctr_ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args).output().unwrap();
        assert!(
            out.status.success(),
            "ctr {args:?}: {}\ncontainerd log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Containerd {
    /// Stopped by its pid, as the test started it.
    fn drop(&mut self) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let _ = self.child.wait();
    }
}

#[test]
fn ctr_run_with_berth_runtime() {
    let ctd = Containerd::start();
    let tar = ctd.dir.path().join("images.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(images())
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    ctd.ctr_ok(&[
        "images",
        "import",
        "--base-name",
        "docker.io/library/busybox",
        tar.to_str().unwrap(),
    ]);
    let image = "docker.io/library/busybox:busybox-latest";
    let out = ctd.ctr_ok(&[
        "run",
        "--rm",
        "--runc-binary",
        RUNTIME,
        image,
        "ctr-hello",
        "echo",
        "hello",
    ]);
    assert_eq!(out.trim(), "hello");
    // A non-zero exit arrives too.
    let out = ctd
        .ctr(&[
            "run",
            "--rm",
            "--runc-binary",
            RUNTIME,
            image,
            "ctr-exit",
            "sh",
            "-c",
            "exit 3",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Nothing is left: no container, no task, no runtime state, no cgroup.
    assert_eq!(ctd.ctr_ok(&["containers", "ls", "-q"]).trim(), "");
    assert_eq!(ctd.ctr_ok(&["tasks", "ls", "-q"]).trim(), "");
    for id in ["ctr-hello", "ctr-exit"] {
        assert!(
            !Path::new("/run/containerd/runc/berth-test")
                .join(id)
                .exists(),
            "runtime state of {id} left"
        );
        for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            let p = h.path().join("berth-test").join(id);
            assert!(!p.exists(), "cgroup {} left", p.display());
        }
    }
}
