//! The signal loop: nginx's master-process signals, as events for the serving code.
//!
//! | signal      | event                     | nginx meaning                                   |
//! |-------------|---------------------------|-------------------------------------------------|
//! | SIGHUP      | [`Event::Reload`]         | re-read configuration, swap in if valid         |
//! | SIGUSR1     | [`Event::Reopen`]         | reopen log files (logrotate)                    |
//! | SIGQUIT     | [`Event::GracefulStop`]   | stop accepting, finish in-flight, exit 0        |
//! | SIGTERM/INT | [`Event::FastStop`]       | exit now                                        |
//!
//! Handlers are installed by [`Signals::install`] (inside a tokio runtime); from then on these signals
//! no longer kill the process but queue events. Several signals of one kind arriving before they are
//! handled collapse into one event, as with nginx.
//!
//! Beside tokio's handlers, a `SA_SIGINFO` action (chained through `signal-hook-registry`, which
//! tokio uses too) records the sender's pid, so the notice reads like nginx's:
//! `signal 1 (SIGHUP) received from 5678, reconfiguring` ([`Received::notice`]).

use std::io;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Once;

use tokio::signal::unix::{signal, Signal, SignalKind};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Reload,
    Reopen,
    GracefulStop,
    FastStop,
}

/// The signals handled, with the slot of their last sender's pid.
const WATCHED: [i32; 5] = [
    libc::SIGHUP,
    libc::SIGUSR1,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGINT,
];

/// The pid of the last sender of each watched signal (0 = the kernel or unknown), by index in
/// [`WATCHED`]. Written from the signal handler: an atomic store is async-signal-safe.
static SENDERS: [AtomicI32; 5] = [const { AtomicI32::new(0) }; 5];

fn slot(signo: i32) -> Option<usize> {
    WATCHED.iter().position(|&s| s == signo)
}

fn record_senders() -> io::Result<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        for (i, &signo) in WATCHED.iter().enumerate() {
            // SAFETY: the action only reads siginfo and stores into a static atomic, which is
            // async-signal-safe; it never panics or allocates.
            let r = unsafe {
                signal_hook_registry::register_sigaction(signo, move |info: &libc::siginfo_t| {
                    SENDERS[i].store(info.si_pid(), Ordering::Release);
                })
            };
            if let Err(e) = r {
                result = Err(e);
                return;
            }
        }
    });
    result
}

/// One handled signal: what it means, its number, and who sent it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    pub event: Event,
    pub signo: i32,
    /// The sender's pid; `None` when the kernel sent it (or the pid is unknown).
    pub from: Option<i32>,
}

impl Received {
    /// nginx's notice, e.g. `signal 1 (SIGHUP) received from 5678, reconfiguring`.
    pub fn notice(&self) -> String {
        let action = match self.event {
            Event::Reload => "reconfiguring",
            Event::Reopen => "reopening logs",
            Event::GracefulStop => "shutting down",
            Event::FastStop => "exiting",
        };
        let name = match self.signo {
            libc::SIGHUP => "SIGHUP",
            libc::SIGUSR1 => "SIGUSR1",
            libc::SIGQUIT => "SIGQUIT",
            libc::SIGTERM => "SIGTERM",
            libc::SIGINT => "SIGINT",
            _ => "?",
        };
        match self.from {
            Some(pid) => format!(
                "signal {} ({name}) received from {pid}, {action}",
                self.signo
            ),
            None => format!("signal {} ({name}) received, {action}", self.signo),
        }
    }
}

/// Installed signal handlers; [`Signals::recv`] yields the next event.
pub struct Signals {
    hup: Signal,
    usr1: Signal,
    quit: Signal,
    term: Signal,
    int: Signal,
}

impl Signals {
    /// Installs the handlers. Must be called inside a tokio runtime.
    pub fn install() -> io::Result<Signals> {
        // Before tokio's handlers: the registry runs actions in registration order, so the
        // sender is stored before tokio's action wakes the task that reads it.
        record_senders()?;
        let s = Signals {
            hup: signal(SignalKind::hangup())?,
            usr1: signal(SignalKind::user_defined1())?,
            quit: signal(SignalKind::quit())?,
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        };
        Ok(s)
    }

    /// The next event. Stop signals win when several are pending, so a stop is never delayed by a
    /// burst of reloads.
    pub async fn recv(&mut self) -> Event {
        self.recv_from().await.event
    }

    /// The next event with its signal number and sender.
    pub async fn recv_from(&mut self) -> Received {
        let (event, signo) = tokio::select! {
            biased;
            Some(()) = self.term.recv() => (Event::FastStop, libc::SIGTERM),
            Some(()) = self.int.recv() => (Event::FastStop, libc::SIGINT),
            Some(()) = self.quit.recv() => (Event::GracefulStop, libc::SIGQUIT),
            Some(()) = self.hup.recv() => (Event::Reload, libc::SIGHUP),
            Some(()) = self.usr1.recv() => (Event::Reopen, libc::SIGUSR1),
        };
        let from = slot(signo)
            .map(|i| SENDERS[i].load(Ordering::Acquire))
            .filter(|&p| p > 0);
        Received { event, signo, from }
    }

    /// Runs the loop on its own task, delivering events on a channel (for code that prefers
    /// `select!` over a receiver). The task ends when the receiver is dropped.
    pub fn spawn(mut self) -> tokio::sync::mpsc::UnboundedReceiver<Event> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let ev = self.recv().await;
                if tx.send(ev).is_err() {
                    return;
                }
            }
        });
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_are_nginx_lines() {
        let r = Received {
            event: Event::Reload,
            signo: libc::SIGHUP,
            from: Some(5678),
        };
        assert_eq!(
            r.notice(),
            "signal 1 (SIGHUP) received from 5678, reconfiguring"
        );
        let r = Received {
            event: Event::FastStop,
            signo: libc::SIGTERM,
            from: None,
        };
        assert_eq!(r.notice(), "signal 15 (SIGTERM) received, exiting");
        let r = Received {
            event: Event::Reopen,
            signo: libc::SIGUSR1,
            from: Some(1),
        };
        assert_eq!(
            r.notice(),
            "signal 10 (SIGUSR1) received from 1, reopening logs"
        );
    }
}
