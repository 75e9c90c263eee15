//! Pseudo-terminals (pty(7)) and passing descriptors over a unix socket (SCM_RIGHTS, unix(7)).

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::{check, Error, Result};

/// A new pseudo-terminal: the master, and the path of its slave under /dev/pts.
pub fn open_pty() -> Result<(OwnedFd, PathBuf)> {
    // SAFETY: posix_openpt takes flags and returns a new descriptor or -1.
    let fd = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    check("open /dev/ptmx", None, fd.into())?;
    // SAFETY: the kernel just returned this descriptor; we are its only owner.
    let master = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: `master` is a valid pty master descriptor.
    let rc = unsafe { libc::unlockpt(master.as_raw_fd()) };
    check("unlockpt", None, rc.into())?;
    let mut buf = [0 as libc::c_char; 128];
    // SAFETY: `buf` is writable for its whole length, which we pass.
    let rc = unsafe { libc::ptsname_r(master.as_raw_fd(), buf.as_mut_ptr(), buf.len()) };
    if rc != 0 {
        return Err(Error::new(
            "ptsname",
            None::<&Path>,
            std::io::Error::from_raw_os_error(rc),
        ));
    }
    // SAFETY: ptsname_r succeeded, so `buf` holds a NUL-terminated string.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    let path = PathBuf::from(name.to_string_lossy().into_owned());
    Ok((master, path))
}

/// TIOCSCTTY: `fd` becomes the controlling terminal of our (new) session.
pub fn set_controlling_terminal(fd: BorrowedFd<'_>) -> Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal).
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) };
    check("ioctl(TIOCSCTTY)", None, rc.into()).map(drop)
}

/// TIOCSWINSZ: the terminal's size in rows and columns.
pub fn set_window_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: `ws` is a valid winsize the kernel reads during the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    check("ioctl(TIOCSWINSZ)", None, rc.into()).map(drop)
}

/// Sends `fd` over the unix socket `sock` with SCM_RIGHTS, with `name` as the payload (runc
/// sends the pty path; containerd reads the descriptor).
pub fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>, name: &str) -> Result<()> {
    let mut payload = name.as_bytes().to_vec();
    if payload.is_empty() {
        payload.push(0);
    }
    let mut iov = libc::iovec {
        iov_base: payload.as_mut_ptr().cast(),
        iov_len: payload.len(),
    };
    // SAFETY: CMSG_SPACE is a pure computation on a size.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) } as usize;
    let mut cbuf = vec![0u8; space];
    // SAFETY: msghdr is plain data; every field we rely on is set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space;
    // SAFETY: `msg` points at `cbuf`, which has room for one cmsghdr carrying one int
    // (CMSG_SPACE above), so CMSG_FIRSTHDR is non-null and CMSG_DATA stays inside `cbuf`.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>(), fd.as_raw_fd());
    }
    // SAFETY: `msg` and everything it points to (`iov`, `payload`, `cbuf`) live until the call
    // returns; the kernel only reads them.
    let rc = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    check("sendmsg(SCM_RIGHTS)", None, rc as libc::c_long).map(drop)
}

/// Receives one descriptor sent with SCM_RIGHTS, and the payload as text.
pub fn recv_fd(sock: BorrowedFd<'_>) -> Result<(OwnedFd, String)> {
    let mut payload = vec![0u8; 4096];
    let mut iov = libc::iovec {
        iov_base: payload.as_mut_ptr().cast(),
        iov_len: payload.len(),
    };
    // SAFETY: CMSG_SPACE is a pure computation on a size.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) } as usize;
    let mut cbuf = vec![0u8; space];
    // SAFETY: msghdr is plain data; every field we rely on is set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space;
    // SAFETY: `msg` points at buffers that are writable for the lengths given and live until
    // the call returns; MSG_CMSG_CLOEXEC makes the received descriptor close-on-exec.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    check("recvmsg(SCM_RIGHTS)", None, n as libc::c_long)?;
    // SAFETY: recvmsg filled `msg`; CMSG_FIRSTHDR returns null or a header inside `cbuf`.
    let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    // SAFETY: a non-null `cmsg` points inside `cbuf`, and for SCM_RIGHTS its data is an int.
    let fd = unsafe {
        if cmsg.is_null() || (*cmsg).cmsg_type != libc::SCM_RIGHTS {
            return Err(Error::new(
                "recvmsg(SCM_RIGHTS)",
                None::<&Path>,
                std::io::Error::new(std::io::ErrorKind::InvalidData, "no descriptor received"),
            ));
        }
        std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>())
    };
    payload.truncate(n as usize);
    // SAFETY: the kernel installed this descriptor for us; nothing else owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok((
        owned,
        String::from_utf8_lossy(&payload)
            .trim_end_matches('\0')
            .to_string(),
    ))
}
