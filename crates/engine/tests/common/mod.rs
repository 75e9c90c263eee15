//! Helpers shared by the integration tests: running `berth`, root, the shared images.
// Each test binary uses its own subset of these.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use berth_engine::snapshots;

/// The shared test images: an OCI layout with `busybox-latest` and `debian-multi`, read only.
pub const SHARED_OCI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/images/oci");

/// Mounting overlays, making device nodes and setting trusted.* xattrs need root: CI is
/// root, and a run that is not fails here, loudly, instead of passing without testing.
pub fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "these tests mount overlayfs and need root: run them as root (CI does)"
    );
    assert!(
        Path::new(SHARED_OCI).join("index.json").is_file(),
        "the shared test images are missing at {SHARED_OCI} (see ../shared/images/README.md)"
    );
}

/// `berth --root ROOT ARGS`; each store gets its own Docker config, `<root>.docker/`, for
/// credentials.
pub fn berth_command(root: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
    command
        .env("DOCKER_CONFIG", root.with_extension("docker"))
        .arg("--root")
        .arg(root);
    command
}

pub fn berth(root: &Path, args: &[&str]) -> Output {
    berth_command(root).args(args).output().expect("run berth")
}

/// Runs berth and returns its stdout, failing the test with its stderr if it fails.
pub fn berth_ok(root: &Path, args: &[&str]) -> String {
    let out = berth(root, args);
    assert!(
        out.status.success(),
        "berth {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs berth, expects it to fail, and returns its stderr.
pub fn berth_err(root: &Path, args: &[&str]) -> String {
    let out = berth(root, args);
    assert!(
        !out.status.success(),
        "berth {args:?} succeeded but should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

/// skopeo (Debian package `skopeo`) makes archives and fills registries: a tool no one here
/// wrote.
pub fn skopeo(args: &[&str]) {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("run skopeo: install the Debian package skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Unmounts on drop, so that a failed assertion leaves no mount behind.
pub struct Mounted(pub PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        if snapshots::is_mount_point(&self.0).unwrap_or(false) {
            let _ = snapshots::unmount_overlay(&self.0);
        }
    }
}
