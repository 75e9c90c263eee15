//! The `berth` command line: Docker's command and flag names (docker(1), podman-image(1)),
//! and how results are printed.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::content::ImageRecord;
use crate::digest::Digest;
use crate::images::{familiar, Platform};
use crate::reference::Reference;
use crate::registry::Progress;

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "A daemonless, Docker-compatible container engine"
)]
pub struct Cli {
    /// Where images, layers and containers are stored.
    #[arg(long, global = true, default_value = "/var/lib/berth")]
    pub root: PathBuf,
    /// Log level on stderr: error, warn, info, debug, trace.
    #[arg(long, global = true, default_value = "warn")]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Pull an image from a registry.
    Pull(PullArgs),
    /// Log in to a registry (credentials kept in Docker's config.json).
    Login(LoginArgs),
    /// Log out from a registry.
    Logout {
        /// Registry host, `docker.io` by default.
        server: Option<String>,
    },
    /// Push an image to a registry.
    Push {
        /// See `pull --tls-verify`.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        tls_verify: bool,
        /// `name[:tag]` of a local image, which names where it goes.
        reference: String,
    },
    /// Load images from an OCI layout directory, an oci-archive or a docker-archive.
    Load(LoadArgs),
    /// Save images to a tar archive (stdout by default).
    Save(SaveArgs),
    /// List images.
    Images(ImagesArgs),
    /// Manage images.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Create a tag TARGET that refers to SOURCE.
    Tag { source: String, target: String },
    /// Remove one or more images.
    Rmi(RmiArgs),
    /// Manage the store.
    #[command(subcommand)]
    System(SystemCommand),
}

#[derive(Subcommand)]
pub enum SystemCommand {
    /// Verify every blob and layer of the store, and report orphans and left-overs.
    Check,
}

#[derive(clap::Args)]
pub struct PullArgs {
    /// Print only the image reference.
    #[arg(short, long)]
    pub quiet: bool,
    /// `os/arch[/variant]` to choose in a multi-platform image (default: this host's).
    #[arg(long)]
    pub platform: Option<String>,
    /// `false`: HTTPS without checking the certificate, or plain HTTP (loopback registries
    /// always are so).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub tls_verify: bool,
    /// `name[:tag][@digest]`.
    pub reference: String,
}

#[derive(clap::Args)]
pub struct LoadArgs {
    /// Archive (tar, tar.gz, tar.zst) or OCI layout directory to read instead of stdin.
    #[arg(short = 'i', long = "input")]
    pub input: Option<PathBuf>,
    /// Print only the loaded image ids.
    #[arg(short, long)]
    pub quiet: bool,
    /// Load only the images with these `org.opencontainers.image.ref.name` (OCI) or
    /// RepoTags (docker-archive).
    pub names: Vec<String>,
}

#[derive(clap::Args)]
pub struct LoginArgs {
    #[arg(short, long)]
    pub username: String,
    #[arg(short, long, conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Read the password from stdin (one line).
    #[arg(long)]
    pub password_stdin: bool,
    /// See `pull --tls-verify`.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub tls_verify: bool,
    /// Registry host, `docker.io` by default.
    pub server: Option<String>,
}

/// `https://index.docker.io/v1/` → `docker.io`, `http://127.0.0.1:5000/` → `127.0.0.1:5000`.
pub fn registry_domain(server: Option<&str>) -> String {
    let server = server.unwrap_or(crate::reference::DEFAULT_DOMAIN);
    let host = server
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default();
    match host {
        "index.docker.io" | "registry-1.docker.io" | "" => {
            crate::reference::DEFAULT_DOMAIN.to_string()
        }
        other => other.to_string(),
    }
}

