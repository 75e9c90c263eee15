//! Registry client (OCI distribution-spec "Pull"): manifests and blobs fetched into the
//! content store, each verified against its digest and size while it streams.

use std::net::IpAddr;
use std::time::Duration;

use futures_util::future::try_join_all;
use futures_util::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::Client;

use crate::auth::{AuthError, AuthFile, Credentials};
use crate::content::{ContentError, Expected};
use crate::digest::Digest;
use crate::images::{
    self, ImageError, Images, Loaded, Platform, MEDIA_DOCKER_LIST, MEDIA_DOCKER_MANIFEST,
    MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST,
};
use crate::layers::{self, LayerSource};
use crate::reference::Reference;

/// What a registry may answer for a manifest: OCI and Docker schema 2 manifests and indexes.
const ACCEPT: [&str; 4] = [
    MEDIA_OCI_MANIFEST,
    MEDIA_OCI_INDEX,
    MEDIA_DOCKER_MANIFEST,
    MEDIA_DOCKER_LIST,
];
/// A manifest larger than this is refused (containerd's bound too).
const MAX_MANIFEST_SIZE: usize = 4 << 20;
/// Attempts per request; the waits between them double from `RETRY_BASE`.
const ATTEMPTS: u32 = 5;
const RETRY_BASE: Duration = Duration::from_millis(250);

/// Why a pull failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{op} {reference}: {source}")]
    Client {
        op: &'static str,
        reference: String,
        source: OciDistributionError,
    },
    #[error("read blob {digest} from {reference}: {source}")]
    Stream {
        digest: Digest,
        reference: String,
        source: std::io::Error,
    },
    #[error("verify manifest of {reference}: the registry sent {actual}, expected {expected}")]
    ManifestDigest {
        reference: String,
        expected: Digest,
        actual: Digest,
    },
    #[error(
        "fetch manifest of {reference}: {size} bytes, over the {MAX_MANIFEST_SIZE}-byte limit"
    )]
    ManifestTooLarge { reference: String, size: usize },
    #[error("fetch manifest of {reference}: an index inside an index")]
    NestedIndex { reference: String },
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("start async runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("{op} {url}: {source}")]
    Http {
        op: &'static str,
        url: String,
        source: reqwest::Error,
    },
    #[error("log in to {domain}: {what}")]
    Login { domain: String, what: String },
}

type Result<T> = std::result::Result<T, RegistryError>;

/// What a pull or a push reports as it goes: `berth` draws bars on a terminal and prints
/// Docker's lines otherwise.
pub trait Progress: Sync {
    /// A layer's transfer starts; `size` is its declared size.
    fn start(&self, layer: &Digest, size: u64);
    /// `n` more bytes of the layer went through.
    fn advance(&self, layer: &Digest, n: u64);
    /// The layer is done: "Pull complete", "Already exists", "Pushed", "Mounted from …".
    fn finish(&self, layer: &Digest, status: &str);
    /// Any other line: "Digest: …".
    fn line(&self, text: &str);
}

/// The credentials `berth login` stored for this registry, or anonymous access.
fn auth_for(domain: &str) -> Result<RegistryAuth> {
    Ok(match AuthFile::from_env()?.get(domain)? {
        Some(c) => RegistryAuth::Basic(c.username, c.password),
        None => RegistryAuth::Anonymous,
    })
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(RegistryError::Runtime)
}

/// Where the distribution API of a registry answers: Docker Hub's is not at `docker.io`.
fn api_host(domain: &str) -> &str {
    if domain == crate::reference::DEFAULT_DOMAIN {
        "registry-1.docker.io"
    } else {
        domain
    }
}

/// How to talk to a registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    Https,
    /// HTTPS without checking the certificate: `--tls-verify=false`, or a loopback registry.
    HttpsUnverified,
    Http,
}

