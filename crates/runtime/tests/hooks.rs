//! Lifecycle hooks: each kind runs at its step with the state on stdin; a failing hook
//! before the start fails create and leaves nothing.

mod common;
use common::*;
use serde_json::json;

fn hook(dir: &std::path::Path, name: &str) -> serde_json::Value {
    let out = dir.join(format!("{name}.json"));
    json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {}", out.display())]})
}

#[test]
fn every_hook_runs_with_the_state() {
    let mut b = Bundle::sh("echo hi");
    let d = b.tmp.path().to_path_buf();
    // createContainer and startContainer run in the container's mount namespace; before
    // pivot_root (createContainer) the host paths still resolve, after it they do not, so
    // startContainer writes inside the container.
    b.edit(|c| {
        c["hooks"] = json!({
            "prestart": [hook(&d, "prestart")],
            "createRuntime": [hook(&d, "createRuntime")],
            "createContainer": [hook(&d, "createContainer")],
            "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /tmp/startContainer.json"]}],
            "poststart": [hook(&d, "poststart")],
            "poststop": [hook(&d, "poststop")],
        });
    });
    assert_eq!(b.run_ok("hooked").trim(), "hi");
    for kind in [
        "prestart",
        "createRuntime",
        "createContainer",
        "poststart",
        "poststop",
    ] {
        let st: serde_json::Value =
            serde_json::from_str(&read(d.join(format!("{kind}.json")))).unwrap();
        assert_eq!(st["id"], "hooked", "{kind}");
        assert!(st["pid"].as_i64().unwrap() > 0, "{kind}: {st}");
    }
    let st: serde_json::Value =
        serde_json::from_str(&read(b.rootfs().join("tmp/startContainer.json"))).unwrap();
    assert_eq!(st["id"], "hooked");
}

#[test]
fn failing_prestart_hook_fails_create() {
    let mut b = Bundle::sh("true");
    b.edit(|c| c["hooks"] = json!({"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", "echo no way >&2; exit 2"]}]}));
    let out = b.runtime(&["create", "hook-fail"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("prestart hook") && err.contains("no way"),
        "{err}"
    );
    assert_nothing_left(&b, "hook-fail");
}

#[test]
fn hook_timeout() {
    let mut b = Bundle::sh("true");
    b.edit(|c| c["hooks"] = json!({"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "10"], "timeout": 1}]}));
    let start = std::time::Instant::now();
    let out = b.runtime(&["create", "hook-slow"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("timed out"));
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
    assert_nothing_left(&b, "hook-slow");
}

#[test]
fn failing_poststart_hook_is_only_a_warning() {
    let mut b = Bundle::sh("echo ran");
    b.edit(|c| c["hooks"] = json!({"poststart": [{"path": "/bin/false"}]}));
    assert_eq!(b.run_ok("post").trim(), "ran");
}
