//! Privileges without breaking reload: the design, and the supervisor's message format.
//!
//! # The problem
//! Started as root, nginx-rs must handle requests as `user` (default `nobody`). A reload must still work
//! when the configuration and TLS keys are readable only by root (0600 in a 0700 directory) and when
//! the new configuration adds a port below 1024. A single process that dropped to `nobody` can do
//! neither. nginx keeps a root master and starts new workers, which closes idle keepalive connections
//! on every reload; nginx-rs swaps the Plan in place instead, so nothing is closed.
//!
//! # The design: a small privileged supervisor
//! ```text
//!   nginx-rs (root, pid in the pid file)          nginx-rs serve (user, e.g. nobody)
//!   ┌──────────────────────────────┐  socketpair ┌──────────────────────────────────┐
//!   │ signals, pid file, reads     │◀──────────▶│ Live in ArcSwap, listeners,       │
//!   │ files, `-t` check, bind()    │ SCM_RIGHTS │ requests, logs (fds from root)    │
//!   └──────────────────────────────┘             └──────────────────────────────────┘
//! ```
//! 1. Start (root): read and compile the configuration, bind every `listen`, open log files (they may
//!    live in root-only directories), then fork + exec the serving process with one end of a
//!    `socketpair`, drop it to `user`/`group` (setgroups, setgid, setuid, in that order, with
//!    `PR_SET_NO_NEW_PRIVS`), and send it the first [`Bundle`]: every file's bytes, the listen
//!    addresses, the log paths, and the matching descriptors (SCM_RIGHTS, [`super::fdpass`]).
//! 2. The supervisor does nothing else: it handles no traffic and parses no requests. Its whole
//!    attack surface is its signals and the socketpair, on which it accepts one message kind,
//!    `reload`/`reopen`, from its own child only.
//! 3. SIGHUP reaches the supervisor (its pid is in the pid file; systemd's `ExecReload` sends to
//!    `$MAINPID`). It re-reads every file as root and runs the full check (`plan::compile`). On
//!    failure it logs the `[emerg]` line and stops there: the serving process never notices. On
//!    success it binds only the *new* listen addresses (it remembers what it already handed over),
//!    and sends a new Bundle with the bytes and the new descriptors.
//! 4. The serving process compiles the Plan from the bytes (same compiler, reading from the bundle
//!    instead of the file system), builds the new `Live`, `store`s it, keeps the sockets it already
//!    had for unchanged addresses, starts accepting on the new ones and closes the removed ones
//!    ([`super::reload`] does exactly this with a `Host` whose `load` reads the bundle and whose `bind`
//!    takes the received descriptor). No connection is closed; in-flight requests finish on the old
//!    `Live`.
//! 5. SIGUSR1: the supervisor reopens the log files as root and passes the new descriptors; SIGQUIT /
//!    SIGTERM are forwarded to the serving process; the supervisor exits with the child's status and
//!    removes the pid file. If the serving process dies unexpectedly the supervisor exits non-zero
//!    (systemd restarts the unit) rather than silently respawning.
//!
//! When not started as root there is nothing to protect: one process does everything and reloads by
//! reading the files itself (the same [`super::reload`] path). `daemon` and `master_process` are
//! accepted and ignored: nginx-rs always stays in the foreground, which is what systemd (`Type=exec`)
//! and containers want; the supervisor split is decided by privileges, not by `master_process`.
//!
//! # Status
//! Implemented: the SCM_RIGHTS primitive ([`super::fdpass`]), the [`Bundle`] wire format and
//! [`read_bundle`] (the supervisor's read-as-root step), and the in-place reload itself
//! ([`super::reload`], [`super::daemon`]). Not implemented yet: the fork/exec of the serving process,
//! the privilege drop (setgroups/setgid/setuid), and compiling from a Bundle (the `conf` loader reads
//! `include`d files from disk and needs an in-memory source). Until then [`super::daemon`] runs as a
//! single process and does **not** drop privileges: started as root it stays root, so root-only
//! files and new ports below 1024 reload fine, but request handling is not confined to `user`.

use std::io;
use std::path::{Path, PathBuf};

use crate::plan::ListenAddr;

