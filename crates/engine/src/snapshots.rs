//! Snapshots: read-only image layers + an init layer + a read-write layer, returned as the
//! overlay mount to perform (overlayfs(5); containerd's snapshotter, where a snapshot is data).

use std::ffi::CString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::CWD;
use rustix::mount::{
    fsconfig_create, fsconfig_set_string, fsmount, fsopen, mount, move_mount, unmount,
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags, UnmountFlags,
};

use crate::digest::Digest;
use crate::layers::{LayerError, LayerStore};

/// In each snapshot directory: the chain ids of the layers it stacks, JSON.
const CHAIN_FILE: &str = "chain.json";
/// mount(2) copies at most one page of options: a longer lowerdir list fails with EINVAL.
/// Past this we use the new mount API, which takes each lower directory on its own.
const LEGACY_OPTIONS_MAX: usize = 4095;

/// Why a snapshot could not be prepared, mounted or removed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("mount overlay on {target}: {source} ({detail})")]
    Mount {
        target: PathBuf,
        source: io::Error,
        detail: String,
    },
    #[error("prepare snapshot {0:?}: invalid container id (letters, digits, `_`, `.`, `-`)")]
    InvalidId(String),
    #[error("prepare snapshot: layer {0} is not unpacked")]
    MissingLayer(Digest),
    #[error(transparent)]
    Layer(#[from] LayerError),
}

type Result<T> = std::result::Result<T, SnapshotError>;

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> SnapshotError {
    let path = path.to_path_buf();
    move |source| SnapshotError::Io { op, path, source }
}

/// An overlay mount as data: what to stack, top first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverlayMount {
    /// Top first: the init layer, then the image's layers from the newest to the base.
    pub lowerdirs: Vec<PathBuf>,
    /// `None` for a read-only view.
    pub upperdir: Option<PathBuf>,
    pub workdir: Option<PathBuf>,
}

impl OverlayMount {
    /// The mount(2) data string: `lowerdir=a:b,upperdir=u,workdir=w`.
    pub fn options(&self) -> String {
        let lower: Vec<String> = self
            .lowerdirs
            .iter()
            .map(|p| escape_lowerdir(&p.to_string_lossy()))
            .collect();
        let mut s = format!("lowerdir={}", lower.join(":"));
        if let (Some(upper), Some(work)) = (&self.upperdir, &self.workdir) {
            s.push_str(&format!(
                ",upperdir={},workdir={}",
                upper.display(),
                work.display()
            ));
        }
        s
    }

    /// Mounts the overlay on `target`, read-only when there is no upper directory. The options
    /// go through mount(2) when they fit in its one page, else through fsopen(2) and
    /// `lowerdir+` (Linux 6.8), which takes one lower directory per call and so any number.
    pub fn mount(&self, target: &Path) -> Result<()> {
        let options = self.options();
        tracing::debug!(target = %target.display(), layers = self.lowerdirs.len(), options_len = options.len(), "mount overlay");
        if options.len() <= LEGACY_OPTIONS_MAX {
            self.mount_legacy(target, &options)
        } else {
            self.mount_new_api(target)
        }
    }

    fn mount_legacy(&self, target: &Path, options: &str) -> Result<()> {
        // A view is for looking at: read-only, and its device nodes and setuid files (which
        // an image may ship with any mode) give no access or privilege on the host.
        let flags = if self.upperdir.is_none() {
            MountFlags::RDONLY | MountFlags::NODEV | MountFlags::NOSUID
        } else {
            MountFlags::empty()
        };
        let data = CString::new(options).map_err(|e| SnapshotError::Mount {
            target: target.to_path_buf(),
            source: io::Error::new(io::ErrorKind::InvalidInput, e),
            detail: "NUL byte in a layer path".into(),
        })?;
        mount("overlay", target, "overlay", flags, data.as_c_str()).map_err(|e| {
            SnapshotError::Mount {
                target: target.to_path_buf(),
                source: e.into(),
                detail: options.to_string(),
            }
        })
    }

