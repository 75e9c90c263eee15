//! cgroup v1 controllers (kernel Documentation/admin-guide/cgroup-v1/).

use std::path::Path;

use super::devices::Rule;
use super::{io, CgroupError};

/// Writes the device rules in order to devices.allow / devices.deny
/// (cgroup-v1/devices.rst): a later rule overrides an earlier one.
pub fn apply_devices(dir: &Path, rules: &[Rule]) -> Result<(), CgroupError> {
    for r in rules {
        let file = dir.join(if r.allow {
            "devices.allow"
        } else {
            "devices.deny"
        });
        std::fs::write(&file, r.to_string()).map_err(io("write", &file))?;
    }
    Ok(())
}

/// Copies cpuset.cpus and cpuset.mems from the parent when they are empty.
pub fn inherit_cpuset(dir: &Path) -> Result<(), CgroupError> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let mine = dir.join(f);
        let current = std::fs::read_to_string(&mine).map_err(io("read", &mine))?;
        if current.trim().is_empty() {
            let p = parent.join(f);
            let value = std::fs::read_to_string(&p).map_err(io("read", &p))?;
            std::fs::write(&mine, value.trim()).map_err(io("write", &mine))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_rules_to_the_right_file() {
        let dir = std::env::temp_dir().join(format!("berth-v1-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rules = [
            Rule {
                allow: false,
                kind: 'a',
                major: None,
                minor: None,
                access: "rwm".into(),
            },
            Rule {
                allow: true,
                kind: 'c',
                major: Some(1),
                minor: Some(3),
                access: "rwm".into(),
            },
        ];
        apply_devices(&dir, &rules).unwrap();
        // Each write replaces the file in a plain directory; the kernel appends instead.
        assert_eq!(
            std::fs::read_to_string(dir.join("devices.deny")).unwrap(),
            "a *:* rwm"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("devices.allow")).unwrap(),
            "c 1:3 rwm"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
