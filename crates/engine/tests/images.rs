//! Integration tests, as root: load real images, mount them with overlayfs, and feed the
//! engine hostile layers. The OCI layout in ../shared/images is only ever read.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

mod common;

use berth_engine::digest::Digest;
use berth_engine::images::Images;
use berth_engine::snapshots::{self, InitFiles};
use common::{berth_command, berth_err, berth_ok, require_root, skopeo, Mounted, SHARED_OCI};

const DEBIAN_MULTI_LAYERS: [&str; 4] = [
    "99110df126f6cd13b63c6c7420f0c4ba485bb27a785fc17e260d3347f60e1413",
    "ca312cd741534f3ce95e90066e18341904e4f413ce1c4df29154b630bdf37715",
    "47b0ec4592c1e43ce5812a68c8ec219d032922765c06753aae262ab63b789a79",
    "81996154e41a76925a66e126e8d9eef1b496dfe8377ffbb3e1448102429629b4",
];
const BUSYBOX_ID: &str = "sha256:d5a5cdcba7c278227a05a14a6919fb8fc87d317069502d65dab73d0ec4713fa5";

/// The regular files of a gzip layer blob in the shared layout: path → (mode, content).
fn layer_files(hex: &str) -> BTreeMap<String, (u32, Vec<u8>)> {
    let blob = fs::File::open(Path::new(SHARED_OCI).join("blobs/sha256").join(hex)).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(blob));
    let mut files = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = entry
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_start_matches('/')
            .to_string();
        if path.rsplit('/').next().unwrap().starts_with(".wh.") {
            continue;
        }
        let mode = entry.header().mode().unwrap() & 0o7777;
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        files.insert(path, (mode, data));
    }
    files
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        out.push(path.clone());
        if entry.file_type().unwrap().is_dir() {
            walk(&path, out);
        }
    }
}

