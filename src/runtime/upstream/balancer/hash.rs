//! nginx's `hash KEY` and `hash KEY consistent` (ngx_http_upstream_hash_module).
//!
//! - `hash`: `hash += (crc32([REHASH] KEY) >> 16) & 0x7fff` (REHASH = the decimal retry count,
//!   omitted the first time), peer = weight walk of `hash % total_weight`; an unusable peer
//!   re-hashes; after 20 misses (or for an empty key / single peer) round robin.
//! - `consistent`: a ketama ring of `160 * weight` points per peer; point hashes are
//!   `crc32(HOST "\0" PORT PREV)` where PREV is the previous point's hash as 4 little-endian bytes
//!   (zero for the first); the key's `crc32` picks the first point at or after it, and among the
//!   usable peers of that point's `server` (one per address) smooth weighted round robin decides.
//!   An unusable point moves to the next point; after 20 misses, round robin.

use std::sync::Arc;

use super::ip_hash::weighted_index;
use super::{round_robin, Tried};
use crate::runtime::upstream::peer::{Peer, State};

/// One point of the consistent-hash ring.
#[derive(Clone, Debug)]
pub(crate) struct ChashPoint {
    pub hash: u32,
    pub server: Arc<str>,
}

pub(crate) fn get(
    state: &mut State,
    key: &[u8],
    tried: &mut Tried,
    now: u64,
) -> Option<(usize, usize)> {
    if !tried.started {
        tried.started = true;
        tried.hash = 0;
        tried.rehash = 0;
        tried.tries = 0;
    }
    let tier_idx = tried.tier;
    let tier = state.tiers.get_mut(tier_idx)?;
    if tried.tries > 20 || tier.single || key.is_empty() || tier.total_weight <= 0 {
        return round_robin::get(state, tried, now);
    }
    loop {
        let mut crc = crc32fast::Hasher::new();
        if tried.rehash > 0 {
            crc.update(tried.rehash.to_string().as_bytes());
        }
        crc.update(key);
        let h = (crc.finalize() >> 16) & 0x7fff;
        tried.hash = tried.hash.wrapping_add(h);
        tried.rehash += 1;

        let p = weighted_index(tier, i64::from(tried.hash));
        if !tried.has(p) && tier.peers[p].usable(now) {
            tier.peers[p].take(now);
            tried.set(p);
            return Some((tier_idx, p));
        }
        tried.tries += 1;
        if tried.tries > 20 {
            return round_robin::get(state, tried, now);
        }
    }
}

pub(crate) fn get_consistent(
    state: &mut State,
    points: &[ChashPoint],
    key: &[u8],
    tried: &mut Tried,
    now: u64,
) -> Option<(usize, usize)> {
    if !tried.started {
        tried.started = true;
        tried.hash = find_point(points, crc32fast::hash(key));
        tried.tries = 0;
    }
    let tier_idx = tried.tier;
    let tier = state.tiers.get_mut(tier_idx)?;
    if tried.tries > 20 || tier.single || key.is_empty() || points.is_empty() {
        return round_robin::get(state, tried, now);
    }
    loop {
        let server = &points[tried.hash as usize % points.len()].server;
        let mut best: Option<usize> = None;
        let mut total = 0i64;
        for i in 0..tier.peers.len() {
            if tried.has(i) || !tier.peers[i].usable(now) || *tier.peers[i].info.server != **server
            {
                continue;
            }
            let p = &mut tier.peers[i];
            p.st.current_weight += p.st.effective_weight;
            total += p.st.effective_weight;
            if p.st.effective_weight < p.info.weight {
                p.st.effective_weight += 1;
            }
            let cw = p.st.current_weight;
            if best.map_or(true, |b| cw > tier.peers[b].st.current_weight) {
                best = Some(i);
            }
        }
        if let Some(b) = best {
            let p = &mut tier.peers[b];
            p.st.current_weight -= total;
            p.take(now);
            tried.set(b);
            return Some((tier_idx, b));
        }
        tried.hash = tried.hash.wrapping_add(1);
        tried.tries += 1;
        if tried.tries > 20 {
            return round_robin::get(state, tried, now);
        }
    }
}

/// The ring for the primary peers, sorted by hash with duplicate hashes removed (first kept).
pub(crate) fn build_points(peers: &[Peer]) -> Vec<ChashPoint> {
    let mut points = Vec::new();
    for peer in peers {
        let server = &peer.info.server;
        let (host, port) = split_server(server.as_bytes());
        let mut base = crc32fast::Hasher::new();
        base.update(host);
        base.update(b"\0");
        base.update(port);
        let mut prev = 0u32;
        let n = usize::try_from(peer.info.weight).unwrap_or(0) * 160;
        for _ in 0..n {
            let mut h = base.clone();
            h.update(&prev.to_le_bytes());
            let hash = h.finalize();
            points.push(ChashPoint {
                hash,
                server: server.clone(),
            });
            prev = hash;
        }
    }
    points.sort_by_key(|p| p.hash);
    points.dedup_by_key(|p| p.hash);
    points
}

/// nginx's split of a `server` name into host and port for the ring: `unix:PATH` → (PATH, "");
/// a trailing `:DIGITS` is the port; otherwise all host.
fn split_server(s: &[u8]) -> (&[u8], &[u8]) {
    if s.len() >= 5 && s[..5].eq_ignore_ascii_case(b"unix:") {
        return (&s[5..], b"");
    }
    for j in 0..s.len() {
        let c = s[s.len() - j - 1];
        if c == b':' {
            return (&s[..s.len() - j - 1], &s[s.len() - j..]);
        }
        if !c.is_ascii_digit() {
            break;
        }
    }
    (s, b"")
}

/// Index of the first point whose hash is >= `hash` (may be `points.len()`; callers take it
/// modulo the ring size).
fn find_point(points: &[ChashPoint], hash: u32) -> u32 {
    let i = points.partition_point(|p| p.hash < hash);
    u32::try_from(i).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::split_server;

    #[test]
    fn splits_server_names_like_nginx() {
        assert_eq!(
            split_server(b"10.0.0.1:8080"),
            (&b"10.0.0.1"[..], &b"8080"[..])
        );
        assert_eq!(
            split_server(b"example.com"),
            (&b"example.com"[..], &b""[..])
        );
        assert_eq!(split_server(b"unix:/tmp/s"), (&b"/tmp/s"[..], &b""[..]));
        assert_eq!(split_server(b"[::1]:81"), (&b"[::1]"[..], &b"81"[..]));
        assert_eq!(split_server(b"host:"), (&b"host"[..], &b""[..]));
    }
}
