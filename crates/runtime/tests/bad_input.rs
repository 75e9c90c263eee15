//! Bad configs: one clear error line naming the field, a non-zero exit, and nothing left:
//! no state directory, no cgroup, no mount, no process.

mod common;
use common::*;
use serde_json::json;

/// Runs `create` and checks the failure: the message names `field` and nothing is left.
fn refused(b: &Bundle, id: &str, field: &str) -> String {
    // stdio to files, not pipes: if create wrongly succeeded, its init would hold a pipe open.
    let errfile = b.tmp.path().join(format!("{id}.err"));
    let status = b
        .cmd(&["create", id])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&errfile).unwrap())
        .status()
        .unwrap();
    assert!(!status.success(), "create {id} should fail");
    let err = read(&errfile);
    assert_eq!(err.trim().lines().count(), 1, "one error line, got: {err}");
    assert!(err.contains(field), "the error names {field}: {err}");
    assert_nothing_left(b, id);
    err
}

#[test]
fn unknown_namespace_type() {
    let mut b = Bundle::sh("true");
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "foo"}))
    });
    refused(&b, "bad-ns", "linux.namespaces[6].type");
}

#[test]
fn namespace_twice_and_wrong_path_type() {
    let mut b = Bundle::sh("true");
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "pid"}))
    });
    refused(&b, "ns-twice", "linux.namespaces[6].type");
    b.edit(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.pop();
        ns[0]["path"] = json!("/proc/self/ns/net");
    });
    let err = refused(&b, "ns-wrong", "linux.namespaces[0].path");
    assert!(err.contains("not a pid namespace"), "{err}");
}

#[test]
fn missing_rootfs() {
    let mut b = Bundle::sh("true");
    b.edit(|c| c["root"]["path"] = json!("no-such-rootfs"));
    refused(&b, "no-rootfs", "root.path");
}

#[test]
fn bad_mounts() {
    let mut b = Bundle::sh("true");
    b.edit(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/x", "type": "nosuchfs", "source": "x"}));
    });
    refused(&b, "bad-fstype", "mounts[7].type");
    b.edit(|c| {
        let m = c["mounts"].as_array_mut().unwrap();
        m.pop();
        m.push(json!({"destination": "/x", "type": "bind", "source": "/x", "options": ["rbind", "bogus"]}));
    });
    refused(&b, "bad-option", "mounts[7].options");
    // A bind source that does not exist passes validation and fails in init, after
    // namespaces, cgroups and mounts were made: all of it must go.
    b.edit(|c| {
        let m = c["mounts"].as_array_mut().unwrap();
        m.pop();
        m.push(json!({"destination": "/x", "type": "bind", "source": "/no/such/source", "options": ["rbind"]}));
    });
    refused(&b, "bad-source", "/no/such/source");
}

#[test]
fn malformed_capability() {
    let mut b = Bundle::sh("true");
    b.edit(|c| {
        c["process"]["capabilities"]["bounding"]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_FLY"))
    });
    refused(&b, "bad-cap", "process.capabilities.bounding");
}

#[test]
fn unsupported_fields_are_refused_by_name() {
    let mut b = Bundle::sh("true");
    b.edit(|c| c["linux"]["intelRdt"] = json!({"closID": "x"}));
    refused(&b, "rdt", "linux.intelRdt");
    b.edit(|c| {
        c["linux"].as_object_mut().unwrap().remove("intelRdt");
        c["linux"]["resources"]["unified"] = json!({"memory.high": "1048576"});
    });
    refused(&b, "unified", "linux.resources.unified");
}

#[test]
fn missing_program_fails_create() {
    let b = Bundle::new(&["/no/such/program"]);
    refused(&b, "no-prog", "/no/such/program");
    let b = Bundle::new(&["no-such-program"]);
    refused(&b, "no-prog2", "executable file not found in $PATH");
}

#[test]
fn rlimit_above_the_hard_limit() {
    let mut b = Bundle::sh("true");
    // Root lacks CAP_SYS_RESOURCE on these hosts: raising the hard limit fails with EPERM.
    b.edit(|c| {
        c["process"]["rlimits"] =
            json!([{"type": "RLIMIT_NOFILE", "soft": 1048576, "hard": 1048576}])
    });
    let out = b.runtime(&["create", "rl"]);
    if out.status.success() {
        // A host whose root may raise it: the limit applied; nothing to refuse.
        b.runtime(&["delete", "--force", "rl"]);
        return;
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("RLIMIT_NOFILE") || err.contains("NOFILE"),
        "{err}"
    );
    assert_nothing_left(&b, "rl");
}

#[test]
fn duplicate_id() {
    let b = Bundle::sh("sleep 100");
    b.create("dup", &[]);
    let out = b.runtime(&["create", "dup"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    assert_eq!(
        b.state("dup")["status"],
        "created",
        "the first container is untouched"
    );
    b.runtime(&["delete", "dup"]);
    assert_nothing_left(&b, "dup");
}

#[test]
fn host_sysctl_and_cgroup_escape_are_refused() {
    let mut b = Bundle::sh("true");
    b.edit(|c| c["linux"]["sysctl"] = json!({"kernel.core_pattern": "|/tmp/x"}));
    refused(&b, "sysctl", "linux.sysctl.kernel.core_pattern");
    // A cgroupsPath with `..` stays under the hierarchy: the container still runs, and
    // nothing is created next to /sys/fs/cgroup.
    b.edit(|c| {
        c["linux"].as_object_mut().unwrap().remove("sysctl");
        c["linux"]["cgroupsPath"] = json!("/../../../../tmp/berth-cgroup-escape");
    });
    let (_, err, code) = b.run("cg-escape");
    assert_eq!(code, 0, "{err}");
    assert!(!std::path::Path::new("/tmp/berth-cgroup-escape").exists());
}

#[test]
fn cwd_through_a_leaked_descriptor_is_refused() {
    // CVE-2024-21626: a cwd of /proc/self/fd/N must not reach a host directory.
    let mut b = Bundle::sh("pwd");
    for fd in 3..8 {
        b.edit(|c| c["process"]["cwd"] = json!(format!("/proc/self/fd/{fd}")));
        let (out, _, code) = b.run(&format!("leak{fd}"));
        assert!(
            code != 0 || !out.contains("berth"),
            "fd {fd}: cwd escaped: {out}"
        );
    }
}
