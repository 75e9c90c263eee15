//! Image layers: apply a layer tar safely into its own directory, whiteouts in overlay form,
//! diff_id and chain_id (OCI image-spec layer.md and config.md "Layer ChainID").
//!
//! Every path in the tar is resolved relative to a directory fd of the layer with
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS)`, and the last
//! component is only ever touched with `*at` calls that do not follow it. So no entry, however
//! it is named, can make us write outside the layer: `..` is refused, absolute names are taken
//! relative to the layer, and a parent that is a symlink is refused rather than followed.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use rustix::fs::{
    chmodat, chownat, fchmod, fchown, fsetxattr, futimens, linkat, lsetxattr, makedev, mkdirat,
    mknodat, openat2, statat, symlinkat, unlinkat, utimensat, AtFlags, Dir, FileType, Mode, OFlags,
    ResolveFlags, Timespec, Timestamps, XattrFlags,
};
use rustix::io::Errno;
use rustix::process::{Gid, Uid};
use serde::{Deserialize, Serialize};

use crate::content::{ContentError, Store};
use crate::digest::{Digest, DigestReader};

/// The prefix of a whiteout entry (image-spec layer.md "Whiteouts").
const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// The entry that makes its directory opaque: nothing below shows through.
const OPAQUE_WHITEOUT: &[u8] = b".wh..wh..opq";
/// overlayfs(5): a directory with this xattr set to `y` hides the lower directories.
const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// Length of a short link name in `<root>/l/`: enough hex of the chain id to be unique.
const SHORT_LINK_LEN: usize = 16;
/// PAX records that carry extended attributes (GNU tar and libarchive both write these).
const PAX_XATTR_PREFIX: &str = "SCHILY.xattr.";

/// Why a layer could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("read layer {blob}: {source}")]
    Stream { blob: String, source: io::Error },
    #[error("unpack layer: refused tar entry {0:?}: `..` would leave the layer")]
    DotDot(String),
    #[error("unpack layer: refused tar entry {entry:?}: its parent {parent:?} is a symlink, and symlinks are never followed")]
    ThroughSymlink { entry: String, parent: String },
    #[error(
        "unpack layer: refused hard link {entry:?} -> {target:?}: the target is outside the layer"
    )]
    LinkOutside { entry: String, target: String },
    #[error("unpack layer: hard link {entry:?} -> {target:?}: no such file in the layer")]
    LinkTargetMissing { entry: String, target: String },
    #[error("unpack layer: tar entry {entry:?}: unsupported type {kind}")]
    Unsupported { entry: String, kind: String },
    #[error("unpack layer: tar entry {entry:?}: {what}")]
    Malformed { entry: String, what: String },
    #[error("verify layer {blob}: uncompressed content has diff_id {actual}, the image config says {expected}")]
    DiffIdMismatch {
        blob: Digest,
        expected: Digest,
        actual: Digest,
    },
    #[error("link layer: short link {link} already points at {other}")]
    LinkCollision { link: PathBuf, other: PathBuf },
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error("parse {path}: {source}")]
    Metadata {
        path: PathBuf,
        source: serde_json::Error,
    },
}

type Result<T> = std::result::Result<T, LayerError>;

fn io_err(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(Errno) -> LayerError {
    let path = path.into();
    move |e| LayerError::Io {
        op,
        path,
        source: e.into(),
    }
}

/// The compression of a layer blob, told by its first bytes: the media types lie in the wild
/// (`docker save` writes plain tars under names that say gzip), the magic numbers do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// RFC 1952 `1f 8b`; RFC 8878 `28 b5 2f fd`.
    pub fn sniff(head: &[u8]) -> Self {
        if head.starts_with(&[0x1f, 0x8b]) {
            Self::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Self::Zstd
        } else {
            Self::None
        }
    }
}

/// The uncompressed stream of a blob, whatever its compression.
pub fn decompress<'a>(blob: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let mut buffered = BufReader::with_capacity(1 << 20, blob);
    Ok(match Compression::sniff(buffered.fill_buf()?) {
        Compression::None => Box::new(buffered),
        // Multi-member: pigz and some registries write several gzip members in one blob.
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(zstd::Decoder::with_buffer(buffered)?),
    })
}

/// ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)).
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = match out.last() {
            None => diff_id.clone(),
            Some(parent) => Digest::of(format!("{parent} {diff_id}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// What applying one layer found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// sha256 of the uncompressed tar stream.
    pub diff_id: Digest,
    /// Sum of the sizes of the regular files.
    pub size: u64,
}

/// Decompresses `blob` (gzip, zstd or plain, by its magic) and applies it to the directory
/// `dir`, which must exist. `name` only labels errors.
pub fn apply(blob: impl Read, dir: &Path, name: &str) -> Result<Applied> {
    let stream_err = |source| LayerError::Stream {
        blob: name.to_string(),
        source,
    };
    let plain = decompress(blob).map_err(stream_err)?;
    let root = open_root(dir)?;
    let mut unpacker = Unpacker::new(root.as_fd(), dir);
    let mut archive = tar::Archive::new(DigestReader::new(plain));
    for entry in archive.entries().map_err(stream_err)? {
        let entry = entry.map_err(stream_err)?;
        unpacker.entry(entry, name)?;
    }
    unpacker.finish()?;
    // The diff_id covers the whole stream, the zero blocks after the last entry included.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(stream_err)?;
    let (diff_id, _) = rest.finish();
    Ok(Applied {
        diff_id,
        size: unpacker.size,
    })
}

fn open_root(dir: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_err("open layer directory", dir))
}

/// An entry's path split into its components, `.` and empty ones dropped. `/` and `./` give
/// no component at all: they name the layer's root directory.
fn components(path: &[u8]) -> std::result::Result<Vec<&[u8]>, ()> {
    let mut out = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(()),
            c => out.push(c),
        }
    }
    Ok(out)
}

fn join(components: &[&[u8]]) -> Vec<u8> {
    components.join(&b'/')
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The metadata of an entry, PAX records taking precedence over the header.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: Timespec,
    xattrs: Vec<(String, Vec<u8>)>,
}

impl Meta {
    fn read<R: Read>(entry: &mut tar::Entry<'_, R>, path: &str) -> Result<Self> {
        let malformed = |what: &str| LayerError::Malformed {
            entry: path.to_string(),
            what: what.to_string(),
        };
        let header = entry.header();
        let mode = header.mode().map_err(|_| malformed("bad mode"))? & 0o7777;
        let mut uid = header.uid().map_err(|_| malformed("bad uid"))?;
        let mut gid = header.gid().map_err(|_| malformed("bad gid"))?;
        let mut mtime = Timespec {
            tv_sec: header.mtime().map_err(|_| malformed("bad mtime"))? as i64,
            tv_nsec: 0,
        };
        let mut xattrs = Vec::new();
        let pax = entry.pax_extensions().map_err(|e| LayerError::Malformed {
            entry: path.to_string(),
            what: format!("pax header: {e}"),
        })?;
        for ext in pax.into_iter().flatten() {
            let ext = ext.map_err(|e| LayerError::Malformed {
                entry: path.to_string(),
                what: format!("pax header: {e}"),
            })?;
            let Ok(key) = ext.key() else { continue };
            match key {
                "uid" => uid = parse_pax(ext.value_bytes()).ok_or_else(|| malformed("pax uid"))?,
                "gid" => gid = parse_pax(ext.value_bytes()).ok_or_else(|| malformed("pax gid"))?,
                "mtime" => {
                    mtime =
                        parse_pax_time(ext.value_bytes()).ok_or_else(|| malformed("pax mtime"))?
                }
                _ => {
                    if let Some(name) = key.strip_prefix(PAX_XATTR_PREFIX) {
                        xattrs.push((name.to_string(), ext.value_bytes().to_vec()));
                    }
                }
            }
        }
        let id = |v: u64| u32::try_from(v).map_err(|_| malformed("uid or gid above 2^32"));
        Ok(Self {
            mode,
            uid: id(uid)?,
            gid: id(gid)?,
            mtime,
            xattrs,
        })
    }

    fn timestamps(&self) -> Timestamps {
        Timestamps {
            last_access: self.mtime,
            last_modification: self.mtime,
        }
    }
}

fn parse_pax(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value).ok()?.trim().parse().ok()
}

/// PAX times are decimal seconds with an optional fraction: `1700000000.123456789`.
fn parse_pax_time(value: &[u8]) -> Option<Timespec> {
    let s = std::str::from_utf8(value).ok()?.trim();
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let tv_sec = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    let tv_nsec = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<9}").parse().ok()?
    };
    Some(Timespec { tv_sec, tv_nsec })
}

/// Applies the entries of one tar to one layer directory.
struct Unpacker<'a> {
    root: BorrowedFd<'a>,
    root_path: &'a Path,
    /// The parent directory of the previous entry: tars list a directory's files together.
    parent_cache: Option<(Vec<u8>, OwnedFd)>,
    /// Directories get their mtime last: creating their children changes it.
    dir_times: Vec<(Vec<u8>, Timestamps)>,
    size: u64,
    /// One copy buffer for every file of the layer.
    buf: Vec<u8>,
}

impl<'a> Unpacker<'a> {
    fn new(root: BorrowedFd<'a>, root_path: &'a Path) -> Self {
        Self {
            root,
            root_path,
            parent_cache: None,
            dir_times: Vec::new(),
            size: 0,
            buf: vec![0u8; 256 * 1024],
        }
    }

    fn host_path(&self, rel: &[u8]) -> PathBuf {
        self.root_path.join(OsStr::from_bytes(rel))
    }

    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>, blob: &str) -> Result<()> {
        let raw_path = entry.path_bytes().into_owned();
        let shown = show(&raw_path);
        let kind = entry.header().entry_type();
        if matches!(kind, tar::EntryType::XGlobalHeader) {
            return Ok(());
        }
        let comps = components(&raw_path).map_err(|()| LayerError::DotDot(shown.clone()))?;
        let meta = Meta::read(&mut entry, &shown)?;
        let Some((&name, parent)) = comps.split_last() else {
            // `/` or `./`: the layer's root directory itself.
            if kind.is_dir() {
                self.set_dir_meta(&[], &meta)?;
            }
            return Ok(());
        };
        let parent_fd = self.parent(parent, &shown)?;
        let parent_fd = parent_fd.as_fd();
        let rel = join(&comps);

        if name == OPAQUE_WHITEOUT {
            // The opaque marker can come before its directory's own entry; the directory was
            // made implicitly above and gets its mode when its entry comes.
            return fsetxattr(parent_fd, OVERLAY_OPAQUE_XATTR, b"y", XattrFlags::empty()).map_err(
                io_err(
                    "setxattr trusted.overlay.opaque",
                    self.host_path(&join(parent)),
                ),
            );
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            if hidden.is_empty() || hidden == b"." || hidden == b".." || hidden.contains(&b'/') {
                return Err(LayerError::Malformed {
                    entry: shown,
                    what: "whiteout of an invalid name".into(),
                });
            }
            let mut target = parent.to_vec();
            target.push(hidden);
            let target_rel = join(&target);
            self.remove_existing(parent_fd, hidden, &target_rel)?;
            // overlayfs(5): a whiteout is a character device with device number 0/0.
            return mknodat(
                parent_fd,
                hidden,
                FileType::CharacterDevice,
                Mode::empty(),
                makedev(0, 0),
            )
            .map_err(io_err("mknod whiteout", self.host_path(&target_rel)));
        }

        if kind.is_dir() {
            match statat(parent_fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {}
                Ok(_) => {
                    self.remove_existing(parent_fd, name, &rel)?;
                    self.mkdir(parent_fd, name, &rel)?;
                }
                Err(Errno::NOENT) => self.mkdir(parent_fd, name, &rel)?,
                Err(e) => return Err(io_err("stat", self.host_path(&rel))(e)),
            }
            return self.set_dir_meta(&comps, &meta);
        }

        self.remove_existing(parent_fd, name, &rel)?;
        let path = self.host_path(&rel);
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                self.write_file(parent_fd, name, &path, &mut entry, &meta, blob)?;
                return Ok(());
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| LayerError::Malformed {
                        entry: shown.clone(),
                        what: "symlink without a target".into(),
                    })?;
                // The target is data: it is stored, never resolved here.
                symlinkat(OsStr::from_bytes(&target), parent_fd, name)
                    .map_err(io_err("symlink", &path))?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| LayerError::Malformed {
                        entry: shown.clone(),
                        what: "hard link without a target".into(),
                    })?
                    .into_owned();
                self.hard_link(parent_fd, name, &shown, &target)?;
                // A hard link shares the inode, and so the metadata, of its target.
                return Ok(());
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let header = entry.header();
                let dev = match (header.device_major(), header.device_minor()) {
                    (Ok(Some(major)), Ok(Some(minor))) => makedev(major, minor),
                    _ => makedev(0, 0),
                };
                let file_type = match kind {
                    tar::EntryType::Char => FileType::CharacterDevice,
                    tar::EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                mknodat(
                    parent_fd,
                    name,
                    file_type,
                    Mode::from_raw_mode(meta.mode),
                    dev,
                )
                .map_err(io_err("mknod", &path))?;
            }
            other => {
                return Err(LayerError::Unsupported {
                    entry: shown,
                    kind: format!("{other:?}"),
                })
            }
        }
        self.set_meta_at(
            parent_fd,
            name,
            &path,
            &meta,
            kind == tar::EntryType::Symlink,
        )
    }

    /// The parent directory of an entry, made with mode 755 where the layer omits it.
    /// Symlinks are refused on the way (`RESOLVE_NO_SYMLINKS`): a file written through a
    /// symlink is how CVE-2018-15664-style escapes and "absolute symlink then file" tars work.
    fn parent(&mut self, parent: &[&[u8]], entry: &str) -> Result<OwnedFd> {
        let key = join(parent);
        if let Some((cached, fd)) = &self.parent_cache {
            if *cached == key {
                return fd.try_clone().map_err(|e| LayerError::Io {
                    op: "dup",
                    path: self.host_path(&key),
                    source: e,
                });
            }
        }
        let fd = match self.open_dir(self.root, &key) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => self.make_parents(parent, entry)?,
            Err(e) => return Err(self.resolve_error(e, parent, entry)),
        };
        let dup = fd.try_clone().map_err(|e| LayerError::Io {
            op: "dup",
            path: self.host_path(&key),
            source: e,
        })?;
        self.parent_cache = Some((key, dup));
        Ok(fd)
    }

    fn open_dir(&self, at: BorrowedFd<'_>, rel: &[u8]) -> rustix::io::Result<OwnedFd> {
        let rel: &[u8] = if rel.is_empty() { b"." } else { rel };
        openat2(
            at,
            rel,
            // No O_NOFOLLOW: with O_DIRECTORY it turns a symlink into ENOTDIR, while
            // RESOLVE_NO_SYMLINKS already refuses it, last component included, with ELOOP.
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_SYMLINKS,
        )
    }

    fn make_parents(&self, parent: &[&[u8]], entry: &str) -> Result<OwnedFd> {
        let mut fd = self
            .open_dir(self.root, b".")
            .map_err(io_err("open", self.root_path))?;
        for (i, c) in parent.iter().enumerate() {
            let next = match self.open_dir(fd.as_fd(), c) {
                Ok(next) => next,
                Err(Errno::NOENT) => {
                    match mkdirat(&fd, *c, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => {
                            return Err(io_err("mkdir", self.host_path(&join(&parent[..=i])))(e))
                        }
                    }
                    self.open_dir(fd.as_fd(), c)
                        .map_err(|e| self.resolve_error(e, &parent[..=i], entry))?
                }
                Err(e) => return Err(self.resolve_error(e, &parent[..=i], entry)),
            };
            fd = next;
        }
        Ok(fd)
    }

    fn resolve_error(&self, e: Errno, parent: &[&[u8]], entry: &str) -> LayerError {
        match e {
            Errno::LOOP => LayerError::ThroughSymlink {
                entry: entry.to_string(),
                parent: show(&join(parent)),
            },
            e => io_err("open directory", self.host_path(&join(parent)))(e),
        }
    }

    fn mkdir(&mut self, parent: BorrowedFd<'_>, name: &[u8], rel: &[u8]) -> Result<()> {
        mkdirat(parent, name, Mode::from_raw_mode(0o755))
            .map_err(io_err("mkdir", self.host_path(rel)))
    }

    /// Later entries replace earlier ones of the same name, as tar(1) does.
    fn remove_existing(&mut self, parent: BorrowedFd<'_>, name: &[u8], rel: &[u8]) -> Result<()> {
        match statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(io_err("stat", self.host_path(rel))(e)),
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                // A cached parent could be this directory or below it.
                self.parent_cache = None;
                remove_tree(parent, name).map_err(io_err("remove directory", self.host_path(rel)))
            }
            Ok(_) => unlinkat(parent, name, AtFlags::empty())
                .map_err(io_err("unlink", self.host_path(rel))),
        }
    }

    fn write_file<R: Read>(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        path: &Path,
        entry: &mut tar::Entry<'_, R>,
        meta: &Meta,
        blob: &str,
    ) -> Result<()> {
        let fd = openat2(
            parent,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_SYMLINKS,
        )
        .map_err(io_err("create", path))?;
        let mut file = File::from(fd);
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(LayerError::Stream {
                        blob: blob.to_string(),
                        source,
                    })
                }
            };
            file.write_all(&self.buf[..n])
                .map_err(|source| LayerError::Io {
                    op: "write",
                    path: path.to_path_buf(),
                    source,
                })?;
            self.size += n as u64;
        }
        // chown before chmod: chown(2) clears the setuid and setgid bits.
        fchown(
            &file,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
        )
        .map_err(io_err("chown", path))?;
        fchmod(&file, Mode::from_raw_mode(meta.mode)).map_err(io_err("chmod", path))?;
        for (key, value) in &meta.xattrs {
            fsetxattr(&file, key.as_str(), value, XattrFlags::empty())
                .map_err(io_err("setxattr", path))?;
        }
        futimens(&file, &meta.timestamps()).map_err(io_err("utimensat", path))
    }

    fn hard_link(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        entry: &str,
        target: &[u8],
    ) -> Result<()> {
        let outside = || LayerError::LinkOutside {
            entry: entry.to_string(),
            target: show(target),
        };
        let comps = components(target).map_err(|()| outside())?;
        let Some((&target_name, target_parent)) = comps.split_last() else {
            return Err(outside());
        };
        let target_dir = self
            .open_dir(self.root, &join(target_parent))
            .map_err(|e| match e {
                Errno::NOENT => LayerError::LinkTargetMissing {
                    entry: entry.to_string(),
                    target: show(target),
                },
                e => self.resolve_error(e, target_parent, entry),
            })?;
        // No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself, as tar(1) does.
        linkat(&target_dir, target_name, parent, name, AtFlags::empty()).map_err(|e| match e {
            Errno::NOENT => LayerError::LinkTargetMissing {
                entry: entry.to_string(),
                target: show(target),
            },
            e => io_err("link", self.host_path(entry.as_bytes()))(e),
        })
    }

    /// Owner, mode, xattrs and times of a non-regular, non-directory entry.
    fn set_meta_at(
        &self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        path: &Path,
        meta: &Meta,
        symlink: bool,
    ) -> Result<()> {
        chownat(
            parent,
            name,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(io_err("chown", path))?;
        if !symlink {
            // The entry was just made by us with mknod, in a directory no symlink leads to.
            chmodat(
                parent,
                name,
                Mode::from_raw_mode(meta.mode),
                AtFlags::empty(),
            )
            .map_err(io_err("chmod", path))?;
        }
        if !meta.xattrs.is_empty() {
            // lsetxattr through the parent's fd: the last component is not followed.
            let via = Path::new("/proc/self/fd")
                .join(rustix::fd::AsRawFd::as_raw_fd(&parent).to_string())
                .join(OsStr::from_bytes(name));
            for (key, value) in &meta.xattrs {
                lsetxattr(&via, key.as_str(), value, XattrFlags::empty())
                    .map_err(io_err("setxattr", path))?;
            }
        }
        utimensat(parent, name, &meta.timestamps(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(io_err("utimensat", path))
    }

    fn set_dir_meta(&mut self, comps: &[&[u8]], meta: &Meta) -> Result<()> {
        let rel = join(comps);
        let path = self.host_path(&rel);
        let fd = self
            .open_dir(self.root, &rel)
            .map_err(|e| self.resolve_error(e, comps, &show(&rel)))?;
        fchown(
            &fd,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
        )
        .map_err(io_err("chown", &path))?;
        fchmod(&fd, Mode::from_raw_mode(meta.mode)).map_err(io_err("chmod", &path))?;
        for (key, value) in &meta.xattrs {
            fsetxattr(&fd, key.as_str(), value, XattrFlags::empty())
                .map_err(io_err("setxattr", &path))?;
        }
        self.dir_times.push((rel, meta.timestamps()));
        Ok(())
    }

    /// Sets the directories' times, deepest last-listed first, once nothing else will be
    /// created in them.
    fn finish(&mut self) -> Result<()> {
        self.parent_cache = None;
        let dir_times = std::mem::take(&mut self.dir_times);
        for (rel, times) in dir_times.into_iter().rev() {
            let path = self.root_path.join(OsStr::from_bytes(&rel));
            let fd = match self.open_dir(self.root, &rel) {
                Ok(fd) => fd,
                // Replaced or whited out by a later entry of the same layer.
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
                Err(e) => return Err(io_err("open", &path)(e)),
            };
            futimens(&fd, &times).map_err(io_err("utimensat", &path))?;
        }
        Ok(())
    }
}

/// Removes `name` under `parent` and everything below it, never following a symlink.
fn remove_tree(parent: BorrowedFd<'_>, name: &[u8]) -> rustix::io::Result<()> {
    let dir = rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut children = Vec::new();
    for entry in Dir::read_from(&dir)? {
        let entry = entry?;
        let child = entry.file_name().to_bytes();
        if child != b"." && child != b".." {
            children.push((child.to_vec(), entry.file_type() == FileType::Directory));
        }
    }
    for (child, is_dir) in children {
        if is_dir {
            remove_tree(dir.as_fd(), &child)?;
        } else {
            unlinkat(&dir, child.as_slice(), AtFlags::empty())?;
        }
    }
    unlinkat(parent, name, AtFlags::REMOVEDIR)
}

/// A layer once unpacked: `<root>/layers/<chain-id-hex>/layer.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LayerInfo {
    pub chain_id: Digest,
    pub diff_id: Digest,
    pub parent: Option<Digest>,
    /// The compressed blob it came from.
    pub blob: Digest,
    pub size: u64,
}

