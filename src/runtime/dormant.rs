//! Parked keepalive connections held outside tokio until their client's next bytes.
//!
//! A connection that waited a sweep for its next request parks ([`super::park`]). Inside tokio
//! a parked connection still costs its task, its serving future, a keepalive timer, a stop
//! watch and tokio's registration of its socket: about 2.1 KB each, against nginx's ~740 bytes.
//! On nginx-rs's own HTTP/1 server it leaves tokio instead: its task ends, its socket leaves
//! tokio's event loop, and what it needs to go on (a value `T`, which owns the socket) goes into
//! a slot of a [`Dormant`] set. A set is a slab of such values, an epoll instance (mio) watching
//! their sockets, and their `keepalive_timeout` deadlines; one task per set waits on all three
//! and on the graceful stop:
//! - a socket turns readable (the next request, or the client's close): the value leaves the
//!   set and is handed to the set's `wake` function, which gives it a task again;
//! - its deadline passes: the value is dropped (the socket closes), as nginx closes a keepalive
//!   connection at `keepalive_timeout`;
//! - a graceful stop: every value is dropped, as nginx closes idle connections when it stops.
//!
//! Only connections that were idle a sweep (10-20 ms) pay for it: two `epoll_ctl` calls to
//! leave tokio and enter the set, two to go back, and a new task.

use std::collections::BTreeSet;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token};
use slab::Slab;
use tokio::io::unix::AsyncFd;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

/// A set of sleeping connections; see the module doc.
pub struct Dormant<T> {
    set: Mutex<Set<T>>,
    /// Registers sockets with the set's epoll instance (the task owns the instance itself).
    registry: Registry,
    /// Told when a value was held with a deadline earlier than every other one.
    rearm: Notify,
}

struct Set<T> {
    slots: Slab<Slot<T>>,
    /// Every held value's deadline, with its slot, earliest first.
    deadlines: BTreeSet<(Instant, usize)>,
    /// The set stopped (graceful stop, or its task ended): it holds nothing more.
    closed: bool,
}

struct Slot<T> {
    conn: T,
    deadline: Instant,
}

/// Events taken from the epoll instance per call.
const EVENTS: usize = 256;

