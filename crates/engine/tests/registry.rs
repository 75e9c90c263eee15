//! Integration tests against a real registry: Debian's `docker-registry` (distribution 2.8),
//! started here on 127.0.0.1 with temporary storage, filled by skopeo from ../shared/images.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{berth, berth_command, berth_ok, require_root, SHARED_OCI};

/// The manifest and config digests of `debian-multi` in the shared layout: skopeo copies the
/// image to the registry unchanged, so a pull must find the same ones.
const DEBIAN_MANIFEST: &str =
    "sha256:744efca4a74d6ed17a3c15a01c6b972cddd3295f04a40aa0723fe5bec738d359";
const DEBIAN_ID: &str = "sha256:ff4211a67a7ac5f7e7b5b79bd09d3173936b5d201b7ab6c6b30c971fbfb0c0ae";

/// A registry process, stopped by its pid when the test ends.
struct Registry {
    child: Child,
    addr: String,
}

impl Registry {
    fn start(dir: &Path) -> Self {
        Self::start_with(dir, None, false)
    }

    /// With `htpasswd`, the registry wants basic credentials for everything; with `tls`, it
    /// speaks only HTTPS, with a self-signed certificate made by openssl(1).
    fn start_with(dir: &Path, htpasswd: Option<(&str, &str)>, tls: bool) -> Self {
        // A free port: bind to port 0, read it, let it go for the registry.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.join("config.yml");
        let mut yaml = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            dir.join("data").display()
        );
        if tls {
            let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
            let out = Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                ])
                .args([
                    "-subj",
                    "/CN=127.0.0.1",
                    "-addext",
                    "subjectAltName=IP:127.0.0.1",
                ])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .output()
                .expect("run openssl: install the Debian package openssl");
            assert!(
                out.status.success(),
                "openssl: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            yaml.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
        }
        // Top-level `auth` after everything under `http`.
        if let Some((user, password)) = htpasswd {
            let file = dir.join("htpasswd");
            let hash = bcrypt::hash(password, 4).unwrap();
            fs::write(&file, format!("{user}:{hash}\n")).unwrap();
            yaml.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                file.display()
            ));
        }
        fs::write(&config, yaml).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry: install the Debian package docker-registry");
        let registry = Self { child, addr };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&registry.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on {}",
                registry.addr
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }

    fn push(&self, name: &str, repo: &str) {
        self.push_as(name, repo, None);
    }

    fn push_as(&self, name: &str, repo: &str, creds: Option<&str>) {
        // The seeding push is not what is tested: a registry that has just started listening
        // sometimes drops the first requests, so skopeo gets three tries.
        let mut failure: Option<String> = None;
        for attempt in 0..3 {
            let mut skopeo = Command::new("skopeo");
            skopeo.args(["copy", "-q", "--dest-tls-verify=false"]);
            if let Some(creds) = creds {
                skopeo.arg(format!("--dest-creds={creds}"));
            }
            let out = skopeo
                .arg(format!("oci:{SHARED_OCI}:{name}"))
                .arg(format!("docker://{}/{repo}", self.addr))
                .output()
                .expect("run skopeo: install the Debian package skopeo");
            if out.status.success() {
                failure = None;
                break;
            }
            let err = format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr));
            eprintln!("skopeo push, attempt {attempt}: {err}");
            failure = Some(err);
            std::thread::sleep(Duration::from_millis(500));
        }
        if let Some(err) = failure {
            panic!("skopeo: {err}");
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn pull_by_tag_and_by_digest_from_a_local_registry() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::start(tmp.path());
    registry.push("debian-multi", "debian:multi");
    let addr = &registry.addr;
    let root: PathBuf = tmp.path().join("root");

    let reference = format!("{addr}/debian:multi");
    let out = berth_ok(&root, &["pull", &reference]);
    assert_eq!(out.matches(": Pull complete").count(), 4, "{out}");
    assert!(out.contains(&format!("Digest: {DEBIAN_MANIFEST}")), "{out}");
    assert!(out.trim_end().ends_with(&reference), "{out}");

    let inspect: serde_json::Value =
        serde_json::from_str(&berth_ok(&root, &["image", "inspect", &reference])).unwrap();
    assert_eq!(inspect[0]["Id"], DEBIAN_ID);
    assert_eq!(
        inspect[0]["RepoDigests"][0],
        format!("{addr}/debian@{DEBIAN_MANIFEST}")
    );

    // The same image again: nothing is downloaded.
    let out = berth_ok(&root, &["pull", &reference]);
    assert_eq!(out.matches(": Already exists").count(), 4, "{out}");

    // By digest, into a fresh store; the image mounts and shows what the layers say.
    let root2 = tmp.path().join("root2");
    let by_digest = format!("{addr}/debian@{DEBIAN_MANIFEST}");
    let out = berth_ok(&root2, &["pull", "-q", &by_digest]);
    assert_eq!(out.trim(), by_digest);
    assert_eq!(
        berth_ok(&root2, &["images", "-q"]).trim(),
        &DEBIAN_ID[7..19]
    );
    let path = PathBuf::from(berth_ok(&root2, &["image", "mount", &by_digest]).trim());
    let hello = fs::read_to_string(path.join("opt/app/hello.txt"));
    let conf: Vec<_> = fs::read_dir(path.join("opt/app/conf"))
        .map(|d| d.count())
        .into_iter()
        .collect();
    let issue = path.join("etc/issue").exists();
    berth_ok(&root2, &["image", "unmount", &by_digest]);
    assert!(hello.unwrap().starts_with("hello"));
    assert_eq!(conf, [1], "opaque opt/app/conf holds only c.conf");
    assert!(!issue, "etc/issue is whited out");

    // An unknown tag fails with the registry's answer, and leaves no image.
    let out = berth(
        &tmp.path().join("root3"),
        &["pull", &format!("{addr}/debian:nope")],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("fetch manifest of {addr}/debian:nope")),
        "{err}"
    );
}

