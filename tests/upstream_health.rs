//! Passive health and server parameters: max_fails/fail_timeout, backup, down, max_conns, the
//! single-server rule, least_conn and random two preferences, reload carry-over, re-resolution.

mod upstream_common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nginx_rs::plan::{self, Balance, PeerAddr, UpstreamServer};
use nginx_rs::runtime::upstream::{Group, NoLive, SelectKey, Tried, Upstreams};
use upstream_common::*;

fn port(a: &PeerAddr) -> u16 {
    match a {
        PeerAddr::Inet(a) => a.port() - 10000,
        PeerAddr::Unix(_) => unreachable!("TCP peers only"),
    }
}

/// One request's first choice, reported as `ok`.
fn pick(g: &Group) -> Result<u16, NoLive> {
    let p = g.select(SelectKey::None, &mut Tried::new())?;
    p.success();
    Ok(port(p.addr()))
}

/// Fails `n` on its next selections until it has failed `times` times.
fn fail(g: &Group, n: u16, times: u32) {
    let mut failed = 0;
    for _ in 0..100 {
        if failed == times {
            return;
        }
        let p = g
            .select(SelectKey::None, &mut Tried::new())
            .expect("live peer");
        if port(p.addr()) == n {
            p.failure();
            failed += 1;
        } else {
            p.success();
        }
    }
    panic!("peer {n} was not selected {times} times");
}

fn with(s: UpstreamServer, f: impl FnOnce(&mut UpstreamServer)) -> UpstreamServer {
    let mut s = s;
    f(&mut s);
    s
}

#[test]
fn failed_peer_is_skipped_for_fail_timeout_then_tried_again() {
    let t = Duration::from_millis(400);
    let g = Group::new(upstream(
        Balance::RoundRobin,
        vec![
            with(fake(0), |s| {
                s.max_fails = 2;
                s.fail_timeout = t;
            }),
            fake(1),
        ],
    ));
    fail(&g, 0, 1);
    // One failure of two allowed: still in rotation.
    assert!((0..4).any(|_| pick(&g) == Ok(0)));
    fail(&g, 0, 1);
    // Two failures within fail_timeout: skipped.
    assert!((0..10).all(|_| pick(&g) == Ok(1)));

    std::thread::sleep(t + Duration::from_millis(100));
    // After fail_timeout it gets requests again; a success marks it live for good.
    assert!((0..4).any(|_| pick(&g) == Ok(0)));
    let seq: Vec<_> = (0..6).map(|_| pick(&g).expect("live")).collect();
    assert_eq!(seq.iter().filter(|&&p| p == 0).count(), 3, "{seq:?}");
}

#[test]
fn failure_after_fail_timeout_disables_again_at_once() {
    let t = Duration::from_millis(300);
    let g = Group::new(upstream(
        Balance::RoundRobin,
        vec![
            with(fake(0), |s| {
                s.max_fails = 1;
                s.fail_timeout = t;
            }),
            fake(1),
        ],
    ));
    fail(&g, 0, 1);
    assert!((0..6).all(|_| pick(&g) == Ok(1)));
    std::thread::sleep(t + Duration::from_millis(100));
    fail(&g, 0, 1);
    assert!((0..6).all(|_| pick(&g) == Ok(1)));
}

#[test]
fn retry_skips_tried_peers_and_ends_with_no_live() {
    let g = Group::new(upstream(
        Balance::RoundRobin,
        vec![fake(0), fake(1), fake(2)],
    ));
    assert_eq!(g.tries(), 3);
    let mut tried = Tried::new();
    let mut seen = Vec::new();
    while let Ok(p) = g.select(SelectKey::None, &mut tried) {
        seen.push(port(p.addr()));
        p.failure();
    }
    seen.sort_unstable();
    assert_eq!(seen, [0, 1, 2]);
    assert_eq!(tried.attempts(), 3);
    // All three failed (max_fails=1): the next request finds no live upstream.
    assert_eq!(pick(&g), Err(NoLive));
}

#[test]
fn backup_only_when_all_primaries_are_unavailable() {
    let g = Group::new(upstream(
        Balance::RoundRobin,
        vec![fake(0), fake(1), with(fake(2), |s| s.backup = true)],
    ));
    assert_eq!(g.tries(), 3);
    assert!((0..10).all(|_| pick(&g) != Ok(2)));
    fail(&g, 0, 1);
    assert!((0..4).all(|_| pick(&g) == Ok(1)));
    fail(&g, 1, 1);
    assert!((0..4).all(|_| pick(&g) == Ok(2)));

    // Within one request: primaries first, then the backup.
    let g = Group::new(upstream(
        Balance::LeastConn,
        vec![fake(0), with(fake(1), |s| s.backup = true)],
    ));
    let mut tried = Tried::new();
    let first = g.select(SelectKey::None, &mut tried).expect("primary");
    assert_eq!(port(first.addr()), 0);
    first.failure();
    let second = g.select(SelectKey::None, &mut tried).expect("backup");
    assert_eq!(port(second.addr()), 1);
}

