//! Images: manifests, indexes (platform choice), configs and tags; loading OCI image layouts,
//! oci-archive and docker-archive tars (image-spec manifest.md, image-index.md, image-layout.md).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::content::{ContentError, Expected, ImageIndex, ImageRecord, Store};
use crate::digest::Digest;
use crate::layers::{self, LayerError, LayerSource, LayerStore};
use crate::reference::{Reference, ReferenceError};
use crate::snapshots::{SnapshotError, Snapshotter};

pub const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MEDIA_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const MEDIA_DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// image-spec annotations.md: the tag (or full reference) of a manifest in an index.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// containerd and Docker write the full image name here.
const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";

/// Manifests, indexes and configs are small: a bigger declared size is an attack or a
/// mistake, refused before anything is read (containerd uses the same bound).
const MAX_DOCUMENT_SIZE: u64 = 4 << 20;
/// Indexes may nest (an index in an OCI layout pointing at a multi-platform index); more
/// than this is a loop or an attack.
const MAX_INDEX_DEPTH: usize = 4;

/// Why an image operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("parse {what} {digest}: {source}")]
    Json {
        what: &'static str,
        digest: String,
        source: serde_json::Error,
    },
    #[error(
        "read {what} {digest}: declared size {size} is over the {MAX_DOCUMENT_SIZE}-byte limit"
    )]
    TooLarge {
        what: &'static str,
        digest: Digest,
        size: u64,
    },
    #[error("read manifest {0}: an index where an image manifest was expected")]
    NotAManifest(Digest),
    #[error("resolve manifest {0}: it refers to itself")]
    Cycle(Digest),
    #[error("resolve manifest {0}: indexes nested deeper than {MAX_INDEX_DEPTH}")]
    TooDeep(Digest),
    #[error("resolve index {digest}: no manifest for {wanted} (has {available})")]
    NoPlatform {
        digest: Digest,
        wanted: String,
        available: String,
    },
    #[error("load {path}: no image named {name:?} (has {available})")]
    NoSuchRefName {
        path: PathBuf,
        name: String,
        available: String,
    },
    #[error("load {path}: {what}")]
    BadArchive { path: PathBuf, what: String },
    #[error("verify image {image}: config lists {diff_ids} diff_ids for {layers} layers")]
    LayerCount {
        image: Digest,
        diff_ids: usize,
        layers: usize,
    },
    #[error("no such image: {0}")]
    NotFound(String),
    #[error("image reference {name} is ambiguous: {count} images match")]
    Ambiguous { name: String, count: usize },
    #[error("remove image {name}: it has several tags ({tags}); remove them one by one or use -f")]
    ManyTags { name: String, tags: String },
    #[error("remove image {name}: it is mounted at {path}; unmount it first")]
    Mounted { name: String, path: PathBuf },
    #[error("remove image {name}: containers use it ({containers}); remove them or use -f")]
    InUse { name: String, containers: String },
}

type Result<T> = std::result::Result<T, ImageError>;

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ImageError {
    let path = path.to_path_buf();
    move |source| ImageError::Io { op, path, source }
}

/// image-spec descriptor.md.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// image-spec image-index.md "platform".
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this binary runs on, in GOARCH names.
    pub fn host() -> Self {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Self {
            architecture: architecture.to_string(),
            os: "linux".to_string(),
            variant: None,
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// image-spec manifest.md. `mediaType` is optional: some tools omit it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// image-spec image-index.md (and Docker's manifest list, which has the same shape).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

/// The parts of image-spec config.md the engine reads; `inspect` shows the whole document.
#[derive(Clone, Debug, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub architecture: Option<String>,
    #[serde(default)]
    pub os: Option<String>,
    pub rootfs: RootFs,
}

#[derive(Clone, Debug, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<Digest>,
}

/// A manifest or an index: told by `mediaType` when present, by shape when not.
pub enum Document {
    Manifest(Manifest),
    Index(Index),
}

pub fn parse_document(data: &[u8], digest: &Digest) -> Result<Document> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let json_err = |what, source| ImageError::Json {
        what,
        digest: digest.to_string(),
        source,
    };
    let probe: Probe = serde_json::from_slice(data).map_err(|e| json_err("manifest", e))?;
    let is_index = match probe.media_type.as_deref() {
        Some(MEDIA_OCI_INDEX | MEDIA_DOCKER_LIST) => true,
        Some(_) => false,
        None => probe.manifests.is_some(),
    };
    if is_index {
        serde_json::from_slice(data)
            .map(Document::Index)
            .map_err(|e| json_err("index", e))
    } else {
        serde_json::from_slice(data)
            .map(Document::Manifest)
            .map_err(|e| json_err("manifest", e))
    }
}

/// Where the blobs of an image being loaded come from.
enum Source<'a> {
    /// An OCI image layout directory: `blobs/sha256/<hex>`, copied into the store verified.
    Layout(&'a Path),
    /// An archive already streamed into the store: every blob is there, verified.
    Store,
}

/// One image that a load brought in, and the tags that load gave it.
#[derive(Debug)]
pub struct Loaded {
    pub image: ImageRecord,
    pub tags: Vec<String>,
}

/// The image store: the content store, the unpacked layers, the images index, and the
/// snapshots that stand on the layers.
pub struct Images {
    content: Store,
    layers: LayerStore,
    snapshots: Snapshotter,
}

