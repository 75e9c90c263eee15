//! Image references `name[:tag][@digest]` with Docker's normalisation (distribution/reference grammar).

use std::fmt;
use std::str::FromStr;

use crate::digest::{Digest, DigestError};

/// Docker Hub's canonical domain; `index.docker.io` is an alias of it.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// Single-component names on Docker Hub live under `library/`.
const OFFICIAL_NAMESPACE: &str = "library";
/// A reference without tag or digest means this tag.
pub const DEFAULT_TAG: &str = "latest";
/// distribution/reference: the whole name, domain included, is at most 255 bytes.
const NAME_MAX: usize = 255;
/// distribution/reference: `[\w][\w.-]{0,127}`.
const TAG_MAX: usize = 128;

/// Why a string is not an image reference.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("parse reference {0:?}: empty name")]
    Empty(String),
    #[error("parse reference {0:?}: repository name must be lowercase")]
    Uppercase(String),
    #[error("parse reference {0:?}: invalid repository path component {1:?}")]
    PathComponent(String, String),
    #[error("parse reference {0:?}: invalid registry domain {1:?}")]
    Domain(String, String),
    #[error("parse reference {0:?}: invalid tag {1:?}")]
    Tag(String, String),
    #[error("parse reference {0:?}: name longer than {NAME_MAX} characters")]
    TooLong(String),
    #[error("parse reference {0:?}: {1}")]
    Digest(String, DigestError),
}

/// A normalised reference: `domain/repository[:tag][@digest]`.
///
/// A reference with neither tag nor digest gets the tag `latest`; a reference with a digest
/// only keeps no tag, as Docker does.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// The registry host, with its port if any: `docker.io`, `127.0.0.1:5000`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path inside the registry: `library/busybox`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `domain/repository`: `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.repository)
    }

    /// The name as Docker prints it: `busybox`, `user/app`, `127.0.0.1:5000/app`.
    pub fn familiar_name(&self) -> String {
        if self.domain != DEFAULT_DOMAIN {
            return self.name();
        }
        match self.repository.strip_prefix("library/") {
            Some(short) if !short.contains('/') => short.to_string(),
            _ => self.repository.clone(),
        }
    }

    /// The same name with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Self, ReferenceError> {
        validate_tag(&self.to_string(), tag)?;
        Ok(Self {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        })
    }

    /// The same name with this digest and no tag: `docker.io/library/busybox@sha256:…`.
    pub fn with_digest(&self, digest: Digest) -> Self {
        Self {
            tag: None,
            digest: Some(digest),
            ..self.clone()
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err_input = || input.to_string();
        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => (
                rest,
                Some(
                    digest
                        .parse::<Digest>()
                        .map_err(|e| ReferenceError::Digest(err_input(), e))?,
                ),
            ),
            None => (input, None),
        };
        // The tag is after the last ':' that follows the last '/': `host:5000/app` has none.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if name.is_empty() {
            return Err(ReferenceError::Empty(err_input()));
        }
        if name.len() > NAME_MAX {
            return Err(ReferenceError::TooLong(err_input()));
        }
        if let Some(tag) = tag {
            validate_tag(input, tag)?;
        }
        let (domain, repository) = split_domain(name);
        validate_domain(input, &domain)?;
        validate_repository(input, &repository)?;
        let tag = match (tag, &digest) {
            (Some(tag), _) => Some(tag.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_TAG.to_string()),
        };
        Ok(Self {
            domain,
            repository,
            tag,
            digest,
        })
    }
}

/// distribution/reference `splitDockerDomain`: the first component is a registry only if it
/// looks like a host (has a `.` or a `:`, or is `localhost`); otherwise the name is on Docker
/// Hub, and a single-component name there gets the `library/` namespace.
fn split_domain(name: &str) -> (String, String) {
    let (domain, remainder) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.')
                || first.contains(':')
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => (DEFAULT_DOMAIN, name),
    };
    let domain = if domain == "index.docker.io" {
        DEFAULT_DOMAIN
    } else {
        domain
    };
    let repository = if domain == DEFAULT_DOMAIN && !remainder.contains('/') {
        format!("{OFFICIAL_NAMESPACE}/{remainder}")
    } else {
        remainder.to_string()
    };
    (domain.to_string(), repository)
}

/// `domain-component(.domain-component)*(:port)?`, each component alphanumeric with inner `-`.
fn validate_domain(input: &str, domain: &str) -> Result<(), ReferenceError> {
    let bad = || ReferenceError::Domain(input.to_string(), domain.to_string());
    let (host, port) = match domain.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain, None),
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
    }
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !c.starts_with('-')
            && !c.ends_with('-')
    };
    if !host.split('.').all(component_ok) {
        return Err(bad());
    }
    Ok(())
}

/// Each path component is `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn validate_repository(input: &str, repository: &str) -> Result<(), ReferenceError> {
    if repository.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(ReferenceError::Uppercase(input.to_string()));
    }
    for component in repository.split('/') {
        if !path_component_ok(component) {
            return Err(ReferenceError::PathComponent(
                input.to_string(),
                component.to_string(),
            ));
        }
    }
    Ok(())
}