/// Kills `berth pull` with SIGKILL at several points, from the first requests to the middle of
/// unpacking, then pulls again: the pull succeeds and `berth system check` finds every blob
/// whole, every layer complete, and nothing orphaned or half-written.
#[test]
fn a_killed_pull_leaves_a_consistent_store() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::start(tmp.path());
    registry.push("debian-multi", "debian:multi");
    let root = tmp.path().join("root");
    let reference = format!("{}/debian:multi", registry.addr);

    // Pseudo-random delays, printed so that a failure can be replayed.
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    let mut delays = Vec::new();
    for ceiling in [100, 300, 800, 1500, 3000, 6000] {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        delays.push(Duration::from_millis(20 + (seed >> 33) % ceiling));
    }
    eprintln!("kill delays: {delays:?}");
    for delay in &delays {
        let mut child = berth_command(&root)
            .args(["pull", "-q", &reference])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(*delay);
        // Child::kill sends SIGKILL.
        let _ = child.kill();
        child.wait().unwrap();
    }
    berth_ok(&root, &["pull", "-q", &reference]);
    let check = berth(&root, &["system", "check"]);
    assert!(
        check.status.success(),
        "system check after kills at {delays:?}: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert_eq!(berth_ok(&root, &["images", "-q"]).trim(), &DEBIAN_ID[7..19]);
}

/// Push back what was pulled (its layers mounted from the repository they came from), push an
/// image loaded from a layout (its layer uploaded), and pull both again into a fresh store.
#[test]
fn push_back_and_pull_again() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::start(tmp.path());
    registry.push("debian-multi", "debian:multi");
    let addr = &registry.addr;
    let root = tmp.path().join("root");
    berth_ok(&root, &["pull", "-q", &format!("{addr}/debian:multi")]);

    let copy = format!("{addr}/copy/debian:pushed");
    berth_ok(&root, &["tag", &format!("{addr}/debian:multi"), &copy]);
    let out = berth_ok(&root, &["push", &copy]);
    assert_eq!(out.matches(": Mounted from debian").count(), 4, "{out}");
    assert!(
        out.contains(&format!("pushed: digest: {DEBIAN_MANIFEST}")),
        "{out}"
    );

    berth_ok(&root, &["load", "--input", SHARED_OCI, "busybox-latest"]);
    let bb = format!("{addr}/tools/busybox:1");
    berth_ok(&root, &["tag", "busybox-latest", &bb]);
    let out = berth_ok(&root, &["push", &bb]);
    assert_eq!(out.matches(": Pushed").count(), 1, "{out}");
    let out = berth_ok(&root, &["push", &bb]);
    assert_eq!(out.matches(": Layer already exists").count(), 1, "{out}");

    let fresh = tmp.path().join("fresh");
    berth_ok(&fresh, &["pull", "-q", &copy]);
    berth_ok(&fresh, &["pull", "-q", &bb]);
    let ids = berth_ok(&fresh, &["images", "-q"]);
    let mut ids: Vec<&str> = ids.lines().collect();
    ids.sort();
    let mut want = vec![&DEBIAN_ID[7..19], "d5a5cdcba7c2"];
    want.sort();
    assert_eq!(ids, want);
    berth_ok(&fresh, &["system", "check"]);
}

