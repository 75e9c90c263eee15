//! Registry credentials kept as Docker keeps them: `auths` in config.json (docker-login(1)).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::Value;

use crate::reference::DEFAULT_DOMAIN;

/// Docker files Docker Hub's credentials under its v1 index URL, not under `docker.io`.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// Why credentials could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("parse {path}: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("parse {path}: credentials for {domain} are not base64 of user:password")]
    Malformed { path: PathBuf, domain: String },
    #[error("find credentials: neither DOCKER_CONFIG nor HOME is set")]
    NoHome,
}

type Result<T> = std::result::Result<T, AuthError>;

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password never reaches a log line.
        write!(f, "Credentials({:?}, ***)", self.username)
    }
}

/// A Docker `config.json`; the keys berth does not use are kept as they are.
pub struct AuthFile {
    path: PathBuf,
}

impl AuthFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`, as Docker looks.
    pub fn from_env() -> Result<Self> {
        if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
            return Ok(Self::new(Path::new(&dir).join("config.json")));
        }
        let home = std::env::var_os("HOME").ok_or(AuthError::NoHome)?;
        Ok(Self::new(Path::new(&home).join(".docker/config.json")))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn key(domain: &str) -> &str {
        if domain == DEFAULT_DOMAIN {
            DOCKER_HUB_KEY
        } else {
            domain
        }
    }

    fn read(&self) -> Result<serde_json::Map<String, Value>> {
        match fs::read(&self.path) {
            Ok(data) => serde_json::from_slice(&data).map_err(|source| AuthError::Json {
                path: self.path.clone(),
                source,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(serde_json::Map::new()),
            Err(source) => Err(AuthError::Io {
                op: "read",
                path: self.path.clone(),
                source,
            }),
        }
    }

    /// Written to a temporary file with mode 600 and renamed: the password is never
    /// readable by others, and a crash leaves the old file or the new one.
    fn write(&self, doc: &serde_json::Map<String, Value>) -> Result<()> {
        let io_err = |op, path: &Path| {
            let path = path.to_path_buf();
            move |source| AuthError::Io { op, path, source }
        };
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
        }
        let tmp = self.path.with_extension("json.berth-tmp");
        let data = serde_json::to_vec_pretty(doc).map_err(|source| AuthError::Json {
            path: self.path.clone(),
            source,
        })?;
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err("create", &tmp))?;
        file.write_all(&data)
            .and_then(|()| file.sync_all())
            .map_err(io_err("write", &tmp))?;
        fs::rename(&tmp, &self.path).map_err(io_err("rename to", &self.path))
    }

    pub fn get(&self, domain: &str) -> Result<Option<Credentials>> {
        let doc = self.read()?;
        let Some(auth) = doc
            .get("auths")
            .and_then(|a| a.get(Self::key(domain)))
            .and_then(|e| e.get("auth"))
            .and_then(Value::as_str)
        else {
            return Ok(None);
        };
        let malformed = || AuthError::Malformed {
            path: self.path.clone(),
            domain: domain.to_string(),
        };
        let decoded = BASE64.decode(auth).map_err(|_| malformed())?;
        let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
        let (username, password) = decoded.split_once(':').ok_or_else(malformed)?;
        Ok(Some(Credentials {
            username: username.to_string(),
            password: password.to_string(),
        }))
    }

    pub fn store(&self, domain: &str, credentials: &Credentials) -> Result<()> {
        let mut doc = self.read()?;
        let auths = doc
            .entry("auths")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(serde_json::Map::new());
        }
        let token = BASE64.encode(format!("{}:{}", credentials.username, credentials.password));
        if let Some(auths) = auths.as_object_mut() {
            auths.insert(
                Self::key(domain).to_string(),
                serde_json::json!({ "auth": token }),
            );
        }
        self.write(&doc)
    }

    /// Returns whether there were credentials to remove.
    pub fn remove(&self, domain: &str) -> Result<bool> {
        let mut doc = self.read()?;
        let removed = doc
            .get_mut("auths")
            .and_then(Value::as_object_mut)
            .and_then(|a| a.remove(Self::key(domain)))
            .is_some();
        if removed {
            self.write(&doc)?;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn store_get_remove_and_keep_other_keys() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("docker/config.json");
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(
            &path,
            r#"{"credsStore":"none","auths":{"other.io":{"auth":"dTpw"}}}"#,
        )
        .unwrap();
        let file = AuthFile::new(&path);
        let creds = Credentials {
            username: "user".into(),
            password: "pa:ss".into(),
        };
        file.store("127.0.0.1:5000", &creds).unwrap();
        file.store("docker.io", &creds).unwrap();
        assert_eq!(file.get("127.0.0.1:5000").unwrap(), Some(creds.clone()));
        assert_eq!(
            file.get("other.io").unwrap().unwrap().username,
            "u",
            "entries of other tools stay"
        );
        let doc: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(doc["credsStore"], "none");
        assert_eq!(
            doc["auths"][DOCKER_HUB_KEY]["auth"],
            BASE64.encode("user:pa:ss")
        );
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(file.remove("127.0.0.1:5000").unwrap());
        assert!(!file.remove("127.0.0.1:5000").unwrap());
        assert_eq!(file.get("127.0.0.1:5000").unwrap(), None);
        assert!(!format!("{creds:?}").contains("pa:ss"));
    }

    #[test]
    fn a_missing_file_has_no_credentials() {
        let tmp = tempfile::tempdir().unwrap();
        let file = AuthFile::new(tmp.path().join("none.json"));
        assert_eq!(file.get("docker.io").unwrap(), None);
        assert!(!file.remove("docker.io").unwrap());
    }
}