    fn mount_new_api(&self, target: &Path) -> Result<()> {
        let fail = |step: &str| {
            let step = step.to_string();
            let target = target.to_path_buf();
            move |e: rustix::io::Errno| SnapshotError::Mount {
                target,
                source: e.into(),
                detail: step,
            }
        };
        let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).map_err(fail("fsopen"))?;
        for lower in &self.lowerdirs {
            fsconfig_set_string(&fs, "lowerdir+", lower.as_path())
                .map_err(fail(&format!("fsconfig lowerdir+={}", lower.display())))?;
        }
        if let (Some(upper), Some(work)) = (&self.upperdir, &self.workdir) {
            fsconfig_set_string(&fs, "upperdir", upper.as_path())
                .map_err(fail("fsconfig upperdir"))?;
            fsconfig_set_string(&fs, "workdir", work.as_path())
                .map_err(fail("fsconfig workdir"))?;
        }
        fsconfig_create(&fs).map_err(fail("fsconfig create"))?;
        let attrs = if self.upperdir.is_none() {
            MountAttrFlags::MOUNT_ATTR_RDONLY
                | MountAttrFlags::MOUNT_ATTR_NODEV
                | MountAttrFlags::MOUNT_ATTR_NOSUID
        } else {
            MountAttrFlags::empty()
        };
        let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs).map_err(fail("fsmount"))?;
        move_mount(
            &mnt,
            "",
            CWD,
            target,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .map_err(fail("move_mount"))
    }
}

/// overlayfs(5): `:` separates lower directories and `,` options; a backslash escapes both.
fn escape_lowerdir(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if matches!(c, ':' | ',' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Detaches the mount on `target`.
pub fn unmount_overlay(target: &Path) -> Result<()> {
    unmount(target, UnmountFlags::empty()).map_err(|e| SnapshotError::Io {
        op: "umount",
        path: target.to_path_buf(),
        source: e.into(),
    })
}

/// Whether `path` is a mount point, by /proc/self/mountinfo (proc(5)).
pub fn is_mount_point(path: &Path) -> Result<bool> {
    let info = fs::read_to_string("/proc/self/mountinfo")
        .map_err(io_err("read", Path::new("/proc/self/mountinfo")))?;
    let want = path.to_string_lossy();
    // Field 5 is the mount point, with space, tab, newline and backslash octal-escaped.
    Ok(info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| unescape_mountinfo(m) == want))
}

fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let n = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(n);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The files Docker makes per container and keeps out of commits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitFiles {
    pub hostname: String,
    pub hosts: String,
    pub resolv_conf: String,
}

impl InitFiles {
    /// Docker's defaults: localhost entries plus the container's hostname, and the host's
    /// resolv.conf without loopback name servers (unreachable from a network namespace).
    pub fn new(hostname: &str, host_resolv_conf: &str) -> Self {
        let hosts = format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
             ff02::2\tip6-allrouters\n127.0.1.1\t{hostname}\n"
        );
        let mut resolv: Vec<&str> = host_resolv_conf
            .lines()
            .filter(|l| {
                let mut words = l.split_whitespace();
                !(words.next() == Some("nameserver")
                    && words
                        .next()
                        .is_some_and(|ns| ns.starts_with("127.") || ns == "::1"))
            })
            .collect();
        if !resolv
            .iter()
            .any(|l| l.trim_start().starts_with("nameserver"))
        {
            // What Docker falls back to when the host only has a local resolver.
            resolv.extend(["nameserver 8.8.8.8", "nameserver 8.8.4.4"]);
        }
        Self {
            hostname: hostname.to_string(),
            hosts,
            resolv_conf: resolv.join("\n") + "\n",
        }
    }
}

/// Snapshots under `<root>/snapshots/<id>/{init,upper,work}`, layers reached through short
/// links `<root>/l/<16 hex>` (as Docker's overlay2 `l/` directory) to keep lowerdir short.
pub struct Snapshotter {
    root: PathBuf,
    layers: LayerStore,
}

impl Snapshotter {
    pub fn new(root: &Path, layers: LayerStore) -> Self {
        Self {
            root: root.to_path_buf(),
            layers,
        }
    }

    fn snapshot_dir(&self, id: &str) -> PathBuf {
        self.root.join("snapshots").join(id)
    }

    /// The image's layers as lower directories, newest first.
    fn lowerdirs(&self, chain_ids: &[Digest]) -> Result<Vec<PathBuf>> {
        chain_ids
            .iter()
            .rev()
            .map(|c| {
                if !self.layers.diff_dir(c).is_dir() {
                    return Err(SnapshotError::MissingLayer(c.clone()));
                }
                Ok(self.layers.short_link(c)?)
            })
            .collect()
    }