/// One layer of an image to unpack: its blob and the diff_id the config promises.
#[derive(Clone, Debug)]
pub struct LayerSource {
    pub blob: Digest,
    pub diff_id: Digest,
}

/// Unpacked layers, each once, keyed by chain id: `<root>/layers/<chain-id-hex>/diff`.
/// A layer is unpacked into `<root>/layers/tmp/` and renamed into place when complete, so a
/// layer directory that exists is whole.
#[derive(Clone, Debug)]
pub struct LayerStore {
    dir: PathBuf,
    /// `<root>/l`: short links to the layers, as Docker's overlay2 keeps them.
    links: PathBuf,
}

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

impl LayerStore {
    /// Opens `<root>/layers`, removing what killed processes left half-unpacked.
    pub fn open(root: &Path) -> Result<Self> {
        let store = Self {
            dir: root.join("layers"),
            links: root.join("l"),
        };
        let tmp = store.tmp_dir();
        // Mode 700: layers hold device nodes and setuid files with whatever mode the image
        // gave them; no one but root may reach them through the host's file system.
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&tmp)
            .map_err(|source| LayerError::Io {
                op: "create directory",
                path: tmp.clone(),
                source,
            })?;
        Ok(store)
    }

    fn tmp_dir(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    /// Removes every half-unpacked or half-removed layer in `tmp/`: only call this holding
    /// the exclusive gc lock, when no unpacking can be at work.
    pub fn remove_leftovers(&self) -> Result<usize> {
        let tmp = self.tmp_dir();
        let entries = fs::read_dir(&tmp).map_err(|source| LayerError::Io {
            op: "read directory",
            path: tmp.clone(),
            source,
        })?;
        let mut removed = 0;
        for entry in entries.flatten() {
            let path = entry.path();
            fs::remove_dir_all(&path).map_err(|source| LayerError::Io {
                op: "remove left-over",
                path,
                source,
            })?;
            removed += 1;
        }
        Ok(removed)
    }

    pub fn layer_dir(&self, chain_id: &Digest) -> PathBuf {
        self.dir.join(chain_id.hex())
    }

    /// The directory holding the layer's files: an overlay lowerdir.
    pub fn diff_dir(&self, chain_id: &Digest) -> PathBuf {
        self.layer_dir(chain_id).join("diff")
    }

    pub fn get(&self, chain_id: &Digest) -> Result<Option<LayerInfo>> {
        let path = self.layer_dir(chain_id).join("layer.json");
        match fs::read(&path) {
            Ok(data) => serde_json::from_slice(&data)
                .map(Some)
                .map_err(|source| LayerError::Metadata { path, source }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(LayerError::Io {
                op: "read",
                path,
                source,
            }),
        }
    }

    /// Every unpacked layer's chain id.
    pub fn list(&self) -> Result<Vec<Digest>> {
        let entries = fs::read_dir(&self.dir).map_err(|source| LayerError::Io {
            op: "read directory",
            path: self.dir.clone(),
            source,
        })?;
        Ok(entries
            .flatten()
            .filter_map(|e| format!("sha256:{}", e.file_name().to_str()?).parse().ok())
            .collect())
    }

    /// A short path to the layer's diff directory, `<root>/l/<first 16 hex of the chain id>`:
    /// overlay's lowerdir list must fit in one page, and 128 full paths do not.
    pub fn short_link(&self, chain_id: &Digest) -> Result<PathBuf> {
        fs::create_dir_all(&self.links).map_err(|source| LayerError::Io {
            op: "create directory",
            path: self.links.clone(),
            source,
        })?;
        let link = self.links.join(&chain_id.hex()[..SHORT_LINK_LEN]);
        let target = Path::new("../layers").join(chain_id.hex()).join("diff");
        let io = |op, link: &Path| {
            let path = link.to_path_buf();
            move |source| LayerError::Io { op, path, source }
        };
        match fs::read_link(&link) {
            Ok(existing) if existing == target => {}
            Ok(other) => return Err(LayerError::LinkCollision { link, other }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match std::os::unix::fs::symlink(&target, &link) {
                    // Another berth made the same link at the same moment.
                    Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                        return Err(io("symlink", &link)(e))
                    }
                    _ => {}
                }
            }
            Err(e) => return Err(io("readlink", &link)(e)),
        }
        Ok(link)
    }

    pub fn remove(&self, chain_id: &Digest) -> Result<()> {
        let link = self.links.join(&chain_id.hex()[..SHORT_LINK_LEN]);
        match fs::remove_file(&link) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(LayerError::Io {
                    op: "remove",
                    path: link,
                    source: e,
                })
            }
            _ => {}
        }
        let path = self.layer_dir(chain_id);
        // Rename first so a half-removed layer is never mistaken for a whole one.
        let doomed = self.new_tmp_path();
        match fs::rename(&path, &doomed) {
            Ok(()) => fs::remove_dir_all(&doomed).map_err(|source| LayerError::Io {
                op: "remove",
                path: doomed,
                source,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(LayerError::Io {
                op: "rename",
                path,
                source,
            }),
        }
    }

    fn new_tmp_path(&self) -> PathBuf {
        self.tmp_dir().join(format!(
            "{}-{}",
            std::process::id(),
            TMP_SEQ.fetch_add(1, Ordering::Relaxed)
        ))
    }

    /// Unpacks the layers of an image (bottom first) that are not unpacked yet, in parallel,
    /// and returns the info of every layer. Each layer's diff_id is checked against the one
    /// the image config lists.
    pub fn unpack_image(&self, content: &Store, layers: &[LayerSource]) -> Result<Vec<LayerInfo>> {
        let diff_ids: Vec<Digest> = layers.iter().map(|l| l.diff_id.clone()).collect();
        let chains = chain_ids(&diff_ids);
        let mut seen = HashSet::new();
        let mut todo = Vec::new();
        for (i, chain) in chains.iter().enumerate() {
            if self.get(chain)?.is_none() && seen.insert(chain.clone()) {
                todo.push(i);
            }
        }
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(todo.len());
        let next = AtomicUsize::new(0);
        let failure: Mutex<Option<LayerError>> = Mutex::new(None);
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&i) = todo.get(k) else { break };
                    if failure.lock().is_ok_and(|f| f.is_some()) {
                        break;
                    }
                    let parent = i.checked_sub(1).map(|p| chains[p].clone());
                    if let Err(e) = self.unpack_one(content, &layers[i], &chains[i], parent) {
                        if let Ok(mut f) = failure.lock() {
                            f.get_or_insert(e);
                        }
                        break;
                    }
                });
            }
        });
        if let Some(e) = failure.into_inner().ok().flatten() {
            return Err(e);
        }
        chains
            .iter()
            .map(|c| {
                self.get(c)?.ok_or_else(|| LayerError::Io {
                    op: "read",
                    path: self.layer_dir(c).join("layer.json"),
                    source: io::ErrorKind::NotFound.into(),
                })
            })
            .collect()
    }

    /// Unpacks one layer unless it is already there: a pull calls this for each layer as
    /// soon as its blob has arrived, so unpacking overlaps the downloads still going.
    pub fn ensure(
        &self,
        content: &Store,
        source: &LayerSource,
        chain_id: &Digest,
        parent: Option<Digest>,
    ) -> Result<()> {
        if self.get(chain_id)?.is_some() {
            return Ok(());
        }
        self.unpack_one(content, source, chain_id, parent)
    }

    fn unpack_one(
        &self,
        content: &Store,
        source: &LayerSource,
        chain_id: &Digest,
        parent: Option<Digest>,
    ) -> Result<()> {
        let tmp = self.new_tmp_path();
        let result = self.unpack_into(&tmp, content, source, chain_id, parent);
        if result.is_err() || tmp.exists() {
            let _ = fs::remove_dir_all(&tmp);
        }
        result
    }

    fn unpack_into(
        &self,
        tmp: &Path,
        content: &Store,
        source: &LayerSource,
        chain_id: &Digest,
        parent: Option<Digest>,
    ) -> Result<()> {
        let diff = tmp.join("diff");
        fs::create_dir_all(&diff).map_err(|source| LayerError::Io {
            op: "create directory",
            path: diff.clone(),
            source,
        })?;
        let blob = content.open_blob(&source.blob)?;
        tracing::debug!(blob = %source.blob, chain_id = %chain_id, dir = %diff.display(), "unpack layer");
        let applied = apply(blob, &diff, &source.blob.to_string())?;
        if applied.diff_id != source.diff_id {
            return Err(LayerError::DiffIdMismatch {
                blob: source.blob.clone(),
                expected: source.diff_id.clone(),
                actual: applied.diff_id,
            });
        }
        let info = LayerInfo {
            chain_id: chain_id.clone(),
            diff_id: applied.diff_id,
            parent,
            blob: source.blob.clone(),
            size: applied.size,
        };
        let meta = tmp.join("layer.json");
        let json = serde_json::to_vec_pretty(&info).map_err(|source| LayerError::Metadata {
            path: meta.clone(),
            source,
        })?;
        fs::write(&meta, json).map_err(|source| LayerError::Io {
            op: "write",
            path: meta,
            source,
        })?;
        let dest = self.layer_dir(chain_id);
        match fs::rename(tmp, &dest) {
            Ok(()) => Ok(()),
            // Another berth process unpacked the same layer first: keep theirs.
            Err(e) if dest.join("layer.json").exists() => {
                tracing::debug!(dest = %dest.display(), error = %e, "layer already unpacked");
                Ok(())
            }
            Err(source) => Err(LayerError::Io {
                op: "rename layer to",
                path: dest,
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

    /// Builds a tar in memory from (header, data) pairs; names go in raw, unchecked.
    pub(crate) struct TarBuilder {
        builder: tar::Builder<Vec<u8>>,
    }

    impl TarBuilder {
        pub(crate) fn new() -> Self {
            Self {
                builder: tar::Builder::new(Vec::new()),
            }
        }

        fn header(kind: tar::EntryType, path: &str, mode: u32) -> tar::Header {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            // Written raw so that hostile names (`..`, absolute) reach the unpacker as they are.
            let name = &mut h.as_gnu_mut().unwrap().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_mode(mode);
            h.set_mtime(1_600_000_000);
            h.set_uid(0);
            h.set_gid(0);
            h.set_size(0);
            h
        }

        pub(crate) fn dir(mut self, path: &str, mode: u32) -> Self {
            let mut h = Self::header(tar::EntryType::Directory, path, mode);
            h.set_cksum();
            self.builder.append(&h, &[][..]).unwrap();
            self
        }

        pub(crate) fn file(mut self, path: &str, mode: u32, data: &[u8]) -> Self {
            let mut h = Self::header(tar::EntryType::Regular, path, mode);
            h.set_size(data.len() as u64);
            h.set_cksum();
            self.builder.append(&h, data).unwrap();
            self
        }

        pub(crate) fn link(mut self, kind: tar::EntryType, path: &str, target: &str) -> Self {
            let mut h = Self::header(kind, path, 0o777);
            h.set_link_name_literal(target).unwrap();
            h.set_cksum();
            self.builder.append(&h, &[][..]).unwrap();
            self
        }

        pub(crate) fn fifo(mut self, path: &str) -> Self {
            let mut h = Self::header(tar::EntryType::Fifo, path, 0o644);
            h.set_cksum();
            self.builder.append(&h, &[][..]).unwrap();
            self
        }

        pub(crate) fn finish(self) -> Vec<u8> {
            self.builder.into_inner().unwrap()
        }
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn layer_dir() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("layer");
        fs::create_dir(&dir).unwrap();
        (tmp, dir)
    }

    #[test]
    fn chain_ids_follow_the_spec() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        let chains = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(chains[0], a);
        assert_eq!(chains[1], Digest::of(format!("{a} {b}").as_bytes()));
    }

    #[test]
    fn sniffs_compression() {
        assert_eq!(Compression::sniff(&gzip(b"x")), Compression::Gzip);
        assert_eq!(
            Compression::sniff(&zstd::encode_all(&b"x"[..], 1).unwrap()),
            Compression::Zstd
        );
        assert_eq!(Compression::sniff(b"usr/"), Compression::None);
    }

    #[test]
    fn applies_plain_gzip_and_zstd_with_the_same_diff_id() {
        let tar = TarBuilder::new()
            .dir("./", 0o755)
            .dir("etc/", 0o755)
            .file("etc/motd", 0o644, b"hello\n")
            .file("usr/bin/tool", 0o4755, b"#!/bin/sh\n")
            .link(tar::EntryType::Symlink, "usr/bin/alias", "tool")
            .link(tar::EntryType::Link, "usr/bin/hard", "usr/bin/tool")
            .fifo("run/fifo")
            .finish();
        let zst = zstd::encode_all(&tar[..], 3).unwrap();
        for blob in [tar.clone(), gzip(&tar), zst] {
            let (_tmp, dir) = layer_dir();
            let applied = apply(&blob[..], &dir, "test").unwrap();
            assert_eq!(applied.diff_id, Digest::of(&tar));
            assert_eq!(applied.size, 16);
            assert_eq!(fs::read(dir.join("etc/motd")).unwrap(), b"hello\n");
            let tool = fs::metadata(dir.join("usr/bin/tool")).unwrap();
            assert_eq!(tool.permissions().mode() & 0o7777, 0o4755);
            assert_eq!(tool.mtime(), 1_600_000_000);
            assert_eq!(tool.nlink(), 2);
            assert_eq!(
                fs::metadata(dir.join("usr/bin/hard")).unwrap().ino(),
                tool.ino()
            );
            assert_eq!(
                fs::read_link(dir.join("usr/bin/alias")).unwrap(),
                Path::new("tool")
            );
            assert!(fs::symlink_metadata(dir.join("run/fifo"))
                .unwrap()
                .file_type()
                .is_fifo());
            // `usr/` and `usr/bin/` were missing from the tar: made implicitly.
            assert!(dir.join("usr/bin").is_dir());
            assert_eq!(
                fs::metadata(dir.join("etc")).unwrap().mtime(),
                1_600_000_000
            );
        }
    }

    #[test]
    fn whiteouts_become_overlay_whiteouts() {
        let tar = TarBuilder::new()
            .file("etc/.wh.gone", 0o644, b"")
            .file("opt/app/.wh..wh..opq", 0o644, b"")
            .dir("opt/app/", 0o750)
            .file("opt/app/kept", 0o644, b"k")
            .finish();
        let (_tmp, dir) = layer_dir();
        apply(&tar[..], &dir, "test").unwrap();
        let wh = fs::symlink_metadata(dir.join("etc/gone")).unwrap();
        assert!(wh.file_type().is_char_device());
        assert_eq!(wh.rdev(), 0);
        assert!(!dir.join("etc/.wh.gone").exists());
        assert!(!dir.join("opt/app/.wh..wh..opq").exists());
        let app = fs::metadata(dir.join("opt/app")).unwrap();
        assert_eq!(app.permissions().mode() & 0o7777, 0o750);
        let opaque = xattr_of(&dir.join("opt/app"), OVERLAY_OPAQUE_XATTR);
        assert_eq!(opaque.as_deref(), Some(&b"y"[..]));
    }

    fn xattr_of(path: &Path, name: &str) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 64];
        let n = rustix::fs::lgetxattr(path, name, &mut buf).ok()?;
        buf.truncate(n);
        Some(buf)
    }

    #[test]
    fn later_entries_replace_earlier_ones() {
        let tar = TarBuilder::new()
            .file("a", 0o644, b"one")
            .file("a", 0o600, b"two")
            .dir("b/", 0o755)
            .file("b/c", 0o644, b"")
            .file("b", 0o644, b"now a file")
            .finish();
        let (_tmp, dir) = layer_dir();
        apply(&tar[..], &dir, "test").unwrap();
        assert_eq!(fs::read(dir.join("a")).unwrap(), b"two");
        assert_eq!(fs::read(dir.join("b")).unwrap(), b"now a file");
    }

    #[test]
    fn refuses_dot_dot() {
        let tar = TarBuilder::new().file("../../etc/x", 0o644, b"x").finish();
        let (tmp, dir) = layer_dir();
        let err = apply(&tar[..], &dir, "test").unwrap_err();
        assert!(matches!(err, LayerError::DotDot(_)), "{err}");
        assert!(!tmp.path().join("etc").exists());
    }

    #[test]
    fn absolute_names_stay_in_the_layer() {
        let tar = TarBuilder::new().file("/etc/abs", 0o644, b"x").finish();
        let (_tmp, dir) = layer_dir();
        apply(&tar[..], &dir, "test").unwrap();
        assert_eq!(fs::read(dir.join("etc/abs")).unwrap(), b"x");
    }

    #[test]
    fn refuses_writing_through_a_symlink() {
        let (tmp, dir) = layer_dir();
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let tar = TarBuilder::new()
            .link(tar::EntryType::Symlink, "escape", outside.to_str().unwrap())
            .file("escape/x", 0o644, b"x")
            .finish();
        let err = apply(&tar[..], &dir, "test").unwrap_err();
        assert!(matches!(err, LayerError::ThroughSymlink { .. }), "{err}");
        assert!(!outside.join("x").exists());
    }

    #[test]
    fn refuses_hard_links_outside() {
        let (tmp, dir) = layer_dir();
        fs::write(tmp.path().join("secret"), b"s").unwrap();
        let tar = TarBuilder::new()
            .link(tar::EntryType::Link, "stolen", "../secret")
            .finish();
        let err = apply(&tar[..], &dir, "test").unwrap_err();
        assert!(matches!(err, LayerError::LinkOutside { .. }), "{err}");
        let tar = TarBuilder::new()
            .link(tar::EntryType::Link, "stolen", "/secret")
            .finish();
        let err = apply(&tar[..], &dir, "test").unwrap_err();
        assert!(matches!(err, LayerError::LinkTargetMissing { .. }), "{err}");
        assert_eq!(fs::metadata(tmp.path().join("secret")).unwrap().nlink(), 1);
    }

    #[test]
    fn refuses_a_truncated_gzip() {
        let tar = TarBuilder::new()
            .file("big", 0o644, &vec![7u8; 100_000])
            .finish();
        let gz = gzip(&tar);
        let (_tmp, dir) = layer_dir();
        let err = apply(&gz[..gz.len() / 2], &dir, "test").unwrap_err();
        assert!(matches!(err, LayerError::Stream { .. }), "{err}");
    }

    #[test]
    fn refuses_a_tar_cut_inside_an_entry() {
        // What umoci 0.4.7's `insert` writes: a header and 8 bytes of data, no padding.
        let tar = TarBuilder::new()
            .file("derived.txt", 0o644, b"derived\n")
            .finish();
        let (_tmp, dir) = layer_dir();
        let err = apply(&gzip(&tar[..520])[..], &dir, "test").unwrap_err();
        assert!(matches!(err, LayerError::Stream { .. }), "{err}");
    }

    #[test]
    fn pax_times_have_nanoseconds() {
        let t = parse_pax_time(b"1700000000.5").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (1_700_000_000, 500_000_000));
        assert_eq!(parse_pax_time(b"12").unwrap().tv_sec, 12);
        assert!(parse_pax_time(b"x").is_none());
    }

    #[test]
    fn layer_store_unpacks_once_by_chain_id() {
        let tmp = tempfile::tempdir().unwrap();
        let content = Store::open(tmp.path()).unwrap();
        let layers = LayerStore::open(tmp.path()).unwrap();
        let tars = [
            TarBuilder::new().file("a", 0o644, b"a").finish(),
            TarBuilder::new()
                .file(".wh.a", 0o644, b"")
                .file("b", 0o644, b"b")
                .finish(),
        ];
        let sources: Vec<LayerSource> = tars
            .iter()
            .map(|t| {
                let (blob, _) = content.add_blob(&gzip(t)[..]).unwrap();
                LayerSource {
                    blob,
                    diff_id: Digest::of(t),
                }
            })
            .collect();
        let infos = layers.unpack_image(&content, &sources).unwrap();
        assert_eq!(infos.len(), 2);
        assert_eq!(infos[1].parent.as_ref(), Some(&infos[0].chain_id));
        assert!(layers.diff_dir(&infos[1].chain_id).join("b").is_file());
        assert_eq!(layers.list().unwrap().len(), 2);
        assert_eq!(fs::read_dir(layers.tmp_dir()).unwrap().count(), 0);

        // A config that lies about a diff_id is caught, and nothing is left behind.
        let lying = vec![LayerSource {
            blob: sources[1].blob.clone(),
            diff_id: Digest::of(b"other"),
        }];
        let err = layers.unpack_image(&content, &lying).unwrap_err();
        assert!(matches!(err, LayerError::DiffIdMismatch { .. }), "{err}");
        assert_eq!(fs::read_dir(layers.tmp_dir()).unwrap().count(), 0);
        let link = layers.short_link(&infos[1].chain_id).unwrap();
        assert!(link.join("b").is_file());
        layers.remove(&infos[1].chain_id).unwrap();
        assert!(layers.get(&infos[1].chain_id).unwrap().is_none());
        assert!(fs::symlink_metadata(&link).is_err());
    }
}