impl Images {
    /// Opens the store at `root`. If no other berth is loading, pulling or collecting, what
    /// killed ones left half-written (ingest files, half-unpacked layers) goes first: a
    /// store is consistent after any crash once it is opened again.
    pub fn open(root: &Path) -> Result<Self> {
        let layers = LayerStore::open(root)?;
        let images = Self {
            content: Store::open(root)?,
            snapshots: Snapshotter::new(root, layers.clone()),
            layers,
        };
        if let Some(_sweeping) = images.content.try_gc_lock_exclusive()? {
            let blobs = images.content.remove_leftovers()?;
            let layers = images.layers.remove_leftovers()?;
            if blobs + layers > 0 {
                tracing::debug!(blobs, layers, "removed what interrupted writers left");
            }
        }
        Ok(images)
    }

    pub fn content(&self) -> &Store {
        &self.content
    }

    pub fn layers(&self) -> &LayerStore {
        &self.layers
    }

    pub fn snapshots(&self) -> &Snapshotter {
        &self.snapshots
    }

    /// Layers that snapshots (containers) stand on: never collected, whatever the images.
    fn layers_in_use(&self) -> Result<HashSet<Digest>> {
        Ok(self
            .snapshots
            .snapshots()?
            .into_iter()
            .flat_map(|(_, chains)| chains)
            .collect())
    }

    /// Loads the images of an OCI image layout directory; `names` picks them by their
    /// `org.opencontainers.image.ref.name` (all when empty).
    pub fn load_layout(&self, dir: &Path, names: &[String]) -> Result<Vec<Loaded>> {
        let index_path = dir.join("index.json");
        let data = std::fs::read(&index_path).map_err(io_err("read", &index_path))?;
        let index: Index = serde_json::from_slice(&data).map_err(|source| ImageError::Json {
            what: "index",
            digest: index_path.display().to_string(),
            source,
        })?;
        let _gc = self.content.gc_lock(false)?;
        self.load_index(dir, &index, names, &Source::Layout(dir))
    }

    /// Loads an oci-archive or docker-archive tar (plain, gzip or zstd): every member is
    /// streamed into the content store, verified where its name is a digest.
    pub fn load_archive(&self, path: &Path, names: &[String]) -> Result<Vec<Loaded>> {
        let file = File::open(path).map_err(io_err("open", path))?;
        self.load_archive_from(file, path, names)
    }

    /// Like [`Images::load_archive`], from a stream (`berth load` without `-i` reads stdin);
    /// `path` only names the stream in errors.
    pub fn load_archive_from(
        &self,
        stream: impl Read,
        path: &Path,
        names: &[String],
    ) -> Result<Vec<Loaded>> {
        let _gc = self.content.gc_lock(false)?;
        let members = self.ingest_archive(path, stream)?;
        if let Some(manifest) = members.docs.get("manifest.json") {
            return self.load_docker_archive(path, manifest, &members, names);
        }
        let Some(index) = members.docs.get("index.json") else {
            return Err(ImageError::BadArchive {
                path: path.to_path_buf(),
                what: "neither index.json (oci-archive) nor manifest.json (docker-archive) in the archive".into(),
            });
        };
        let index: Index = serde_json::from_slice(index).map_err(|source| ImageError::Json {
            what: "index",
            digest: format!("{}:index.json", path.display()),
            source,
        })?;
        self.load_index(path, &index, names, &Source::Store)
    }

    fn load_index(
        &self,
        origin: &Path,
        index: &Index,
        names: &[String],
        source: &Source<'_>,
    ) -> Result<Vec<Loaded>> {
        let ref_name = |d: &Descriptor| d.annotations.get(ANNOTATION_REF_NAME).cloned();
        let mut picked = Vec::new();
        if names.is_empty() {
            picked.extend(index.manifests.iter());
        } else {
            for name in names {
                let found: Vec<&Descriptor> = index
                    .manifests
                    .iter()
                    .filter(|d| ref_name(d).as_deref() == Some(name.as_str()))
                    .collect();
                if found.is_empty() {
                    let available: Vec<String> =
                        index.manifests.iter().filter_map(ref_name).collect();
                    return Err(ImageError::NoSuchRefName {
                        path: origin.to_path_buf(),
                        name: name.clone(),
                        available: available.join(", "),
                    });
                }
                picked.extend(found);
            }
        }
        let mut loaded = Vec::new();
        for desc in picked {
            let tags = desc
                .annotations
                .get(ANNOTATION_CONTAINERD_NAME)
                .or_else(|| desc.annotations.get(ANNOTATION_REF_NAME))
                .and_then(|n| n.parse::<Reference>().ok())
                .map(|r| vec![r.to_string()])
                .unwrap_or_default();
            let mut visited = HashSet::new();
            let manifest_digest = self.resolve(desc, source, &mut visited, 0)?;
            loaded.push(self.install(&manifest_digest, source, &tags)?);
        }
        Ok(loaded)
    }

    /// Copies a descriptor's blob into the store, checked against digest and size.
    fn fetch(&self, desc: &Descriptor, source: &Source<'_>) -> Result<()> {
        let expected = Expected {
            digest: desc.digest.clone(),
            size: Some(desc.size),
        };
        match source {
            Source::Layout(dir) => {
                if self.content.has_blob(&desc.digest) {
                    return Ok(());
                }
                let path = dir.join("blobs/sha256").join(desc.digest.hex());
                let file = File::open(&path).map_err(io_err("open blob", &path))?;
                self.content.write_blob(&expected, file)?;
            }
            Source::Store => {
                // Verified when it was streamed in under its digest; the size still counts.
                let file = self.content.open_blob(&desc.digest)?;
                let len = file
                    .metadata()
                    .map_err(io_err("stat", &self.content.blob_path(&desc.digest)))?
                    .len();
                if len != desc.size {
                    return Err(ContentError::SizeMismatch {
                        digest: desc.digest.clone(),
                        expected: desc.size,
                        actual: len,
                    }
                    .into());
                }
            }
        }
        Ok(())
    }