#[derive(clap::Args)]
pub struct SaveArgs {
    /// Write to this file instead of stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// `docker-archive` (an OCI layout with Docker's manifest.json, as Docker 25 writes) or
    /// `oci-archive`.
    #[arg(long, value_enum, default_value = "docker-archive")]
    pub format: SaveFormat,
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum SaveFormat {
    DockerArchive,
    OciArchive,
}

#[derive(clap::Args)]
pub struct ImagesArgs {
    /// Only show image ids.
    #[arg(short, long)]
    pub quiet: bool,
    /// Show digests.
    #[arg(long)]
    pub digests: bool,
    /// `table` (default) or `json` (one object per line, as Docker prints it).
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Only images of this repository (`busybox`, `busybox:1`).
    pub reference: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(clap::Args)]
pub struct RmiArgs {
    /// Remove the image with all its tags.
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Subcommand)]
pub enum ImageCommand {
    /// Display detailed information on one or more images (JSON).
    Inspect {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// List images.
    #[command(alias = "list")]
    Ls(ImagesArgs),
    /// Load images (as `berth load`).
    Load(LoadArgs),
    /// Pull an image (as `berth pull`).
    Pull(PullArgs),
    /// Save images (as `berth save`).
    Save(SaveArgs),
    /// Remove one or more images (as `berth rmi`).
    Rm(RmiArgs),
    /// Create a tag TARGET that refers to SOURCE.
    Tag { source: String, target: String },
    /// Remove untagged images, then every blob and layer no image refers to.
    Prune,
    /// Mount a read-only merged view of an image's layers and print its path.
    Mount { image: String },
    /// Unmount what `image mount` mounted.
    #[command(alias = "umount")]
    Unmount { image: String },
}

/// Docker's plain lines (`<12 hex>: Pull complete`), for pipes and logs.
pub struct ProgressLines {
    quiet: bool,
}

impl Progress for ProgressLines {
    fn start(&self, _: &Digest, _: u64) {}
    fn advance(&self, _: &Digest, _: u64) {}
    fn finish(&self, layer: &Digest, status: &str) {
        self.line(&format!("{}: {status}", &layer.hex()[..12]));
    }
    fn line(&self, text: &str) {
        if !self.quiet {
            println!("{text}");
        }
    }
}

/// One bar per layer on a terminal, as `docker pull` draws them.
pub struct ProgressBars {
    bars: MultiProgress,
    by_layer: Mutex<HashMap<Digest, ProgressBar>>,
}

impl ProgressBars {
    fn bar(&self, layer: &Digest) -> ProgressBar {
        let mut by_layer = self.by_layer.lock().unwrap_or_else(|e| e.into_inner());
        by_layer
            .entry(layer.clone())
            .or_insert_with(|| {
                let bar = self.bars.add(ProgressBar::new(0));
                bar.set_prefix(layer.hex()[..12].to_string());
                bar
            })
            .clone()
    }
}

impl Progress for ProgressBars {
    fn start(&self, layer: &Digest, size: u64) {
        let bar = self.bar(layer);
        bar.set_length(size);
        let style =
            ProgressStyle::with_template("{prefix}: Downloading [{bar:40}] {bytes}/{total_bytes}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
        bar.set_style(style);
    }
    fn advance(&self, layer: &Digest, n: u64) {
        self.bar(layer).inc(n);
    }
    fn finish(&self, layer: &Digest, status: &str) {
        let bar = self.bar(layer);
        bar.set_style(
            ProgressStyle::with_template("{prefix}: {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.finish_with_message(status.to_string());
    }
    fn line(&self, text: &str) {
        let _ = self.bars.println(text);
    }
}

/// Bars when stdout is a terminal and `-q` is not given, Docker's lines otherwise.
pub fn progress_for(quiet: bool) -> Box<dyn Progress> {
    if !quiet && std::io::stdout().is_terminal() {
        Box::new(ProgressBars {
            bars: MultiProgress::new(),
            by_layer: Mutex::new(HashMap::new()),
        })
    } else {
        Box::new(ProgressLines { quiet })
    }
}

/// `linux/amd64`, `linux/arm64/v8`: the `--platform` value.
pub fn parse_platform(s: &str) -> Option<Platform> {
    let mut parts = s.split('/');
    let os = parts.next().filter(|p| !p.is_empty())?;
    let architecture = parts.next().filter(|p| !p.is_empty())?;
    let variant = parts.next().map(str::to_string);
    if parts.next().is_some() {
        return None;
    }
    Some(Platform {
        architecture: architecture.to_string(),
        os: os.to_string(),
        variant,
    })
}

/// One row of `berth images`: a tag of an image (or `<none>`).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageRow {
    pub repository: String,
    pub tag: String,
    pub digest: String,
    #[serde(rename = "ID")]
    pub id: String,
    pub created_at: String,
    pub created_since: String,
    pub size: String,
    #[serde(skip)]
    created: Option<DateTime<Utc>>,
}

/// The rows of `berth images`, newest first: one per tag; an image pulled by digest shows
/// its repository with tag `<none>`, an image with neither shows `<none>` twice. `filter` is
/// a repository (`busybox`: all its tags) or a tagged name (`busybox:1`: that tag).
pub fn image_rows(
    images: &[ImageRecord],
    filter: Option<&str>,
    now: DateTime<Utc>,
) -> Vec<ImageRow> {
    let filter = filter.and_then(|f| {
        let explicit_tag = f
            .split('@')
            .next()
            .unwrap_or(f)
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':'));
        f.parse::<Reference>().ok().map(|r| (r, explicit_tag))
    });
    let mut rows = Vec::new();
    for image in images {
        let created = image
            .created
            .as_deref()
            .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
            .map(|c| c.with_timezone(&Utc));
        let digests: Vec<Reference> = image
            .repo_digests
            .iter()
            .filter_map(|d| d.parse().ok())
            .collect();
        let mut names: Vec<(Option<Reference>, String)> = image
            .repo_tags
            .iter()
            .filter_map(|t| t.parse::<Reference>().ok())
            .map(|r| {
                let tag = r.tag().unwrap_or("<none>").to_string();
                (Some(r), tag)
            })
            .collect();
        if names.is_empty() {
            for d in &digests {
                if !names
                    .iter()
                    .any(|(n, _)| n.as_ref().is_some_and(|n| n.name() == d.name()))
                {
                    names.push((Some(d.clone()), "<none>".into()));
                }
            }
        }
        if names.is_empty() {
            names.push((None, "<none>".into()));
        }
        for (name, tag) in names {
            if let Some((f, explicit_tag)) = &filter {
                let Some(r) = &name else { continue };
                if f.name() != r.name() || (*explicit_tag && f.tag() != r.tag()) {
                    continue;
                }
            }
            // The digest the registry knows this repository's image by, else the manifest's.
            let digest = name
                .as_ref()
                .and_then(|r| digests.iter().find(|d| d.name() == r.name()))
                .and_then(|d| d.digest().cloned())
                .unwrap_or_else(|| image.manifest.clone());
            rows.push(ImageRow {
                repository: name.map_or_else(|| "<none>".to_string(), |r| r.familiar_name()),
                tag,
                digest: digest.to_string(),
                id: image.id.short().to_string(),
                created_at: created.map_or_else(String::new, |c| {
                    c.format("%Y-%m-%d %H:%M:%S %z UTC").to_string()
                }),
                created_since: created
                    .map_or_else(|| "N/A".to_string(), |c| human_duration(now - c) + " ago"),
                size: human_size(image.size),
                created,
            });
        }
    }
    rows.sort_by(|a, b| {
        b.created
            .cmp(&a.created)
            .then_with(|| a.repository.cmp(&b.repository))
            .then_with(|| a.tag.cmp(&b.tag))
    });
    rows
}

/// Docker's table: columns padded to their widest cell plus three spaces.
pub fn table(rows: &[ImageRow], digests: bool) -> String {
    let mut cells: Vec<Vec<String>> = Vec::new();
    let mut header = vec!["REPOSITORY", "TAG"];
    if digests {
        header.push("DIGEST");
    }
    header.extend(["IMAGE ID", "CREATED", "SIZE"]);
    cells.push(header.into_iter().map(String::from).collect());
    for r in rows {
        let mut line = vec![r.repository.clone(), r.tag.clone()];
        if digests {
            line.push(r.digest.clone());
        }
        line.extend([r.id.clone(), r.created_since.clone(), r.size.clone()]);
        cells.push(line);
    }
    let columns = cells[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            cells
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for line in cells {
        let mut text = String::new();
        for (c, cell) in line.iter().enumerate() {
            if c + 1 == columns {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<w$}", w = widths[c] + 3));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

/// go-units `HumanSizeWithPrecision(size, 3)`: decimal units, three significant digits.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    let decimals = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    let mut number = format!("{value:.decimals$}");
    if number.contains('.') {
        number = number
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string();
    }
    format!("{number}{}", UNITS[unit])
}

/// go-units `HumanDuration`, as `docker images` prints CREATED.
pub fn human_duration(d: chrono::TimeDelta) -> String {
    let secs = d.num_seconds();
    let hours = d.num_hours();
    if secs < 1 {
        "Less than a second".into()
    } else if secs == 1 {
        "1 second".into()
    } else if secs < 60 {
        format!("{secs} seconds")
    } else if d.num_minutes() == 1 {
        "About a minute".into()
    } else if d.num_minutes() < 60 {
        format!("{} minutes", d.num_minutes())
    } else if (secs as f64 / 3600.0).round() == 1.0 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", hours / 24 / 365)
    }
}

/// `docker image inspect`'s document for one image.
pub fn inspect_json(
    image: &ImageRecord,
    config: &serde_json::Value,
    manifest_size: u64,
) -> serde_json::Value {
    let get = |k: &str| config.get(k).cloned().unwrap_or(serde_json::Value::Null);
    serde_json::json!({
        "Id": image.id.to_string(),
        "RepoTags": image.repo_tags.iter().map(|t| familiar(t)).collect::<Vec<_>>(),
        "RepoDigests": image.repo_digests.iter().map(|t| familiar(t)).collect::<Vec<_>>(),
        "Created": get("created"),
        "Author": get("author"),
        "Config": get("config"),
        "Architecture": get("architecture"),
        "Variant": get("variant"),
        "Os": get("os"),
        "Size": image.size,
        "RootFS": {
            "Type": config.pointer("/rootfs/type").cloned().unwrap_or_default(),
            "Layers": config.pointer("/rootfs/diff_ids").cloned().unwrap_or_default(),
        },
        "Descriptor": {
            "mediaType": crate::images::MEDIA_OCI_MANIFEST,
            "digest": image.manifest.to_string(),
            "size": manifest_size,
        },
        "History": get("history"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    #[test]
    fn registry_domains() {
        assert_eq!(registry_domain(None), "docker.io");
        assert_eq!(
            registry_domain(Some("https://index.docker.io/v1/")),
            "docker.io"
        );
        assert_eq!(
            registry_domain(Some("http://127.0.0.1:5000/")),
            "127.0.0.1:5000"
        );
        assert_eq!(registry_domain(Some("quay.io")), "quay.io");
    }

    #[test]
    fn platforms() {
        let p = parse_platform("linux/arm64/v8").unwrap();
        assert_eq!(
            (p.os.as_str(), p.architecture.as_str(), p.variant.as_deref()),
            ("linux", "arm64", Some("v8"))
        );
        assert_eq!(parse_platform("linux/amd64").unwrap().variant, None);
        assert!(parse_platform("linux").is_none());
        assert!(parse_platform("a/b/c/d").is_none());
    }

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_000), "1kB");
        assert_eq!(human_size(2_150_000), "2.15MB");
        assert_eq!(human_size(117_300_000), "117MB");
        assert_eq!(human_size(12_340_000_000), "12.3GB");
    }

    #[test]
    fn durations_like_docker() {
        assert_eq!(human_duration(TimeDelta::seconds(0)), "Less than a second");
        assert_eq!(human_duration(TimeDelta::seconds(30)), "30 seconds");
        assert_eq!(human_duration(TimeDelta::seconds(65)), "About a minute");
        assert_eq!(human_duration(TimeDelta::minutes(5)), "5 minutes");
        assert_eq!(human_duration(TimeDelta::minutes(61)), "About an hour");
        assert_eq!(human_duration(TimeDelta::hours(5)), "5 hours");
        assert_eq!(human_duration(TimeDelta::days(3)), "3 days");
        assert_eq!(human_duration(TimeDelta::days(20)), "2 weeks");
        assert_eq!(human_duration(TimeDelta::days(90)), "3 months");
        assert_eq!(human_duration(TimeDelta::days(800)), "2 years");
    }

    fn image(n: u8, tags: &[&str], created: &str) -> ImageRecord {
        ImageRecord {
            id: Digest::of(&[n]),
            manifest: Digest::of(&[n, n]),
            repo_tags: tags.iter().map(|t| t.to_string()).collect(),
            repo_digests: vec![],
            chain_ids: vec![],
            size: 2_150_000,
            created: Some(created.into()),
        }
    }

    #[test]
    fn rows_and_table() {
        let now = DateTime::parse_from_rfc3339("2024-03-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let images = [
            image(
                1,
                &[
                    "docker.io/library/busybox:latest",
                    "docker.io/library/busybox:1",
                ],
                "2024-02-28T00:00:00Z",
            ),
            image(2, &[], "2024-01-01T00:00:00Z"),
            image(3, &["127.0.0.1:5000/debian:multi"], "2024-02-29T12:00:00Z"),
        ];
        let rows = image_rows(&images, None, now);
        let names: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r.repository.as_str(), r.tag.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("127.0.0.1:5000/debian", "multi"),
                ("busybox", "1"),
                ("busybox", "latest"),
                ("<none>", "<none>")
            ]
        );
        let t = table(&rows, false);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "REPOSITORY              TAG      IMAGE ID       CREATED        SIZE"
        );
        assert_eq!(
            lines[2],
            format!(
                "busybox                 1        {}   2 days ago     2.15MB",
                Digest::of(&[1]).short()
            )
        );
        assert!(table(&rows, true)
            .lines()
            .next()
            .unwrap()
            .contains("DIGEST"));

        assert_eq!(image_rows(&images, Some("busybox"), now).len(), 2);
        assert_eq!(image_rows(&images, Some("busybox:1"), now).len(), 1);
        assert_eq!(image_rows(&images, Some("busybox:latest"), now).len(), 1);
        // Pulled by digest: the repository shows, with no tag, and the registry's digest.
        let mut by_digest = image(4, &[], "2024-02-01T00:00:00Z");
        let index_digest = Digest::of(b"index");
        by_digest.repo_digests = vec![format!("127.0.0.1:5000/app@{index_digest}")];
        let rows4 = image_rows(&[by_digest], None, now);
        assert_eq!(
            (rows4[0].repository.as_str(), rows4[0].tag.as_str()),
            ("127.0.0.1:5000/app", "<none>")
        );
        assert_eq!(rows4[0].digest, index_digest.to_string());
        let json = serde_json::to_value(&rows[0]).unwrap();
        assert_eq!(json["Repository"], "127.0.0.1:5000/debian");
        assert_eq!(json["ID"], Digest::of(&[3]).short());
    }
}
