//! nginx's smooth weighted round robin (`ngx_http_upstream_get_round_robin_peer`): each pick adds
//! every candidate's effective weight to its current weight, takes the largest, and subtracts the
//! total from the winner. Falls through to the backup tier when no primary is usable. Also the
//! fallback of every other method.

use super::Tried;
use crate::runtime::upstream::peer::{State, Tier};

pub(crate) fn get(state: &mut State, tried: &mut Tried, now: u64) -> Option<(usize, usize)> {
    loop {
        let tier_idx = tried.tier;
        let tier = state.tiers.get_mut(tier_idx)?;
        let picked = if tier.single {
            // nginx checks only `down` and `max_conns` for a lone peer: it is never "failed".
            let p = &tier.peers[0];
            let full = p.info.max_conns > 0 && p.st.conns >= p.info.max_conns;
            if p.info.down || full {
                None
            } else {
                tier.peers[0].take(now);
                Some(0)
            }
        } else {
            smooth_weighted(tier, tried, now)
        };
        if let Some(i) = picked {
            return Some((tier_idx, i));
        }
        // No usable peer in this tier: nginx moves the request to the backup servers.
        if tier_idx + 1 < state.tiers.len() {
            tried.tier = tier_idx + 1;
            tried.clear();
            continue;
        }
        return None;
    }
}

/// `ngx_http_upstream_get_peer`.
fn smooth_weighted(tier: &mut Tier, tried: &mut Tried, now: u64) -> Option<usize> {
    let mut best: Option<usize> = None;
    let mut total = 0i64;
    for i in 0..tier.peers.len() {
        if tried.has(i) || !tier.peers[i].usable(now) {
            continue;
        }
        let peer = &mut tier.peers[i];
        peer.st.current_weight += peer.st.effective_weight;
        total += peer.st.effective_weight;
        if peer.st.effective_weight < peer.info.weight {
            peer.st.effective_weight += 1;
        }
        let cw = peer.st.current_weight;
        // Strictly greater: the first of equal peers wins, as in nginx.
        if best.map_or(true, |b| cw > tier.peers[b].st.current_weight) {
            best = Some(i);
        }
    }
    let b = best?;
    tried.set(b);
    let peer = &mut tier.peers[b];
    peer.st.current_weight -= total;
    peer.take(now);
    Some(b)
}
