//! Balancing sequences: each method must choose exactly what nginx chooses.

mod upstream_common;

use nginx_rs::plan::{Balance, PeerAddr};
use nginx_rs::runtime::upstream::{Group, SelectKey, Tried};
use upstream_common::*;

/// Port offset of the peer chosen for one fresh request (the `PeerRef` is dropped at once).
fn pick(g: &Group, key: SelectKey<'_>) -> u16 {
    let mut tried = Tried::new();
    let p = g.select(key, &mut tried).expect("a live peer");
    p.success();
    match p.addr() {
        PeerAddr::Inet(a) => a.port() - 10000,
        PeerAddr::Unix(_) => unreachable!("tests use TCP peers"),
    }
}

fn sequence(g: &Group, n: usize) -> Vec<u16> {
    (0..n).map(|_| pick(g, SelectKey::None)).collect()
}

#[test]
fn round_robin_5_1_2_is_nginx_smooth_weighted_order() {
    let g = Group::new(upstream(
        Balance::RoundRobin,
        vec![weighted(0, 5), weighted(1, 1), weighted(2, 2)],
    ));
    // Worked by hand from nginx's get_peer: a c a a b a c a, then it repeats.
    let one = [0, 2, 0, 0, 1, 0, 2, 0];
    let expected: Vec<u16> = one.iter().chain(&one).copied().collect();
    assert_eq!(sequence(&g, 16), expected);
}
