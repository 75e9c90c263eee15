//! `run` of a terminal process in the foreground: the runtime is its own console socket and
//! copies between its stdio and the pty master, as runc does (no threads: one poll loop).

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use berth_sys::process as p;
use rustix::event::{PollFd, PollFlags};

/// A console socket of our own for one `run`.
pub struct OwnConsole {
    listener: UnixListener,
    pub path: PathBuf,
}

impl OwnConsole {
    pub fn bind(dir: &Path, id: &str) -> std::io::Result<OwnConsole> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!(".console-{id}-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        Ok(OwnConsole { listener, path })
    }

    /// The pty master that init sent during create.
    pub fn master(&self) -> Result<OwnedFd, berth_sys::Error> {
        let (conn, _) = self
            .listener
            .accept()
            .map_err(|e| berth_sys::Error::new("accept", Some(&self.path), e))?;
        Ok(berth_sys::console::recv_fd(conn.as_fd())?.0)
    }
}

impl Drop for OwnConsole {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Our terminal in raw mode while the container has it; restored on drop.
struct RawMode(Option<rustix::termios::Termios>);

impl RawMode {
    fn enter() -> RawMode {
        let stdin = std::io::stdin();
        if !rustix::termios::isatty(&stdin) {
            return RawMode(None);
        }
        let Ok(saved) = rustix::termios::tcgetattr(&stdin) else {
            return RawMode(None);
        };
        let mut raw = saved.clone();
        raw.make_raw();
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &raw);
        RawMode(Some(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            let _ = rustix::termios::tcsetattr(
                std::io::stdin(),
                rustix::termios::OptionalActions::Now,
                t,
            );
        }
    }
}

fn copy_winsize(master: &OwnedFd) {
    if let Ok(ws) = rustix::termios::tcgetwinsize(std::io::stdin()) {
        let _ = berth_sys::console::set_window_size(master.as_fd(), ws.ws_row, ws.ws_col);
    }
}

/// Copies stdin → master and master → stdout until `pid` exits; forwards the other signals
/// (blocked by the caller) to it. Returns its exit status.
pub fn proxy(master: OwnedFd, pid: i32, signals: &p::SigSet) -> Result<i32, berth_sys::Error> {
    let _raw = RawMode::enter();
    copy_winsize(&master);
    let sfd = signals.signalfd()?;
    let mut master_file = std::fs::File::from(
        master
            .try_clone()
            .map_err(|e| berth_sys::Error::new("dup", None::<&Path>, e))?,
    );
    let stdin = std::io::stdin();
    let mut stdin_open = true;
    let mut buf = [0u8; 8192];
    loop {
        let mut fds = vec![
            PollFd::new(&sfd, PollFlags::IN),
            PollFd::new(&master, PollFlags::IN),
        ];
        if stdin_open {
            fds.push(PollFd::new(&stdin, PollFlags::IN));
        }
        match rustix::event::poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(berth_sys::Error::new("poll", None::<&Path>, e.into())),
        }
        let ready: Vec<PollFlags> = fds.iter().map(|f| f.revents()).collect();
        drop(fds);
        if !ready[1].is_empty() {
            match master_file.read(&mut buf) {
                Ok(n) if n > 0 => {
                    let mut out = std::io::stdout();
                    let _ = out.write_all(&buf[..n]).and_then(|()| out.flush());
                }
                // EIO: every slave descriptor is closed; the process is exiting.
                _ => {}
            }
        }
        if stdin_open && !ready[2].is_empty() {
            match std::io::stdin().read(&mut buf) {
                Ok(n) if n > 0 => {
                    let _ = master_file.write_all(&buf[..n]);
                }
                _ => stdin_open = false,
            }
        }
        if !ready[0].is_empty() {
            let sig = p::read_signal(sfd.as_fd())?;
            match sig {
                libc::SIGCHLD => {
                    let mut exited = None;
                    while let Some((child, status)) = p::waitpid(-1, true).ok().flatten() {
                        if child == pid {
                            exited = Some(status.code());
                        }
                    }
                    if let Some(code) = exited {
                        drain(&mut master_file, &mut buf);
                        return Ok(code);
                    }
                }
                libc::SIGWINCH => copy_winsize(&master),
                other => {
                    let _ = p::kill(pid, other);
                }
            }
        }
    }
}

/// What the process wrote just before it exited.
fn drain(master: &mut std::fs::File, buf: &mut [u8]) {
    loop {
        let zero = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let readable = {
            let mut fds = [PollFd::new(&*master, PollFlags::IN)];
            matches!(rustix::event::poll(&mut fds, Some(&zero)), Ok(n) if n > 0)
        };
        if !readable {
            return;
        }
        match master.read(buf) {
            Ok(n) if n > 0 => {
                let _ = std::io::stdout().write_all(&buf[..n]);
            }
            _ => return,
        }
    }
}
