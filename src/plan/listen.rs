//! `listen`: the address (nginx's `ngx_parse_url` forms) and its parameters.

use std::path::PathBuf;

use crate::conf::Directive;

use super::types::*;
use super::values::{self, HostPort};
use super::walk::{Res, Walker};

impl Walker<'_> {
    pub(super) fn listen(&mut self, d: &Directive) -> Res<(ListenAddr, ListenOpts, bool)> {
        let ec = self.ec();
        let sp = &d.span;
        let a0 = d.args[0].value.as_str();
        let hp = values::parse_host_port(a0, Some(80), true).map_err(|e| {
            self.err_arg(format!("{e} in \"{a0}\" of the \"listen\" directive"), d, 0)
        })?;
        let addr = match hp {
            HostPort::Addr(ip, port) => ListenAddr::Inet(std::net::SocketAddr::new(ip, port)),
            HostPort::Unix(p) => ListenAddr::Unix(PathBuf::from(p)),
            HostPort::Name(host, port) => {
                let addrs = self.resolver.resolve(&host, port).map_err(|_| {
                    ec.e(
                        format!("host not found in \"{a0}\" of the \"listen\" directive"),
                        sp,
                    )
                })?;
                match addrs.first() {
                    Some(a) => ListenAddr::Inet(*a),
                    None => {
                        return Err(ec.e(
                            format!("host not found in \"{a0}\" of the \"listen\" directive"),
                            sp,
                        ))
                    }
                }
            }
        };
        let mut o = ListenOpts {
            span: Some(sp.clone()),
            ..Default::default()
        };
        // nginx's `lsopt.set`: socket options, which only one `listen` per address may give.
        let mut socket_opts = false;
        for (i, x) in d.args.iter().enumerate().skip(1) {
            let v = x.value.as_str();
            let bad = |w: &Walker| w.err_arg(format!("invalid parameter \"{v}\""), d, i);
            match v {
                "default_server" | "default" => o.default_server = true,
                "ssl" => o.ssl = true,
                "http2" => o.http2 = true,
                "proxy_protocol" => o.proxy_protocol = true,
                "reuseport" => {
                    o.reuseport = true;
                    socket_opts = true;
                }
                "bind" | "deferred" => socket_opts = true,
                _ => {
                    socket_opts = true;
                    if let Some(n) = v.strip_prefix("backlog=") {
                        let b = n.parse::<i32>().ok().filter(|b| *b != 0);
                        o.backlog =
                            Some(b.ok_or_else(|| ec.e(format!("invalid backlog \"{v}\""), sp))?);
                    } else if let Some(f) = v.strip_prefix("ipv6only=") {
                        o.ipv6only = Some(values::parse_flag(f).ok_or_else(|| bad(self))?);
                    } else if let Some(n) = v
                        .strip_prefix("rcvbuf=")
                        .or_else(|| v.strip_prefix("sndbuf="))
                    {
                        values::parse_size(n)
                            .ok_or_else(|| ec.e(format!("invalid {} \"{n}\"", &v[..6]), sp))?;
                    } else if v.starts_with("so_keepalive=") || v.starts_with("fastopen=") {
                    } else {
                        const PARAMS: &[&str] = &[
                            "default_server",
                            "ssl",
                            "http2",
                            "proxy_protocol",
                            "reuseport",
                            "backlog",
                            "ipv6only",
                            "rcvbuf",
                            "sndbuf",
                            "deferred",
                            "bind",
                            "so_keepalive",
                            "fastopen",
                        ];
                        let key = v.split_once('=').map_or(v, |(k, _)| k);
                        let mut e = bad(self);
                        if let Some(h) = values::did_you_mean(key, PARAMS.iter().copied()) {
                            e = e.with_hint(format!("did you mean \"{h}\"?"));
                        }
                        return Err(e);
                    }
                }
            }
        }
        Ok((addr, o, socket_opts))
    }
}