impl Scheme {
    fn prefix(self) -> &'static str {
        match self {
            Self::Https | Self::HttpsUnverified => "https",
            Self::Http => "http",
        }
    }

    fn client_config(self, domain: &str) -> ClientConfig {
        ClientConfig {
            protocol: match self {
                Self::Http => ClientProtocol::HttpsExcept(vec![domain.to_string()]),
                _ => ClientProtocol::Https,
            },
            accept_invalid_certificates: self == Self::HttpsUnverified,
            max_concurrent_download: 8,
            connect_timeout: Some(Duration::from_secs(30)),
            read_timeout: Some(Duration::from_secs(60)),
            ..ClientConfig::default()
        }
    }
}

/// Docker's rule for insecure registries, which loopback ones always are: HTTPS if the
/// registry speaks it, certificate unchecked; plain HTTP if it does not. Others get HTTPS
/// with the certificate checked, unless `tls_verify` is off.
async fn negotiate(domain: &str, tls_verify: bool) -> Result<Scheme> {
    if tls_verify && !is_loopback(domain) {
        return Ok(Scheme::Https);
    }
    let url = format!("https://{}/v2/", api_host(domain));
    let probe = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|source| RegistryError::Http {
            op: "build client for",
            url: url.clone(),
            source,
        })?;
    // Any HTTP answer, 401 included, means the registry speaks TLS there.
    let scheme = match probe.get(&url).send().await {
        Ok(_) => Scheme::HttpsUnverified,
        Err(e) => {
            tracing::debug!(domain, error = %e, "no TLS, falling back to plain HTTP");
            Scheme::Http
        }
    };
    Ok(scheme)
}

/// `berth login`: checks the credentials as Docker does (GET /v2/ with them; for a registry
/// that answers with a Bearer challenge, a token request to its realm), then stores them.
pub fn login(
    auth_file: &AuthFile,
    domain: &str,
    credentials: &Credentials,
    tls_verify: bool,
) -> Result<()> {
    runtime()?.block_on(check_credentials(domain, credentials, tls_verify))?;
    auth_file.store(domain, credentials)?;
    Ok(())
}

async fn check_credentials(
    domain: &str,
    credentials: &Credentials,
    tls_verify: bool,
) -> Result<()> {
    let scheme = negotiate(domain, tls_verify).await?;
    let http = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(scheme == Scheme::HttpsUnverified)
        .connect_timeout(Duration::from_secs(30))
        .build()
        .map_err(|source| RegistryError::Http {
            op: "build client for",
            url: domain.to_string(),
            source,
        })?;
    let url = format!("{}://{}/v2/", scheme.prefix(), api_host(domain));
    let send = |url: String| {
        let request = http
            .get(&url)
            .basic_auth(&credentials.username, Some(&credentials.password));
        async move {
            request.send().await.map_err(|source| RegistryError::Http {
                op: "GET",
                url,
                source,
            })
        }
    };
    let refused = |status: reqwest::StatusCode| RegistryError::Login {
        domain: domain.to_string(),
        what: format!("the registry answered {status}"),
    };
    let response = send(url.clone()).await?;
    if response.status().is_success() {
        return Ok(());
    }
    if response.status() != reqwest::StatusCode::UNAUTHORIZED {
        return Err(refused(response.status()));
    }
    let challenge = response
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let Some(params) = challenge.strip_prefix("Bearer ").map(parse_challenge) else {
        // A Basic challenge to our basic credentials: they are wrong.
        return Err(refused(response.status()));
    };
    let realm = params
        .iter()
        .find(|(k, _)| k == "realm")
        .map(|(_, v)| v.clone());
    let Some(realm) = realm else {
        return Err(RegistryError::Login {
            domain: domain.to_string(),
            what: format!("Bearer challenge without realm: {challenge}"),
        });
    };
    let mut token_url = reqwest::Url::parse(&realm).map_err(|e| RegistryError::Login {
        domain: domain.to_string(),
        what: format!("realm {realm}: {e}"),
    })?;
    if let Some((_, service)) = params.iter().find(|(k, _)| k == "service") {
        token_url.query_pairs_mut().append_pair("service", service);
    }
    let response = send(token_url.to_string()).await?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(refused(response.status()))
    }
}

/// RFC 7235 auth-params of a challenge: `realm="https://auth",service="registry"`.
fn parse_challenge(params: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = params.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key.trim().trim_start_matches(',').trim().to_string();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            after.split_once(',').unwrap_or((after, ""))
        };
        out.push((key, value.to_string()));
        rest = next.trim_start_matches(',').trim();
    }
    out
}