    /// Prepares the init layer and the read-write layer of a container and returns the
    /// overlay to mount: lowerdir = init + image layers top to bottom, upperdir, workdir.
    pub fn prepare(
        &self,
        id: &str,
        chain_ids: &[Digest],
        init: &InitFiles,
    ) -> Result<OverlayMount> {
        validate_id(id)?;
        let dir = self.snapshot_dir(id);
        let init_dir = dir.join("init");
        let etc = init_dir.join("etc");
        let upper = dir.join("upper");
        let work = dir.join("work");
        for d in [&etc, &upper, &work] {
            fs::create_dir_all(d).map_err(io_err("create directory", d))?;
        }
        for (name, content) in [
            ("hostname", format!("{}\n", init.hostname)),
            ("hosts", init.hosts.clone()),
            ("resolv.conf", init.resolv_conf.clone()),
        ] {
            let path = etc.join(name);
            fs::write(&path, content).map_err(io_err("write", &path))?;
        }
        let mut lowerdirs = vec![init_dir];
        lowerdirs.extend(self.lowerdirs(chain_ids)?);
        // Which layers the snapshot stands on: garbage collection keeps them, and `rmi`
        // knows the image is used, for as long as the snapshot exists.
        let record = dir.join(CHAIN_FILE);
        let tmp = dir.join(format!("{CHAIN_FILE}.tmp"));
        let json = serde_json::to_vec(chain_ids).map_err(|e| SnapshotError::Io {
            op: "encode",
            path: record.clone(),
            source: e.into(),
        })?;
        fs::write(&tmp, json).map_err(io_err("write", &tmp))?;
        fs::rename(&tmp, &record).map_err(io_err("rename to", &record))?;
        Ok(OverlayMount {
            lowerdirs,
            upperdir: Some(upper),
            workdir: Some(work),
        })
    }

    /// A read-only view of an image's layers. overlayfs needs two lower directories when
    /// there is no upper one, so a one-layer image gets an empty directory below it.
    pub fn view(&self, chain_ids: &[Digest]) -> Result<OverlayMount> {
        let mut lowerdirs = self.lowerdirs(chain_ids)?;
        if lowerdirs.len() < 2 {
            let empty = self.root.join("snapshots/empty");
            fs::create_dir_all(&empty).map_err(io_err("create directory", &empty))?;
            lowerdirs.push(empty);
        }
        Ok(OverlayMount {
            lowerdirs,
            upperdir: None,
            workdir: None,
        })
    }

    /// Every snapshot and the layers it stands on, by snapshot id.
    pub fn snapshots(&self) -> Result<Vec<(String, Vec<Digest>)>> {
        let dir = self.root.join("snapshots");
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("read directory", &dir)(e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let record = entry.path().join(CHAIN_FILE);
            let data = match fs::read(&record) {
                Ok(data) => data,
                // `empty/` (the views' bottom layer), or a snapshot still being prepared.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("read", &record)(e)),
            };
            let chain_ids = serde_json::from_slice(&data).map_err(|e| SnapshotError::Io {
                op: "parse",
                path: record.clone(),
                source: e.into(),
            })?;
            out.push((entry.file_name().to_string_lossy().into_owned(), chain_ids));
        }
        out.sort();
        Ok(out)
    }

    /// `<root>/mounts/<image id hex>`: where `image mount` puts an image's read-only view.
    pub fn image_mount_point(&self, id: &Digest) -> PathBuf {
        self.root.join("mounts").join(id.hex())
    }

    /// Where the image's view is mounted, if it is.
    pub fn image_mounted_at(&self, id: &Digest) -> Result<Option<PathBuf>> {
        let path = self.image_mount_point(id);
        Ok(is_mount_point(&path)?.then_some(path))
    }

    /// `berth image mount` (podman-image-mount(1)): mounts the read-only merged view of an
    /// image's layers, once, and returns where.
    pub fn mount_image(&self, id: &Digest, chain_ids: &[Digest]) -> Result<PathBuf> {
        let target = self.image_mount_point(id);
        if self.image_mounted_at(id)?.is_none() {
            fs::create_dir_all(&target).map_err(io_err("create directory", &target))?;
            self.view(chain_ids)?.mount(&target)?;
        }
        Ok(target)
    }

