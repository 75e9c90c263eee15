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

/// The access bits of the v2 device program's context (include/uapi/linux/bpf.h).
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

fn access_bits(access: &str) -> i32 {
    access.chars().fold(0, |bits, c| {
        bits | match c {
            'm' => ACC_MKNOD,
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            _ => 0,
        }
    })
}

/// One exception of the v1 device controller's list: a device (`None` = any number) and
/// the access bits the exception is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exception {
    pub kind: char,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: i32,
}

/// The state the v1 device controller reaches after `rules` (security/device_cgroup.c):
/// a default and a list of exceptions to it. `a` rules reset the default and clear the list;
/// a rule in the direction of the default removes its access bits from the identical
/// exception; a rule against the default adds its bits to (or creates) the identical one.
///
/// The starting default is deny, as runc's v2 emulator starts: a config without an `a` rule
/// gets only what it allows, never the host's devices.
pub fn emulate(rules: &[Rule]) -> (bool, Vec<Exception>) {
    let mut default_allow = false;
    let mut list: Vec<Exception> = Vec::new();
    for r in rules {
        if r.kind == 'a' {
            default_allow = r.allow;
            list.clear();
            continue;
        }
        let bits = access_bits(&r.access);
        let pos = list
            .iter()
            .position(|e| e.kind == r.kind && e.major == r.major && e.minor == r.minor);
        if r.allow == default_allow {
            if let Some(i) = pos {
                list[i].access &= !bits;
                if list[i].access == 0 {
                    list.remove(i);
                }
            }
        } else if let Some(i) = pos {
            list[i].access |= bits;
        } else {
            list.push(Exception {
                kind: r.kind,
                major: r.major,
                minor: r.minor,
                access: bits,
            });
        }
    }
    (default_allow, list)
}

/// eBPF instruction encoding (Documentation/bpf/standardization/instruction-set.rst).
mod asm {
    use berth_sys::bpf::Insn;

    const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
    const ALU32_AND_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
    const ALU32_RSH_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
    const ALU32_MOV_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
    const ALU64_MOV_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
    const JMP_JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
    const JMP_JEQ_K: u8 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const JMP_EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

    fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            regs: (src << 4) | dst,
            off,
            imm,
        }
    }
    pub fn ldx_w(dst: u8, src: u8, off: i16) -> Insn {
        insn(LDX_MEM_W, dst, src, off, 0)
    }
    pub fn and32(dst: u8, imm: i32) -> Insn {
        insn(ALU32_AND_K, dst, 0, 0, imm)
    }
    pub fn rsh32(dst: u8, imm: i32) -> Insn {
        insn(ALU32_RSH_K, dst, 0, 0, imm)
    }
    pub fn mov32_reg(dst: u8, src: u8) -> Insn {
        insn(ALU32_MOV_X, dst, src, 0, 0)
    }
    pub fn mov64(dst: u8, imm: i32) -> Insn {
        insn(ALU64_MOV_K, dst, 0, 0, imm)
    }
    pub fn jne(dst: u8, imm: i32, off: i16) -> Insn {
        insn(JMP_JNE_K, dst, 0, off, imm)
    }
    pub fn jeq(dst: u8, imm: i32, off: i16) -> Insn {
        insn(JMP_JEQ_K, dst, 0, off, imm)
    }
    pub fn exit() -> Insn {
        insn(JMP_EXIT, 0, 0, 0, 0)
    }
}

/// The BPF_PROG_TYPE_CGROUP_DEVICE program for `rules`: it returns 1 (allow) or 0 (deny) for
/// the device access in its context, `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major;
/// u32 minor; }` with the type in the low 16 bits of access_type and the access bits above.
///
/// Registers: r2 type, r3 access, r4 major, r5 minor, r1 scratch (the context pointer is not
/// needed after the loads). One block per exception, then the default.
pub fn program(rules: &[Rule]) -> Vec<berth_sys::bpf::Insn> {
    use asm::*;
    let (default_allow, list) = emulate(rules);
    let mut p = vec![
        ldx_w(2, 1, 0),
        and32(2, 0xffff),
        ldx_w(3, 1, 0),
        rsh32(3, 16),
        ldx_w(4, 1, 4),
        ldx_w(5, 1, 8),
    ];
    for e in &list {
        let mut block = Vec::new();
        // Each test jumps past the rest of the block when the device does not match; the
        // offsets are filled in once the block's length is known.
        if e.kind != 'a' {
            block.push(jne(2, if e.kind == 'b' { DEV_BLOCK } else { DEV_CHAR }, 0));
        }
        if let Some(m) = e.major {
            block.push(jne(4, m as i32, 0));
        }
        if let Some(m) = e.minor {
            block.push(jne(5, m as i32, 0));
        }
        block.push(mov32_reg(1, 3));
        if default_allow {
            // Against an allowing default an exception denies any access it names.
            block.push(and32(1, e.access));
            block.push(jeq(1, 0, 0));
        } else {
            // Against a denying default, every access asked for must be in the exception.
            block.push(and32(1, !e.access & (ACC_MKNOD | ACC_READ | ACC_WRITE)));
            block.push(jne(1, 0, 0));
        }
        block.push(mov64(0, i32::from(!default_allow)));
        block.push(exit());
        let len = block.len();
        for (i, insn) in block.iter_mut().enumerate() {
            if insn.code == 0x55 || insn.code == 0x15 {
                // Relative to the next instruction: skip to the end of the block.
                insn.off = (len - i - 1) as i16;
            }
        }
        p.extend(block);
    }
    p.push(mov64(0, i32::from(default_allow)));
    p.push(exit());
    p
}