/// What the supervisor hands to the serving process on start and on each reload. The descriptors
/// travel beside it (SCM_RIGHTS): `listens[i]` pairs with descriptor `i`, then `logs[j]` with
/// descriptor `listens.len() + j`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bundle {
    /// Every configuration file read (main file first), with its bytes.
    pub files: Vec<(PathBuf, Vec<u8>)>,
    /// Addresses whose sockets are attached (only the new ones on reload).
    pub listens: Vec<ListenAddr>,
    /// Log files whose descriptors are attached.
    pub logs: Vec<PathBuf>,
}

/// Reads `paths` as the supervisor does (with its privileges). The first error is nginx's
/// `open() "/etc/x.conf" failed (13: Permission denied)`.
pub fn read_bundle(paths: &[PathBuf]) -> Result<Bundle, String> {
    let mut b = Bundle::default();
    for p in paths {
        let bytes = std::fs::read(p).map_err(|e| {
            format!(
                "open() \"{}\" failed {}",
                p.display(),
                super::errno_text(&e)
            )
        })?;
        b.files.push((p.clone(), bytes));
    }
    Ok(b)
}

impl Bundle {
    /// Length-prefixed binary encoding (all integers u32 little-endian).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_u32(&mut out, self.files.len());
        for (p, bytes) in &self.files {
            put_bytes(&mut out, p.as_os_str().as_encoded_bytes());
            put_bytes(&mut out, bytes);
        }
        put_u32(&mut out, self.listens.len());
        for a in &self.listens {
            match a {
                ListenAddr::Inet(s) => {
                    out.push(0);
                    put_bytes(&mut out, s.to_string().as_bytes());
                }
                ListenAddr::Unix(p) => {
                    out.push(1);
                    put_bytes(&mut out, p.as_os_str().as_encoded_bytes());
                }
            }
        }
        put_u32(&mut out, self.logs.len());
        for p in &self.logs {
            put_bytes(&mut out, p.as_os_str().as_encoded_bytes());
        }
        out
    }

    pub fn decode(mut buf: &[u8]) -> io::Result<Bundle> {
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed bundle");
        let r = &mut buf;
        let mut b = Bundle::default();
        for _ in 0..get_u32(r)? {
            let p = path(get_bytes(r)?);
            b.files.push((p, get_bytes(r)?.to_vec()));
        }
        for _ in 0..get_u32(r)? {
            let (&tag, rest) = r.split_first().ok_or_else(bad)?;
            *r = rest;
            let v = get_bytes(r)?;
            b.listens.push(match tag {
                0 => ListenAddr::Inet(
                    std::str::from_utf8(v)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(bad)?,
                ),
                1 => ListenAddr::Unix(path(v)),
                _ => return Err(bad()),
            });
        }
        for _ in 0..get_u32(r)? {
            b.logs.push(path(get_bytes(r)?));
        }
        if !r.is_empty() {
            return Err(bad());
        }
        Ok(b)
    }

    /// The bytes of `file`, for a compiler reading from the bundle instead of the file system.
    pub fn file(&self, file: &Path) -> Option<&[u8]> {
        self.files
            .iter()
            .find(|(p, _)| p == file)
            .map(|(_, b)| b.as_slice())
    }
}

fn path(b: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(b))
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u32).to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u32(out, b.len());
    out.extend_from_slice(b);
}

fn get_u32(r: &mut &[u8]) -> io::Result<u32> {
    if r.len() < 4 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let (h, t) = r.split_at(4);
    *r = t;
    Ok(u32::from_le_bytes([h[0], h[1], h[2], h[3]]))
}

fn get_bytes<'a>(r: &mut &'a [u8]) -> io::Result<&'a [u8]> {
    let n = get_u32(r)? as usize;
    if r.len() < n {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let (h, t) = r.split_at(n);
    *r = t;
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_round_trip_and_truncation() {
        let b = Bundle {
            files: vec![("/etc/nginx-rs/nginx.conf".into(), b"events {}\n".to_vec())],
            listens: vec![
                ListenAddr::Inet("127.0.0.1:80".parse().expect("addr")),
                ListenAddr::Inet("[::1]:443".parse().expect("addr")),
                ListenAddr::Unix("/run/x.sock".into()),
            ],
            logs: vec!["/var/log/a.log".into()],
        };
        let enc = b.encode();
        assert_eq!(Bundle::decode(&enc).expect("decode"), b);
        for cut in 0..enc.len() {
            assert!(Bundle::decode(&enc[..cut]).is_err(), "cut at {cut}");
        }
        assert_eq!(
            b.file(Path::new("/etc/nginx-rs/nginx.conf")),
            Some(&b"events {}\n"[..])
        );
    }
}
