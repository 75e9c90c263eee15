//! Content store: blobs by digest under `content/blobs/sha256/`, verified before they are
//! visible, and the images index `images.json` (OCI image-spec, image-layout.md "Blobs").

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{flock, FlockOperation};
use serde::{Deserialize, Serialize};

use crate::digest::{Digest, DigestWriter};

/// Why a store operation failed. Each variant names the operation and the path.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("verify blob {expected}: content has digest {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("verify blob {digest}: size {actual} does not match the declared {expected}")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("read blob {digest}: {source}")]
    Read { digest: Digest, source: io::Error },
    #[error("verify blob {digest}: more than the declared {expected} bytes")]
    TooLong { digest: Digest, expected: u64 },
    #[error("read blob {0}: not in the store")]
    BlobNotFound(Digest),
    #[error("parse {path}: {source}")]
    Index {
        path: PathBuf,
        source: serde_json::Error,
    },
}

impl ContentError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { op, path, source }
    }
}

type Result<T> = std::result::Result<T, ContentError>;

/// What a blob must be: its digest, and its size when the descriptor declares one.
#[derive(Clone, Debug)]
pub struct Expected {
    pub digest: Digest,
    pub size: Option<u64>,
}

/// The engine's store: `<root>/content/blobs/sha256/<hex>`, `<root>/content/ingest/` for
/// blobs being written, `<root>/images.json` and its lock file.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

/// Distinguishes the temporary files of the threads of one process.
static INGEST_SEQ: AtomicU64 = AtomicU64::new(0);