/// Loads the program for `rules` and makes it the device program of the cgroup2 directory
/// `dir`, replacing the ones attached before (`update`). The new one is attached before the
/// old ones are taken off, so the cgroup is never without one.
pub fn attach(dir: &std::path::Path, rules: &[Rule]) -> Result<(), super::CgroupError> {
    use berth_sys::bpf;
    use std::os::fd::AsFd;
    let sys = |e: berth_sys::Error| super::CgroupError::Device(e.to_string());
    let cgroup = std::fs::File::open(dir).map_err(super::io("open", dir))?;
    let before = bpf::attached_device_programs(cgroup.as_fd(), dir).map_err(sys)?;
    let prog = bpf::load_device_program(&program(rules), dir).map_err(sys)?;
    bpf::attach_device_program(cgroup.as_fd(), prog.as_fd(), bpf::F_ALLOW_MULTI, dir)
        .map_err(sys)?;
    for id in before {
        let old = bpf::program_by_id(id, dir).map_err(sys)?;
        bpf::detach_device_program(cgroup.as_fd(), old.as_fd(), dir).map_err(sys)?;
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

    /// Runs a device program over one access, the way the kernel would: a small interpreter
    /// of exactly the instructions `program` emits.
    fn run(p: &[berth_sys::bpf::Insn], kind: i32, access: i32, major: u32, minor: u32) -> bool {
        let mut r = [0u64; 11];
        let ctx = [((access as u32) << 16) | kind as u32, major, minor];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                0x61 => r[dst] = u64::from(ctx[i.off as usize / 4]),
                0x54 => r[dst] = (r[dst] as u32 & i.imm as u32) as u64,
                0x74 => r[dst] = ((r[dst] as u32) >> i.imm) as u64,
                0xbc => r[dst] = r[src] as u32 as u64,
                0xb7 => r[dst] = i.imm as i64 as u64,
                0x55 if r[dst] != i.imm as i64 as u64 => pc += i.off as usize,
                0x15 if r[dst] == i.imm as i64 as u64 => pc += i.off as usize,
                0x55 | 0x15 => {}
                0x95 => return r[0] == 1,
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    fn rule(allow: bool, s: &str) -> Rule {
        let f: Vec<&str> = s.split([' ', ':']).collect();
        let n = |v: &str| (v != "*").then(|| v.parse().unwrap());
        Rule {
            allow,
            kind: f[0].chars().next().unwrap(),
            major: n(f[1]),
            minor: n(f[2]),
            access: f[3].to_string(),
        }
    }

    #[test]
    fn program_follows_the_allow_list() {
        let mut rs = vec![rule(false, "a *:* rwm")];
        rs.extend(rules(None, &[]));
        rs.push(rule(true, "b 8:0 r"));
        let p = program(&rs);
        let (c, b) = (DEV_CHAR, DEV_BLOCK);
        assert!(run(&p, c, ACC_READ | ACC_WRITE, 1, 3)); // /dev/null rw
        assert!(run(&p, c, ACC_MKNOD, 10, 200)); // mknod of any char device
        assert!(!run(&p, c, ACC_READ, 10, 200)); // but not opening it
        assert!(run(&p, c, ACC_READ, 136, 7)); // /dev/pts/7
        assert!(run(&p, b, ACC_READ, 8, 0));
        assert!(!run(&p, b, ACC_WRITE, 8, 0)); // only read was allowed
        assert!(!run(&p, b, ACC_READ, 8, 1));
        assert!(!run(&p, c, ACC_READ, 1, 1)); // /dev/mem
    }

    #[test]
    fn later_rules_override_earlier_ones() {
        let rs = [
            rule(false, "a *:* rwm"),
            rule(true, "c 1:3 rwm"),
            rule(false, "c 1:3 w"),
        ];
        let p = program(&rs);
        assert!(run(&p, DEV_CHAR, ACC_READ, 1, 3));
        assert!(!run(&p, DEV_CHAR, ACC_WRITE, 1, 3));
        assert!(!run(&p, DEV_CHAR, ACC_READ | ACC_WRITE, 1, 3));
        // A deny list: everything but what is named.
        let rs = [
            rule(true, "a *:* rwm"),
            rule(false, "c 1:*  rw".replace("  ", " ").as_str()),
        ];
        let p = program(&rs);
        assert!(!run(&p, DEV_CHAR, ACC_WRITE, 1, 5));
        assert!(run(&p, DEV_CHAR, ACC_MKNOD, 1, 5));
        assert!(run(&p, DEV_BLOCK, ACC_WRITE, 1, 5));
        // No rule at all denies everything (runc's v2 emulator starts from deny).
        let p = program(&[]);
        assert!(!run(&p, DEV_CHAR, ACC_READ, 1, 3));
    }

    #[test]
    fn emulator_merges_identical_exceptions() {
        let (allow, list) = emulate(&[
            rule(false, "a *:* rwm"),
            rule(true, "c 1:3 r"),
            rule(true, "c 1:3 w"),
            rule(true, "c 1:5 r"),
            rule(false, "c 1:5 r"),
        ]);
        assert!(!allow);
        assert_eq!(
            list,
            [Exception {
                kind: 'c',
                major: Some(1),
                minor: Some(3),
                access: ACC_READ | ACC_WRITE
            }]
        );
    }
}