fn path_component_ok(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    // Separators between alphanumeric runs: one '.', one '_', two '_', or any number of '-'.
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `[\w][\w.-]{0,127}`.
fn validate_tag(input: &str, tag: &str) -> Result<(), ReferenceError> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let ok = !tag.is_empty()
        && tag.len() <= TAG_MAX
        && word(tag.as_bytes()[0])
        && tag.bytes().all(|b| word(b) || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ReferenceError::Tag(input.to_string(), tag.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn parse(s: &str) -> Reference {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn official_images_are_normalised() {
        let r = parse("busybox");
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        assert_eq!(r.domain(), "docker.io");
        assert_eq!(r.repository(), "library/busybox");
        assert_eq!(r.tag(), Some("latest"));
        assert_eq!(r.familiar_name(), "busybox");
        assert_eq!(
            parse("library/busybox:1.36").to_string(),
            "docker.io/library/busybox:1.36"
        );
        assert_eq!(
            parse("index.docker.io/busybox").to_string(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            parse("docker.io/busybox").to_string(),
            "docker.io/library/busybox:latest"
        );
    }

    #[test]
    fn user_images_keep_their_namespace() {
        let r = parse("user/app:v1");
        assert_eq!(r.to_string(), "docker.io/user/app:v1");
        assert_eq!(r.familiar_name(), "user/app");
    }

    #[test]
    fn registries_with_ports_and_localhost() {
        let r = parse("127.0.0.1:5000/debian:multi");
        assert_eq!(r.domain(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "debian");
        assert_eq!(r.tag(), Some("multi"));
        assert_eq!(r.familiar_name(), "127.0.0.1:5000/debian");

        let r = parse("localhost:5000/a/b/c");
        assert_eq!(r.domain(), "localhost:5000");
        assert_eq!(r.repository(), "a/b/c");
        assert_eq!(r.tag(), Some("latest"));

        let r = parse("localhost/app");
        assert_eq!(r.domain(), "localhost");
        assert_eq!(r.to_string(), "localhost/app:latest");

        let r = parse("quay.io/podman/stable");
        assert_eq!(r.domain(), "quay.io");
        assert_eq!(r.repository(), "podman/stable");
    }

    #[test]
    fn a_port_is_not_a_tag() {
        let r = parse("myhost:5000/app");
        assert_eq!(r.domain(), "myhost:5000");
        assert_eq!(r.tag(), Some("latest"));
    }

    #[test]
    fn digests_with_and_without_tag() {
        let r = parse(&format!("busybox@sha256:{HEX}"));
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest().unwrap().hex(), HEX);
        assert_eq!(
            r.to_string(),
            format!("docker.io/library/busybox@sha256:{HEX}")
        );

        let r = parse(&format!("127.0.0.1:5000/debian:multi@sha256:{HEX}"));
        assert_eq!(r.tag(), Some("multi"));
        assert_eq!(r.digest().unwrap().hex(), HEX);
    }

    #[test]
    fn invalid_references_are_refused() {
        assert!(matches!(
            "Busybox".parse::<Reference>(),
            Err(ReferenceError::Uppercase(_))
        ));
        assert!(matches!(
            "".parse::<Reference>(),
            Err(ReferenceError::Empty(_))
        ));
        assert!(matches!(
            ":tag".parse::<Reference>(),
            Err(ReferenceError::Empty(_))
        ));
        assert!(matches!(
            "busybox:".parse::<Reference>(),
            Err(ReferenceError::Tag(..))
        ));
        assert!(matches!(
            "busybox:-x".parse::<Reference>(),
            Err(ReferenceError::Tag(..))
        ));
        assert!(matches!(
            "a//b".parse::<Reference>(),
            Err(ReferenceError::PathComponent(..))
        ));
        assert!(matches!(
            "a/b-/c".parse::<Reference>(),
            Err(ReferenceError::PathComponent(..))
        ));
        assert!(matches!(
            "a/b...c".parse::<Reference>(),
            Err(ReferenceError::PathComponent(..))
        ));
        assert!(matches!(
            "host:port/app".parse::<Reference>(),
            Err(ReferenceError::Domain(..))
        ));
        assert!(matches!(
            "busybox@sha256:123".parse::<Reference>(),
            Err(ReferenceError::Digest(..))
        ));
        let long = format!("a/{}", "b".repeat(NAME_MAX));
        assert!(matches!(
            long.parse::<Reference>(),
            Err(ReferenceError::TooLong(_))
        ));
        let long_tag = format!("a:{}", "t".repeat(TAG_MAX + 1));
        assert!(matches!(
            long_tag.parse::<Reference>(),
            Err(ReferenceError::Tag(..))
        ));
    }

    #[test]
    fn separators_in_path_components() {
        assert!(path_component_ok("a.b_c__d---e"));
        assert!(!path_component_ok("a___b"));
        assert!(!path_component_ok("_a"));
        assert!(!path_component_ok("a."));
    }

    #[test]
    fn retagging() {
        let r = parse("busybox").with_tag("1.0").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:1.0");
        assert!(parse("busybox").with_tag("bad tag").is_err());
        let d = Digest::of(b"");
        assert_eq!(
            parse("busybox").with_digest(d).to_string(),
            format!("docker.io/library/busybox@sha256:{HEX}")
        );
    }
}
