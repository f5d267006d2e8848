//! The balancing methods, each a faithful re-implementation of its nginx module's peer selection:
//! round robin (smooth weighted), least_conn, ip_hash, hash, hash consistent, random (two).
//!
//! Every function here runs with the group's lock held and works on `State` plus the request's
//! `Tried`. They return the (tier, index) of the chosen peer; the caller does the bookkeeping that
//! outlives the lock (`PeerRef`).

mod hash;
mod ip_hash;
mod least_conn;
mod random;
mod round_robin;

pub(crate) use hash::{build_points, ChashPoint};

use super::peer::State;
use super::SelectKey;
use crate::plan::Balance;

/// Per-request balancing state: the peers already tried (nginx's `rrp->tried` bitmap) and the
/// method's own per-request fields (hash value, rehash count, tries before falling back to
/// round robin). Create one per client request with `Tried::new()` and pass it to every `select`.
#[derive(Clone, Debug, Default)]
pub struct Tried {
    bits: u64,
    more: Vec<u64>,
    /// 0 = primary servers, 1 = backup servers (nginx switches `rrp->peers` for the request).
    pub(crate) tier: usize,
    /// `State::generation` the bits refer to.
    generation: Option<u64>,
    /// hash / ip_hash / consistent hash: the running hash value (or ring position).
    pub(crate) hash: u32,
    /// hash: how many times the key was re-hashed.
    pub(crate) rehash: u32,
    /// hash / ip_hash / random: failed picks so far (over 20 → round robin).
    pub(crate) tries: u32,
    /// The method's per-request fields were initialised (nginx's `init_peer`).
    pub(crate) started: bool,
    attempts: u32,
}

impl Tried {
    pub fn new() -> Tried {
        Tried::default()
    }

    /// How many peers `select` returned for this request so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    pub(crate) fn has(&self, i: usize) -> bool {
        let (word, bit) = (i / 64, 1u64 << (i % 64));
        match word {
            0 => self.bits & bit != 0,
            w => self.more.get(w - 1).is_some_and(|x| x & bit != 0),
        }
    }

    pub(crate) fn set(&mut self, i: usize) {
        let (word, bit) = (i / 64, 1u64 << (i % 64));
        match word {
            0 => self.bits |= bit,
            w => {
                if self.more.len() < w {
                    self.more.resize(w, 0);
                }
                self.more[w - 1] |= bit;
            }
        }
    }

    pub(crate) fn clear(&mut self) {
        self.bits = 0;
        self.more.clear();
    }

    /// Forget the tried peers if the peer list changed since they were recorded.
    pub(crate) fn sync(&mut self, generation: u64) {
        if self.generation != Some(generation) {
            if self.generation.is_some() {
                self.clear();
                self.tier = 0;
            }
            self.generation = Some(generation);
        }
    }

    pub(crate) fn count_attempt(&mut self) {
        self.attempts += 1;
    }
}

/// Method data computed once per peer list (consistent-hash ring, random ranges).
#[derive(Debug, Default)]
pub(crate) struct Prepared {
    pub points: Vec<ChashPoint>,
}

impl Prepared {
    pub fn build(method: &Balance, state: &State) -> Prepared {
        match method {
            Balance::Hash {
                consistent: true, ..
            } => Prepared {
                points: build_points(state.tiers.first().map_or(&[][..], |t| &t.peers)),
            },
            _ => Prepared::default(),
        }
    }
}

/// Chooses a peer as nginx's method would; `None` = "no live upstreams".
pub(crate) fn select(
    method: &Balance,
    prepared: &Prepared,
    state: &mut State,
    key: SelectKey<'_>,
    tried: &mut Tried,
    now: u64,
) -> Option<(usize, usize)> {
    tried.sync(state.generation);
    match method {
        Balance::RoundRobin => round_robin::get(state, tried, now),
        Balance::LeastConn => least_conn::get(state, tried, now),
        Balance::IpHash => ip_hash::get(state, key, tried, now),
        Balance::Hash { consistent, .. } => {
            let key = match key {
                SelectKey::Bytes(b) => b,
                _ => &[],
            };
            if *consistent {
                hash::get_consistent(state, &prepared.points, key, tried, now)
            } else {
                hash::get(state, key, tried, now)
            }
        }
        Balance::Random { two, .. } => random::get(state, *two, tried, now),
    }
}
