//! Device access rules: the config's `linux.resources.devices`, then the devices every
//! container needs, as runc allows them (runtime-spec config-linux.md, "Allowed Device List").

use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, LinuxResources};

/// One rule of the device controller: `c 1:3 rwm`, `a *:* rwm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    /// 'a' (all), 'c' or 'b'.
    pub kind: char,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: String,
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = |v: Option<i64>| v.map_or("*".to_string(), |v| v.to_string());
        write!(
            f,
            "{} {}:{} {}",
            self.kind,
            n(self.major),
            n(self.minor),
            self.access
        )
    }
}

fn kind(t: LinuxDeviceType) -> char {
    match t {
        LinuxDeviceType::A => 'a',
        LinuxDeviceType::B => 'b',
        // Unbuffered character devices and fifos are character devices to the controller.
        LinuxDeviceType::C | LinuxDeviceType::U | LinuxDeviceType::P => 'c',
    }
}

const fn allow(
    kind: char,
    major: Option<i64>,
    minor: Option<i64>,
) -> (char, Option<i64>, Option<i64>) {
    (kind, major, minor)
}

/// What every container may use, whatever its config says (runc's AllowedDevices): mknod of
/// any node, and the standard character devices.
const DEFAULT: [(char, Option<i64>, Option<i64>); 10] = [
    allow('c', None, None),       // mknod only (access "m")
    allow('b', None, None),       // mknod only (access "m")
    allow('c', Some(1), Some(3)), // /dev/null
    allow('c', Some(1), Some(8)), // /dev/random
    allow('c', Some(1), Some(7)), // /dev/full
    allow('c', Some(5), Some(0)), // /dev/tty
    allow('c', Some(1), Some(5)), // /dev/zero
    allow('c', Some(1), Some(9)), // /dev/urandom
    allow('c', Some(136), None),  // /dev/pts/*
    allow('c', Some(5), Some(2)), // /dev/ptmx
];

/// The rules to write, in order: the config's, the defaults, then the config's devices.
pub fn rules(resources: Option<&LinuxResources>, devices: &[LinuxDevice]) -> Vec<Rule> {
    let mut out: Vec<Rule> = resources
        .and_then(|r| r.devices().as_ref())
        .into_iter()
        .flatten()
        .map(|d| Rule {
            allow: d.allow(),
            kind: d.typ().map_or('a', kind),
            major: d.major().filter(|&m| m >= 0),
            minor: d.minor().filter(|&m| m >= 0),
            access: d.access().clone().unwrap_or_else(|| "rwm".to_string()),
        })
        .collect();
    for (i, (kind, major, minor)) in DEFAULT.iter().enumerate() {
        out.push(Rule {
            allow: true,
            kind: *kind,
            major: *major,
            minor: *minor,
            access: if i < 2 { "m" } else { "rwm" }.to_string(),
        });
    }
    for d in devices {
        out.push(Rule {
            allow: true,
            kind: kind(d.typ()),
            major: Some(d.major()),
            minor: Some(d.minor()),
            access: "rwm".to_string(),
        });
    }
    out
}

/// `access` is a non-empty subset of "rwm".
pub fn check_access(access: &str) -> Result<(), String> {
    if access.is_empty() || !access.chars().all(|c| "rwm".contains(c)) {
        return Err(format!("{access:?}: use r, w and m"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rules() {
        let r = Rule {
            allow: false,
            kind: 'a',
            major: None,
            minor: None,
            access: "rwm".into(),
        };
        assert_eq!(r.to_string(), "a *:* rwm");
        let r = Rule {
            allow: true,
            kind: 'c',
            major: Some(136),
            minor: None,
            access: "rw".into(),
        };
        assert_eq!(r.to_string(), "c 136:* rw");
    }

    #[test]
    fn defaults_follow_config() {
        let rules = rules(None, &[]);
        assert_eq!(rules[0].to_string(), "c *:* m");
        assert!(rules.iter().any(|r| r.to_string() == "c 1:3 rwm"));
    }

    #[test]
    fn access() {
        assert!(check_access("rwm").is_ok());
        assert!(check_access("").is_err());
        assert!(check_access("rx").is_err());
    }
}
