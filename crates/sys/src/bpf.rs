//! bpf(2) for cgroup device programs: load a BPF_PROG_TYPE_CGROUP_DEVICE program, attach it
//! to a cgroup2 directory, list and detach what is attached there.
//!
//! Written by hand: the few commands and their attribute layouts are stable kernel ABI
//! (include/uapi/linux/bpf.h), while the crates that wrap bpf(2) (aya, libbpf-rs) bring a
//! loader, BTF and an async runtime or a C library that a runtime which must start in a few
//! milliseconds does not need. runc and crun also assemble and load this program themselves.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use crate::{Error, Result};

/// One eBPF instruction, as `struct bpf_insn`: opcode, dst/src registers in one byte (dst in
/// the low nibble), a signed 16-bit offset and a signed 32-bit immediate.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

pub const PROG_TYPE_CGROUP_DEVICE: u32 = 15;
pub const CGROUP_DEVICE: u32 = 6;
pub const F_ALLOW_MULTI: u32 = 2;

const PROG_LOAD: libc::c_int = 5;
const PROG_ATTACH: libc::c_int = 8;
const PROG_DETACH: libc::c_int = 9;
const PROG_GET_FD_BY_ID: libc::c_int = 13;
const PROG_QUERY: libc::c_int = 16;

/// The part of `union bpf_attr` that BPF_PROG_LOAD reads. The kernel accepts a shorter
/// attribute than its own as long as it knows every field we pass.
#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

/// BPF_PROG_ATTACH and BPF_PROG_DETACH.
#[repr(C)]
#[derive(Default)]
struct Attach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

/// BPF_PROG_QUERY.
#[repr(C)]
#[derive(Default)]
struct Query {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
}

/// BPF_PROG_GET_FD_BY_ID.
#[repr(C)]
#[derive(Default)]
struct GetFd {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// bpf(2) with `attr` of type `T`.
fn bpf<T>(cmd: libc::c_int, attr: &mut T, op: &'static str, path: &Path) -> Result<libc::c_long> {
    // SAFETY: `attr` is a valid, initialised `repr(C)` attribute of the layout `cmd` reads,
    // borrowed mutably for the call (PROG_QUERY writes into it), and its size is passed along
    // so the kernel reads and writes no more than that.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if rc < 0 {
        return Err(Error::new(op, Some(path), std::io::Error::last_os_error()));
    }
    Ok(rc)
}

/// Loads a cgroup device program. On a verifier error the kernel's log is the error's text.
pub fn load_device_program(insns: &[Insn], path: &Path) -> Result<OwnedFd> {
    let license = c"Apache";
    let mut log = vec![0u8; 64 * 1024];
    let mut name = [0u8; 16];
    name[..12].copy_from_slice(b"berth_device");
    let mut attr = ProgLoad {
        prog_type: PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name,
        ..Default::default()
    };
    let rc = match bpf(PROG_LOAD, &mut attr, "load the device program for", path) {
        Ok(rc) => rc,
        Err(e) if e.errno() == Some(libc::EACCES) || e.errno() == Some(libc::EINVAL) => {
            // Load again with the verifier's log, so the error says why.
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            match bpf(PROG_LOAD, &mut attr, "load the device program for", path) {
                Ok(rc) => rc,
                Err(e2) => {
                    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                    let text = String::from_utf8_lossy(&log[..end]).trim().to_string();
                    return Err(Error::new(
                        e2.op,
                        e2.path,
                        std::io::Error::new(e2.source.kind(), format!("{}: {text}", e2.source)),
                    ));
                }
            }
        }
        Err(e) => return Err(e),
    };
    // SAFETY: BPF_PROG_LOAD returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as libc::c_int) })
}

/// BPF_PROG_ATTACH (`attach`) or BPF_PROG_DETACH of `prog` as the device program of the
/// cgroup2 directory `cgroup`.
fn attach_cmd(
    cmd: libc::c_int,
    op: &'static str,
    cgroup: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    flags: u32,
    path: &Path,
) -> Result<()> {
    let mut attr = Attach {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: CGROUP_DEVICE,
        attach_flags: flags,
    };
    bpf(cmd, &mut attr, op, path).map(drop)
}

/// Attaches `prog` to the cgroup2 directory `cgroup` as its device program.
pub fn attach_device_program(
    cgroup: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    flags: u32,
    path: &Path,
) -> Result<()> {
    attach_cmd(
        PROG_ATTACH,
        "attach the device program to",
        cgroup,
        prog,
        flags,
        path,
    )
}

/// Detaches `prog` from `cgroup`.
pub fn detach_device_program(
    cgroup: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    path: &Path,
) -> Result<()> {
    attach_cmd(
        PROG_DETACH,
        "detach a device program from",
        cgroup,
        prog,
        0,
        path,
    )
}

/// The ids of the device programs attached to `cgroup` itself (not inherited ones).
pub fn attached_device_programs(cgroup: BorrowedFd<'_>, path: &Path) -> Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut attr = Query {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    bpf(PROG_QUERY, &mut attr, "list the device programs of", path)?;
    ids.truncate(attr.prog_cnt.min(64) as usize);
    Ok(ids)
}

/// A descriptor for the loaded program with id `id`.
pub fn program_by_id(id: u32, path: &Path) -> Result<OwnedFd> {
    let mut attr = GetFd {
        prog_id: id,
        ..Default::default()
    };
    let rc = bpf(
        PROG_GET_FD_BY_ID,
        &mut attr,
        "open a device program of",
        path,
    )?;
    // SAFETY: BPF_PROG_GET_FD_BY_ID returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as libc::c_int) })
}
