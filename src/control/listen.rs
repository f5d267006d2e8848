//! Listen sets across a reload: which sockets stay, which are new, which go.
//!
//! The rule that makes reload lossless: a socket whose address is in both the old and the new
//! configuration is *kept* (the same file descriptor keeps accepting, its backlog intact); only new
//! addresses are bound and only removed ones are closed. Binding is all-or-nothing: if one new
//! address fails, the ones bound for this reload are dropped and the old set is untouched.

use std::io;

use crate::plan::ListenAddr;

/// The difference between two listen sets, each in configuration order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListenDiff {
    pub keep: Vec<ListenAddr>,
    pub add: Vec<ListenAddr>,
    pub remove: Vec<ListenAddr>,
}

pub fn diff(old: &[ListenAddr], new: &[ListenAddr]) -> ListenDiff {
    let mut d = ListenDiff::default();
    for a in new {
        if d.keep.contains(a) || d.add.contains(a) {
            continue;
        }
        if old.contains(a) {
            d.keep.push(a.clone());
        } else {
            d.add.push(a.clone());
        }
    }
    for a in old {
        if !new.contains(a) && !d.remove.contains(a) {
            d.remove.push(a.clone());
        }
    }
    d
}

/// `bind() to 0.0.0.0:80 failed (98: Address already in use)`, nginx's wording.
#[derive(Debug)]
pub struct BindError {
    pub addr: ListenAddr,
    pub error: io::Error,
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let addr = match &self.addr {
            ListenAddr::Inet(a) => a.to_string(),
            ListenAddr::Unix(p) => format!("unix:{}", p.display()),
        };
        write!(
            f,
            "bind() to {addr} failed {}",
            super::errno_text(&self.error)
        )
    }
}

impl std::error::Error for BindError {}

/// The process's bound sockets, by address. `L` is whatever the runtime keeps per socket (a std
/// listener, or a handle that also stops its accept loop when dropped).
#[derive(Debug)]
pub struct ListenerSet<L> {
    entries: Vec<(ListenAddr, L)>,
}

impl<L> Default for ListenerSet<L> {
    fn default() -> Self {
        ListenerSet {
            entries: Vec::new(),
        }
    }
}

impl<L> ListenerSet<L> {
    pub fn new(entries: Vec<(ListenAddr, L)>) -> Self {
        ListenerSet { entries }
    }

    pub fn addrs(&self) -> Vec<ListenAddr> {
        self.entries.iter().map(|(a, _)| a.clone()).collect()
    }

    pub fn get(&self, addr: &ListenAddr) -> Option<&L> {
        self.entries.iter().find(|(a, _)| a == addr).map(|(_, l)| l)
    }

    pub fn iter(&self) -> impl Iterator<Item = &(ListenAddr, L)> {
        self.entries.iter()
    }

    /// Binds every address in `d.add` with `bind`. On success returns the new sockets (not yet in the
    /// set: call [`ListenerSet::commit`] once the new configuration is live). On the first failure
    /// the sockets bound so far are dropped (closed) and the error is returned; the set is unchanged.
    pub fn bind_new(
        &self,
        d: &ListenDiff,
        mut bind: impl FnMut(&ListenAddr) -> io::Result<L>,
    ) -> Result<Vec<(ListenAddr, L)>, BindError> {
        let mut fresh = Vec::with_capacity(d.add.len());
        for a in &d.add {
            match bind(a) {
                Ok(l) => fresh.push((a.clone(), l)),
                Err(error) => {
                    return Err(BindError {
                        addr: a.clone(),
                        error,
                    })
                }
            }
        }
        Ok(fresh)
    }

    /// Adds the new sockets and takes out the removed ones, which are returned so the caller can stop
    /// their accept loops and close them. Kept sockets are not touched.
    pub fn commit(&mut self, d: &ListenDiff, fresh: Vec<(ListenAddr, L)>) -> Vec<(ListenAddr, L)> {
        let mut removed = Vec::new();
        let mut kept = Vec::with_capacity(self.entries.len() + fresh.len());
        for (a, l) in self.entries.drain(..) {
            if d.remove.contains(&a) {
                removed.push((a, l));
            } else {
                kept.push((a, l));
            }
        }
        kept.extend(fresh);
        self.entries = kept;
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn inet(s: &str) -> ListenAddr {
        ListenAddr::Inet(s.parse().expect("addr"))
    }

    #[test]
    fn diff_keeps_adds_removes() {
        let old = [inet("127.0.0.1:1"), inet("127.0.0.1:2")];
        let new = [
            inet("127.0.0.1:2"),
            inet("127.0.0.1:3"),
            inet("127.0.0.1:3"),
        ];
        let d = diff(&old, &new);
        assert_eq!(d.keep, [inet("127.0.0.1:2")]);
        assert_eq!(d.add, [inet("127.0.0.1:3")]);
        assert_eq!(d.remove, [inet("127.0.0.1:1")]);
    }

    #[test]
    fn kept_socket_is_the_same_fd_and_failed_bind_changes_nothing() {
        use std::os::fd::AsRawFd;
        let a = TcpListener::bind("127.0.0.1:0").expect("bind a");
        let b = TcpListener::bind("127.0.0.1:0").expect("bind b");
        let (aa, ba) = (
            ListenAddr::Inet(a.local_addr().expect("addr")),
            ListenAddr::Inet(b.local_addr().expect("addr")),
        );
        let a_fd = a.as_raw_fd();
        let mut set = ListenerSet::new(vec![(aa.clone(), a), (ba.clone(), b)]);

        // A new address that is already taken: nothing changes.
        let taken = TcpListener::bind("127.0.0.1:0").expect("bind taken");
        let ta = ListenAddr::Inet(taken.local_addr().expect("addr"));
        let d = diff(&set.addrs(), &[aa.clone(), ta.clone()]);
        let err = set
            .bind_new(&d, |addr| match addr {
                ListenAddr::Inet(s) => TcpListener::bind(s),
                ListenAddr::Unix(_) => Err(io::ErrorKind::Unsupported.into()),
            })
            .expect_err("address in use");
        assert!(
            err.to_string()
                .contains("failed (98: Address already in use)"),
            "{err}"
        );
        assert_eq!(set.addrs(), [aa.clone(), ba.clone()]);

        // A free address: a is kept (same fd), b is handed back for closing, c added.
        drop(taken);
        let c = TcpListener::bind("127.0.0.1:0").expect("bind c");
        let ca = ListenAddr::Inet(c.local_addr().expect("addr"));
        drop(c);
        let d = diff(&set.addrs(), &[aa.clone(), ca.clone()]);
        let fresh = set
            .bind_new(&d, |addr| match addr {
                ListenAddr::Inet(s) => TcpListener::bind(s),
                ListenAddr::Unix(_) => Err(io::ErrorKind::Unsupported.into()),
            })
            .expect("bind new");
        let removed = set.commit(&d, fresh);
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].0, ba);
        assert_eq!(set.addrs(), [aa.clone(), ca]);
        assert_eq!(set.get(&aa).expect("kept").as_raw_fd(), a_fd);
    }
}