/// `localhost`, `127.0.0.0/8`, `::1`, with or without a port.
fn is_loopback(domain: &str) -> bool {
    let host = match domain.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => domain,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Pulls `reference` for `platform` into the store, unpacks its layers and tags it.
pub fn pull(
    images: &Images,
    reference: &Reference,
    platform: &Platform,
    tls_verify: bool,
    progress: &dyn Progress,
) -> Result<Loaded> {
    let runtime = runtime()?;
    // Blobs are written under the shared gc lock: no garbage collection takes them before
    // the image that names them is recorded.
    let _gc = images.content().gc_lock(false)?;
    // Downloads run on the async runtime; each layer, once its blob is in, goes to one of
    // these threads to be unpacked while the other downloads go on.
    let (jobs, queue) = std::sync::mpsc::channel::<UnpackJob>();
    let queue = std::sync::Mutex::new(queue);
    let failure: std::sync::Mutex<Option<RegistryError>> = std::sync::Mutex::new(None);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let fetched = std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let job = match queue.lock() {
                    Ok(queue) => queue.recv(),
                    Err(_) => break,
                };
                let Ok(job) = job else { break };
                let result = images
                    .layers()
                    .ensure(images.content(), &job.source, &job.chain_id, job.parent)
                    .map_err(|e| RegistryError::from(ImageError::from(e)));
                match result {
                    Ok(()) => progress.finish(&job.source.blob, "Pull complete"),
                    Err(e) => {
                        if let Ok(mut f) = failure.lock() {
                            f.get_or_insert(e);
                        }
                    }
                }
            });
        }
        let fetched = runtime.block_on(fetch(
            images, reference, platform, tls_verify, progress, &jobs,
        ));
        // Closing the queue lets the workers finish what is queued and stop.
        drop(jobs);
        fetched
    })?;
    if let Some(e) = failure.into_inner().ok().flatten() {
        return Err(e);
    }
    let tags: Vec<String> = reference
        .tag()
        .map(|_| reference.to_string())
        .into_iter()
        .collect();
    let repo_digest = reference
        .with_digest(fetched.top_digest.clone())
        .to_string();
    let loaded = images.register(&fetched.manifest, &tags, &[repo_digest])?;
    progress.line(&format!("Digest: {}", fetched.top_digest));
    Ok(loaded)
}

/// A layer whose blob is in the store, to unpack.
struct UnpackJob {
    source: LayerSource,
    chain_id: Digest,
    parent: Option<Digest>,
}

struct Fetched {
    /// The digest the registry names the image by: the index's for a multi-platform image.
    top_digest: Digest,
    /// The platform manifest, in the store.
    manifest: Digest,
}

