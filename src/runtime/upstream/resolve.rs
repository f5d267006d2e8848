//! Re-resolution of `server NAME resolve` (nginx ≥ 1.27.3): names are looked up again
//! periodically and the group's peers follow the answer. Peers whose address stays keep their
//! state; new addresses start fresh; a failed lookup keeps the previous addresses (as nginx keeps
//! the last good answer).

use std::sync::Arc;
use std::time::Duration;

use super::Group;
use crate::plan::{self, PeerAddr};

pub(crate) async fn run(
    groups: Vec<Arc<Group>>,
    resolver: Arc<dyn plan::Resolve + Send + Sync>,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for g in &groups {
            let g = g.clone();
            let r = resolver.clone();
            // Resolvers may block (getaddrinfo): keep them off the async workers.
            let _ = tokio::task::spawn_blocking(move || refresh(&g, &*r)).await;
        }
    }
}

/// One round of lookups for `group`; returns how many servers changed addresses.
pub(crate) fn refresh(group: &Group, resolver: &dyn plan::Resolve) -> usize {
    let mut changed = 0;
    for (idx, server) in group.def.servers.iter().enumerate() {
        if !server.resolve {
            continue;
        }
        let Some((host, port)) = split_host_port(&server.name) else {
            continue;
        };
        match resolver.resolve(host, port) {
            Ok(addrs) => {
                let addrs = addrs.into_iter().map(PeerAddr::Inet).collect();
                if group.set_addrs(idx, addrs) {
                    changed += 1;
                }
            }
            Err(e) => {
                tracing::error!("{host} could not be resolved ({e})");
            }
        }
    }
    changed
}

/// `host:port` → (host, port); no port = 80; `[v6]:port` brackets removed.
fn split_host_port(name: &str) -> Option<(&str, u16)> {
    if name.starts_with("unix:") {
        return None;
    }
    let (host, port) = match name.rfind(':') {
        Some(i) if !name[..i].contains(':') || name[..i].ends_with(']') => {
            (&name[..i], name[i + 1..].parse().ok()?)
        }
        _ => (name, 80),
    };
    Some((host.trim_start_matches('[').trim_end_matches(']'), port))
}

#[cfg(test)]
mod tests {
    use super::split_host_port;

    #[test]
    fn splits_names() {
        assert_eq!(split_host_port("app:8080"), Some(("app", 8080)));
        assert_eq!(split_host_port("app"), Some(("app", 80)));
        assert_eq!(split_host_port("[::1]:81"), Some(("::1", 81)));
        assert_eq!(split_host_port("unix:/x"), None);
        assert_eq!(split_host_port("app:x"), None);
    }
}
