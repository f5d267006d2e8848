//! nginx's `random` and `random two [least_conn]` (ngx_http_upstream_random_module): a peer drawn
//! with probability proportional to its weight; with `two`, two distinct usable peers are drawn and
//! the one with fewer connections relative to weight wins (the first drawn on a tie; least_conn is
//! the only method `two` has). Unusable draws count as misses; after 20, round robin.

use super::{round_robin, Tried};
use crate::runtime::upstream::peer::{State, Tier};

pub(crate) fn get(
    state: &mut State,
    two: bool,
    tried: &mut Tried,
    now: u64,
) -> Option<(usize, usize)> {
    if !tried.started {
        tried.started = true;
        tried.tries = 0;
    }
    let tier_idx = tried.tier;
    let tier = state.tiers.get_mut(tier_idx)?;
    if tried.tries > 20 || tier.peers.len() < 2 || tier.total_weight <= 0 {
        return round_robin::get(state, tried, now);
    }
    let mut prev: Option<usize> = None;
    loop {
        let i = peek(tier);
        let ok = prev != Some(i) && !tried.has(i) && tier.peers[i].usable(now);
        if ok {
            if !two {
                return Some(finish(tier_idx, tier, tried, i, now));
            }
            if let Some(p) = prev {
                let (a, b) = (&tier.peers[i], &tier.peers[p]);
                let i_busier =
                    i64::from(a.st.conns) * b.info.weight > i64::from(b.st.conns) * a.info.weight;
                let chosen = if i_busier { p } else { i };
                return Some(finish(tier_idx, tier, tried, chosen, now));
            }
            // nginx counts the first draw of a pair as a turn too.
            prev = Some(i);
        }
        tried.tries += 1;
        if tried.tries > 20 {
            return round_robin::get(state, tried, now);
        }
    }
}

fn finish(
    tier_idx: usize,
    tier: &mut Tier,
    tried: &mut Tried,
    i: usize,
    now: u64,
) -> (usize, usize) {
    tier.peers[i].take(now);
    tried.set(i);
    (tier_idx, i)
}

/// A peer index drawn with probability weight / total_weight.
fn peek(tier: &Tier) -> usize {
    let total = u64::try_from(tier.total_weight).unwrap_or(1).max(1);
    let mut x = i64::try_from(fastrand::u64(..total)).unwrap_or(0);
    for (i, p) in tier.peers.iter().enumerate() {
        if x < p.info.weight {
            return i;
        }
        x -= p.info.weight;
    }
    tier.peers.len() - 1
}
