//! Inside `upstream { }`: `server` with its parameters (resolved at load, as nginx does), the
//! balancing methods, and the keepalive settings.

use crate::conf::ConfError;
use std::path::PathBuf;
use std::time::Duration;

use crate::conf::{Directive, Span};

use super::raw::*;
use super::types::*;
use super::values::{self, HostPort};
use super::walk::{Ec, Res, Walker};

impl Walker<'_> {
    pub(super) fn upstream_server(&mut self, d: &Directive, u: &mut RawUpstream) -> Res<()> {
        let ec = self.ec();
        let sp = &d.span;
        let flags = u.method.as_ref().map(|(m, _)| m);
        let backup_ok = matches!(flags, None | Some(Balance::RoundRobin | Balance::LeastConn));
        let mut s = UpstreamServer {
            name: d.args[0].value.to_string(),
            addrs: Vec::new(),
            weight: 1,
            max_fails: 1,
            fail_timeout: Duration::from_secs(10),
            backup: false,
            down: false,
            max_conns: 0,
            resolve: false,
            span: sp.clone(),
        };
        for (i, x) in d.args.iter().enumerate().skip(1) {
            let v = x.value.as_str();
            let invalid = |w: &Walker| w.err_arg(format!("invalid parameter \"{v}\""), d, i);
            if let Some(n) = v.strip_prefix("weight=") {
                s.weight = values::parse_number(n)
                    .filter(|w| *w > 0 && *w <= u32::MAX as u64)
                    .ok_or_else(|| invalid(self))? as u32;
            } else if let Some(n) = v.strip_prefix("max_fails=") {
                s.max_fails = values::parse_number(n)
                    .filter(|w| *w <= u32::MAX as u64)
                    .ok_or_else(|| invalid(self))? as u32;
            } else if let Some(n) = v.strip_prefix("max_conns=") {
                s.max_conns = values::parse_number(n)
                    .filter(|w| *w <= u32::MAX as u64)
                    .ok_or_else(|| invalid(self))? as u32;
            } else if let Some(n) = v.strip_prefix("fail_timeout=") {
                s.fail_timeout = values::parse_time(n).ok_or_else(|| invalid(self))?;
            } else if v == "backup" {
                if !backup_ok {
                    return Err(self.err_arg(
                        format!("balancing method does not support parameter \"{v}\""),
                        d,
                        i,
                    ));
                }
                s.backup = true;
            } else if v == "down" {
                s.down = true;
            } else if v == "resolve" {
                s.resolve = true;
            } else {
                let mut e = invalid(self);
                let params = [
                    "weight=",
                    "max_fails=",
                    "max_conns=",
                    "fail_timeout=",
                    "backup",
                    "down",
                    "resolve",
                ];
                let key = v.split_once('=').map_or(v, |(k, _)| k);
                if let Some(h) =
                    values::did_you_mean(key, params.iter().map(|p| p.trim_end_matches('=')))
                {
                    e = e.with_hint(format!("did you mean \"{h}\"?"));
                }
                return Err(e);
            }
        }
        let url = d.args[0].value.as_str();
        match values::parse_host_port(url, Some(80), false) {
            Ok(HostPort::Addr(ip, port)) => s
                .addrs
                .push(PeerAddr::Inet(std::net::SocketAddr::new(ip, port))),
            Ok(HostPort::Unix(p)) => s.addrs.push(PeerAddr::Unix(PathBuf::from(p))),
            Ok(HostPort::Name(host, port)) => {
                let addrs = self.resolve_upstream_host(&host, port, url, sp)?;
                s.addrs.extend(addrs.into_iter().map(PeerAddr::Inet));
            }
            Err(e) => return Err(self.err_arg(format!("{e} in upstream \"{url}\""), d, 0)),
        }
        let _ = ec;
        u.servers.push(s);
        Ok(())
    }

    /// Resolves an upstream host; `host.docker.internal` falls back to 127.0.0.1 with a warning
    /// (nginx-rs running on the host rather than in Docker).
    pub fn resolve_upstream_host(
        &mut self,
        host: &str,
        port: u16,
        shown: &str,
        sp: &Span,
    ) -> Res<Vec<std::net::SocketAddr>> {
        match self.resolver.resolve(host, port) {
            Ok(a) if !a.is_empty() => Ok(a),
            _ if host.eq_ignore_ascii_case("host.docker.internal") => {
                self.warn(
                    format!("host not found in upstream \"{shown}\", using 127.0.0.1 (host.docker.internal outside Docker)"),
                    sp,
                );
                Ok(vec![std::net::SocketAddr::from(([127, 0, 0, 1], port))])
            }
            _ => Err(self.err(format!("host not found in upstream \"{shown}\""), sp)),
        }
    }
}