impl Store {
    /// Opens the store at `root` (`/var/lib/berth` by default), creating its directories.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let store = Self { root: root.into() };
        // Mode 700: blobs can hold anything an image ships, secrets included.
        for dir in [store.blobs_dir(), store.ingest_dir()] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(ContentError::io("create directory", &dir))?;
        }
        Ok(store)
    }

    /// Removes every ingest file: only call this holding the exclusive gc lock, when no
    /// writer can be at work (see [`Store::try_gc_lock_exclusive`]).
    pub fn remove_leftovers(&self) -> Result<usize> {
        let dir = self.ingest_dir();
        let entries = fs::read_dir(&dir).map_err(ContentError::io("read directory", &dir))?;
        let mut removed = 0;
        for entry in entries.flatten() {
            let path = entry.path();
            match fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(ContentError::Io {
                        op: "remove left-over",
                        path,
                        source: e,
                    })
                }
            }
        }
        Ok(removed)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("content/blobs/sha256")
    }

    fn ingest_dir(&self) -> PathBuf {
        self.root.join("content/ingest")
    }

    /// Where the blob with this digest lives once it is verified.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let path = self.blob_path(digest);
        File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ContentError::BlobNotFound(digest.clone()),
            _ => ContentError::Io {
                op: "open blob",
                path,
                source: e,
            },
        })
    }

    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut data = Vec::new();
        self.open_blob(digest)?
            .read_to_end(&mut data)
            .map_err(ContentError::io("read blob", self.blob_path(digest)))?;
        Ok(data)
    }

    /// Writes a blob whose digest is known in advance. The bytes go to a temporary file,
    /// hashed and counted as they are written; more bytes than the declared size stop the
    /// copy at once, and the file is renamed into `blobs/` only when digest and size match.
    /// A blob already present is not read again.
    pub fn write_blob(&self, expected: &Expected, mut reader: impl Read) -> Result<u64> {
        if let Ok(meta) = fs::metadata(self.blob_path(&expected.digest)) {
            return Ok(meta.len());
        }
        let mut writer = self.blob_writer(expected)?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(ContentError::Read {
                        digest: expected.digest.clone(),
                        source,
                    })
                }
            };
            writer.write(&buf[..n])?;
        }
        writer.commit()
    }

    /// A writer for a blob arriving in pieces (a registry download): see [`BlobWriter`].
    pub fn blob_writer(&self, expected: &Expected) -> Result<BlobWriter<'_>> {
        let tmp = self.ingest_path();
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(ContentError::io("create", &tmp))?;
        Ok(BlobWriter {
            store: self,
            expected: expected.clone(),
            writer: Some(DigestWriter::new(BufWriter::with_capacity(1 << 20, file))),
            tmp,
        })
    }

    fn ingest_path(&self) -> PathBuf {
        self.ingest_dir().join(format!(
            "{}-{}",
            std::process::id(),
            INGEST_SEQ.fetch_add(1, Ordering::Relaxed)
        ))
    }

    /// Writes a blob whose digest is learnt from its content (a `docker save` member, a
    /// manifest made here) and returns its digest and size.
    pub fn add_blob(&self, reader: impl Read) -> Result<(Digest, u64)> {
        let (tmp, digest, size) = self.ingest(reader)?;
        if self.has_blob(&digest) {
            let _ = fs::remove_file(&tmp);
        } else {
            self.commit(&tmp, &digest)?;
        }
        Ok((digest, size))
    }

    /// Copies `reader` to a new file in `ingest/`, fsynced, and returns its path, digest and size.
    fn ingest(&self, mut reader: impl Read) -> Result<(PathBuf, Digest, u64)> {
        let tmp = self.ingest_path();
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(ContentError::io("create", &tmp))?;
        let mut writer = DigestWriter::new(BufWriter::with_capacity(1 << 20, file));
        let copied = io::copy(&mut reader, &mut writer).and_then(|_| writer.flush());
        let (buf, digest, size) = writer.finish();
        let synced = copied.and_then(|()| {
            let file = buf.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()
        });
        if let Err(e) = synced {
            let _ = fs::remove_file(&tmp);
            return Err(ContentError::Io {
                op: "write",
                path: tmp,
                source: e,
            });
        }
        Ok((tmp, digest, size))
    }

    /// Makes a verified temporary file visible under its digest.
    fn commit(&self, tmp: &Path, digest: &Digest) -> Result<()> {
        let dest = self.blob_path(digest);
        fs::rename(tmp, &dest).map_err(ContentError::io("rename blob to", &dest))?;
        sync_dir(&self.blobs_dir())
    }

    /// Every blob in the store.
    pub fn blobs(&self) -> Result<Vec<Digest>> {
        let dir = self.blobs_dir();
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(ContentError::io("read directory", &dir))? {
            let entry = entry.map_err(ContentError::io("read directory", &dir))?;
            if let Some(d) = entry
                .file_name()
                .to_str()
                .and_then(|hex| format!("sha256:{hex}").parse().ok())
            {
                out.push(d);
            }
        }
        Ok(out)
    }

    pub fn remove_blob(&self, digest: &Digest) -> Result<()> {
        let path = self.blob_path(digest);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(ContentError::Io {
                op: "remove blob",
                path,
                source: e,
            }),
            _ => Ok(()),
        }
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("images.json")
    }

    /// Reads the images index, under a shared lock.
    pub fn images(&self) -> Result<ImageIndex> {
        let _lock = self.lock("images.lock", FlockOperation::LockShared)?;
        self.read_index()
    }

    /// Reads, changes and writes back the images index under an exclusive lock, so two
    /// `berth` processes never lose each other's changes. The new index is written to a
    /// temporary file, fsynced and renamed over the old one: a crash leaves one or the other.
    pub fn update_images<T, E: From<ContentError>>(
        &self,
        change: impl FnOnce(&mut ImageIndex) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let _lock = self.lock("images.lock", FlockOperation::LockExclusive)?;
        let mut index = self.read_index()?;
        let out = change(&mut index)?;
        self.write_index(&index)?;
        Ok(out)
    }

    /// Held shared by whoever adds blobs and layers not yet named by `images.json`, and
    /// exclusive by the garbage collector, so it never takes what a load is still writing.
    /// The lock goes with the returned file.
    pub fn gc_lock(&self, exclusive: bool) -> Result<File> {
        let op = if exclusive {
            FlockOperation::LockExclusive
        } else {
            FlockOperation::LockShared
        };
        self.lock("gc.lock", op)
    }

    /// The exclusive gc lock if no one holds the gc lock at all, else `None`: the moment to
    /// sweep what killed writers left, since every writer holds the lock shared.
    pub fn try_gc_lock_exclusive(&self) -> Result<Option<File>> {
        match self.lock("gc.lock", FlockOperation::NonBlockingLockExclusive) {
            Ok(file) => Ok(Some(file)),
            Err(ContentError::Io { source, .. }) if source.kind() == io::ErrorKind::WouldBlock => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn lock(&self, name: &str, op: FlockOperation) -> Result<File> {
        let path = self.root.join(name);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(ContentError::io("open", &path))?;
        flock(&file, op).map_err(|e| ContentError::Io {
            op: "flock",
            path,
            source: e.into(),
        })?;
        Ok(file)
    }

    fn read_index(&self) -> Result<ImageIndex> {
        let path = self.index_path();
        match fs::read(&path) {
            Ok(data) => {
                serde_json::from_slice(&data).map_err(|source| ContentError::Index { path, source })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(ImageIndex::default()),
            Err(e) => Err(ContentError::Io {
                op: "read",
                path,
                source: e,
            }),
        }
    }

    fn write_index(&self, index: &ImageIndex) -> Result<()> {
        let path = self.index_path();
        let tmp = self.root.join("images.json.tmp");
        let data = serde_json::to_vec_pretty(index).map_err(|source| ContentError::Index {
            path: path.clone(),
            source,
        })?;
        let mut file = File::create(&tmp).map_err(ContentError::io("create", &tmp))?;
        file.write_all(&data)
            .and_then(|()| file.sync_all())
            .map_err(ContentError::io("write", &tmp))?;
        fs::rename(&tmp, &path).map_err(ContentError::io("rename to", &path))?;
        sync_dir(&self.root)
    }
}

/// A blob being written: hashed and counted as it comes, refused as soon as it exceeds its
/// declared size, and visible under its digest only after [`BlobWriter::commit`] has checked
/// it. Dropped without a commit, it leaves nothing behind.
pub struct BlobWriter<'a> {
    store: &'a Store,
    expected: Expected,
    writer: Option<DigestWriter<BufWriter<File>>>,
    tmp: PathBuf,
}

impl BlobWriter<'_> {
    pub fn write(&mut self, chunk: &[u8]) -> Result<()> {
        let Some(writer) = self.writer.as_mut() else {
            return Ok(());
        };
        if let Some(size) = self.expected.size {
            if writer.count() + chunk.len() as u64 > size {
                return Err(ContentError::TooLong {
                    digest: self.expected.digest.clone(),
                    expected: size,
                });
            }
        }
        writer
            .write_all(chunk)
            .map_err(ContentError::io("write", &self.tmp))
    }

    /// Checks digest and size, fsyncs and renames the blob into place; returns its size.
    pub fn commit(mut self) -> Result<u64> {
        let Some(writer) = self.writer.take() else {
            return Err(ContentError::BlobNotFound(self.expected.digest.clone()));
        };
        let (buf, digest, size) = writer.finish();
        buf.into_inner()
            .map_err(|e| e.into_error())
            .and_then(|file| file.sync_all())
            .map_err(ContentError::io("write", &self.tmp))?;
        if digest != self.expected.digest {
            return Err(ContentError::DigestMismatch {
                expected: self.expected.digest.clone(),
                actual: digest,
            });
        }
        if let Some(expected) = self.expected.size.filter(|&s| s != size) {
            return Err(ContentError::SizeMismatch {
                digest,
                expected,
                actual: size,
            });
        }
        self.store.commit(&self.tmp, &digest)?;
        Ok(size)
    }
}

