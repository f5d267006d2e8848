//! Process control: the pid file, `-s` signal sending, the signal loop, reload orchestration, and the
//! privileged-supervisor design for reloading root-only configuration after dropping privileges.
//!
//! # API
//! - [`pid::PidFile::create`] after `runtime::bind` succeeded; keep the value alive until exit
//!   (its `Drop` removes the file).
//! - [`send::cli`]`(pid_path, Signal)` is the whole `-s` action (message + exit code);
//!   [`send::send_signal`] the part without printing.
//! - [`daemon::run`]`(plan, loader)` serves until stopped: the CLI's serve path.
//! - [`signals::Signals::install`] then `.recv().await` for [`signals::Event`]s (HUP reload, USR1
//!   reopen, QUIT graceful stop, TERM/INT fast stop).
//! - [`reload::reload`] runs one reload against a [`reload::Host`] (implemented by the runtime):
//!   compile, bind what is new, swap `Live`, close what was removed; on error log `[emerg]` and keep
//!   everything as it was. [`listen::diff`] is the listen-set diff it uses.
//! - [`fdpass`]: SCM_RIGHTS send/recv of bytes + file descriptors over a `UnixStream`.
//! - [`supervisor`]: the privilege design (module doc), [`supervisor::run`] (the root supervisor
//!   the CLI runs when started as root) and the [`supervisor::Bundle`] wire format; [`link`] pairs
//!   bundles with their descriptors; [`daemon::run_supervised`] is the serving half;
//!   [`privs`] resolves `user` and drops to it; [`logfds`] holds the log descriptors handed over.
//! - [`trim::release`] after start-up and each reload, in both processes: drops the code pages and
//!   free heap that reading and compiling a configuration touched once.

pub mod daemon;
pub mod fdpass;
pub mod link;
pub mod listen;
pub mod logfds;
pub mod pid;
pub mod privs;
pub mod reload;
pub mod send;
pub mod signals;
pub mod supervisor;
pub mod trim;

pub use send::{send_signal, SendError, Signal};

use std::io;

/// nginx's `(ERRNO: strerror)` suffix, e.g. `(2: No such file or directory)`.
pub fn errno_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => {
            let full = io::Error::from_raw_os_error(code).to_string();
            // std renders "MESSAGE (os error N)"; nginx wants "(N: MESSAGE)".
            let msg = full
                .strip_suffix(&format!(" (os error {code})"))
                .unwrap_or(&full);
            format!("({code}: {msg})")
        }
        None => format!("({e})"),
    }
}