#[test]
fn down_servers_are_never_chosen() {
    let g = Group::new(upstream(
        Balance::RoundRobin,
        vec![fake(0), with(fake(1), |s| s.down = true), fake(2)],
    ));
    assert_eq!(g.tries(), 2);
    assert!((0..20).all(|_| pick(&g) != Ok(1)));
    let all_down = Group::new(upstream(
        Balance::RoundRobin,
        vec![
            with(fake(0), |s| s.down = true),
            with(fake(1), |s| {
                s.down = true;
                s.backup = true;
            }),
        ],
    ));
    assert_eq!(pick(&all_down), Err(NoLive));
}

#[test]
fn single_server_is_never_marked_failed() {
    let g = Group::new(upstream(Balance::RoundRobin, vec![fake(0)]));
    assert_eq!(g.tries(), 1);
    for _ in 0..5 {
        let p = g.select(SelectKey::None, &mut Tried::new()).expect("live");
        p.failure();
    }
    assert_eq!(pick(&g), Ok(0));
    // With a backup the primary is no longer "single" and does fail.
    let g = Group::new(upstream(
        Balance::RoundRobin,
        vec![fake(0), with(fake(1), |s| s.backup = true)],
    ));
    fail(&g, 0, 1);
    assert_eq!(pick(&g), Ok(1));
}

#[test]
fn every_address_of_a_name_is_a_peer() {
    let a: SocketAddr = "127.0.0.1:10000".parse().expect("addr");
    let b: SocketAddr = "127.0.0.1:10001".parse().expect("addr");
    let g = Group::new(upstream(
        Balance::RoundRobin,
        vec![server("app.internal:80", &[a, b])],
    ));
    let seq: Vec<_> = (0..4).map(|_| pick(&g).expect("live")).collect();
    assert_eq!(seq, [0, 1, 0, 1]);
    let p = g.select(SelectKey::None, &mut Tried::new()).expect("live");
    assert_eq!(p.name(), "app.internal:80");
}