/// A registry that wants credentials: refused without them, refused with wrong ones, and
/// served once `berth login` has stored them, for pull and push; `logout` takes them away.
#[test]
fn login_pull_push_logout_with_basic_auth() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::start_with(tmp.path(), Some(("berth", "s3cret")), false);
    registry.push_as("busybox-latest", "tools/busybox:1", Some("berth:s3cret"));
    let addr = &registry.addr;
    let root = tmp.path().join("root");
    let reference = format!("{addr}/tools/busybox:1");

    let out = berth(&root, &["pull", &reference]);
    assert!(!out.status.success(), "pulled without credentials");

    let out = berth(&root, &["login", "-u", "berth", "-p", "wrong", addr]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("log in to {addr}: the registry answered 401")),
        "{err}"
    );

    let out = berth_ok(
        &root,
        &[
            "login",
            "-u",
            "berth",
            "-p",
            "s3cret",
            &format!("http://{addr}/"),
        ],
    );
    assert_eq!(out.trim(), "Login Succeeded");
    let config = fs::read_to_string(root.with_extension("docker").join("config.json")).unwrap();
    assert!(config.contains(addr.as_str()), "{config}");

    berth_ok(&root, &["pull", "-q", &reference]);
    let pushed = format!("{addr}/tools/copy:2");
    berth_ok(&root, &["tag", &reference, &pushed]);
    let out = berth_ok(&root, &["push", &pushed]);
    assert!(out.contains("Mounted from tools/busybox"), "{out}");

    let out = berth_ok(&root, &["logout", addr]);
    assert_eq!(out.trim(), format!("Removing login credentials for {addr}"));
    let out = berth(&root, &["pull", &pushed]);
    assert!(!out.status.success(), "pulled after logout");
}

/// A loopback registry that speaks only HTTPS with a self-signed certificate: berth finds
/// that it speaks TLS and, as Docker does for loopback registries, does not check the
/// certificate (plain HTTP would get "400 Client sent an HTTP request to an HTTPS server").
#[test]
fn pull_and_push_over_tls_with_a_self_signed_certificate() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::start_with(tmp.path(), None, true);
    registry.push("busybox-latest", "tools/busybox:1");
    let addr = &registry.addr;
    let root = tmp.path().join("root");
    let reference = format!("{addr}/tools/busybox:1");
    let out = berth_ok(&root, &["pull", &reference]);
    assert!(out.contains(": Pull complete"), "{out}");
    let copy = format!("{addr}/tools/copy:1");
    berth_ok(&root, &["tag", &reference, &copy]);
    let out = berth_ok(&root, &["push", "--tls-verify=false", &copy]);
    assert!(out.contains("Mounted from tools/busybox"), "{out}");
}

/// A proxy in front of a registry that answers the first `fail` blob requests with 503 and
/// cuts the responses to the next `cut` ones after 300 bytes (in the headers or the body):
/// a registry having a bad moment.
/// Every request gets `Connection: close`, so each connection carries one request.
struct FlakyProxy {
    addr: String,
    seen: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl FlakyProxy {
    fn start(upstream: String, fail: usize, cut: usize) -> Self {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = seen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { break };
                let upstream = upstream.clone();
                let counter = counter.clone();
                std::thread::spawn(move || {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match client.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&head).into_owned();
                    let is_blob = text.starts_with("GET ") && text.contains("/blobs/sha256:");
                    let n = if is_blob {
                        counter.fetch_add(1, Ordering::SeqCst)
                    } else {
                        usize::MAX
                    };
                    eprintln!(
                        "proxy: request {n}: {}",
                        text.lines().next().unwrap_or_default()
                    );
                    if n < fail {
                        let _ = client.write_all(
                            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        );
                        return;
                    }
                    let request = text
                        .lines()
                        .filter(|l| {
                            !l.to_ascii_lowercase().starts_with("connection:") && !l.is_empty()
                        })
                        .collect::<Vec<_>>()
                        .join("\r\n")
                        + "\r\nConnection: close\r\n\r\n";
                    let Ok(mut server) = TcpStream::connect(&upstream) else {
                        return;
                    };
                    if server.write_all(request.as_bytes()).is_err() {
                        return;
                    }
                    let limit = if n != usize::MAX && n < fail + cut {
                        300
                    } else {
                        u64::MAX
                    };
                    let copied = std::io::copy(&mut (&mut server).take(limit), &mut client);
                    eprintln!("proxy: request {n}: {copied:?} bytes back");
                });
            }
        });
        Self { addr, seen }
    }
}

/// 5xx answers and connections cut in the middle of a blob are retried, and what arrives
/// is still verified: the pull succeeds and the store checks clean.
#[test]
fn pull_retries_server_errors_and_cut_connections() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let registry = Registry::start(tmp.path());
    registry.push("busybox-latest", "tools/busybox:1");
    let proxy = FlakyProxy::start(registry.addr.clone(), 1, 2);
    let root = tmp.path().join("root");
    let out = berth_ok(&root, &["pull", &format!("{}/tools/busybox:1", proxy.addr)]);
    assert!(out.contains(": Pull complete"), "{out}");
    // Two blobs (config and layer), one refusal and two cuts: five requests at least.
    let seen = proxy.seen.load(std::sync::atomic::Ordering::SeqCst);
    assert!(seen >= 5, "the proxy saw {seen} blob requests");
    berth_ok(&root, &["system", "check"]);
}
