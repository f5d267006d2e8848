//! Peers and their run-time state: what nginx keeps in `ngx_http_upstream_rr_peer_t`
//! (weights, fails, timestamps, active connections), grouped in tiers (primary, backup).
//!
//! All of it lives behind one mutex per group (`State`), as nginx's per-group lock.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::plan::{PeerAddr, UpstreamServer};

/// What never changes about a peer once built.
#[derive(Debug)]
pub(crate) struct PeerInfo {
    pub addr: PeerAddr,
    /// The `server` name as written (nginx's `peer->server`; the consistent-hash key).
    pub server: Arc<str>,
    /// Index of the `server` line in `Upstream::servers`.
    pub server_idx: usize,
    pub weight: i64,
    pub max_fails: u32,
    pub fail_timeout_ms: u64,
    pub down: bool,
    /// 0 = unlimited.
    pub max_conns: u32,
    /// Its counters for `metrics` (`status::Status::peer_at`, looked up on first use: that is
    /// a search under the process-wide lock).
    pub stats: OnceLock<Arc<crate::runtime::status::PeerStats>>,
}

/// What balancing changes (nginx's fields of the same names).
#[derive(Clone, Debug, Default)]
pub(crate) struct PeerState {
    pub current_weight: i64,
    pub effective_weight: i64,
    pub fails: u32,
    /// Time of the last failure (ms on `now_ms`'s clock).
    pub accessed: u64,
    /// Start of the current `fail_timeout` window (ms).
    pub checked: u64,
    /// Requests currently using the peer (least_conn, max_conns).
    pub conns: u32,
}

#[derive(Debug)]
pub(crate) struct Peer {
    pub info: Arc<PeerInfo>,
    pub st: PeerState,
}

impl Peer {
    pub fn new(info: Arc<PeerInfo>) -> Peer {
        let st = PeerState {
            effective_weight: info.weight,
            ..PeerState::default()
        };
        Peer { info, st }
    }

    /// nginx's availability test shared by every method: not `down`, not failed within
    /// `fail_timeout`, under `max_conns`.
    pub fn usable(&self, now: u64) -> bool {
        let (i, s) = (&self.info, &self.st);
        if i.down {
            return false;
        }
        if i.max_fails > 0
            && s.fails >= i.max_fails
            && now.saturating_sub(s.checked) <= i.fail_timeout_ms
        {
            return false;
        }
        !(i.max_conns > 0 && s.conns >= i.max_conns)
    }

    /// Bookkeeping when the peer is chosen (every method does this).
    pub fn take(&mut self, now: u64) {
        self.st.conns += 1;
        if now.saturating_sub(self.st.checked) > self.info.fail_timeout_ms {
            self.st.checked = now;
        }
    }
}

/// The primary servers or the backup servers of a group (nginx's `ngx_http_upstream_rr_peers_t`).
#[derive(Debug, Default)]
pub(crate) struct Tier {
    pub peers: Vec<Peer>,
    pub total_weight: i64,
    /// One peer and no backup tier: nginx never marks it failed and never retries it.
    pub single: bool,
    /// Peers not `down` (nginx's `peers->tries`).
    pub tries: usize,
}

impl Tier {
    fn build(servers: &[(usize, &UpstreamServer)], existing: &[Peer]) -> Tier {
        let mut peers = Vec::new();
        for &(idx, s) in servers {
            for addr in &s.addrs {
                // Keep the state of a peer that survives a re-resolution.
                if let Some(old) = existing
                    .iter()
                    .find(|p| p.info.server_idx == idx && p.info.addr == *addr)
                {
                    peers.push(Peer {
                        info: old.info.clone(),
                        st: old.st.clone(),
                    });
                    continue;
                }
                peers.push(Peer::new(Arc::new(PeerInfo {
                    addr: addr.clone(),
                    server: s.name.as_str().into(),
                    server_idx: idx,
                    // nginx's weight is at least 1 (the parser rejects 0).
                    weight: i64::from(s.weight.max(1)),
                    max_fails: s.max_fails,
                    fail_timeout_ms: duration_ms(s.fail_timeout),
                    down: s.down,
                    max_conns: s.max_conns,
                    stats: OnceLock::new(),
                })));
            }
        }
        let total_weight = peers.iter().map(|p| p.info.weight).sum();
        let tries = peers.iter().filter(|p| !p.info.down).count();
        Tier {
            single: peers.len() == 1,
            peers,
            total_weight,
            tries,
        }
    }
}

/// Everything mutable about a group, under its mutex.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// `tiers[0]`: primary servers; `tiers[1]` (if any): backup servers.
    pub tiers: Vec<Tier>,
    /// Bumped whenever the peer list changes (re-resolution), so per-request state can notice.
    pub generation: u64,
}

impl State {
    /// Builds the tiers from the plan, reusing the state of peers in `old` that are still there.
    pub fn build(servers: &[UpstreamServer], old: Option<&State>) -> State {
        let primary: Vec<_> = servers
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.backup)
            .collect();
        let backup: Vec<_> = servers
            .iter()
            .enumerate()
            .filter(|(_, s)| s.backup)
            .collect();
        let old_tier = |i: usize| {
            old.and_then(|o| o.tiers.get(i))
                .map_or(&[][..], |t| &t.peers[..])
        };
        let mut tiers = vec![Tier::build(&primary, old_tier(0))];
        if !backup.is_empty() {
            // nginx: with backup servers, the primary tier is never "single".
            tiers[0].single = false;
            let mut b = Tier::build(&backup, old_tier(1));
            b.single = false;
            tiers.push(b);
        }
        State {
            tiers,
            generation: old.map_or(0, |o| o.generation + 1),
        }
    }
}

pub(crate) fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Milliseconds on a monotonic clock. Starts far from zero so that a peer's zeroed `checked`
/// and `accessed` read as "long ago", as nginx's zeroed `time_t` fields do.
pub(crate) fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    const OFFSET: u64 = 1 << 40;
    OFFSET + duration_ms(START.get_or_init(Instant::now).elapsed())
}