    /// Reads a JSON document (manifest, index, config), refusing absurd declared sizes.
    fn fetch_document(
        &self,
        what: &'static str,
        desc: &Descriptor,
        source: &Source<'_>,
    ) -> Result<Vec<u8>> {
        if desc.size > MAX_DOCUMENT_SIZE {
            return Err(ImageError::TooLarge {
                what,
                digest: desc.digest.clone(),
                size: desc.size,
            });
        }
        self.fetch(desc, source)?;
        Ok(self.content.read_blob(&desc.digest)?)
    }

    /// Follows indexes down to one manifest for this platform and returns its digest.
    fn resolve(
        &self,
        desc: &Descriptor,
        source: &Source<'_>,
        visited: &mut HashSet<Digest>,
        depth: usize,
    ) -> Result<Digest> {
        if !visited.insert(desc.digest.clone()) {
            return Err(ImageError::Cycle(desc.digest.clone()));
        }
        if depth > MAX_INDEX_DEPTH {
            return Err(ImageError::TooDeep(desc.digest.clone()));
        }
        let data = self.fetch_document("manifest", desc, source)?;
        match parse_document(&data, &desc.digest)? {
            Document::Manifest(_) => Ok(desc.digest.clone()),
            Document::Index(index) => {
                let child = choose_platform(&index, &desc.digest, &Platform::host())?;
                self.resolve(child, source, visited, depth + 1)
            }
        }
    }

    /// Notes that a registry holds the image under `name@digest`.
    pub fn add_repo_digest(&self, id: &Digest, repo_digest: &str) -> Result<()> {
        self.content.update_images(|index| {
            let image = index
                .images
                .get_mut(id)
                .ok_or_else(|| ImageError::NotFound(id.to_string()))?;
            if !image.repo_digests.iter().any(|d| d == repo_digest) {
                image.repo_digests.push(repo_digest.to_string());
            }
            Ok::<_, ImageError>(())
        })
    }

    /// Records an image whose manifest, config and layer blobs are all in the store (a
    /// registry pull put them there): unpacks its layers, tags it, and notes its repo digests.
    pub fn register(
        &self,
        manifest: &Digest,
        tags: &[String],
        repo_digests: &[String],
    ) -> Result<Loaded> {
        let loaded = self.install(manifest, &Source::Store, tags)?;
        for d in repo_digests {
            self.add_repo_digest(&loaded.image.id, d)?;
        }
        let image = self.lookup(&loaded.image.id.to_string())?;
        Ok(Loaded { image, ..loaded })
    }