#[test]
fn max_conns_is_never_exceeded_under_concurrency() {
    for method in [
        Balance::RoundRobin,
        Balance::LeastConn,
        Balance::IpHash,
        hash(false),
        hash(true),
        Balance::Random {
            two: true,
            least_conn: true,
        },
    ] {
        let servers = (0..3).map(|n| with(fake(n), |s| s.max_conns = 2)).collect();
        let g = Arc::new(Group::new(upstream(method.clone(), servers)));

        // Deterministic part: 6 held slots, the 7th request finds nothing.
        let held: Vec<_> = (0..6)
            .map(|i| {
                let key = format!("k{i}");
                g.select(SelectKey::Bytes(key.as_bytes()), &mut Tried::new())
                    .expect("a free slot")
            })
            .collect();
        assert!(
            g.select(SelectKey::Bytes(b"k"), &mut Tried::new()).is_err(),
            "{method:?}: max_conns exceeded"
        );
        drop(held);

        // Concurrent part: active use per peer never goes above 2.
        let active: Arc<Vec<AtomicU32>> = Arc::new((0..3).map(|_| AtomicU32::new(0)).collect());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let (g, active) = (g.clone(), active.clone());
                std::thread::spawn(move || {
                    for i in 0..500 {
                        let key = format!("{t}-{i}");
                        let Ok(p) = g.select(SelectKey::Bytes(key.as_bytes()), &mut Tried::new())
                        else {
                            continue;
                        };
                        let slot = &active[usize::from(port(p.addr()))];
                        let now = slot.fetch_add(1, Ordering::SeqCst) + 1;
                        assert!(now <= 2, "{now} concurrent requests on a max_conns=2 peer");
                        std::thread::yield_now();
                        slot.fetch_sub(1, Ordering::SeqCst);
                        p.success();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
    }
}

#[test]
fn least_conn_and_random_two_prefer_the_less_busy_peer() {
    for method in [
        Balance::LeastConn,
        Balance::Random {
            two: true,
            least_conn: true,
        },
    ] {
        let g = Group::new(upstream(method, vec![fake(0), fake(1)]));
        // Hold four requests, then release those on peer 1: peer 0 keeps its active ones.
        let mut held: Vec<_> = (0..4)
            .map(|_| g.select(SelectKey::None, &mut Tried::new()).expect("live"))
            .collect();
        held.retain(|p| port(p.addr()) == 0);
        assert!(!held.is_empty());
        // Peer 0 has active requests, peer 1 none: every new one goes to peer 1.
        let seq: Vec<_> = (0..10)
            .map(|_| {
                let p = g.select(SelectKey::None, &mut Tried::new()).expect("live");
                port(p.addr())
            })
            .collect();
        assert!(seq.iter().all(|&p| p == 1), "{seq:?}");
    }
}

#[test]
fn random_follows_weights() {
    let g = Group::new(upstream(
        Balance::Random {
            two: false,
            least_conn: false,
        },
        vec![
            weighted(0, 1),
            weighted(1, 3),
            with(fake(2), |s| s.down = true),
        ],
    ));
    let mut counts = [0u32; 3];
    for _ in 0..4000 {
        counts[usize::from(pick(&g).expect("live"))] += 1;
    }
    assert_eq!(counts[2], 0);
    // Expected 1000 / 3000; the bounds are many standard deviations wide.
    assert!((700..1300).contains(&counts[0]), "{counts:?}");
}

fn plan_with(ups: Vec<Arc<plan::Upstream>>) -> plan::Plan {
    plan::Plan {
        main: plan::MainConf {
            worker_processes: Some(1),
            worker_connections: 512,
            pid: "/tmp/nginx.pid".into(),
            error_logs: Vec::new(),
            daemon: false,
            master_process: false,
            user: None,
            worker_rlimit_nofile: None,
            worker_shutdown_timeout: None,
        },
        http: plan::Http {
            servers: Vec::new(),
            listens: Vec::new(),
            upstreams: ups,
            maps: Vec::new(),
            log_formats: Vec::new(),
            slots: Vec::new(),
        },
        files: Vec::new(),
    }
}

#[test]
fn reload_keeps_state_of_unchanged_groups_only() {
    let up = upstream(Balance::RoundRobin, vec![fake(0), fake(1)]);
    let first = Upstreams::new(&plan_with(vec![up.clone()]), None);
    let g = first.group(&up).expect("group");
    fail(&g, 0, 1);

    // Same definition in a new Plan (a new Arc): the failure is remembered.
    let same = upstream(Balance::RoundRobin, vec![fake(0), fake(1)]);
    let second = Upstreams::new(&plan_with(vec![same.clone()]), Some(&first));
    let g2 = second.group(&same).expect("group");
    assert!((0..4).all(|_| pick(&g2) == Ok(1)));

    // A changed definition starts fresh.
    let changed = upstream(Balance::RoundRobin, vec![fake(0), weighted(1, 2)]);
    let third = Upstreams::new(&plan_with(vec![changed.clone()]), Some(&second));
    let g3 = third.group(&changed).expect("group");
    assert!((0..4).any(|_| pick(&g3) == Ok(0)));
}

/// A resolver whose answers the test changes.
struct FakeResolver(Mutex<HashMap<String, Vec<SocketAddr>>>);

impl plan::Resolve for FakeResolver {
    fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        let map = self.0.lock().map_err(|e| e.to_string())?;
        let ips = map.get(host).ok_or("Host not found")?;
        Ok(ips.iter().map(|a| SocketAddr::new(a.ip(), port)).collect())
    }
}

#[tokio::test]
async fn resolve_servers_follow_address_changes() {
    let first: SocketAddr = "127.0.0.1:8080".parse().expect("addr");
    let up = upstream(
        Balance::RoundRobin,
        vec![
            with(server("app:8080", &[first]), |s| s.resolve = true),
            fake(9),
        ],
    );
    let ups = Upstreams::new(&plan_with(vec![up.clone()]), None);
    let resolver = Arc::new(FakeResolver(Mutex::new(HashMap::from([(
        "app".to_string(),
        vec![
            "127.0.0.2:0".parse().expect("addr"),
            "127.0.0.3:0".parse().expect("addr"),
        ],
    )]))));
    let task = ups
        .spawn_resolver(resolver.clone(), Duration::from_millis(20))
        .expect("a resolve server exists");
    let g = ups.group(&up).expect("group");
    let want: Vec<PeerAddr> = ["127.0.0.2:8080", "127.0.0.3:8080", "127.0.0.1:10009"]
        .iter()
        .map(|a| PeerAddr::Inet(a.parse().expect("addr")))
        .collect();
    let mut ok = false;
    for _ in 0..200 {
        if g.peer_addrs() == want {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(ok, "peers never followed DNS: {:?}", g.peer_addrs());

    // A failed lookup keeps the last good addresses.
    resolver.0.lock().expect("lock").clear();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(g.peer_addrs(), want);
    task.abort();
}

#[test]
fn more_than_64_peers_are_each_tried_once_per_request() {
    let g = Group::new(upstream(Balance::RoundRobin, (0..100).map(fake).collect()));
    let mut tried = Tried::new();
    let mut seen = std::collections::HashSet::new();
    while let Ok(p) = g.select(SelectKey::None, &mut tried) {
        assert!(
            seen.insert(port(p.addr())),
            "peer chosen twice in one request"
        );
    }
    assert_eq!(seen.len(), 100);
}