async fn fetch(
    images: &Images,
    reference: &Reference,
    platform: &Platform,
    tls_verify: bool,
    progress: &dyn Progress,
    unpack: &std::sync::mpsc::Sender<UnpackJob>,
) -> Result<Fetched> {
    let scheme = negotiate(reference.domain(), tls_verify).await?;
    let client = Client::new(scheme.client_config(reference.domain()));
    let oci_ref = to_oci(reference)?;
    let auth = auth_for(reference.domain())?;
    let (data, top_digest) =
        fetch_manifest(&client, &oci_ref, &auth, reference, reference.digest()).await?;
    let (manifest_data, manifest_digest) = match images::parse_document(&data, &top_digest)? {
        images::Document::Manifest(_) => (data, top_digest.clone()),
        images::Document::Index(index) => {
            let child = images::choose_platform(&index, &top_digest, platform)?;
            let child_ref = to_oci(&reference.with_digest(child.digest.clone()))?;
            fetch_manifest(&client, &child_ref, &auth, reference, Some(&child.digest)).await?
        }
    };
    let images::Document::Manifest(manifest) =
        images::parse_document(&manifest_data, &manifest_digest)?
    else {
        return Err(RegistryError::NestedIndex {
            reference: reference.to_string(),
        });
    };
    let store = images.content();
    store.add_blob(&manifest_data[..])?;

    // The config first: its diff_ids name the layers' chain ids, so that each layer can be
    // unpacked as soon as its blob has arrived, while the others still download.
    if !store.has_blob(&manifest.config.digest) {
        fetch_blob(&client, &oci_ref, reference, images, &manifest.config, None).await?;
    }
    let config: images::ImageConfig =
        serde_json::from_slice(&store.read_blob(&manifest.config.digest)?).map_err(|source| {
            ImageError::Json {
                what: "config",
                digest: manifest.config.digest.to_string(),
                source,
            }
        })?;
    let diff_ids = config.rootfs.diff_ids;
    if diff_ids.len() != manifest.layers.len() {
        return Err(ImageError::LayerCount {
            image: manifest.config.digest.clone(),
            diff_ids: diff_ids.len(),
            layers: manifest.layers.len(),
        }
        .into());
    }
    let chains = layers::chain_ids(&diff_ids);
    let downloads = manifest.layers.iter().enumerate().map(|(i, desc)| {
        let (client, oci_ref, diff_ids, chains) = (&client, &oci_ref, &diff_ids, &chains);
        async move {
            let unpacked = images
                .layers()
                .get(&chains[i])
                .map_err(ImageError::from)?
                .is_some();
            if unpacked || store.has_blob(&desc.digest) {
                progress.finish(&desc.digest, "Already exists");
            } else {
                fetch_blob(client, oci_ref, reference, images, desc, Some(progress)).await?;
                progress.finish(&desc.digest, "Download complete");
            }
            if !unpacked {
                let job = UnpackJob {
                    source: LayerSource {
                        blob: desc.digest.clone(),
                        diff_id: diff_ids[i].clone(),
                    },
                    chain_id: chains[i].clone(),
                    parent: i.checked_sub(1).map(|p| chains[p].clone()),
                };
                // The workers only stop once this sender is dropped, after every download.
                let _ = unpack.send(job);
            }
            Ok::<_, RegistryError>(())
        }
    });
    try_join_all(downloads).await?;
    Ok(Fetched {
        top_digest,
        manifest: manifest_digest,
    })
}

fn to_oci(reference: &Reference) -> Result<oci_client::Reference> {
    reference
        .to_string()
        .parse()
        .map_err(|e: oci_client::ParseError| RegistryError::Client {
            op: "parse reference",
            reference: reference.to_string(),
            source: OciDistributionError::GenericError(Some(e.to_string())),
        })
}

/// GET the manifest, with retries; its digest is computed here from the bytes, and must be
/// the one asked for when there is one.
async fn fetch_manifest(
    client: &Client,
    oci_ref: &oci_client::Reference,
    auth: &RegistryAuth,
    reference: &Reference,
    expected: Option<&Digest>,
) -> Result<(Vec<u8>, Digest)> {
    let mut attempt = 0;
    let data = loop {
        match client.pull_manifest_raw(oci_ref, auth, &ACCEPT).await {
            Ok((data, _)) => break data,
            Err(e) if attempt + 1 < ATTEMPTS && retryable(&e) => {
                tracing::debug!(reference = %reference, error = %e, attempt, "retry manifest");
                tokio::time::sleep(RETRY_BASE * 2u32.pow(attempt)).await;
                attempt += 1;
            }
            Err(source) => {
                return Err(RegistryError::Client {
                    op: "fetch manifest of",
                    reference: reference.to_string(),
                    source,
                })
            }
        }
    };
    if data.len() > MAX_MANIFEST_SIZE {
        return Err(RegistryError::ManifestTooLarge {
            reference: reference.to_string(),
            size: data.len(),
        });
    }
    let actual = Digest::of(&data);
    if let Some(expected) = expected.filter(|e| **e != actual) {
        return Err(RegistryError::ManifestDigest {
            reference: reference.to_string(),
            expected: expected.clone(),
            actual,
        });
    }
    Ok((data.to_vec(), actual))
}

/// Server errors and broken connections (refused, timed out, reset in the headers or the
/// body) are worth another try; 4xx answers and malformed requests are not.
fn retryable(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::RequestError(r) => {
            r.is_connect()
                || r.is_timeout()
                || r.is_request()
                || r.is_body()
                || r.status().is_some_and(|s| s.is_server_error())
        }
        OciDistributionError::ServerError { code, .. } => *code >= 500,
        _ => false,
    }
}

