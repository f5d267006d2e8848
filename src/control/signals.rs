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

use std::io;

use tokio::signal::unix::{signal, Signal, SignalKind};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Reload,
    Reopen,
    GracefulStop,
    FastStop,
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
        Ok(Signals {
            hup: signal(SignalKind::hangup())?,
            usr1: signal(SignalKind::user_defined1())?,
            quit: signal(SignalKind::quit())?,
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// The next event. Stop signals win when several are pending, so a stop is never delayed by a
    /// burst of reloads.
    pub async fn recv(&mut self) -> Event {
        tokio::select! {
            biased;
            Some(()) = self.term.recv() => Event::FastStop,
            Some(()) = self.int.recv() => Event::FastStop,
            Some(()) = self.quit.recv() => Event::GracefulStop,
            Some(()) = self.hup.recv() => Event::Reload,
            Some(()) = self.usr1.recv() => Event::Reopen,
        }
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
