//! Typed messages between the runtime and the processes it forks, over a socket pair.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("sync socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("sync socket: bad message: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("the container's init exited before it was ready")]
    Closed,
    #[error("sync socket: expected {expected}, got {got:?}")]
    Unexpected {
        expected: &'static str,
        got: Message,
    },
}

/// Every message of the create protocol, in the order they flow (see process/mod.rs).
#[derive(Serialize, Deserialize, Debug)]
pub enum Message {
    /// stage 1 → parent: write the uid and gid maps of my new user namespace.
    MappingRequest { pid: i32 },
    /// parent → stage 1: the maps are written.
    MappingWritten,
    /// stage 1 → parent: init runs with this pid (in the runtime's pid namespace). With
    /// `placed`, init puts itself in its cgroups (born in the cgroup2 one, `0` into each v1
    /// `tasks`) and waits for no `Placed`; otherwise the parent moves it.
    InitPid {
        pid: i32,
        #[serde(default)]
        placed: bool,
    },
    /// parent → init: you are in your cgroup; go on.
    Placed,
    /// init → parent: mounts done; run the prestart and createRuntime hooks.
    HooksRequest,
    /// parent → init: hooks done.
    HooksDone,
    /// init → parent: everything but exec is done; waiting on the exec fifo.
    Ready,
    /// init or exec → parent: the seccomp notification listener follows (SCM_RIGHTS); hand it
    /// to the config's listenerPath.
    SeccompListener,
    /// parent → init or exec: the listener has it.
    SeccompListenerSent,
    /// any child → parent: the step that failed, as a sentence.
    Failed(String),
}

pub struct Channel(pub UnixStream);

impl Channel {
    pub fn send(&mut self, m: &Message) -> Result<(), SyncError> {
        let body = serde_json::to_vec(m)?;
        let mut buf = (body.len() as u32).to_le_bytes().to_vec();
        buf.extend_from_slice(&body);
        self.0.write_all(&buf)?;
        Ok(())
    }

    pub fn recv(&mut self) -> Result<Message, SyncError> {
        let mut len = [0u8; 4];
        match self.0.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(SyncError::Closed)
            }
            Err(e) => return Err(e.into()),
        }
        let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
        self.0.read_exact(&mut body).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => SyncError::Closed,
            _ => SyncError::Io(e),
        })?;
        Ok(serde_json::from_slice(&body)?)
    }

    /// Receives one message and checks it is the expected one (a `Failed` is an error too).
    pub fn expect(
        &mut self,
        expected: &'static str,
        ok: fn(&Message) -> bool,
    ) -> Result<Message, SyncError> {
        let m = self.recv()?;
        if ok(&m) {
            Ok(m)
        } else {
            Err(SyncError::Unexpected { expected, got: m })
        }
    }
}

/// Orders two writers of one socket. A stage that forks a child and then reports its pid
/// (InitPid) keeps the write end of this pipe until it has spoken, and exits; the child,
/// whose messages must come after, drops its copy of the write end and waits in
/// [`wait_for_turn`] until the pipe is closed.
pub fn turn_pipe() -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    Ok(rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?)
}

/// Blocks until no process holds the write end of `turn` any more.
pub fn wait_for_turn(turn: std::os::fd::OwnedFd) {
    let mut b = [0u8; 1];
    while let Err(rustix::io::Errno::INTR) | Ok(1..) = rustix::io::read(&turn, &mut b) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut a, mut b) = (Channel(a), Channel(b));
        a.send(&Message::InitPid {
            pid: 7,
            placed: false,
        })
        .unwrap();
        a.send(&Message::Failed("mount proc on /proc: boom".into()))
            .unwrap();
        assert!(matches!(b.recv().unwrap(), Message::InitPid { pid: 7, .. }));
        assert!(b.expect("Ready", |m| matches!(m, Message::Ready)).is_err());
        drop(a);
        assert!(matches!(b.recv(), Err(SyncError::Closed)));
    }
}