/// GET one blob into the store, verified while it streams; retried from the start on a
/// server error or a broken connection.
async fn fetch_blob(
    client: &Client,
    oci_ref: &oci_client::Reference,
    reference: &Reference,
    images: &Images,
    desc: &images::Descriptor,
    progress: Option<&dyn Progress>,
) -> Result<()> {
    let oci_desc = OciDescriptor {
        media_type: desc.media_type.clone().unwrap_or_default(),
        digest: desc.digest.to_string(),
        size: i64::try_from(desc.size).unwrap_or(i64::MAX),
        ..OciDescriptor::default()
    };
    let expected = Expected {
        digest: desc.digest.clone(),
        size: Some(desc.size),
    };
    let mut attempt = 0;
    loop {
        let result = async {
            let mut stream =
                client
                    .pull_blob_stream(oci_ref, &oci_desc)
                    .await
                    .map_err(|source| RegistryError::Client {
                        op: "fetch blob from",
                        reference: reference.to_string(),
                        source,
                    })?;
            let mut writer = images.content().blob_writer(&expected)?;
            if let Some(p) = progress {
                p.start(&desc.digest, desc.size);
            }
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|source| RegistryError::Stream {
                    digest: desc.digest.clone(),
                    reference: reference.to_string(),
                    source,
                })?;
                writer.write(&chunk)?;
                if let Some(p) = progress {
                    p.advance(&desc.digest, chunk.len() as u64);
                }
            }
            writer.commit()?;
            Ok::<_, RegistryError>(())
        }
        .await;
        let again = match &result {
            Err(RegistryError::Client { source, .. }) => retryable(source),
            Err(RegistryError::Stream { .. }) => true,
            _ => false,
        };
        if !again || attempt + 1 >= ATTEMPTS {
            return result;
        }
        tracing::debug!(digest = %desc.digest, attempt, "retry blob");
        tokio::time::sleep(RETRY_BASE * 2u32.pow(attempt)).await;
        attempt += 1;
    }
}

/// Pushes a local image to `target` (distribution-spec "Push"): blobs the registry has are
/// skipped (HEAD), blobs in another repository of the same registry are mounted from there,
/// the rest are uploaded; the manifest goes last, byte for byte as stored, so its digest
/// stays the image's. Returns the manifest digest.
pub fn push(
    images: &Images,
    local: &str,
    target: &Reference,
    tls_verify: bool,
    progress: &dyn Progress,
) -> Result<Digest> {
    let image = images.lookup(local)?;
    let (manifest, _) = images.manifest_and_config(&image)?;
    let manifest_data = images.content().read_blob(&image.manifest)?;
    let media_type = manifest
        .media_type
        .clone()
        .unwrap_or_else(|| MEDIA_OCI_MANIFEST.to_string());
    // Cross-repository mounts only work inside one registry.
    let mount_from: Option<Reference> = image
        .repo_digests
        .iter()
        .filter_map(|d| d.parse::<Reference>().ok())
        .find(|r| r.domain() == target.domain() && r.repository() != target.repository());
    let auth = auth_for(target.domain())?;
    runtime()?.block_on(async {
        let scheme = negotiate(target.domain(), tls_verify).await?;
        let client = Client::new(scheme.client_config(target.domain()));
        let oci_target = to_oci(target)?;
        let oci_source = mount_from.as_ref().map(to_oci).transpose()?;
        client
            .auth(&oci_target, &auth, oci_client::RegistryOperation::Push)
            .await
            .map_err(|source| RegistryError::Client {
                op: "log in to push to",
                reference: target.to_string(),
                source,
            })?;
        let mut blobs = vec![(manifest.config.clone(), false)];
        blobs.extend(manifest.layers.iter().cloned().map(|l| (l, true)));
        let uploads = blobs.iter().map(|(desc, is_layer)| {
            let (client, oci_target, oci_source) = (&client, &oci_target, &oci_source);
            async move {
                let how = push_blob(
                    client,
                    oci_target,
                    oci_source.as_ref(),
                    images,
                    target,
                    &desc.digest,
                )
                .await?;
                if *is_layer {
                    progress.finish(&desc.digest, &how);
                }
                Ok::<_, RegistryError>(())
            }
        });
        try_join_all(uploads).await?;
        let content_type = media_type.parse().map_err(|_| RegistryError::Client {
            op: "push manifest to",
            reference: target.to_string(),
            source: OciDistributionError::GenericError(Some(format!("media type {media_type:?}"))),
        })?;
        client
            .push_manifest_raw(&oci_target, manifest_data.clone(), content_type)
            .await
            .map_err(|source| RegistryError::Client {
                op: "push manifest to",
                reference: target.to_string(),
                source,
            })?;
        Ok::<_, RegistryError>(())
    })?;
    let digest = image.manifest.clone();
    let repo_digest = target.with_digest(digest.clone()).to_string();
    images.add_repo_digest(&image.id, &repo_digest)?;
    progress.line(&format!(
        "{}: digest: {digest} size: {}",
        target.tag().unwrap_or("latest"),
        manifest_data.len()
    ));
    Ok(digest)
}