    /// Unmounts an image's view; returns where it was, or `None` if it was not mounted.
    pub fn unmount_image(&self, id: &Digest) -> Result<Option<PathBuf>> {
        let Some(target) = self.image_mounted_at(id)? else {
            return Ok(None);
        };
        unmount_overlay(&target)?;
        fs::remove_dir(&target).map_err(io_err("remove directory", &target))?;
        Ok(Some(target))
    }

    /// Removes a container's snapshot (it must be unmounted).
    pub fn remove(&self, id: &str) -> Result<()> {
        validate_id(id)?;
        let dir = self.snapshot_dir(id);
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", &dir)(e)),
            _ => Ok(()),
        }
    }
}

/// Container ids become directory names: no `/`, no `..`.
fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id.as_bytes()[0].is_ascii_alphanumeric()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(SnapshotError::InvalidId(id.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(n: u8) -> (tempfile::TempDir, Snapshotter, Vec<Digest>) {
        let tmp = tempfile::tempdir().unwrap();
        let layers = LayerStore::open(tmp.path()).unwrap();
        let chains: Vec<Digest> = (0..n).map(|i| Digest::of(&[i])).collect();
        for c in &chains {
            fs::create_dir_all(layers.diff_dir(c)).unwrap();
        }
        let snapshotter = Snapshotter::new(tmp.path(), layers);
        (tmp, snapshotter, chains)
    }

    #[test]
    fn prepare_stacks_init_and_layers_top_first() {
        let (tmp, s, chains) = setup(3);
        let init = InitFiles::new("box", "nameserver 127.0.0.53\nsearch lan\n");
        let m = s.prepare("c1", &chains, &init).unwrap();
        let snap = tmp.path().join("snapshots/c1");
        assert_eq!(m.lowerdirs[0], snap.join("init"));
        assert_eq!(m.lowerdirs.len(), 4);
        // Newest layer right under init, base layer last, each through its short link.
        for (dir, chain) in m.lowerdirs[1..].iter().zip(chains.iter().rev()) {
            assert_eq!(dir.file_name().unwrap().len(), 16);
            assert_eq!(
                fs::canonicalize(dir).unwrap(),
                fs::canonicalize(s.layers.diff_dir(chain)).unwrap()
            );
        }
        assert_eq!(m.upperdir.as_ref().unwrap(), &snap.join("upper"));
        assert!(m.workdir.as_ref().unwrap().is_dir());
        assert_eq!(
            fs::read_to_string(snap.join("init/etc/hostname")).unwrap(),
            "box\n"
        );
        assert!(fs::read_to_string(snap.join("init/etc/hosts"))
            .unwrap()
            .contains("127.0.1.1\tbox"));
        let resolv = fs::read_to_string(snap.join("init/etc/resolv.conf")).unwrap();
        assert!(!resolv.contains("127.0.0.53"));
        assert!(resolv.contains("search lan") && resolv.contains("nameserver 8.8.8.8"));
        let opts = m.options();
        assert!(opts.starts_with(&format!("lowerdir={}:", snap.join("init").display())));
        assert_eq!(s.snapshots().unwrap(), [("c1".to_string(), chains.clone())]);
        assert!(opts.ends_with(&format!(
            ",upperdir={},workdir={}",
            snap.join("upper").display(),
            snap.join("work").display()
        )));
        s.remove("c1").unwrap();
        assert!(!snap.exists());
    }

    #[test]
    fn refuses_bad_ids_and_missing_layers() {
        let (_tmp, s, chains) = setup(1);
        let init = InitFiles::new("h", "");
        assert!(matches!(
            s.prepare("../x", &chains, &init),
            Err(SnapshotError::InvalidId(_))
        ));
        let missing = [Digest::of(b"nope")];
        assert!(matches!(
            s.prepare("c", &missing, &init),
            Err(SnapshotError::MissingLayer(_))
        ));
    }

    #[test]
    fn views_have_two_lowers_at_least() {
        let (_tmp, s, chains) = setup(1);
        let v = s.view(&chains).unwrap();
        assert_eq!(v.lowerdirs.len(), 2);
        assert!(v.upperdir.is_none());
        assert!(!v.options().contains("upperdir"));
    }

    #[test]
    fn escapes_separators_in_lowerdirs() {
        assert_eq!(escape_lowerdir("/a:b,c\\d"), "/a\\:b\\,c\\\\d");
    }

    #[test]
    fn unescapes_mountinfo() {
        assert_eq!(unescape_mountinfo("/mnt/a\\040b"), "/mnt/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }
}