#[test]
fn debian_multi_mounts_with_every_layer_applied() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let out = berth_ok(&root, &["load", "--input", SHARED_OCI]);
    assert!(out.contains("Loaded image: debian-multi:latest"), "{out}");
    assert!(out.contains("Loaded image: busybox-latest:latest"), "{out}");
    // Every blob hashes to its name, every layer is whole, nothing is orphaned.
    berth_ok(&root, &["system", "check"]);

    let path = PathBuf::from(berth_ok(&root, &["image", "mount", "debian-multi"]).trim());
    let _guard = Mounted(path.clone());
    assert!(snapshots::is_mount_point(&path).unwrap());
    // A view for looking at: read-only, no device access, no setuid.
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = mountinfo
        .lines()
        .find(|l| l.split(' ').nth(4) == path.to_str())
        .unwrap();
    let options = line.split(' ').nth(5).unwrap();
    for flag in ["ro", "nosuid", "nodev"] {
        assert!(
            options.split(',').any(|o| o == flag),
            "{flag} missing in {line}"
        );
    }
    let app = path.join("opt/app");

    // Layer 3's whiteouts: a file of the base, a file of layer 2, a directory of the base.
    assert!(!path.join("etc/issue").exists());
    assert!(
        path.join("etc/issue.net").exists(),
        "only etc/issue is whited out"
    );
    assert!(!app.join("to-delete.txt").exists());
    assert!(!path.join("usr/share/doc/apt").exists());
    assert!(
        path.join("usr/share/doc/dpkg").exists(),
        "only usr/share/doc/apt is whited out"
    );

    // Layer 4: opt/app/conf is opaque, with mode 750: only its own c.conf shows.
    let conf = fs::metadata(app.join("conf")).unwrap();
    assert_eq!(conf.permissions().mode() & 0o7777, 0o750);
    let names: Vec<String> = fs::read_dir(app.join("conf"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["c.conf"]);

    // Layer 2: hard link, relative symlink, fifo, setuid file.
    let hello = fs::metadata(app.join("hello.txt")).unwrap();
    let hard = fs::metadata(app.join("hello-hardlink.txt")).unwrap();
    assert_eq!(hello.ino(), hard.ino());
    assert_eq!(hello.nlink(), 2);
    let link = app.join("data/hello-symlink");
    assert_eq!(fs::read_link(&link).unwrap(), Path::new("../hello.txt"));
    assert_eq!(
        fs::read(&link).unwrap(),
        fs::read(app.join("hello.txt")).unwrap()
    );
    assert!(fs::symlink_metadata(app.join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    let setuid = fs::metadata(app.join("setuid-busybox")).unwrap();
    assert_eq!(setuid.permissions().mode() & 0o7777, 0o4755);
    assert_eq!((setuid.uid(), setuid.gid()), (0, 0));

    // Every regular file of layers 2 and 4 that no later layer hides: same bytes, same mode.
    let mut expected = layer_files(DEBIAN_MULTI_LAYERS[1]);
    expected.remove("opt/app/to-delete.txt");
    expected.retain(|p, _| !p.starts_with("opt/app/conf/"));
    expected.extend(layer_files(DEBIAN_MULTI_LAYERS[3]));
    assert!(expected.contains_key("opt/app/data/random-8M.bin"));
    assert!(expected.contains_key("etc/motd"));
    for (rel, (mode, data)) in &expected {
        let file = path.join(rel);
        let content = fs::read(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        assert_eq!(&content, data, "content of {rel}");
        let meta = fs::symlink_metadata(&file).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, *mode, "mode of {rel}");
    }

    // No whiteout shows through, neither as a `.wh.` name nor as a 0/0 device.
    let mut all = Vec::new();
    walk(&path, &mut all);
    assert!(all.len() > 6000, "{} entries", all.len());
    for p in &all {
        let name = p.file_name().unwrap().to_string_lossy();
        assert!(!name.starts_with(".wh."), "{} is visible", p.display());
        let meta = fs::symlink_metadata(p).unwrap();
        assert!(
            !(meta.file_type().is_char_device() && meta.rdev() == 0),
            "whiteout {} is visible",
            p.display()
        );
    }

    // Mounting twice gives the same path; unmount removes the mount.
    let again = berth_ok(&root, &["image", "mount", "debian-multi"]);
    assert_eq!(again.trim(), path.to_str().unwrap());
    let err = berth_err(&root, &["rmi", "debian-multi"]);
    assert!(err.contains("is mounted at"), "{err}");
    berth_ok(&root, &["image", "unmount", "debian-multi"]);
    assert!(!snapshots::is_mount_point(&path).unwrap());
}

#[test]
fn images_tag_inspect_and_rmi() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let out = berth_ok(
        &root,
        &["load", "-q", "--input", SHARED_OCI, "busybox-latest"],
    );
    assert_eq!(out.trim(), BUSYBOX_ID);

    let table = berth_ok(&root, &["images"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(lines[0].starts_with("REPOSITORY"), "{table}");
    let cells: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        &cells[..3],
        ["busybox-latest", "latest", &BUSYBOX_ID[7..19]]
    );

    berth_ok(
        &root,
        &["tag", "busybox-latest", "127.0.0.1:5000/tools/busybox:1.35"],
    );
    let ids = berth_ok(&root, &["images", "-q"]);
    assert_eq!(ids.trim(), &BUSYBOX_ID[7..19], "one image, two tags");
    let json = berth_ok(&root, &["images", "--format", "json", "--digests"]);
    let rows: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert!(rows
        .iter()
        .any(|r| r["Repository"] == "127.0.0.1:5000/tools/busybox" && r["Tag"] == "1.35"));
    assert!(berth_ok(&root, &["images", "--digests"]).contains("sha256:f506d97d797b"));

    let inspect: serde_json::Value =
        serde_json::from_str(&berth_ok(&root, &["image", "inspect", "busybox-latest"])).unwrap();
    assert_eq!(inspect[0]["Id"], BUSYBOX_ID);
    assert_eq!(inspect[0]["Config"]["Cmd"][0], "sh");
    assert_eq!(inspect[0]["RootFS"]["Layers"].as_array().unwrap().len(), 1);
    assert_eq!(inspect[0]["RepoTags"].as_array().unwrap().len(), 2);

    // By id with two tags: refused without -f. By tag: untags only.
    let err = berth_err(&root, &["rmi", &BUSYBOX_ID[7..19]]);
    assert!(err.contains("several tags"), "{err}");
    let out = berth_ok(&root, &["rmi", "127.0.0.1:5000/tools/busybox:1.35"]);
    assert_eq!(out.trim(), "Untagged: 127.0.0.1:5000/tools/busybox:1.35");
    let out = berth_ok(&root, &["rmi", "busybox-latest"]);
    assert!(out.contains(&format!("Deleted: {BUSYBOX_ID}")), "{out}");
    assert_eq!(berth_ok(&root, &["images", "-q"]), "");
    // Nothing refers to the blobs and the layer any more: collected.
    assert_eq!(
        fs::read_dir(root.join("content/blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
    let layers: Vec<_> = fs::read_dir(root.join("layers"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(layers, ["tmp"]);
    let err = berth_err(&root, &["image", "inspect", "busybox-latest"]);
    assert!(err.contains("no such image: busybox-latest"), "{err}");
}

#[test]
fn loads_docker_archive_and_oci_archive() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let docker = tmp.path().join("bb-docker.tar");
    let oci = tmp.path().join("bb-oci.tar");
    let src = format!("oci:{SHARED_OCI}:busybox-latest");
    skopeo(&[
        "copy",
        "-q",
        &src,
        &format!("docker-archive:{}:busybox:latest", docker.display()),
    ]);
    skopeo(&[
        "copy",
        "-q",
        &src,
        &format!("oci-archive:{}:tools/bb:oci", oci.display()),
    ]);

    let out = berth_ok(&root, &["load", "-i", docker.to_str().unwrap()]);
    assert_eq!(out.trim(), "Loaded image: busybox:latest");
    let out = berth_ok(&root, &["load", "-i", oci.to_str().unwrap()]);
    assert_eq!(out.trim(), "Loaded image: tools/bb:oci");
    // The same config either way: one image, two tags, the id of the layout's image.
    let ids = berth_ok(&root, &["images", "-q"]);
    assert_eq!(ids.trim(), &BUSYBOX_ID[7..19]);
    let inspect: serde_json::Value =
        serde_json::from_str(&berth_ok(&root, &["image", "inspect", "busybox:latest"])).unwrap();
    assert_eq!(inspect[0]["Id"], BUSYBOX_ID);

    let path = PathBuf::from(berth_ok(&root, &["image", "mount", "busybox"]).trim());
    let _guard = Mounted(path.clone());
    assert!(path.join("bin/busybox").is_file());
    assert_eq!(
        fs::read_link(path.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
    berth_ok(&root, &["image", "unmount", "busybox"]);

    // A gzip-compressed docker-archive read from stdin, as `docker load < x.tar.gz`.
    let gz = tmp.path().join("bb.tar.gz");
    let mut enc =
        flate2::write::GzEncoder::new(fs::File::create(&gz).unwrap(), flate2::Compression::fast());
    enc.write_all(&fs::read(&docker).unwrap()).unwrap();
    enc.finish().unwrap();
    let root2 = tmp.path().join("root2");
    let out = berth_command(&root2)
        .arg("load")
        .stdin(fs::File::open(&gz).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Loaded image: busybox:latest"
    );
}

/// A one-image OCI layout built from layer tars, to hand hostile layers to `berth load`.
struct Layout {
    dir: PathBuf,
}

impl Layout {
    fn new(dir: PathBuf, layers: &[Vec<u8>]) -> Self {
        fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        let layout = Self { dir };
        let mut descs = Vec::new();
        let mut diff_ids = Vec::new();
        for tar in layers {
            let gz = gzip(tar);
            descs.push(layout.blob("application/vnd.oci.image.layer.v1.tar+gzip", &gz));
            diff_ids.push(Digest::of(tar).to_string());
        }
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let config = layout.blob(
            "application/vnd.oci.image.config.v1+json",
            config.to_string().as_bytes(),
        );
        // No mediaType, as some tools write it.
        let manifest = serde_json::json!({"schemaVersion": 2, "config": config, "layers": descs});
        let manifest = layout.blob(
            "application/vnd.oci.image.manifest.v1+json",
            manifest.to_string().as_bytes(),
        );
        layout.write_index(manifest);
        layout
    }

    fn blob(&self, media_type: &str, data: &[u8]) -> serde_json::Value {
        let digest = Digest::of(data);
        fs::write(self.dir.join("blobs/sha256").join(digest.hex()), data).unwrap();
        serde_json::json!({"mediaType": media_type, "digest": digest.to_string(), "size": data.len()})
    }

    fn write_index(&self, mut manifest: serde_json::Value) {
        manifest["annotations"] =
            serde_json::json!({"org.opencontainers.image.ref.name": "built:1"});
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [manifest]});
        fs::write(self.dir.join("index.json"), index.to_string()).unwrap();
        fs::write(
            self.dir.join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
    }

    fn path(&self) -> &str {
        self.dir.to_str().unwrap()
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// Tar headers written by hand, so that hostile names reach the engine as they are
/// (`tar::Builder::append_path` would refuse `..`).
fn entry(
    builder: &mut tar::Builder<Vec<u8>>,
    kind: tar::EntryType,
    path: &str,
    link: &str,
    data: &[u8],
) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.as_gnu_mut().unwrap().name[..path.len()].copy_from_slice(path.as_bytes());
    if !link.is_empty() {
        h.set_link_name_literal(link).unwrap();
    }
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(data.len() as u64);
    h.set_mtime(1_600_000_000);
    h.set_cksum();
    builder.append(&h, data).unwrap();
}

fn tar_of(entries: &[(tar::EntryType, &str, &str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (kind, path, link, data) in entries {
        entry(&mut b, *kind, path, link, data);
    }
    b.into_inner().unwrap()
}

/// After a refused load: no image, no layer, no half-unpacked directory left.
fn assert_store_clean(root: &Path) {
    assert_eq!(berth_ok(root, &["images", "-q"]), "");
    let layers: Vec<_> = fs::read_dir(root.join("layers"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(layers, ["tmp"], "a layer was left in {}", root.display());
    assert_eq!(fs::read_dir(root.join("layers/tmp")).unwrap().count(), 0);
    assert_eq!(
        fs::read_dir(root.join("content/ingest")).unwrap().count(),
        0
    );
}

#[test]
fn hostile_layers_are_refused() {
    require_root();
    use tar::EntryType::{Link, Regular, Symlink};
    let tmp = tempfile::tempdir().unwrap();
    // The store sits deep enough that `../../etc/x` from a layer would land in tmp/, not /etc.
    let root = tmp.path().join("a/b/root");
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    let secret = tmp.path().join("secret");
    fs::write(&secret, b"secret").unwrap();
    let outside_str = outside.to_str().unwrap().to_string();
    let secret_rel = format!("../../../../../..{}", secret.display());

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dot-dot",
            tar_of(&[
                (Regular, "../../etc/x", "", b"x"),
                (Regular, "../../../../../../../../etc/x", "", b"x"),
            ]),
            "refused tar entry \"../../etc/x\": `..` would leave the layer",
        ),
        (
            "absolute-symlink",
            tar_of(&[
                (Symlink, "escape", &outside_str, b""),
                (Regular, "escape/pwned", "", b"x"),
            ]),
            "its parent \"escape\" is a symlink",
        ),
        (
            "hard-link-dot-dot",
            tar_of(&[(Link, "stolen", &secret_rel, b"")]),
            "the target is outside the layer",
        ),
        (
            "hard-link-absolute",
            tar_of(&[(Link, "stolen", secret.to_str().unwrap(), b"")]),
            "no such file in the layer",
        ),
    ];
    for (name, tar, message) in cases {
        let layout = Layout::new(tmp.path().join(name), &[tar]);
        let err = berth_err(&root, &["load", "--input", layout.path()]);
        assert!(err.contains(message), "{name}: {err}");
        assert_store_clean(&root);
    }
    assert!(!tmp.path().join("a/etc").exists() && !tmp.path().join("etc").exists());
    assert!(!Path::new("/etc/x").exists());
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
    assert_eq!(fs::metadata(&secret).unwrap().nlink(), 1);
}

#[test]
fn corrupt_blobs_are_refused() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let good = tar_of(&[(tar::EntryType::Regular, "file", "", &[7u8; 200_000])]);

    // A blob whose bytes do not match its name.
    let layout = Layout::new(tmp.path().join("mismatch"), std::slice::from_ref(&good));
    let manifest: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(layout.dir.join("index.json")).unwrap()).unwrap();
    let manifest_hex = manifest["manifests"][0]["digest"].as_str().unwrap()[7..].to_string();
    let manifest: serde_json::Value = serde_json::from_slice(
        &fs::read(layout.dir.join("blobs/sha256").join(&manifest_hex)).unwrap(),
    )
    .unwrap();
    let layer_hex = manifest["layers"][0]["digest"].as_str().unwrap()[7..].to_string();
    let layer_path = layout.dir.join("blobs/sha256").join(&layer_hex);
    let mut bytes = fs::read(&layer_path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&layer_path, &bytes).unwrap();
    let err = berth_err(&root, &["load", "--input", layout.path()]);
    assert!(
        err.contains(&format!(
            "verify blob sha256:{layer_hex}: content has digest"
        )),
        "{err}"
    );
    assert!(!root.join("content/blobs/sha256").join(&layer_hex).exists());
    assert_store_clean(&root);

    // A truncated gzip, named by its own (truncated) digest: the blob is "valid", the layer is not.
    let layout = Layout::new(tmp.path().join("truncated"), &[]);
    let gz = gzip(&good);
    let truncated = &gz[..gz.len() / 2];
    let layer = layout.blob("application/vnd.oci.image.layer.v1.tar+gzip", truncated);
    let config = serde_json::json!({"rootfs": {"type": "layers", "diff_ids": [Digest::of(&good).to_string()]}});
    let config = layout.blob(
        "application/vnd.oci.image.config.v1+json",
        config.to_string().as_bytes(),
    );
    let manifest = serde_json::json!({"schemaVersion": 2, "config": config, "layers": [layer]});
    let manifest = layout.blob(
        "application/vnd.oci.image.manifest.v1+json",
        manifest.to_string().as_bytes(),
    );
    layout.write_index(manifest.clone());
    let err = berth_err(&root, &["load", "--input", layout.path()]);
    assert!(
        err.contains(&format!("read layer {}", layer["digest"].as_str().unwrap())),
        "{err}"
    );
    assert_store_clean(&root);

    // A layer declared as 10 GB: the copy stops at the real end, the sizes differ, refused.
    let layout = Layout::new(tmp.path().join("huge-layer"), &[]);
    let mut layer = layout.blob("application/vnd.oci.image.layer.v1.tar+gzip", &gzip(&good));
    layer["size"] = serde_json::json!(10_000_000_000u64);
    let config = serde_json::json!({"rootfs": {"type": "layers", "diff_ids": [Digest::of(&good).to_string()]}});
    let config = layout.blob(
        "application/vnd.oci.image.config.v1+json",
        config.to_string().as_bytes(),
    );
    let huge_layer = serde_json::json!({"schemaVersion": 2, "config": config, "layers": [layer]});
    let huge_layer = layout.blob(
        "application/vnd.oci.image.manifest.v1+json",
        huge_layer.to_string().as_bytes(),
    );
    layout.write_index(huge_layer);
    let err = berth_err(&root, &["load", "--input", layout.path()]);
    assert!(
        err.contains("does not match the declared 10000000000"),
        "{err}"
    );
    assert_store_clean(&root);

    // A manifest declared as 10 GB: refused before a byte is read.
    let mut huge = manifest;
    huge["size"] = serde_json::json!(10_000_000_000u64);
    layout.write_index(huge);
    let err = berth_err(&root, &["load", "--input", layout.path()]);
    assert!(err.contains("declared size 10000000000 is over"), "{err}");
    assert_store_clean(&root);
}

#[test]
fn many_layers_mount_and_snapshots_are_writable() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    // 128 layers: the lowerdir list no longer fits in mount(2)'s page of options.
    let layers: Vec<Vec<u8>> = (0..128)
        .map(|i| {
            let name = format!("layers/l{i:03}");
            let data = format!("{i}\n");
            let mut entries = vec![(tar::EntryType::Regular, name.as_str(), "", data.as_bytes())];
            if i == 127 {
                entries.push((tar::EntryType::Regular, "layers/.wh.l000", "", b""));
            }
            tar_of(&entries)
        })
        .collect();
    let layout = Layout::new(tmp.path().join("tall"), &layers);
    berth_ok(&root, &["load", "--input", layout.path()]);
    let path = PathBuf::from(berth_ok(&root, &["image", "mount", "built:1"]).trim());
    let _guard = Mounted(path.clone());
    let names = fs::read_dir(path.join("layers")).unwrap().count();
    assert_eq!(names, 127, "128 layers, the last one whiting out the first");
    assert_eq!(
        fs::read_to_string(path.join("layers/l064")).unwrap(),
        "64\n"
    );
    berth_ok(&root, &["image", "unmount", "built:1"]);

    // A container's snapshot: init layer above the image, writes land in upper.
    let images = Images::open(&root).unwrap();
    let image = images.lookup("built:1").unwrap();
    let snapshotter = images.snapshots();
    let init = InitFiles::new("box1", "nameserver 10.0.0.1\n");
    let overlay = snapshotter.prepare("c1", &image.chain_ids, &init).unwrap();
    assert_eq!(overlay.lowerdirs.len(), 129);
    let target = tmp.path().join("rootfs");
    fs::create_dir(&target).unwrap();
    overlay.mount(&target).unwrap();
    let _guard = Mounted(target.clone());
    assert_eq!(
        fs::read_to_string(target.join("etc/hostname")).unwrap(),
        "box1\n"
    );
    assert_eq!(
        fs::read_to_string(target.join("etc/resolv.conf")).unwrap(),
        "nameserver 10.0.0.1\n"
    );
    fs::write(target.join("layers/new"), b"rw").unwrap();
    fs::remove_file(target.join("layers/l001")).unwrap();
    let upper = overlay.upperdir.clone().unwrap();
    assert_eq!(fs::read(upper.join("layers/new")).unwrap(), b"rw");
    let wh = fs::symlink_metadata(upper.join("layers/l001")).unwrap();
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "overlay's own whiteout"
    );
    // The image's layers are untouched.
    let base = images.layers().diff_dir(&image.chain_ids[1]);
    assert!(base.join("layers/l001").is_file());

    // The container's snapshot holds the image: rmi refuses; -f removes the image, but the
    // layers stay under the container, and the store still checks clean.
    let err = berth_err(&root, &["rmi", "built:1"]);
    assert!(err.contains("containers use it (c1)"), "{err}");
    let out = berth_ok(&root, &["rmi", "-f", "built:1"]);
    assert!(out.contains("Deleted: "), "{out}");
    assert!(base.join("layers/l001").is_file());
    assert_eq!(
        fs::read_to_string(target.join("layers/l064")).unwrap(),
        "64\n"
    );
    berth_ok(&root, &["system", "check"]);

    // Once the snapshot goes, nothing holds the layers.
    snapshots::unmount_overlay(&target).unwrap();
    snapshotter.remove("c1").unwrap();
    let out = berth_ok(&root, &["image", "prune"]);
    assert!(out.contains("and 128 layers"), "{out}");
    berth_ok(&root, &["system", "check"]);
}

#[test]
fn save_round_trips_and_skopeo_reads_it() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    berth_ok(&root, &["load", "--input", SHARED_OCI, "busybox-latest"]);
    berth_ok(&root, &["tag", "busybox-latest", "tools/bb:1"]);
    let docker = tmp.path().join("saved-docker.tar");
    let oci = tmp.path().join("saved-oci.tar");
    berth_ok(
        &root,
        &["save", "-o", docker.to_str().unwrap(), "tools/bb:1"],
    );
    berth_ok(
        &root,
        &[
            "save",
            "--format",
            "oci-archive",
            "-o",
            oci.to_str().unwrap(),
            "tools/bb:1",
        ],
    );
    // Saving is deterministic.
    let again = tmp.path().join("again.tar");
    berth_ok(
        &root,
        &["save", "-o", again.to_str().unwrap(), "tools/bb:1"],
    );
    assert_eq!(fs::read(&docker).unwrap(), fs::read(&again).unwrap());

    // skopeo, which no one here wrote, reads both and finds the blobs whole.
    skopeo(&[
        "copy",
        "-q",
        &format!("docker-archive:{}", docker.display()),
        &format!("oci:{}:a", tmp.path().join("copy1").display()),
    ]);
    skopeo(&[
        "copy",
        "-q",
        &format!("oci-archive:{}:tools/bb:1", oci.display()),
        &format!("oci:{}:b", tmp.path().join("copy2").display()),
    ]);

    // Both load back into a fresh store as the same image under the same tag.
    for archive in [&docker, &oci] {
        let fresh = tmp.path().join(format!(
            "fresh-{}",
            archive.file_name().unwrap().to_string_lossy()
        ));
        let out = berth_ok(&fresh, &["load", "-i", archive.to_str().unwrap()]);
        assert_eq!(out.trim(), "Loaded image: tools/bb:1");
        let inspect: serde_json::Value =
            serde_json::from_str(&berth_ok(&fresh, &["image", "inspect", "tools/bb:1"])).unwrap();
        assert_eq!(inspect[0]["Id"], BUSYBOX_ID);
        berth_ok(&fresh, &["system", "check"]);
    }
}

/// A multi-platform index inside a layout: the host's manifest is the one loaded.
#[test]
fn loads_the_host_platform_from_an_index() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let host = berth_engine::images::Platform::host();
    let other_arch = if host.architecture == "s390x" {
        "riscv64"
    } else {
        "s390x"
    };
    let mut platforms = Vec::new();
    for (arch, file) in [(other_arch, "other"), (host.architecture.as_str(), "host")] {
        let tar = tar_of(&[(tar::EntryType::Regular, file, "", b"x")]);
        let part = Layout::new(tmp.path().join(file), &[tar]);
        let index: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(part.dir.join("index.json")).unwrap())
                .unwrap();
        let mut manifest = index["manifests"][0].clone();
        manifest["annotations"] = serde_json::json!({});
        manifest["platform"] = serde_json::json!({"os": "linux", "architecture": arch});
        platforms.push((part, manifest));
    }
    // One layout holding both images' blobs, its index.json naming a nested index.
    let layout = &platforms[1].0;
    for entry in fs::read_dir(platforms[0].0.dir.join("blobs/sha256")).unwrap() {
        let entry = entry.unwrap();
        fs::copy(
            entry.path(),
            layout.dir.join("blobs/sha256").join(entry.file_name()),
        )
        .unwrap();
    }
    let nested = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [platforms[0].1, platforms[1].1],
    });
    let nested = layout.blob(
        "application/vnd.oci.image.index.v1+json",
        nested.to_string().as_bytes(),
    );
    layout.write_index(nested);
    berth_ok(&root, &["load", "--input", layout.path()]);
    let path = PathBuf::from(berth_ok(&root, &["image", "mount", "built:1"]).trim());
    let _guard = Mounted(path.clone());
    assert!(path.join("host").is_file());
    assert!(!path.join("other").exists());
    berth_ok(&root, &["image", "unmount", "built:1"]);
}

/// A tag that moves to another image leaves the first one `<none>`; `image prune` removes it
/// with the blobs and layers only it used, and the store checks clean.
#[test]
fn prune_removes_untagged_images_and_their_layers() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let shared = tar_of(&[(tar::EntryType::Regular, "shared", "", b"s")]);
    let first = Layout::new(
        tmp.path().join("first"),
        &[
            shared.clone(),
            tar_of(&[(tar::EntryType::Regular, "one", "", b"1")]),
        ],
    );
    let second = Layout::new(
        tmp.path().join("second"),
        &[
            shared,
            tar_of(&[(tar::EntryType::Regular, "two", "", b"2")]),
        ],
    );
    let first_id = berth_ok(&root, &["load", "-q", "--input", first.path()]);
    berth_ok(&root, &["load", "--input", second.path()]);
    let table = berth_ok(&root, &["images"]);
    assert!(table.lines().any(|l| l.starts_with("<none>")), "{table}");
    assert_eq!(
        fs::read_dir(root.join("layers")).unwrap().count(),
        4,
        "3 layers and tmp/"
    );

    let out = berth_ok(&root, &["image", "prune"]);
    assert!(
        out.contains(&format!("Deleted: {}", first_id.trim())),
        "{out}"
    );
    assert!(out.contains("Removed 3 blobs and 1 layers"), "{out}");
    assert_eq!(berth_ok(&root, &["images", "-q"]).lines().count(), 1);
    berth_ok(&root, &["system", "check"]);
}

/// Kills `berth load` with SIGKILL at several points, from the first blob copies to the
/// middle of unpacking, then loads again: the load succeeds and `berth system check` finds
/// every blob whole, every layer complete, nothing orphaned or half-written.
#[test]
fn a_killed_load_leaves_a_consistent_store() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    let mut delays = Vec::new();
    for ceiling in [100, 400, 1500, 4000] {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        delays.push(std::time::Duration::from_millis(
            20 + (seed >> 33) % ceiling,
        ));
    }
    eprintln!("kill delays: {delays:?}");
    for delay in &delays {
        let mut child = berth_command(&root)
            .args(["load", "-q", "--input", SHARED_OCI, "debian-multi"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(*delay);
        // Child::kill sends SIGKILL.
        let _ = child.kill();
        child.wait().unwrap();
    }
    berth_ok(
        &root,
        &["load", "-q", "--input", SHARED_OCI, "debian-multi"],
    );
    let check = common::berth(&root, &["system", "check"]);
    assert!(
        check.status.success(),
        "system check after kills at {delays:?}: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}
