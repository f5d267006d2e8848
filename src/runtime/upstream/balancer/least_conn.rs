//! nginx's `least_conn` (`ngx_http_upstream_get_least_conn_peer`): the peer with the fewest active
//! connections relative to its weight (`conns_a * weight_b < conns_b * weight_a`); ties are broken
//! by smooth weighted round robin among the tied peers, starting at the first of them.

use super::{round_robin, Tried};
use crate::runtime::upstream::peer::State;

pub(crate) fn get(state: &mut State, tried: &mut Tried, now: u64) -> Option<(usize, usize)> {
    loop {
        let tier_idx = tried.tier;
        let tier = state.tiers.get_mut(tier_idx)?;
        if tier.single {
            return round_robin::get(state, tried, now);
        }

        let mut best: Option<usize> = None;
        let mut many = false;
        for i in 0..tier.peers.len() {
            let p = &tier.peers[i];
            if tried.has(i) || !p.usable(now) {
                continue;
            }
            match best {
                None => {
                    best = Some(i);
                    many = false;
                }
                Some(b) => {
                    let bp = &tier.peers[b];
                    let lhs = i64::from(p.st.conns) * bp.info.weight;
                    let rhs = i64::from(bp.st.conns) * p.info.weight;
                    if lhs < rhs {
                        best = Some(i);
                        many = false;
                    } else if lhs == rhs {
                        many = true;
                    }
                }
            }
        }

        let Some(first) = best else {
            if tier_idx + 1 < state.tiers.len() {
                tried.tier = tier_idx + 1;
                tried.clear();
                continue;
            }
            return None;
        };

        let mut b = first;
        let mut total = 0i64;
        if many {
            for i in first..tier.peers.len() {
                if tried.has(i) || !tier.peers[i].usable(now) {
                    continue;
                }
                // Compared with the current best, as nginx does while it moves `best`.
                let (conns_i, w_i) = (tier.peers[i].st.conns, tier.peers[i].info.weight);
                let (conns_b, w_b) = (tier.peers[b].st.conns, tier.peers[b].info.weight);
                if i64::from(conns_i) * w_b != i64::from(conns_b) * w_i {
                    continue;
                }
                let p = &mut tier.peers[i];
                p.st.current_weight += p.st.effective_weight;
                total += p.st.effective_weight;
                if p.st.effective_weight < p.info.weight {
                    p.st.effective_weight += 1;
                }
                if p.st.current_weight > tier.peers[b].st.current_weight {
                    b = i;
                }
            }
        }

        let peer = &mut tier.peers[b];
        peer.st.current_weight -= total;
        peer.take(now);
        tried.set(b);
        return Some((tier_idx, b));
    }
}
