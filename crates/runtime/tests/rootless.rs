//! Rootless: a user without root (created by the test) runs, execs into and deletes a
//! container from `spec --rootless`, with state under its own runtime directory.

mod common;
use common::*;

use std::process::Command;

const USER: &str = "berth-rootless";

/// The test's unprivileged user: (uid, gid).
fn user() -> (u32, u32) {
    require_root();
    if Command::new("id")
        .arg(USER)
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        let st = Command::new("useradd")
            .args(["--system", "--no-create-home", USER])
            .status()
            .unwrap();
        assert!(st.success(), "useradd {USER}");
    }
    let id = |flag: &str| -> u32 {
        let out = Command::new("id").args([flag, USER]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

/// A bundle the test user owns, without config.json (the user writes its own with
/// `spec --rootless`), and an XDG_RUNTIME_DIR for it.
fn users_bundle(uid: u32, gid: u32) -> (Bundle, std::path::PathBuf) {
    let b = Bundle::sh("true");
    std::fs::remove_file(b.dir().join("config.json")).unwrap();
    let xdg = b.tmp.path().join("xdg");
    std::fs::create_dir(&xdg).unwrap();
    assert!(Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{gid}"))
        .arg(b.tmp.path())
        .status()
        .unwrap()
        .success());
    (b, xdg)
}

/// `sh -c script` as the test user (no supplementary groups, a reset environment: scripts
/// export XDG_RUNTIME_DIR themselves), in the bundle directory.
fn as_user(uid: u32, gid: u32, b: &Bundle, script: &str) -> std::process::Output {
    Command::new("setpriv")
        .args([
            "--reuid",
            &uid.to_string(),
            "--regid",
            &gid.to_string(),
            "--clear-groups",
            "--reset-env",
        ])
        .args(["sh", "-c", script])
        .current_dir(b.dir())
        .output()
        .unwrap()
}

#[test]
fn an_unprivileged_user_runs_execs_and_deletes() {
    let (uid, gid) = user();
    // The user's own bundle, from `spec --rootless` run as that user; the runtime binary
    // must be reachable by the user.
    let (b, xdg) = users_bundle(uid, gid);
    let rt = RUNTIME;
    let x = xdg.display();
    let script = format!(
        "set -e; export XDG_RUNTIME_DIR={x}; {rt} spec --rootless; \
         sed -i 's/\"terminal\": true/\"terminal\": false/; s|^\\( *\\)\"sh\"$|\\1\"sleep\", \"100\"|' config.json; \
         {rt} run -d rl </dev/null >/dev/null 2>&1; \
         {rt} state rl | grep -q running; \
         {rt} exec rl sh -c 'id -u; cat /proc/self/uid_map; hostname'; \
         {rt} exec --additional-gids 10 rl true 2>&1 | grep -c 'additionalGids: setgroups'; \
         {rt} delete --force rl; \
         test ! -e {x}/berth-runtime/rl && echo deleted"
    );
    let out = as_user(uid, gid, &b, &script);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "as {USER}: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "0", "root inside: {text}");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["0", &uid.to_string(), "1"]
    );
    assert_eq!(lines[2], "runc");
    assert_eq!(
        lines[3], "1",
        "additionalGids refused by name where setgroups is denied"
    );
    assert_eq!(lines[4], "deleted");
}

#[test]
fn subordinate_ids_through_newuidmap() {
    let (uid, gid) = user();
    assert!(
        std::path::Path::new("/usr/bin/newuidmap").exists(),
        "apt-get install uidmap"
    );
    // Grant the test user a range, as an administrator would.
    for file in ["/etc/subuid", "/etc/subgid"] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if !text.lines().any(|l| l.starts_with(&format!("{USER}:"))) {
            std::fs::write(file, format!("{text}{USER}:300000:65536\n")).unwrap();
        }
    }
    let (b, xdg) = users_bundle(uid, gid);
    let rt = RUNTIME;
    let x = xdg.display();
    let maps = |own: u32| {
        format!("[{{\"containerID\": 0, \"hostID\": {own}, \"size\": 1}}, {{\"containerID\": 1, \"hostID\": 300000, \"size\": 65536}}]")
    };
    let script = format!(
        "set -e; export XDG_RUNTIME_DIR={x}; {rt} spec --rootless; \
         sed -i 's/\"terminal\": true/\"terminal\": false/; s|^\\( *\\)\"sh\"$|\\1\"sleep\", \"100\"|' config.json; \
         python3 -c 'import json; c = json.load(open(\"config.json\")); \
           c[\"linux\"][\"uidMappings\"] = json.loads(\"\"\"{um}\"\"\"); c[\"linux\"][\"gidMappings\"] = json.loads(\"\"\"{gm}\"\"\"); \
           json.dump(c, open(\"config.json\", \"w\"))'; \
         {rt} run -d sub </dev/null >/dev/null 2>&1; \
         {rt} exec -u 1000:1000 --additional-gids 10 sub sh -c 'id -u; wc -l < /proc/self/uid_map; id -G'; \
         {rt} delete --force sub",
        um = maps(uid),
        gm = maps(gid),
    );
    let out = as_user(uid, gid, &b, &script);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "as {USER}: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        ["1000", "2", "1000 10"],
        "uid 1000 of the subordinate range, with its additional group (newgidmap allows setgroups)"
    );
}