impl Drop for BlobWriter<'_> {
    fn drop(&mut self) {
        // After a successful commit the file has been renamed away and this finds nothing.
        let _ = fs::remove_file(&self.tmp);
    }
}

/// Makes a rename durable: the directory entry itself must reach the disk.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(ContentError::io("fsync directory", dir))
}

/// One image in the store: Docker's model, where the id is the digest of the config.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageRecord {
    /// Digest of the image config: `docker images` shows its first 12 hex digits.
    pub id: Digest,
    /// Digest of the manifest that names the config and the layers.
    pub manifest: Digest,
    /// Normalised `domain/repository:tag` names.
    #[serde(default)]
    pub repo_tags: Vec<String>,
    /// Normalised `domain/repository@digest` names.
    #[serde(default)]
    pub repo_digests: Vec<String>,
    /// Chain ids of the layers, bottom first.
    pub chain_ids: Vec<Digest>,
    /// Sum of the unpacked layer sizes, in bytes.
    pub size: u64,
    /// The config's `created`, RFC 3339.
    #[serde(default)]
    pub created: Option<String>,
}

/// The images index: `images.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageIndex {
    /// By image id.
    pub images: BTreeMap<Digest, ImageRecord>,
}

impl ImageIndex {
    /// Adds a tag to an image, taking it away from any other image that had it.
    pub fn tag(&mut self, id: &Digest, tag: &str) {
        for image in self.images.values_mut() {
            image.repo_tags.retain(|t| t != tag);
        }
        if let Some(image) = self.images.get_mut(id) {
            image.repo_tags.push(tag.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("root")).unwrap();
        (dir, store)
    }

    fn ingest_is_empty(store: &Store) -> bool {
        fs::read_dir(store.ingest_dir()).unwrap().next().is_none()
    }

    #[test]
    fn writes_a_verified_blob() {
        let (_dir, store) = store();
        let data = b"some layer bytes";
        let expected = Expected {
            digest: Digest::of(data),
            size: Some(data.len() as u64),
        };
        assert_eq!(store.write_blob(&expected, &data[..]).unwrap(), 16);
        assert_eq!(store.read_blob(&expected.digest).unwrap(), data);
        assert_eq!(store.blobs().unwrap(), vec![expected.digest.clone()]);
        // A second write of the same blob reads nothing.
        let failing = io::repeat(0).take(0);
        assert_eq!(store.write_blob(&expected, failing).unwrap(), 16);
        assert!(ingest_is_empty(&store));
    }

    #[test]
    fn refuses_a_blob_whose_digest_does_not_match() {
        let (_dir, store) = store();
        let expected = Expected {
            digest: Digest::of(b"expected"),
            size: None,
        };
        let err = store.write_blob(&expected, &b"tampered"[..]).unwrap_err();
        assert!(matches!(err, ContentError::DigestMismatch { .. }), "{err}");
        assert!(err.to_string().starts_with("verify blob sha256:"));
        assert!(!store.has_blob(&expected.digest));
        assert!(store.blobs().unwrap().is_empty());
        assert!(ingest_is_empty(&store));
    }

    #[test]
    fn stops_reading_past_the_declared_size() {
        let (_dir, store) = store();
        let expected = Expected {
            digest: Digest::of(b"abc"),
            size: Some(3),
        };
        // An endless stream: the store stops as soon as it passes the declared size.
        let err = store.write_blob(&expected, io::repeat(b'a')).unwrap_err();
        assert!(
            matches!(err, ContentError::TooLong { expected: 3, .. }),
            "{err}"
        );
        let short = Expected {
            digest: Digest::of(b"abc"),
            size: Some(4),
        };
        let err = store.write_blob(&short, &b"abc"[..]).unwrap_err();
        assert!(
            matches!(err, ContentError::SizeMismatch { actual: 3, .. }),
            "{err}"
        );
        assert!(ingest_is_empty(&store));
    }

    #[test]
    fn left_overs_are_swept_only_when_no_one_holds_the_gc_lock() {
        let (_dir, store) = store();
        let stale = store.ingest_dir().join("4242-7");
        fs::write(&stale, b"half a blob").unwrap();
        let writer = store.gc_lock(false).unwrap();
        assert!(store.try_gc_lock_exclusive().unwrap().is_none());
        drop(writer);
        let _sweeper = store.try_gc_lock_exclusive().unwrap().unwrap();
        assert_eq!(store.remove_leftovers().unwrap(), 1);
        assert!(ingest_is_empty(&store));
    }

    #[test]
    fn add_blob_learns_the_digest() {
        let (_dir, store) = store();
        let (digest, size) = store.add_blob(&b"{}"[..]).unwrap();
        assert_eq!(digest, Digest::of(b"{}"));
        assert_eq!(size, 2);
        assert!(store.has_blob(&digest));
        assert_eq!(store.add_blob(&b"{}"[..]).unwrap(), (digest.clone(), 2));
        store.remove_blob(&digest).unwrap();
        assert!(matches!(
            store.open_blob(&digest),
            Err(ContentError::BlobNotFound(_))
        ));
    }

    fn record(n: u8) -> ImageRecord {
        ImageRecord {
            id: Digest::of(&[n]),
            manifest: Digest::of(&[n, n]),
            repo_tags: vec![],
            repo_digests: vec![],
            chain_ids: vec![Digest::of(&[n, n, n])],
            size: 10,
            created: None,
        }
    }

    #[test]
    fn images_index_round_trips_and_moves_tags() {
        let (_dir, store) = store();
        assert!(store.images().unwrap().images.is_empty());
        let (a, b) = (record(1), record(2));
        store
            .update_images(|idx| {
                idx.images.insert(a.id.clone(), a.clone());
                idx.images.insert(b.id.clone(), b.clone());
                idx.tag(&a.id, "docker.io/library/x:latest");
                Ok::<_, ContentError>(())
            })
            .unwrap();
        store
            .update_images(|idx| {
                idx.tag(&b.id, "docker.io/library/x:latest");
                Ok::<_, ContentError>(())
            })
            .unwrap();
        let index = store.images().unwrap();
        assert!(index.images[&a.id].repo_tags.is_empty());
        assert_eq!(
            index.images[&b.id].repo_tags,
            vec!["docker.io/library/x:latest"]
        );
        assert!(!store.root().join("images.json.tmp").exists());
    }

    #[test]
    fn a_failed_update_writes_nothing() {
        let (_dir, store) = store();
        let r = record(1);
        let err = store
            .update_images(|idx| {
                idx.images.insert(r.id.clone(), r.clone());
                Err::<(), _>(ContentError::BlobNotFound(r.id.clone()))
            })
            .unwrap_err();
        assert!(matches!(err, ContentError::BlobNotFound(_)));
        assert!(store.images().unwrap().images.is_empty());
    }

    #[test]
    fn concurrent_updates_lose_nothing() {
        let (_dir, store) = store();
        std::thread::scope(|s| {
            for n in 0..8u8 {
                let store = store.clone();
                s.spawn(move || {
                    let r = record(n);
                    store
                        .update_images(|idx| {
                            idx.images.insert(r.id.clone(), r);
                            Ok::<_, ContentError>(())
                        })
                        .unwrap();
                });
            }
        });
        assert_eq!(store.images().unwrap().images.len(), 8);
    }
}