impl<T: AsRawFd + Send + 'static> Dormant<T> {
    /// A new set with its task on the current tokio runtime. The task runs until `shutdown`
    /// turns true (or its sender is gone); `wake` gets each value whose socket turned readable.
    pub fn start<W>(shutdown: watch::Receiver<bool>, wake: W) -> io::Result<Arc<Self>>
    where
        W: FnMut(T, &Arc<Dormant<T>>) + Send + 'static,
    {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        // SAFETY: a mio `Poll` owns its epoll descriptor from creation to drop, and `as_raw_fd`
        // always returns that one descriptor.
        let epoll =
            unsafe { AsyncFd::register_with_interest(poll, tokio::io::Interest::READABLE) }?;
        let dormant = Arc::new(Dormant {
            set: Mutex::new(Set {
                slots: Slab::new(),
                deadlines: BTreeSet::new(),
                closed: false,
            }),
            registry,
            rearm: Notify::new(),
        });
        tokio::spawn(dormant.clone().run(epoll, shutdown, wake));
        Ok(dormant)
    }

    /// Holds `conn` until its socket turns readable, `timeout` passes, or the set stops. Gives
    /// it back when the set cannot take it (stopped, or the socket could not be registered).
    pub fn hold(&self, conn: T, timeout: Duration) -> Result<(), T> {
        let deadline = Instant::now() + timeout;
        let mut set = self.lock();
        if set.closed {
            return Err(conn);
        }
        let entry = set.slots.vacant_entry();
        let key = entry.key();
        // Registered under the lock: the task looks up an event's slot under it too.
        let fd = conn.as_raw_fd();
        if self
            .registry
            .register(&mut SourceFd(&fd), Token(key), Interest::READABLE)
            .is_err()
        {
            return Err(conn);
        }
        entry.insert(Slot { conn, deadline });
        let earliest = set.deadlines.first().map_or(true, |&(d, _)| deadline < d);
        set.deadlines.insert((deadline, key));
        drop(set);
        if earliest {
            self.rearm.notify_one();
        }
        Ok(())
    }

    /// How many connections the set holds.
    pub fn len(&self) -> usize {
        self.lock().slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Set<T>> {
        self.set.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn run<W>(
        self: Arc<Self>,
        mut epoll: AsyncFd<Poll>,
        mut shutdown: watch::Receiver<bool>,
        mut wake: W,
    ) where
        W: FnMut(T, &Arc<Dormant<T>>),
    {
        let mut events = Events::with_capacity(EVENTS);
        let mut woken = Vec::new();
        while !*shutdown.borrow() {
            let next = self.expire(Instant::now());
            tokio::select! {
                r = shutdown.changed() => if r.is_err() { break },
                r = epoll.readable_mut() => {
                    let Ok(mut ready) = r else { break };
                    // Drained until a call comes back short, then marked not ready: an event
                    // that arrives after the last call makes it ready again (tokio's readiness
                    // tick), so none is lost.
                    loop {
                        if ready.get_inner_mut().poll(&mut events, Some(Duration::ZERO)).is_err() {
                            break;
                        }
                        let n = events.iter().count();
                        self.take_ready(&events, &mut woken);
                        for conn in woken.drain(..) {
                            wake(conn, &self);
                        }
                        if n < EVENTS {
                            break;
                        }
                    }
                    ready.clear_ready();
                }
                _ = sleep_until(next) => {}
                _ = self.rearm.notified() => {}
            }
        }
        self.close();
    }

    /// Takes the values whose sockets `events` report, out of the set and off its epoll.
    fn take_ready(&self, events: &Events, woken: &mut Vec<T>) {
        let mut set = self.lock();
        for event in events {
            let key = event.token().0;
            let Some(slot) = set.slots.try_remove(key) else {
                continue;
            };
            set.deadlines.remove(&(slot.deadline, key));
            self.deregister(slot.conn.as_raw_fd());
            woken.push(slot.conn);
        }
    }

    /// Drops the values whose deadline is past; the earliest deadline left.
    fn expire(&self, now: Instant) -> Option<Instant> {
        let mut expired = Vec::new();
        let next = {
            let mut set = self.lock();
            while let Some(&(deadline, key)) = set.deadlines.first() {
                if deadline > now {
                    break;
                }
                set.deadlines.pop_first();
                if let Some(slot) = set.slots.try_remove(key) {
                    self.deregister(slot.conn.as_raw_fd());
                    expired.push(slot.conn);
                }
            }
            set.deadlines.first().map(|&(d, _)| d)
        };
        // Closed outside the lock.
        drop(expired);
        next
    }

    fn deregister(&self, fd: RawFd) {
        // Fails only if the socket is not registered; the value leaves the set either way.
        let _ = self.registry.deregister(&mut SourceFd(&fd));
    }

    /// Stops the set: drops every value it holds, and every one offered later.
    fn close(&self) {
        let slots = {
            let mut set = self.lock();
            set.closed = true;
            set.deadlines.clear();
            std::mem::take(&mut set.slots)
        };
        drop(slots);
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    //! Unit tests only: the unwraps below never see config or request input.
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    /// A connected pair: the held end (non-blocking, as a parked socket is) and the client's.
    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (held, _) = l.accept().unwrap();
        held.set_nonblocking(true).unwrap();
        (held, client)
    }

    fn started(
        shutdown: watch::Receiver<bool>,
    ) -> (
        Arc<Dormant<TcpStream>>,
        tokio::sync::mpsc::UnboundedReceiver<TcpStream>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let d = Dormant::start(shutdown, move |s, _: &Arc<Dormant<TcpStream>>| {
            let _ = tx.send(s);
        })
        .unwrap();
        (d, rx)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_readable_socket_wakes_with_its_bytes_unread() {
        let (_stop, shutdown) = watch::channel(false);
        let (d, mut woken) = started(shutdown);
        let (held, mut client) = pair();
        let (quiet, _quiet_client) = pair();
        d.hold(held, Duration::from_secs(60)).unwrap();
        d.hold(quiet, Duration::from_secs(60)).unwrap();
        assert_eq!(d.len(), 2);
        client.write_all(b"GET / HTTP/1.1\r\n").unwrap();
        let mut back = woken.recv().await.unwrap();
        assert_eq!(d.len(), 1, "only the socket that turned readable leaves");
        back.set_nonblocking(false).unwrap();
        let mut got = [0; 16];
        back.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"GET / HTTP/1.1\r\n");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn bytes_sent_before_holding_still_wake() {
        let (_stop, shutdown) = watch::channel(false);
        let (d, mut woken) = started(shutdown);
        let (held, mut client) = pair();
        client.write_all(b"x").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        d.hold(held, Duration::from_secs(60)).unwrap();
        assert!(woken.recv().await.is_some());
        assert!(d.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn the_deadline_closes_the_socket() {
        let (_stop, shutdown) = watch::channel(false);
        let (d, _woken) = started(shutdown);
        let (long, _long_client) = pair();
        d.hold(long, Duration::from_secs(60)).unwrap();
        let (held, mut client) = pair();
        // Earlier than the one deadline the task sleeps until: it must re-arm.
        d.hold(held, Duration::from_millis(50)).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut byte = [0];
        assert_eq!(client.read(&mut byte).unwrap(), 0, "closed by the set");
        assert_eq!(d.len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_stop_closes_every_socket_and_refuses_more() {
        let (stop, shutdown) = watch::channel(false);
        let (d, _woken) = started(shutdown);
        let (held, mut client) = pair();
        d.hold(held, Duration::from_secs(60)).unwrap();
        stop.send(true).unwrap();
        let closed = tokio::task::spawn_blocking(move || {
            client
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            client.read(&mut [0]).unwrap()
        });
        assert_eq!(closed.await.unwrap(), 0);
        let (late, _late_client) = pair();
        assert!(d.hold(late, Duration::from_secs(60)).is_err());
    }
}