/// Directives inside `upstream { }` other than `server`.
pub(super) fn upstream_directive(
    ec: Ec,
    d: &Directive,
    u: &mut RawUpstream,
    key: Option<super::Template>,
    warnings: &mut Vec<ConfError>,
) -> Res<()> {
    let sp = &d.span;
    let name = d.name.as_str();
    let a = |i: usize| d.args.get(i).map(|a| a.value.as_str()).unwrap_or("");
    let dup = || ec.e(format!("\"{name}\" directive is duplicate"), sp);
    let method = match name {
        "least_conn" => Some(Balance::LeastConn),
        "ip_hash" => Some(Balance::IpHash),
        "hash" => {
            if d.args.len() == 2 && a(1) != "consistent" {
                return Err(ec.e(format!("invalid parameter \"{}\"", a(1)), sp));
            }
            Some(Balance::Hash {
                key: key.unwrap_or_default(),
                consistent: d.args.len() == 2,
            })
        }
        "random" => {
            let mut two = false;
            let mut least_conn = false;
            for x in &d.args {
                match x.value.as_str() {
                    "two" if !two => two = true,
                    "least_conn" if two => least_conn = true,
                    v => return Err(ec.e(format!("invalid parameter \"{v}\""), sp)),
                }
            }
            Some(Balance::Random { two, least_conn })
        }
        _ => None,
    };
    if let Some(m) = method {
        if u.servers.iter().any(|s| s.backup) && !matches!(m, Balance::LeastConn) {
            // nginx warns and keeps going; the backup flag is then rejected at init.
        }
        if u.method.is_some() {
            // nginx only warns; the method written last is the one used.
            let mut w = ec.e("load balancing method redefined", sp);
            w.level = crate::conf::Level::Warn;
            warnings.push(w);
        }
        u.method = Some((m, sp.clone()));
        return Ok(());
    }
    let n = || {
        values::parse_number(a(0))
            .ok_or_else(|| ec.e(format!("\"{name}\" directive invalid number"), sp))
    };
    let t = || {
        values::parse_time(a(0))
            .ok_or_else(|| ec.e(format!("\"{name}\" directive invalid value"), sp))
    };
    match name {
        "keepalive" => {
            // `keepalive 0` disables the pool (nginx 1.29.7+, where a pool is the default).
            let v = values::parse_number(a(0)).ok_or_else(|| {
                ec.e(
                    format!("invalid value \"{}\" in \"keepalive\" directive", a(0)),
                    sp,
                )
            })?;
            if u.keepalive.is_some() {
                return Err(dup());
            }
            u.keepalive = Some(v as usize);
        }
        "keepalive_requests" => {
            if u.keepalive_requests.is_some() {
                return Err(dup());
            }
            u.keepalive_requests = Some(n()?);
        }
        "keepalive_timeout" => {
            if u.keepalive_timeout.is_some() {
                return Err(dup());
            }
            u.keepalive_timeout = Some(t()?);
        }
        "keepalive_time" => {
            if u.keepalive_time.is_some() {
                return Err(dup());
            }
            u.keepalive_time = Some(t()?);
        }
        "zone" => {
            if d.args.len() == 2 {
                values::parse_size(a(1))
                    .ok_or_else(|| ec.e(format!("invalid zone size \"{}\"", a(1)), sp))?;
            }
            u.zone = Some(a(0).to_string());
        }
        _ => return Err(ec.e(format!("\"{name}\" directive is not allowed here"), sp)),
    }

    Ok(())
}
