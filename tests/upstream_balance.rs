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

#[test]
fn ip_hash_uses_three_octets_of_ipv4_and_all_of_ipv6() {
    let g = Group::new(upstream(Balance::IpHash, vec![fake(0), fake(1), fake(2)]));
    // By hand: h = 89; h = (h * 113 + byte) % 6271 over 192, 168, 1 gives 154; 154 % 3 = 1.
    for last in [1u8, 77, 254] {
        let ip = std::net::IpAddr::from([192, 168, 1, last]);
        assert_eq!(pick(&g, SelectKey::Ip(ip)), 1);
    }
    // ::1 (all sixteen bytes) gives 5945; 5945 % 3 = 2.
    let v6: std::net::IpAddr = "::1".parse().expect("ipv6");
    assert_eq!(pick(&g, SelectKey::Ip(v6)), 2);
    let g4 = Group::new(upstream(
        Balance::IpHash,
        vec![fake(0), fake(1), fake(2), fake(3)],
    ));
    // 2001:db8::5 gives 2604; 2604 % 4 = 0.
    let v6: std::net::IpAddr = "2001:db8::5".parse().expect("ipv6");
    assert_eq!(pick(&g4, SelectKey::Ip(v6)), 0);
}

#[test]
fn hash_is_stable_per_key_and_empty_key_falls_back_to_round_robin() {
    for consistent in [false, true] {
        let g = Group::new(upstream(
            hash(consistent),
            vec![fake(0), fake(1), fake(2), fake(3)],
        ));
        for i in 0..50 {
            let key = format!("session-{i}");
            let first = pick(&g, SelectKey::Bytes(key.as_bytes()));
            for _ in 0..3 {
                assert_eq!(pick(&g, SelectKey::Bytes(key.as_bytes())), first);
            }
        }
        // nginx: an empty key means round robin.
        let seq: Vec<u16> = (0..4).map(|_| pick(&g, SelectKey::Bytes(b""))).collect();
        assert_eq!(seq, [0, 1, 2, 3]);
    }
}
