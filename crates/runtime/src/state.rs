//! A container's state: `<root>/<id>/state.json`, its status, and the lock that keeps two
//! commands on one container from racing (runtime-spec runtime.md, "State").

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Hook;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("container {0:?} does not exist")]
    NotFound(String),
    #[error("container {0:?} already exists")]
    Exists(String),
    #[error("invalid container id {0:?}: use letters, digits, '_', '-', '.' and '+' only")]
    BadId(String),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state {path}: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StateError + 'a {
    move |source| StateError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Stopped,
    Paused,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = serde_json::to_value(self).ok();
        f.write_str(s.as_ref().and_then(|v| v.as_str()).unwrap_or("unknown"))
    }
}

/// What we keep about a container between commands. The first fields are the runtime-spec
/// state that `state` prints and hooks read on stdin.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct State {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub status: Status,
    #[serde(default)]
    pub pid: i32,
    pub bundle: PathBuf,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
    #[serde(default)]
    pub rootfs: PathBuf,
    #[serde(default)]
    pub created: String,
    /// Start time of the init process (field 22 of /proc/<pid>/stat), so a reused pid is not
    /// taken for the container.
    #[serde(default)]
    pub start_time: u64,
    /// The cgroup directories of the container on every hierarchy.
    #[serde(default)]
    pub cgroups: crate::cgroups::Placement,
    /// The hooks that run after create returned: kept here, so `start` and `delete` need not
    /// read the bundle's config.json again (it may have changed or gone).
    #[serde(default)]
    pub poststart: Vec<Hook>,
    #[serde(default)]
    pub poststop: Vec<Hook>,
    /// The container's own cgroup namespace, user namespace etc. matter to exec later.
    #[serde(default)]
    pub owner: String,
}

impl State {
    /// The runtime-spec view of the state (what `state` prints and hooks receive).
    pub fn spec_json(&self) -> serde_json::Value {
        serde_json::json!({
            "ociVersion": self.oci_version,
            "id": self.id,
            "pid": self.pid,
            "status": self.status,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": self.owner,
            "annotations": self.annotations,
        })
    }
}

/// runc's rule for ids: no path separators, nothing that is not a plain name.
pub fn check_id(id: &str) -> Result<(), StateError> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.+".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StateError::BadId(id.to_string()))
    }
}

/// The state directory of one container, locked while we hold it.
pub struct ContainerDir {
    pub id: String,
    pub path: PathBuf,
    _lock: File,
}

impl ContainerDir {
    /// Creates `<root>/<id>` (which must not exist) and locks it.
    pub fn create(root: &Path, id: &str) -> Result<ContainerDir, StateError> {
        check_id(id)?;
        std::fs::create_dir_all(root).map_err(io("mkdir", root))?;
        let path = root.join(id);
        match std::fs::create_dir(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(StateError::Exists(id.to_string()))
            }
            Err(e) => return Err(io("mkdir", &path)(e)),
        }
        Self::lock(path, id)
    }

    /// Opens and locks `<root>/<id>`, waiting for another command that holds it.
    pub fn open(root: &Path, id: &str) -> Result<ContainerDir, StateError> {
        check_id(id)?;
        let path = root.join(id);
        if !path.join("state.json").exists() {
            return Err(StateError::NotFound(id.to_string()));
        }
        Self::lock(path, id)
    }

    fn lock(path: PathBuf, id: &str) -> Result<ContainerDir, StateError> {
        let file = File::open(&path).map_err(io("open", &path))?;
        rustix::fs::flock(file.as_fd(), rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| io("flock", &path)(e.into()))?;
        Ok(ContainerDir {
            id: id.to_string(),
            path,
            _lock: file,
        })
    }

    /// The lock's descriptor number, for a forked child to close: open in the container it
    /// would be a way back to the host's state directory (CVE-2024-21626).
    pub fn lock_fd(&self) -> i32 {
        std::os::fd::AsRawFd::as_raw_fd(&self._lock)
    }

    pub fn state_path(&self) -> PathBuf {
        self.path.join("state.json")
    }

    pub fn fifo_path(&self) -> PathBuf {
        self.path.join("exec.fifo")
    }

    pub fn load(&self) -> Result<State, StateError> {
        let p = self.state_path();
        let bytes = std::fs::read(&p).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                StateError::NotFound(self.id.clone())
            } else {
                io("read", &p)(e)
            }
        })?;
        serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt { path: p, source })
    }

    /// Writes state.json atomically: a reader sees the old state or the new, never half.
    pub fn save(&self, state: &State) -> Result<(), StateError> {
        let p = self.state_path();
        let tmp = self.path.join(".state.json.tmp");
        let bytes = serde_json::to_vec(state).map_err(|source| StateError::Corrupt {
            path: p.clone(),
            source,
        })?;
        let mut f = File::create(&tmp).map_err(io("create", &tmp))?;
        f.write_all(&bytes).map_err(io("write", &tmp))?;
        std::fs::rename(&tmp, &p).map_err(io("rename", &p))
    }

    /// Removes the directory; the lock goes with it.
    pub fn remove(self) -> Result<(), StateError> {
        std::fs::remove_dir_all(&self.path).map_err(io("remove", &self.path))
        // `self` drops here, unlocking.
    }
}

impl Drop for ContainerDir {
    /// Unlocks explicitly: a forked child shares our open file description, and with it the
    /// flock, for as long as it lives; closing our descriptor alone would not release it.
    fn drop(&mut self) {
        let _ = rustix::fs::flock(self._lock.as_fd(), rustix::fs::FlockOperation::Unlock);
    }
}

/// The ids of all containers under `root`.
pub fn list_ids(root: &Path) -> Result<Vec<String>, StateError> {
    let rd = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("read", root)(e)),
    };
    let mut ids: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("state.json").exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    ids.sort();
    Ok(ids)
}

/// The start time of a process in clock ticks since boot (field 22 of /proc/<pid>/stat), or
/// None if it does not exist (or is a zombie that will never run again).
pub fn process_start_time(pid: i32) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // rest starts at field 3 (state); field 22 is index 19.
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(check_id("abc-1.2_x+y").is_ok());
        for bad in ["", ".", "..", "a/b", "../x", "a b"] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn own_start_time() {
        assert!(process_start_time(std::process::id() as i32).is_some());
        assert!(process_start_time(0).is_none());
    }

    #[test]
    fn create_save_load_remove() {
        let root = std::env::temp_dir().join(format!("berth-state-test-{}", std::process::id()));
        let dir = ContainerDir::create(&root, "c1").unwrap();
        assert!(matches!(
            ContainerDir::create(&root, "c1"),
            Err(StateError::Exists(_))
        ));
        let st = State {
            oci_version: "1.2.0".into(),
            id: "c1".into(),
            status: Status::Created,
            pid: 42,
            bundle: "/b".into(),
            annotations: HashMap::new(),
            rootfs: "/b/rootfs".into(),
            created: String::new(),
            start_time: 7,
            cgroups: Default::default(),
            poststart: vec![],
            poststop: vec![],
            owner: String::new(),
        };
        dir.save(&st).unwrap();
        assert_eq!(dir.load().unwrap().pid, 42);
        assert_eq!(list_ids(&root).unwrap(), vec!["c1".to_string()]);
        dir.remove().unwrap();
        assert!(list_ids(&root).unwrap().is_empty());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