/// One blob to the registry: "Layer already exists", "Mounted from …" or "Pushed".
async fn push_blob(
    client: &Client,
    target: &oci_client::Reference,
    source: Option<&oci_client::Reference>,
    images: &Images,
    reference: &Reference,
    digest: &Digest,
) -> Result<String> {
    let client_err = |op| {
        move |source| RegistryError::Client {
            op,
            reference: reference.to_string(),
            source,
        }
    };
    let exists = client
        .blob_exists(target, &digest.to_string())
        .await
        .map_err(client_err("check blob in"))?;
    if exists {
        return Ok("Layer already exists".into());
    }
    if let Some(source) = source {
        // A failed mount is not an error: the registry may not have it there after all.
        match client.mount_blob(target, source, &digest.to_string()).await {
            Ok(())
                if client
                    .blob_exists(target, &digest.to_string())
                    .await
                    .unwrap_or(false) =>
            {
                return Ok(format!("Mounted from {}", source.repository()));
            }
            Ok(()) => {}
            Err(e) => {
                tracing::debug!(digest = %digest, error = %e, "cross-repository mount failed")
            }
        }
    }
    let data = images.content().read_blob(digest)?;
    client
        .push_blob(target, data, &digest.to_string())
        .await
        .map_err(client_err("push blob to"))?;
    Ok("Pushed".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges() {
        let params = parse_challenge(
            r#"realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a:pull,push""#,
        );
        assert_eq!(
            params,
            [
                (
                    "realm".to_string(),
                    "https://auth.docker.io/token".to_string()
                ),
                ("service".to_string(), "registry.docker.io".to_string()),
                ("scope".to_string(), "repository:a:pull,push".to_string()),
            ]
        );
        assert_eq!(
            parse_challenge("realm=x, service=y"),
            [("realm".into(), "x".into()), ("service".into(), "y".into())]
        );
    }

    #[test]
    fn api_hosts() {
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("127.0.0.1:5000"), "127.0.0.1:5000");
    }

    #[test]
    fn loopback_registries_are_insecure() {
        for domain in [
            "127.0.0.1:5000",
            "localhost:5000",
            "localhost",
            "127.1.2.3",
            "[::1]:5000",
        ] {
            assert!(is_loopback(domain), "{domain}");
        }
        for domain in ["docker.io", "quay.io:443", "10.0.0.1:5000"] {
            assert!(!is_loopback(domain), "{domain}");
        }
    }

    #[test]
    fn verified_https_needs_no_probe() {
        let scheme = runtime()
            .unwrap()
            .block_on(negotiate("quay.io", true))
            .unwrap();
        assert_eq!(scheme, Scheme::Https);
        let config = Scheme::Http.client_config("127.0.0.1:5000");
        assert_eq!(
            config.protocol,
            ClientProtocol::HttpsExcept(vec!["127.0.0.1:5000".into()])
        );
        assert!(
            Scheme::HttpsUnverified
                .client_config("x")
                .accept_invalid_certificates
        );
    }
}
