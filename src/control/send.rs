//! `nginx-rs -s reload|reopen|stop|quit`: read the pid file and signal the running process, with
//! nginx's messages when that is not possible (checked against nginx 1.22):
//!
//! ```text
//! nginx-rs: [error] open() "/x/nginx-rs.pid" failed (2: No such file or directory)
//! nginx-rs: [error] invalid PID number "abc" in "/x/nginx-rs.pid"
//! nginx-rs: [alert] kill(999999, 1) failed (3: No such process)
//! nginx-rs: [crit] pread() "/x" failed (21: Is a directory)
//! ```
//! Like nginx, trailing CR/LF are ignored and nothing else is: `" 12 "` is invalid. Unlike nginx, pid
//! 0 and negative values are refused as invalid (kill(0) would signal our own process group).

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::conf::Level;

use super::errno_text;

/// The four `-s` signals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Reload,
    Reopen,
    Stop,
    Quit,
}

impl Signal {
    /// The `-s` argument; `None` for anything else (`nginx: invalid option: "-s foo"` is the CLI's).
    pub fn parse(s: &str) -> Option<Signal> {
        Some(match s {
            "reload" => Signal::Reload,
            "reopen" => Signal::Reopen,
            "stop" => Signal::Stop,
            "quit" => Signal::Quit,
            _ => return None,
        })
    }

    pub fn number(self) -> i32 {
        match self {
            Signal::Reload => libc::SIGHUP,
            Signal::Reopen => libc::SIGUSR1,
            Signal::Stop => libc::SIGTERM,
            Signal::Quit => libc::SIGQUIT,
        }
    }
}

/// Why a signal could not be sent.
#[derive(Debug)]
pub enum SendError {
    Open {
        path: PathBuf,
        error: io::Error,
    },
    Read {
        path: PathBuf,
        error: io::Error,
    },
    InvalidPid {
        text: String,
        path: PathBuf,
    },
    Kill {
        pid: i32,
        signo: i32,
        error: io::Error,
    },
}

impl SendError {
    /// The level nginx logs this at.
    pub fn level(&self) -> Level {
        match self {
            SendError::Open { .. } | SendError::InvalidPid { .. } => Level::Error,
            SendError::Read { .. } => Level::Crit,
            SendError::Kill { .. } => Level::Alert,
        }
    }
}

/// `[level] message`, the part after `nginx-rs: `.
impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] ", self.level())?;
        match self {
            SendError::Open { path, error } => write!(
                f,
                "open() \"{}\" failed {}",
                path.display(),
                errno_text(error)
            ),
            SendError::Read { path, error } => write!(
                f,
                "pread() \"{}\" failed {}",
                path.display(),
                errno_text(error)
            ),
            SendError::InvalidPid { text, path } => {
                write!(f, "invalid PID number \"{text}\" in \"{}\"", path.display())
            }
            SendError::Kill { pid, signo, error } => {
                write!(f, "kill({pid}, {signo}) failed {}", errno_text(error))
            }
        }
    }
}

impl std::error::Error for SendError {}

/// Reads the pid from `pid_path` as nginx does: at most 22 bytes, trailing CR/LF stripped, digits only.
pub fn read_pid(pid_path: &Path) -> Result<i32, SendError> {
    let mut f = File::open(pid_path).map_err(|error| SendError::Open {
        path: pid_path.to_path_buf(),
        error,
    })?;
    let mut buf = Vec::with_capacity(22);
    f.by_ref()
        .take(22)
        .read_to_end(&mut buf)
        .map_err(|error| SendError::Read {
            path: pid_path.to_path_buf(),
            error,
        })?;
    while matches!(buf.last(), Some(b'\r' | b'\n')) {
        buf.pop();
    }
    let invalid = || SendError::InvalidPid {
        text: String::from_utf8_lossy(&buf).into_owned(),
        path: pid_path.to_path_buf(),
    };
    if buf.is_empty() || !buf.iter().all(u8::is_ascii_digit) {
        return Err(invalid());
    }
    match std::str::from_utf8(&buf)
        .ok()
        .and_then(|s| s.parse::<i32>().ok())
    {
        Some(pid) if pid > 0 => Ok(pid),
        _ => Err(invalid()),
    }
}

/// `-s NAME`: signal the process whose pid is in `pid_path`.
pub fn send_signal(pid_path: &Path, signal: Signal) -> Result<i32, SendError> {
    let pid = read_pid(pid_path)?;
    kill(pid, signal.number())?;
    Ok(pid)
}

/// kill(2) with nginx's error text on failure.
pub fn kill(pid: i32, signo: i32) -> Result<(), SendError> {
    // SAFETY: kill has no memory-safety preconditions; pid > 0 was checked by read_pid.
    if unsafe { libc::kill(pid, signo) } == 0 {
        Ok(())
    } else {
        Err(SendError::Kill {
            pid,
            signo,
            error: io::Error::last_os_error(),
        })
    }
}

/// The whole `-s NAME` action for the CLI: signal the process in `pid_path`, print nginx's message on
/// failure (`nginx-rs: [error] open() "..." failed (2: No such file or directory)`), return the exit
/// code (0 or 1).
pub fn cli(pid_path: &Path, signal: Signal) -> i32 {
    match send_signal(pid_path, signal) {
        Ok(_) => 0,
        Err(e) => {
            eprintln!("nginx-rs: {e}");
            1
        }
    }
}