    /// Fetches config and layers of a manifest, unpacks the layers and records the image.
    fn install(
        &self,
        manifest_digest: &Digest,
        source: &Source<'_>,
        tags: &[String],
    ) -> Result<Loaded> {
        let data = self.content.read_blob(manifest_digest)?;
        let Document::Manifest(manifest) = parse_document(&data, manifest_digest)? else {
            return Err(ImageError::NotAManifest(manifest_digest.clone()));
        };
        let config_data = self.fetch_document("config", &manifest.config, source)?;
        let config: ImageConfig =
            serde_json::from_slice(&config_data).map_err(|source| ImageError::Json {
                what: "config",
                digest: manifest.config.digest.to_string(),
                source,
            })?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(ImageError::LayerCount {
                image: manifest.config.digest.clone(),
                diff_ids: config.rootfs.diff_ids.len(),
                layers: manifest.layers.len(),
            });
        }
        for layer in &manifest.layers {
            self.fetch(layer, source)?;
        }
        let sources: Vec<LayerSource> = manifest
            .layers
            .iter()
            .zip(&config.rootfs.diff_ids)
            .map(|(l, d)| LayerSource {
                blob: l.digest.clone(),
                diff_id: d.clone(),
            })
            .collect();
        let infos = self.layers.unpack_image(&self.content, &sources)?;
        let record = ImageRecord {
            id: manifest.config.digest.clone(),
            manifest: manifest_digest.clone(),
            repo_tags: Vec::new(),
            repo_digests: Vec::new(),
            chain_ids: infos.iter().map(|i| i.chain_id.clone()).collect(),
            size: infos.iter().map(|i| i.size).sum(),
            created: config.created.clone(),
        };
        let record = self.content.update_images(|index| {
            let entry = index
                .images
                .entry(record.id.clone())
                .or_insert_with(|| record.clone());
            entry.manifest = record.manifest.clone();
            for tag in tags {
                index.tag(&record.id, tag);
            }
            Ok::<_, ImageError>(index.images[&record.id].clone())
        })?;
        Ok(Loaded {
            image: record,
            tags: tags.to_vec(),
        })
    }

    /// One pass over the archive: blobs go to the store, small documents stay in memory.
    fn ingest_archive(&self, path: &Path, file: impl Read) -> Result<ArchiveMembers> {
        let bad = |what: String| ImageError::BadArchive {
            path: path.to_path_buf(),
            what,
        };
        let stream = layers::decompress(file).map_err(|e| bad(e.to_string()))?;
        let mut archive = tar::Archive::new(stream);
        let mut members = ArchiveMembers::default();
        for entry in archive.entries().map_err(|e| bad(e.to_string()))? {
            let mut entry = entry.map_err(|e| bad(e.to_string()))?;
            let name = normalize_member(&String::from_utf8_lossy(&entry.path_bytes()));
            let kind = entry.header().entry_type();
            if kind.is_symlink() || kind.is_hard_link() {
                // `docker save` links a layer it already wrote instead of writing it twice.
                let target = entry
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .unwrap_or_default();
                let target = if kind.is_symlink() {
                    let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
                    normalize_member(&format!("{dir}/{target}"))
                } else {
                    normalize_member(&target)
                };
                members.links.push((name, target));
                continue;
            }
            if !kind.is_file() {
                continue;
            }
            if matches!(
                name.as_str(),
                "index.json" | "manifest.json" | "oci-layout" | "repositories"
            ) {
                if entry.size() > MAX_DOCUMENT_SIZE {
                    return Err(bad(format!(
                        "{name} is larger than {MAX_DOCUMENT_SIZE} bytes"
                    )));
                }
                let mut data = Vec::new();
                entry
                    .read_to_end(&mut data)
                    .map_err(|e| bad(e.to_string()))?;
                members.docs.insert(name, data);
                continue;
            }
            let size = entry.size();
            let blob = match name.strip_prefix("blobs/sha256/") {
                Some(hex) => {
                    let digest: Digest = format!("sha256:{hex}")
                        .parse()
                        .map_err(|e: crate::digest::DigestError| bad(e.to_string()))?;
                    let expected = Expected {
                        digest: digest.clone(),
                        size: Some(size),
                    };
                    self.content.write_blob(&expected, &mut entry)?;
                    digest
                }
                None => self.content.add_blob(&mut entry)?.0,
            };
            members.files.insert(name, (blob, size));
        }
        for (name, target) in std::mem::take(&mut members.links) {
            if let Some(found) = members.files.get(&target).cloned() {
                members.files.insert(name, found);
            }
        }
        Ok(members)
    }

    /// docker-archive: `manifest.json` lists config and layer files by path; an OCI
    /// manifest is made for each image so that the rest of the engine sees one format.
    fn load_docker_archive(
        &self,
        path: &Path,
        manifest_json: &[u8],
        members: &ArchiveMembers,
        names: &[String],
    ) -> Result<Vec<Loaded>> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Entry {
            config: String,
            #[serde(default)]
            repo_tags: Option<Vec<String>>,
            layers: Vec<String>,
        }
        let entries: Vec<Entry> =
            serde_json::from_slice(manifest_json).map_err(|source| ImageError::Json {
                what: "docker-archive manifest",
                digest: format!("{}:manifest.json", path.display()),
                source,
            })?;
        let member = |name: &str| {
            members
                .files
                .get(&normalize_member(name))
                .cloned()
                .ok_or_else(|| ImageError::BadArchive {
                    path: path.to_path_buf(),
                    what: format!("manifest.json names {name}, which is not in the archive"),
                })
        };
        let mut loaded = Vec::new();
        for entry in entries {
            let tags: Vec<String> = entry
                .repo_tags
                .unwrap_or_default()
                .iter()
                .map(|t| t.parse::<Reference>().map(|r| r.to_string()))
                .collect::<std::result::Result<_, _>>()?;
            if !names.is_empty()
                && !tags.iter().any(|t| {
                    names
                        .iter()
                        .any(|n| n.parse::<Reference>().is_ok_and(|r| r.to_string() == *t))
                })
            {
                continue;
            }
            let (config, config_size) = member(&entry.config)?;
            let mut layers = Vec::new();
            for layer in &entry.layers {
                let (digest, size) = member(layer)?;
                layers.push(Descriptor {
                    media_type: Some(MEDIA_DOCKER_LAYER_TAR.to_string()),
                    digest,
                    size,
                    annotations: BTreeMap::new(),
                    platform: None,
                });
            }
            let manifest = Manifest {
                schema_version: 2,
                media_type: Some(MEDIA_OCI_MANIFEST.to_string()),
                config: Descriptor {
                    media_type: Some(MEDIA_OCI_CONFIG.to_string()),
                    digest: config,
                    size: config_size,
                    annotations: BTreeMap::new(),
                    platform: None,
                },
                layers,
                annotations: BTreeMap::new(),
            };
            let json = serde_json::to_vec(&manifest).map_err(|source| ImageError::Json {
                what: "manifest",
                digest: "(new)".into(),
                source,
            })?;
            let (manifest_digest, _) = self.content.add_blob(&json[..])?;
            loaded.push(self.install(&manifest_digest, &Source::Store, &tags)?);
        }
        Ok(loaded)
    }

    pub fn list(&self) -> Result<Vec<ImageRecord>> {
        Ok(self.content.images()?.images.into_values().collect())
    }

    /// Finds an image by reference (`busybox`, `busybox:1`, `name@sha256:…`), by id
    /// (`sha256:…`) or by a unique prefix of its id, as Docker does.
    pub fn lookup(&self, name: &str) -> Result<ImageRecord> {
        find(&self.content.images()?, name).cloned()
    }

    /// The manifest and the full config document of an image.
    pub fn manifest_and_config(
        &self,
        image: &ImageRecord,
    ) -> Result<(Manifest, serde_json::Value)> {
        let data = self.content.read_blob(&image.manifest)?;
        let Document::Manifest(manifest) = parse_document(&data, &image.manifest)? else {
            return Err(ImageError::NotAManifest(image.manifest.clone()));
        };
        let config = self.content.read_blob(&image.id)?;
        let config = serde_json::from_slice(&config).map_err(|source| ImageError::Json {
            what: "config",
            digest: image.id.to_string(),
            source,
        })?;
        Ok((manifest, config))
    }

    /// `berth tag SOURCE TARGET`: the target tag moves to the source's image.
    pub fn tag(&self, source: &str, target: &str) -> Result<Reference> {
        let target: Reference = target.parse()?;
        let tag = target.to_string();
        self.content.update_images(|index| {
            let id = find(index, source)?.id.clone();
            index.tag(&id, &tag);
            Ok::<_, ImageError>(())
        })?;
        Ok(target)
    }

    /// `berth rmi`: untags `name` if it is one tag of several, else deletes the image
    /// (`force` deletes it with all its tags, mounted or not). Returns Docker's lines.
    pub fn remove(&self, name: &str, force: bool) -> Result<Vec<String>> {
        let snapshots = self.snapshots.snapshots()?;
        let mut out = Vec::new();
        self.content.update_images(|index| {
            let image = find(index, name)?.clone();
            let by_tag = name
                .parse::<Reference>()
                .ok()
                .map(|r| r.to_string())
                .filter(|t| image.repo_tags.contains(t));
            if let Some(tag) = &by_tag {
                if image.repo_tags.len() > 1 {
                    if let Some(img) = index.images.get_mut(&image.id) {
                        img.repo_tags.retain(|t| t != tag);
                    }
                    out.push(format!("Untagged: {}", familiar(tag)));
                    return Ok(());
                }
            } else if image.repo_tags.len() > 1 && !force {
                return Err(ImageError::ManyTags {
                    name: name.to_string(),
                    tags: image
                        .repo_tags
                        .iter()
                        .map(|t| familiar(t))
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            // A view's layers are not recorded anywhere else: it must go first, even with -f.
            if let Some(path) = self.snapshots.image_mounted_at(&image.id)? {
                return Err(ImageError::Mounted {
                    name: name.to_string(),
                    path,
                });
            }
            // Containers keep their layers (see `collect_garbage`), so -f may remove the image.
            let users: Vec<&str> = snapshots
                .iter()
                .filter(|(_, chains)| *chains == image.chain_ids)
                .map(|(id, _)| id.as_str())
                .collect();
            if !users.is_empty() && !force {
                return Err(ImageError::InUse {
                    name: name.to_string(),
                    containers: users.join(", "),
                });
            }
            index.images.remove(&image.id);
            out.extend(
                image
                    .repo_tags
                    .iter()
                    .map(|t| format!("Untagged: {}", familiar(t))),
            );
            out.push(format!("Deleted: {}", image.id));
            Ok::<_, ImageError>(())
        })?;
        Ok(out)
    }

    /// Checks the whole store: every blob against its digest, every image's blobs and
    /// layers, every layer's metadata, orphans and left-overs. Runs under the exclusive gc
    /// lock, so no load or pull is half-way through.
    pub fn check(&self) -> Result<Vec<Problem>> {
        let _gc = self.content.gc_lock(true)?;
        let mut problems = Vec::new();
        let blobs_dir = self.content.root().join("content/blobs/sha256");
        let entries =
            std::fs::read_dir(&blobs_dir).map_err(io_err("read directory", &blobs_dir))?;
        let mut blobs = BTreeSet::new();
        for entry in entries {
            let entry = entry.map_err(io_err("read directory", &blobs_dir))?;
            let name = entry.file_name();
            let Some(digest) = name
                .to_str()
                .and_then(|hex| format!("sha256:{hex}").parse::<Digest>().ok())
            else {
                problems.push(Problem::StrayFile(entry.path()));
                continue;
            };
            let mut reader = crate::digest::DigestReader::new(self.content.open_blob(&digest)?);
            io::copy(&mut reader, &mut io::sink()).map_err(io_err("read", &entry.path()))?;
            let (actual, _) = reader.finish();
            if actual != digest {
                problems.push(Problem::CorruptBlob {
                    digest: digest.clone(),
                    actual,
                });
            }
            blobs.insert(digest);
        }
        let mut layers = BTreeSet::new();
        for chain_id in self.layers.list()? {
            let bad = |what: &str| Problem::BadLayer {
                chain_id: chain_id.clone(),
                what: what.to_string(),
            };
            match self.layers.get(&chain_id) {
                Ok(Some(info)) if info.chain_id != chain_id => {
                    problems.push(bad("layer.json names another chain id"))
                }
                Ok(Some(_)) if !self.layers.diff_dir(&chain_id).is_dir() => {
                    problems.push(bad("no diff directory"))
                }
                Ok(Some(_)) => {}
                Ok(None) => problems.push(bad("no layer.json")),
                Err(e) => problems.push(bad(&e.to_string())),
            }
            layers.insert(chain_id);
        }
        let mut used_blobs = BTreeSet::new();
        let mut used_layers: BTreeSet<Digest> = self.layers_in_use()?.into_iter().collect();
        for image in self.content.images()?.images.values() {
            let mut wanted = vec![image.manifest.clone(), image.id.clone()];
            if let Ok((manifest, config)) = self.manifest_and_config(image) {
                wanted.extend(manifest.layers.iter().map(|l| l.digest.clone()));
                let diff_ids: Vec<Digest> = config
                    .pointer("/rootfs/diff_ids")
                    .and_then(|v| serde_json::from_value(v.clone()).ok())
                    .unwrap_or_default();
                if layers::chain_ids(&diff_ids) != image.chain_ids {
                    problems.push(Problem::WrongChain {
                        image: image.id.clone(),
                    });
                }
            }
            for digest in wanted {
                if !blobs.contains(&digest) {
                    problems.push(Problem::MissingBlob {
                        image: image.id.clone(),
                        digest: digest.clone(),
                    });
                }
                used_blobs.insert(digest);
            }
            for chain_id in &image.chain_ids {
                if !layers.contains(chain_id) {
                    problems.push(Problem::MissingLayer {
                        image: image.id.clone(),
                        chain_id: chain_id.clone(),
                    });
                }
                used_layers.insert(chain_id.clone());
            }
        }
        problems.extend(
            blobs
                .difference(&used_blobs)
                .cloned()
                .map(Problem::OrphanBlob),
        );
        problems.extend(
            layers
                .difference(&used_layers)
                .cloned()
                .map(Problem::OrphanLayer),
        );
        for dir in [
            self.content.root().join("content/ingest"),
            self.content.root().join("layers/tmp"),
        ] {
            let entries = std::fs::read_dir(&dir).map_err(io_err("read directory", &dir))?;
            problems.extend(entries.flatten().map(|e| Problem::LeftOver(e.path())));
        }
        Ok(problems)
    }

    /// Writes images as one tar: an OCI image layout (`oci-layout`, `index.json`, blobs by
    /// digest) and, for `docker-archive`, also Docker's `manifest.json` pointing at the same
    /// blobs, as `docker save` does since Docker 25. Layers are written as stored.
    pub fn save(&self, names: &[String], format: ArchiveFormat, out: impl io::Write) -> Result<()> {
        let index = self.content.images()?;
        let mut chosen: Vec<(ImageRecord, Vec<String>)> = Vec::new();
        for name in names {
            let image = find(&index, name)?.clone();
            let as_tag = name.parse::<Reference>().ok().map(|r| r.to_string());
            let tags = match as_tag {
                Some(tag) if image.repo_tags.contains(&tag) => vec![tag],
                _ => image.repo_tags.clone(),
            };
            match chosen.iter_mut().find(|(i, _)| i.id == image.id) {
                Some((_, known)) => {
                    for tag in tags {
                        if !known.contains(&tag) {
                            known.push(tag);
                        }
                    }
                }
                None => chosen.push((image, tags)),
            }
        }
        let mut tar = tar::Builder::new(out);
        let mut written = HashSet::new();
        let mut index_entries = Vec::new();
        let mut docker_entries = Vec::new();
        for (image, tags) in &chosen {
            let (manifest, _) = self.manifest_and_config(image)?;
            let mut blobs = vec![image.manifest.clone(), image.id.clone()];
            blobs.extend(manifest.layers.iter().map(|l| l.digest.clone()));
            for digest in blobs {
                if written.insert(digest.clone()) {
                    self.append_blob(&mut tar, &digest)?;
                }
            }
            let manifest_size = self.content.read_blob(&image.manifest)?.len() as u64;
            let descriptor = |tag: Option<&String>| {
                let mut annotations = BTreeMap::new();
                if let Some(tag) = tag {
                    annotations.insert(ANNOTATION_CONTAINERD_NAME.to_string(), tag.clone());
                    annotations.insert(ANNOTATION_REF_NAME.to_string(), familiar(tag));
                }
                Descriptor {
                    media_type: Some(MEDIA_OCI_MANIFEST.to_string()),
                    digest: image.manifest.clone(),
                    size: manifest_size,
                    annotations,
                    platform: None,
                }
            };
            if tags.is_empty() {
                index_entries.push(descriptor(None));
            }
            index_entries.extend(tags.iter().map(|t| descriptor(Some(t))));
            docker_entries.push(serde_json::json!({
                "Config": format!("blobs/sha256/{}", image.id.hex()),
                "RepoTags": tags.iter().map(|t| familiar(t)).collect::<Vec<_>>(),
                "Layers": manifest.layers.iter().map(|l| format!("blobs/sha256/{}", l.digest.hex())).collect::<Vec<_>>(),
            }));
        }
        let oci_index = Index {
            schema_version: 2,
            media_type: Some(MEDIA_OCI_INDEX.to_string()),
            manifests: index_entries,
        };
        let mut docs = vec![
            ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
            ("index.json", to_json(&oci_index)?),
        ];
        if format == ArchiveFormat::DockerArchive {
            docs.push(("manifest.json", to_json(&docker_entries)?));
        }
        for (name, data) in docs {
            append(&mut tar, name, data.len() as u64, &data[..])?;
        }
        tar.into_inner()
            .and_then(|mut w| w.flush())
            .map_err(io_err("write archive", Path::new("(output)")))?;
        Ok(())
    }

    fn append_blob<W: io::Write>(&self, tar: &mut tar::Builder<W>, digest: &Digest) -> Result<()> {
        let file = self.content.open_blob(digest)?;
        let path = self.content.blob_path(digest);
        let size = file.metadata().map_err(io_err("stat", &path))?.len();
        append(tar, &format!("blobs/sha256/{}", digest.hex()), size, file)
    }

    /// Removes every blob and layer that no image refers to; returns how many of each.
    /// Runs under the exclusive gc lock: no load is between writing a blob and naming it.
    pub fn collect_garbage(&self) -> Result<(usize, usize)> {
        let _gc = self.content.gc_lock(true)?;
        let index = self.content.images()?;
        let mut blobs = BTreeSet::new();
        let mut chains = self.layers_in_use()?;
        for image in index.images.values() {
            blobs.insert(image.manifest.clone());
            blobs.insert(image.id.clone());
            if let Ok(data) = self.content.read_blob(&image.manifest) {
                if let Ok(Document::Manifest(m)) = parse_document(&data, &image.manifest) {
                    blobs.extend(m.layers.into_iter().map(|l| l.digest));
                }
            }
            chains.extend(image.chain_ids.iter().cloned());
        }
        let mut removed = (0, 0);
        for blob in self.content.blobs()? {
            if !blobs.contains(&blob) {
                self.content.remove_blob(&blob)?;
                removed.0 += 1;
            }
        }
        for chain in self.layers.list()? {
            if !chains.contains(&chain) {
                self.layers.remove(&chain)?;
                removed.1 += 1;
            }
        }
        Ok(removed)
    }
}

/// What `berth save` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// An OCI image layout in a tar.
    OciArchive,
    /// The same, plus Docker's `manifest.json`: what `docker load` and `skopeo` read.
    DockerArchive,
}

/// One archive member: mode 0644, owned by root, time 0, so that saving twice gives the
/// same bytes.
fn append<W: io::Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    size: u64,
    data: impl Read,
) -> Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(size);
    tar.append_data(&mut header, name, data)
        .map_err(io_err("write archive member", Path::new(name)))
}

