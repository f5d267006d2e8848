//! nginx's `ip_hash` (`ngx_http_upstream_get_ip_hash_peer`): starting from 89, for each byte of the
//! client address (first three octets of IPv4, all sixteen of IPv6, three zero bytes otherwise)
//! `hash = (hash * 113 + byte) % 6271`; the peer is found by walking weights with
//! `hash % total_weight`. An unusable peer re-hashes; after 20 misses, round robin.

use super::{round_robin, Tried};
use crate::runtime::upstream::peer::State;
use crate::runtime::upstream::SelectKey;

pub(crate) fn get(
    state: &mut State,
    key: SelectKey<'_>,
    tried: &mut Tried,
    now: u64,
) -> Option<(usize, usize)> {
    if !tried.started {
        tried.started = true;
        tried.hash = 89;
        tried.tries = 0;
    }
    let tier_idx = tried.tier;
    let tier = state.tiers.get_mut(tier_idx)?;
    if tried.tries > 20 || tier.peers.len() < 2 || tier.total_weight <= 0 {
        return round_robin::get(state, tried, now);
    }

    let mut buf = [0u8; 16];
    let len = match key {
        SelectKey::Ip(std::net::IpAddr::V4(a)) => {
            buf[..3].copy_from_slice(&a.octets()[..3]);
            3
        }
        SelectKey::Ip(std::net::IpAddr::V6(a)) => {
            buf = a.octets();
            16
        }
        // nginx's pseudo address for non-IP clients (unix sockets): three zero bytes.
        _ => 3,
    };
    let addr = &buf[..len];

    let mut hash = tried.hash;
    loop {
        for &b in addr {
            hash = (hash * 113 + u32::from(b)) % 6271;
        }
        let p = weighted_index(tier, i64::from(hash));
        if !tried.has(p) && tier.peers[p].usable(now) {
            tier.peers[p].take(now);
            tried.set(p);
            tried.hash = hash;
            return Some((tier_idx, p));
        }
        tried.tries += 1;
        if tried.tries > 20 {
            return round_robin::get(state, tried, now);
        }
    }
}

/// The peer owning position `hash % total_weight` when each peer covers `weight` positions.
pub(crate) fn weighted_index(tier: &crate::runtime::upstream::peer::Tier, hash: i64) -> usize {
    let mut w = hash % tier.total_weight;
    let mut p = 0;
    while p + 1 < tier.peers.len() && w >= tier.peers[p].info.weight {
        w -= tier.peers[p].info.weight;
        p += 1;
    }
    p
}
