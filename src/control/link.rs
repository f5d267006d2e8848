//! The socketpair between the supervisor and the serving process: one message is a
//! [`Bundle`] plus its descriptors ([`super::fdpass`]). This module pairs descriptors with the
//! bundle's entries and, in the serving process, turns the stream into an async channel.

use std::fs::File;
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use tokio::sync::mpsc;

use crate::plan::ListenAddr;

use super::fdpass;
use super::supervisor::{Bundle, Kind};

/// A received bundle with its descriptors paired up.
#[derive(Debug)]
pub struct Incoming {
    pub bundle: Bundle,
    pub listens: Vec<(ListenAddr, TcpListener)>,
    pub logs: Vec<(PathBuf, File)>,
}

impl Incoming {
    fn new(payload: &[u8], fds: Vec<OwnedFd>) -> io::Result<Incoming> {
        let bundle = Bundle::decode(payload)?;
        if bundle.kind == Kind::Ack && fds.is_empty() {
            // An answer names addresses; it carries no descriptors.
            return Ok(Incoming {
                bundle,
                listens: Vec::new(),
                logs: Vec::new(),
            });
        }
        if fds.len() != bundle.listens.len() + bundle.logs.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "descriptor count does not match the bundle",
            ));
        }
        let mut fds = fds.into_iter();
        let mut listens = Vec::with_capacity(bundle.listens.len());
        for a in &bundle.listens {
            // The count was checked above.
            let Some(fd) = fds.next() else { break };
            let l = TcpListener::from(fd);
            l.set_nonblocking(true)?;
            listens.push((a.clone(), l));
        }
        let logs = bundle
            .logs
            .iter()
            .zip(fds)
            .map(|(p, fd)| (p.clone(), File::from(fd)))
            .collect();
        Ok(Incoming {
            bundle,
            listens,
            logs,
        })
    }
}

/// Sends `bundle` with the descriptors of `listens` then `logs` (in the bundle's order).
pub fn send(
    sock: &UnixStream,
    bundle: &Bundle,
    listens: &[impl AsFd],
    logs: &[impl AsFd],
) -> io::Result<()> {
    let fds: Vec<_> = listens
        .iter()
        .map(AsFd::as_fd)
        .chain(logs.iter().map(AsFd::as_fd))
        .collect();
    fdpass::send(sock, &bundle.encode(), &fds)
}

/// Receives one bundle (blocking).
pub fn recv(sock: &UnixStream) -> io::Result<Incoming> {
    let (payload, fds) = fdpass::recv(sock)?;
    Incoming::new(&payload, fds)
}

/// The serving process's answer to a `Config` bundle: the addresses it now serves.
pub fn send_ack(sock: &UnixStream, serving: Vec<ListenAddr>) -> io::Result<()> {
    let b = Bundle {
        kind: Kind::Ack,
        listens: serving,
        ..Bundle::default()
    };
    fdpass::send(sock, &b.encode(), &[])
}

/// The serving process's end: bundles arrive on `rx` (read by a thread); `None` from `rx` means
/// the supervisor is gone.
pub struct Link {
    pub stream: UnixStream,
    pub rx: mpsc::UnboundedReceiver<Incoming>,
}

impl Link {
    pub fn spawn_reader(stream: UnixStream) -> io::Result<Link> {
        let reader = stream.try_clone()?;
        let (tx, rx) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("supervisor-link".into())
            .spawn(move || {
                // Ends on EOF or a malformed message: either way the supervisor is not talking
                // sense any more, and the dropped sender tells the serving loop so.
                while let Ok(m) = recv(&reader) {
                    if tx.send(m).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Link { stream, rx })
    }
}