fn to_json(value: &impl Serialize) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|source| ImageError::Json {
        what: "archive document",
        digest: "(new)".into(),
        source,
    })
}

/// Something `berth system check` found wrong with the store.
#[derive(Debug, PartialEq, Eq)]
pub enum Problem {
    /// A blob whose content does not hash to its name: written in place, or damaged since.
    CorruptBlob {
        digest: Digest,
        actual: Digest,
    },
    /// A file in `blobs/sha256/` that is not named by a digest.
    StrayFile(PathBuf),
    MissingBlob {
        image: Digest,
        digest: Digest,
    },
    MissingLayer {
        image: Digest,
        chain_id: Digest,
    },
    /// An image whose recorded chain ids are not those of its config's diff_ids.
    WrongChain {
        image: Digest,
    },
    /// A layer directory without a readable `layer.json` or `diff/`, or under a wrong name.
    BadLayer {
        chain_id: Digest,
        what: String,
    },
    /// Blobs and layers no image refers to: what a killed pull leaves until the next pull
    /// names them or `image prune` removes them.
    OrphanBlob(Digest),
    OrphanLayer(Digest),
    /// A half-written file or directory of a process that is gone.
    LeftOver(PathBuf),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::CorruptBlob { digest, actual } => {
                write!(f, "blob {digest}: content has digest {actual}")
            }
            Self::StrayFile(path) => write!(f, "{}: not a blob", path.display()),
            Self::MissingBlob { image, digest } => {
                write!(f, "image {image}: blob {digest} is missing")
            }
            Self::MissingLayer { image, chain_id } => {
                write!(f, "image {image}: layer {chain_id} is missing")
            }
            Self::WrongChain { image } => {
                write!(f, "image {image}: chain ids do not match its config")
            }
            Self::BadLayer { chain_id, what } => write!(f, "layer {chain_id}: {what}"),
            Self::OrphanBlob(d) => write!(f, "blob {d}: no image refers to it"),
            Self::OrphanLayer(d) => write!(f, "layer {d}: no image refers to it"),
            Self::LeftOver(path) => {
                write!(f, "{}: left over by an interrupted write", path.display())
            }
        }
    }
}

#[derive(Default)]
struct ArchiveMembers {
    /// `index.json`, `manifest.json`, `oci-layout`, `repositories`.
    docs: HashMap<String, Vec<u8>>,
    /// Every other regular file, by normalised path: its blob and size.
    files: HashMap<String, (Digest, u64)>,
    links: Vec<(String, String)>,
}

/// `./a/../b` → `b`: archive member names as `manifest.json` refers to them.
fn normalize_member(name: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

/// `docker.io/library/busybox:latest` → `busybox:latest`.
pub fn familiar(tag: &str) -> String {
    match tag.parse::<Reference>() {
        Ok(r) => {
            let mut s = r.familiar_name();
            if let Some(t) = r.tag() {
                s.push(':');
                s.push_str(t);
            }
            if let Some(d) = r.digest() {
                s.push('@');
                s.push_str(&d.to_string());
            }
            s
        }
        Err(_) => tag.to_string(),
    }
}

fn find<'a>(index: &'a ImageIndex, name: &str) -> Result<&'a ImageRecord> {
    if let Ok(r) = name.parse::<Reference>() {
        let full = r.to_string();
        let by_name = index.images.values().find(|i| match r.digest() {
            // `name@digest`: the manifest digest, as a registry serves it.
            Some(d) => i.repo_digests.contains(&full) || *d == i.manifest,
            None => i.repo_tags.contains(&full),
        });
        if let Some(image) = by_name {
            return Ok(image);
        }
    }
    let hex = name.strip_prefix("sha256:").unwrap_or(name);
    if !hex.is_empty()
        && hex.len() <= 64
        && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        let matches: Vec<&ImageRecord> = index
            .images
            .values()
            .filter(|i| i.id.hex().starts_with(hex))
            .collect();
        match matches.len() {
            0 => {}
            1 => return Ok(matches[0]),
            count => {
                return Err(ImageError::Ambiguous {
                    name: name.to_string(),
                    count,
                })
            }
        }
    }
    Err(ImageError::NotFound(name.to_string()))
}

/// Picks the manifest for `want` in an index: os and architecture must match; a variant, if
/// asked for, must match too.
pub fn choose_platform<'a>(
    index: &'a Index,
    digest: &Digest,
    want: &Platform,
) -> Result<&'a Descriptor> {
    let fits = |p: &Platform| {
        p.os == want.os
            && p.architecture == want.architecture
            && (want.variant.is_none() || p.variant == want.variant)
    };
    if let Some(d) = index
        .manifests
        .iter()
        .find(|d| d.platform.as_ref().is_some_and(fits))
    {
        return Ok(d);
    }
    // An index whose entries say nothing of platforms (an OCI layout's index.json) has one
    // image per entry; take it when there is just one.
    if let [only] = index.manifests.as_slice() {
        if only.platform.is_none() {
            return Ok(only);
        }
    }
    let available: Vec<String> = index
        .manifests
        .iter()
        .map(|d| {
            d.platform
                .as_ref()
                .map_or_else(|| "unknown".to_string(), |p| p.to_string())
        })
        .collect();
    Err(ImageError::NoPlatform {
        digest: digest.clone(),
        wanted: want.to_string(),
        available: available.join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(data: &[u8], platform: Option<(&str, &str)>) -> Descriptor {
        Descriptor {
            media_type: Some(MEDIA_OCI_MANIFEST.into()),
            digest: Digest::of(data),
            size: data.len() as u64,
            annotations: BTreeMap::new(),
            platform: platform.map(|(os, arch)| Platform {
                architecture: arch.into(),
                os: os.into(),
                variant: None,
            }),
        }
    }

    #[test]
    fn manifests_without_media_type_are_told_by_shape() {
        let d = Digest::of(b"");
        let manifest =
            format!(r#"{{"schemaVersion":2,"config":{{"digest":"{d}","size":2}},"layers":[]}}"#);
        assert!(matches!(
            parse_document(manifest.as_bytes(), &d).unwrap(),
            Document::Manifest(_)
        ));
        let index = format!(r#"{{"schemaVersion":2,"manifests":[{{"digest":"{d}","size":2}}]}}"#);
        assert!(matches!(
            parse_document(index.as_bytes(), &d).unwrap(),
            Document::Index(_)
        ));
    }

    #[test]
    fn chooses_the_platform() {
        let index = Index {
            schema_version: 2,
            media_type: None,
            manifests: vec![
                desc(b"arm", Some(("linux", "arm64"))),
                desc(b"amd", Some(("linux", "amd64"))),
            ],
        };
        let d = Digest::of(b"i");
        let amd = Platform {
            architecture: "amd64".into(),
            os: "linux".into(),
            variant: None,
        };
        assert_eq!(
            choose_platform(&index, &d, &amd).unwrap().digest,
            Digest::of(b"amd")
        );
        let s390 = Platform {
            architecture: "s390x".into(),
            os: "linux".into(),
            variant: None,
        };
        let err = choose_platform(&index, &d, &s390).unwrap_err();
        assert!(
            err.to_string().contains("linux/arm64, linux/amd64"),
            "{err}"
        );
    }

    #[test]
    fn archive_member_names_are_normalised() {
        assert_eq!(normalize_member("./blobs/sha256/ab"), "blobs/sha256/ab");
        assert_eq!(normalize_member("abc/../def/layer.tar"), "def/layer.tar");
    }

    #[test]
    fn familiar_names() {
        assert_eq!(
            familiar("docker.io/library/busybox:latest"),
            "busybox:latest"
        );
        assert_eq!(familiar("127.0.0.1:5000/app:v1"), "127.0.0.1:5000/app:v1");
    }

    fn record(n: u8, tags: &[&str]) -> ImageRecord {
        ImageRecord {
            id: Digest::of(&[n]),
            manifest: Digest::of(&[n, n]),
            repo_tags: tags.iter().map(|t| t.to_string()).collect(),
            repo_digests: vec![],
            chain_ids: vec![],
            size: 0,
            created: None,
        }
    }

    #[test]
    fn finds_images_by_tag_id_and_prefix() {
        let mut index = ImageIndex::default();
        for r in [
            record(1, &["docker.io/library/busybox:latest"]),
            record(2, &[]),
        ] {
            index.images.insert(r.id.clone(), r);
        }
        let one = Digest::of(&[1]);
        assert_eq!(find(&index, "busybox").unwrap().id, one);
        assert_eq!(
            find(&index, "docker.io/library/busybox:latest").unwrap().id,
            one
        );
        assert_eq!(find(&index, &one.to_string()).unwrap().id, one);
        assert_eq!(find(&index, one.short()).unwrap().id, one);
        assert!(matches!(
            find(&index, "busybox:1"),
            Err(ImageError::NotFound(_))
        ));
        assert!(matches!(find(&index, ""), Err(ImageError::NotFound(_))));
    }
}
