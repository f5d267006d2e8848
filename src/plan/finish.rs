//! After the walk, in nginx's order: upstream initialisation (implicit groups are resolved), the
//! merge of every level into its children, duplicate locations, TLS checks, unknown variables, and
//! finally the typed [`Plan`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::conf::ConfError;

use super::raw::*;
use super::template::{Template, Var};
use super::types::*;
use super::walk::{Res, Walker};

/// `a.or(b)` for every inheritable field.
fn merge(child: &Lvl, parent: &Lvl) -> Lvl {
    let mut m = child.clone();
    macro_rules! inherit {
        ($($f:ident),* $(,)?) => { $( if m.$f.is_none() { m.$f = parent.$f.clone(); } )* };
    }
    inherit!(
        proxy_set_header,
        proxy_set_header_names,
        proxy_http_version,
        proxy_connect_timeout,
        proxy_read_timeout,
        proxy_send_timeout,
        proxy_next_upstream,
        proxy_next_upstream_tries,
        proxy_next_upstream_timeout,
        proxy_buffering,
        proxy_request_buffering,
        proxy_buffer_size,
        proxy_buffers,
        proxy_busy_buffers_size,
        proxy_redirect,
        proxy_hide_header,
        proxy_pass_header,
        proxy_ignore_headers,
        proxy_intercept_errors,
        proxy_pass_request_headers,
        proxy_pass_request_body,
        proxy_set_body,
        proxy_method,
        proxy_ssl_server_name,
        proxy_ssl_name,
        proxy_ssl_verify,
        proxy_ssl_verify_depth,
        proxy_ssl_trusted_certificate,
        proxy_ssl_protocols,
        proxy_ssl_ciphers,
        proxy_ssl_session_reuse,
        add_headers,
        access,
        error_pages,
        access_logs,
        error_logs,
        index,
        try_files,
        client_max_body_size,
        client_body_buffer_size,
        client_header_buffer_size,
        client_header_timeout,
        client_body_timeout,
        send_timeout,
        keepalive_timeout,
        keepalive_requests,
        keepalive_time,
        large_client_header_buffers,
        underscores_in_headers,
        ignore_invalid_headers,
        merge_slashes,
        server_tokens,
        default_type,
        types,
        sendfile,
        tcp_nodelay,
        tcp_nopush,
        absolute_redirect,
        port_in_redirect,
        server_name_in_redirect,
        resolver,
        resolver_timeout,
        real_ip_from,
        real_ip_header,
        real_ip_recursive,
        rewrite_log,
        uninitialized_variable_warn,
        ssl_certificate,
        ssl_certificate_key,
        ssl_protocols,
        ssl_ciphers,
        ssl_prefer_server_ciphers,
        ssl_session_cache,
        ssl_session_timeout,
        ssl_session_tickets,
        http2,
    );
    // root and alias are inherited together (ngx_http_core_merge_loc_conf).
    if m.root.is_none() && m.alias.is_none() {
        m.root = parent.root.clone();
        m.alias = parent.alias.clone();
    }
    m
}

/// Idle upstream connections kept per group when `keepalive` is not set (nginx 1.29.7+).
const DEFAULT_KEEPALIVE: usize = 32;

/// nginx's default `proxy_set_header` list, folded in after the configured ones.
///
/// `Connection` follows current nginx (1.29.7 and later): not sent over HTTP/1.1, so the
/// connection can go back to the keepalive pool; `close` with `proxy_http_version 1.0`.
fn default_proxy_headers(
    list: &[(http::HeaderName, Template)],
    version: HttpVersion,
) -> Vec<(http::HeaderName, Template)> {
    let connection = match version {
        HttpVersion::Http10 => Template::literal("close"),
        HttpVersion::Http11 => Template::default(),
    };
    let mut out = list.to_vec();
    let defaults: [(&str, Template); 6] = [
        (
            "host",
            Template {
                segments: vec![super::Segment::Var(Var::ProxyHost)],
            },
        ),
        ("connection", connection),
        ("te", Template::default()),
        ("keep-alive", Template::default()),
        ("expect", Template::default()),
        ("upgrade", Template::default()),
    ];
    for (name, value) in defaults {
        if !out.iter().any(|(n, _)| n.as_str() == name) {
            out.push((http::HeaderName::from_static(name), value));
        }
    }
    // nginx removes a header whose value is an empty literal (it is "not sent").
    for (_, v) in out.iter_mut() {
        if v.as_literal() == Some("") {
            *v = Template::default();
        }
    }
    out
}

/// The spelling of every name in `default_proxy_headers(list)`, in the same order: as written
/// for the configured ones, nginx's for the defaults it adds.
fn proxy_header_names(
    written: &[Arc<str>],
    list: &[(http::HeaderName, Template)],
) -> Vec<Arc<str>> {
    default_proxy_headers(list, HttpVersion::Http11)
        .iter()
        .enumerate()
        .map(|(i, (name, _))| match written.get(i) {
            Some(w) if i < list.len() => w.clone(),
            _ => Arc::from(match name.as_str() {
                "host" => "Host",
                "connection" => "Connection",
                "te" => "TE",
                "keep-alive" => "Keep-Alive",
                "expect" => "Expect",
                "upgrade" => "Upgrade",
                other => other,
            }),
        })
        .collect()
}

/// What makes two sibling locations duplicates: kind and name (regex locations never are).
fn dup_key(l: &RawLoc) -> Option<(u8, &str)> {
    match &l.matcher {
        LocMatch::Exact(x) => Some((0, x.as_str())),
        LocMatch::Prefix { path, .. } => Some((1, path.as_str())),
        LocMatch::Named(x) => Some((2, x.as_str())),
        LocMatch::Regex(_) => None,
    }
}

/// What the locations of one level share: the merged settings of those that set nothing of their
/// own, and one [`LocConf`] per plain body among those (see [`LocConf`]'s docs).
#[derive(Default)]
pub struct Shared {
    empty: Option<(Lvl, Arc<LocSettings>)>,
    /// By [`RawLoc::plain`].
    confs: HashMap<u32, Arc<LocConf>>,
}

pub struct Finisher<'w, 'a> {
    pub w: &'w mut Walker<'a>,
    upstreams: HashMap<String, Arc<Upstream>>,
    pub combined: Arc<LogFormat>,
}

impl<'w, 'a> Finisher<'w, 'a> {
    pub fn new(w: &'w mut Walker<'a>, combined: Arc<LogFormat>) -> Self {
        Finisher {
            w,
            upstreams: HashMap::new(),
            combined,
        }
    }

    /// Upstream initialisation: resolve implicit groups (`host not found in upstream`).
    pub fn upstreams(&mut self) -> Res<Vec<Arc<Upstream>>> {
        let raws = std::mem::take(&mut self.w.upstreams);
        let mut out = Vec::new();
        for u in raws {
            let mut servers = u.servers;
            if u.implicit {
                let host = u.name.trim_start_matches('[').trim_end_matches(']');
                let addrs = match host.parse::<std::net::IpAddr>() {
                    Ok(ip) => vec![std::net::SocketAddr::new(ip, u.port)],
                    Err(_) => {
                        let shown = u.name.clone();
                        match self
                            .w
                            .resolve_upstream_host(&u.name, u.port, &shown, &u.span)
                        {
                            Ok(a) => a,
                            Err(mut e) => {
                                e.message = format!("host not found in upstream \"{}\"", u.name);
                                return Err(e);
                            }
                        }
                    }
                };
                servers.push(UpstreamServer {
                    name: if u.port_written {
                        format!("{}:{}", u.name, u.port)
                    } else {
                        u.name.clone()
                    },
                    addrs: addrs.into_iter().map(PeerAddr::Inet).collect(),
                    weight: 1,
                    max_fails: 1,
                    fail_timeout: Duration::from_secs(10),
                    backup: false,
                    down: false,
                    max_conns: 0,
                    resolve: false,
                    span: u.span.clone(),
                });
            }
            let up = Arc::new(Upstream {
                name: u.name.clone(),
                method: u.method.map(|(m, _)| m).unwrap_or(Balance::RoundRobin),
                servers,
                // Current nginx (1.29.7+): `keepalive 32` unless set; `keepalive 0` turns it off.
                keepalive: Some(u.keepalive.unwrap_or(DEFAULT_KEEPALIVE)),
                keepalive_requests: u.keepalive_requests.unwrap_or(1000),
                keepalive_timeout: u.keepalive_timeout.unwrap_or(Duration::from_secs(60)),
                keepalive_time: u.keepalive_time.unwrap_or(Duration::from_secs(3600)),
                implicit: u.implicit,
                span: u.span,
            });
            // Implicit groups are keyed by host:port (two proxy_pass to one host, two ports).
            let key = if up.implicit {
                format!("{}:{}", up.name.to_ascii_lowercase(), u.port)
            } else {
                up.name.to_ascii_lowercase()
            };
            self.upstreams.insert(key, up.clone());
            out.push(up);
        }
        Ok(out)
    }

    fn find_upstream(&self, host: &str, port: u16) -> Option<Arc<Upstream>> {
        let h = host.to_ascii_lowercase();
        self.upstreams
            .get(&h)
            .or_else(|| self.upstreams.get(&format!("{h}:{port}")))
            .cloned()
    }

    /// Duplicate prefix/exact locations among siblings (ngx_http_join_exact_locations): the
    /// first location, in file order (a parent before its children), whose kind and name an
    /// earlier sibling has. Found by sorting sibling indexes by name, not with a set: a server may
    /// hold 100,000 locations, and 4 bytes each is all this costs.
    pub fn check_duplicates(&self, locs: &[RawLoc]) -> Res<()> {
        let key = dup_key;
        let mut order: Vec<u32> = (0..locs.len())
            .filter(|&i| key(&locs[i]).is_some())
            .filter_map(|i| u32::try_from(i).ok())
            .collect();
        // Stable: equal names keep file order, so the second of each run is its first duplicate.
        order.sort_by(|&a, &b| key(&locs[a as usize]).cmp(&key(&locs[b as usize])));
        let first_dup = order
            .windows(2)
            .filter(|w| key(&locs[w[0] as usize]) == key(&locs[w[1] as usize]))
            .map(|w| w[1] as usize)
            .min();
        drop(order);
        for (i, l) in locs.iter().enumerate() {
            if Some(i) == first_dup {
                return Err(ConfError::emerg(
                    format!("duplicate location \"{}\"", l.name()),
                    &l.span,
                ));
            }
            self.check_duplicates(&l.children)?;
        }
        Ok(())
    }

    /// Builds the final settings of a merged level (`with_pass`: a location or `if`, where
    /// `proxy_pass` applies; the server level has none of its own).
    pub fn settings(&mut self, m: &Lvl, server: usize, with_pass: bool) -> Res<LocSettings> {
        let proxy = match (&m.proxy_pass, with_pass) {
            (Some((pass, span)), true) => Some(self.proxy_conf(m, pass, span)?),
            _ => None,
        };
        let defaults = ClientLimits::default();
        let real_ip = m.real_ip_from.as_ref().map(|from| {
            Arc::new(RealIp {
                from: from.clone(),
                header: m.real_ip_header.clone().unwrap_or(RealIpHeader::XRealIp),
                recursive: m.real_ip_recursive.unwrap_or(false),
            })
        });
        let access_logs = match &m.access_logs {
            Some(l) => l.iter().filter(|l| l.path.is_some()).cloned().collect(),
            None => vec![AccessLog {
                // A fragment logs requests to stdout, as the official Docker image does.
                path: Some(Template::literal(&if self.w.fragment {
                    "/dev/stdout".into()
                } else {
                    self.w
                        .opts
                        .prefix
                        .join("logs/access.log")
                        .to_string_lossy()
                        .into_owned()
                })),
                format: self.combined.clone(),
                buffer: None,
                flush: None,
                condition: None,
            }],
        };
        Ok(LocSettings {
            proxy,
            access: m.access.clone().unwrap_or_default(),
            add_headers: m.add_headers.clone().unwrap_or_default(),
            error_pages: m.error_pages.clone().unwrap_or_default(),
            access_logs,
            error_logs: m.error_logs.clone().unwrap_or_default(),
            internal: m.internal,
            root: m.root.as_ref().map(|(t, _)| t.clone()).or_else(|| {
                if m.alias.is_some() {
                    None
                } else {
                    Some(Template::literal("html"))
                }
            }),
            alias: m.alias.as_ref().map(|(t, _)| t.clone()),
            index: m
                .index
                .clone()
                .unwrap_or_else(|| vec![Template::literal("index.html")]),
            try_files: m.try_files.clone(),
            client: ClientLimits {
                max_body_size: m.client_max_body_size.unwrap_or(defaults.max_body_size),
                body_buffer_size: m
                    .client_body_buffer_size
                    .unwrap_or(defaults.body_buffer_size),
                header_timeout: m.client_header_timeout.unwrap_or(defaults.header_timeout),
                body_timeout: m.client_body_timeout.unwrap_or(defaults.body_timeout),
                send_timeout: m.send_timeout.unwrap_or(defaults.send_timeout),
                keepalive_timeout: m.keepalive_timeout.unwrap_or(defaults.keepalive_timeout),
                keepalive_requests: m.keepalive_requests.unwrap_or(defaults.keepalive_requests),
                header_buffer_size: m
                    .client_header_buffer_size
                    .unwrap_or(defaults.header_buffer_size),
                large_header_buffers: m
                    .large_client_header_buffers
                    .unwrap_or(defaults.large_header_buffers),
                underscores_in_headers: m.underscores_in_headers.unwrap_or(false),
                ignore_invalid_headers: m.ignore_invalid_headers.unwrap_or(true),
            },
            server_tokens: m.server_tokens.unwrap_or_default(),
            default_type: m
                .default_type
                .clone()
                .unwrap_or_else(|| "text/plain".into()),
            merge_slashes: m.merge_slashes.unwrap_or(true),
            absolute_redirect: m.absolute_redirect.unwrap_or(true),
            port_in_redirect: m.port_in_redirect.unwrap_or(true),
            server_name_in_redirect: m.server_name_in_redirect.unwrap_or(false),
            real_ip,
            stub_status: m.stub_status,
            metrics: m.metrics,
            server,
        })
    }

    /// The rewrite steps of a level, moved out of the raw tree (an `if` with settings of its own
    /// gets its merged `LocConf`).
    fn ops(&mut self, ops: Vec<RawOp>, enclosing: &Lvl, server: usize) -> Res<Vec<RewriteOp>> {
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            match op {
                RawOp::Op(o) => out.push(o),
                RawOp::If {
                    cond,
                    ops,
                    lvl,
                    span,
                } => {
                    let inner = self.ops(ops, enclosing, server)?;
                    let conf = if lvl.touched {
                        // proxy_pass set in the enclosing location applies inside `if` too.
                        let mut m = merge(&lvl, enclosing);
                        if m.proxy_pass.is_none() {
                            m.proxy_pass = enclosing.proxy_pass.clone();
                        }
                        Some(Arc::new(LocConf::from(self.settings(&m, server, true)?)))
                    } else {
                        None
                    };
                    out.push(RewriteOp::If {
                        cond,
                        ops: inner,
                        conf,
                        span,
                    });
                }
            }
        }
        Ok(out)
    }

    fn proxy_conf(&mut self, m: &Lvl, pass: &RawPass, span: &crate::conf::Span) -> Res<ProxyConf> {
        let pass = match pass {
            RawPass::Dynamic(t) => ProxyPass::Dynamic(t.clone()),
            RawPass::Static(u) => {
                let upstream = match &u.unix {
                    Some(path) => Arc::new(Upstream {
                        name: format!("unix:{path}"),
                        method: Balance::RoundRobin,
                        servers: vec![UpstreamServer {
                            name: format!("unix:{path}"),
                            addrs: vec![PeerAddr::Unix(PathBuf::from(path))],
                            weight: 1,
                            max_fails: 1,
                            fail_timeout: Duration::from_secs(10),
                            backup: false,
                            down: false,
                            max_conns: 0,
                            resolve: false,
                            span: span.clone(),
                        }],
                        keepalive: None,
                        keepalive_requests: 1000,
                        keepalive_timeout: Duration::from_secs(60),
                        keepalive_time: Duration::from_secs(3600),
                        implicit: true,
                        span: span.clone(),
                    }),
                    None => self.find_upstream(&u.host, u.port).ok_or_else(|| {
                        ConfError::emerg(format!("host not found in upstream \"{}\"", u.host), span)
                    })?,
                };
                ProxyPass::Static {
                    scheme: if u.https { Scheme::Https } else { Scheme::Http },
                    upstream,
                    uri: u.uri.clone(),
                    proxy_host: u.host_port.as_str().into(),
                    proxy_port: u.port,
                }
            }
        };
        let redirect = match &m.proxy_redirect {
            None | Some(RawRedirect::Default) => ProxyRedirect::Default,
            Some(RawRedirect::Off) => ProxyRedirect::Off,
            Some(RawRedirect::Rules(r)) => ProxyRedirect::Rules(
                r.iter()
                    .map(|(f, t)| {
                        let f = match f {
                            RawRedirectFrom::Prefix(p) => RedirectFrom::Prefix(p.clone()),
                            RawRedirectFrom::Regex(r) => RedirectFrom::Regex(r.clone()),
                        };
                        (f, t.clone())
                    })
                    .collect(),
            ),
        };
        let http_version = m.proxy_http_version.unwrap_or(HttpVersion::Http11);
        Ok(ProxyConf {
            pass,
            set_headers: Arc::new(default_proxy_headers(
                m.proxy_set_header.as_deref().unwrap_or(&[]),
                http_version,
            )),
            set_header_names: Arc::new(proxy_header_names(
                m.proxy_set_header_names.as_deref().unwrap_or(&[]),
                m.proxy_set_header.as_deref().unwrap_or(&[]),
            )),
            http_version,
            connect_timeout: m.proxy_connect_timeout.unwrap_or(Duration::from_secs(60)),
            read_timeout: m.proxy_read_timeout.unwrap_or(Duration::from_secs(60)),
            send_timeout: m.proxy_send_timeout.unwrap_or(Duration::from_secs(60)),
            next_upstream: m.proxy_next_upstream.unwrap_or_default(),
            next_upstream_tries: m.proxy_next_upstream_tries.unwrap_or(0),
            next_upstream_timeout: m.proxy_next_upstream_timeout.filter(|t| !t.is_zero()),
            buffering: m.proxy_buffering.unwrap_or(true),
            request_buffering: m.proxy_request_buffering.unwrap_or(true),
            buffer_size: m.proxy_buffer_size.unwrap_or(4096),
            redirect,
            hide_headers: m.proxy_hide_header.clone().unwrap_or_default(),
            pass_headers: m.proxy_pass_header.clone().unwrap_or_default(),
            ignore_headers: m.proxy_ignore_headers.clone().unwrap_or_default(),
            intercept_errors: m.proxy_intercept_errors.unwrap_or(false),
            pass_request_headers: m.proxy_pass_request_headers.unwrap_or(true),
            pass_request_body: m.proxy_pass_request_body.unwrap_or(true),
            set_body: m.proxy_set_body.clone(),
            method: m.proxy_method.clone(),
            ssl_server_name: m.proxy_ssl_server_name.unwrap_or(false),
            ssl_name: m.proxy_ssl_name.clone(),
            ssl_verify: m.proxy_ssl_verify.unwrap_or(false),
            // Relative to the conf prefix, as nginx's ngx_conf_full_name (like ssl_certificate).
            ssl_trusted_certificate: m
                .proxy_ssl_trusted_certificate
                .as_ref()
                .map(|p| self.abs_conf(p)),
            span: span.clone(),
        })
    }

    /// A location and its children, merged from `parent`, moved out of the raw tree.
    ///
    /// `empty` caches, per enclosing level, the merged level and settings of a child that sets
    /// nothing itself: all such siblings share one `LocSettings` (see [`LocConf`]).
    pub fn location(
        &mut self,
        l: RawLoc,
        parent: &Lvl,
        server: usize,
        shared: &mut Shared,
    ) -> Res<Arc<Location>> {
        let RawLoc {
            matcher,
            lvl,
            ops,
            children,
            span,
            plain,
        } = l;
        let own;
        let Shared { empty, confs } = shared;
        let (m, settings) = match lvl {
            Some(lvl) => {
                own = merge(&lvl, parent);
                let settings = Arc::new(self.settings(&own, server, true)?);
                (&own, settings)
            }
            None => {
                let cached = match empty.take() {
                    Some(c) => c,
                    None => {
                        let m = merge(&Lvl::default(), parent);
                        let settings = Arc::new(self.settings(&m, server, true)?);
                        (m, settings)
                    }
                };
                let (m, settings) = &*empty.insert(cached);
                (m, settings.clone())
            }
        };
        let interned = plain
            .checked_sub(1)
            .and_then(|i| self.w.plain.get(i as usize));
        let conf = match (confs.get(&plain), interned) {
            (Some(c), _) => c.clone(),
            (None, Some((key, first))) => {
                let rewrites = plain_ops(key, first);
                let conf = Arc::new(LocConf { rewrites, settings });
                confs.insert(plain, conf.clone());
                conf
            }
            (None, None) => {
                let mut rewrites = self.ops(ops, m, server)?;
                rewrites.shrink_to_fit();
                Arc::new(LocConf { rewrites, settings })
            }
        };
        let mut child_shared = Shared::default();
        let mut out = Vec::with_capacity(children.len());
        for c in children {
            out.push(self.location(c, m, server, &mut child_shared)?);
        }
        Ok(Arc::new(Location {
            matcher,
            conf,
            children: out.into_boxed_slice(),
            span,
        }))
    }

    /// TLS of a server: `listen ... ssl` needs a certificate.
    pub fn tls(&self, s: &RawServer, m: &Lvl) -> Res<Option<Arc<ServerTls>>> {
        let ssl = s.listens.iter().any(|(_, o)| o.ssl);
        let certs = m.ssl_certificate.clone().unwrap_or_default();
        let keys = m.ssl_certificate_key.clone().unwrap_or_default();
        if !ssl && certs.is_empty() {
            return Ok(None);
        }
        if ssl && certs.is_empty() {
            // Only the default server of an `ssl` address must have one (checked with the groups).
            return Ok(None);
        }
        let mut pairs = Vec::new();
        for (i, (c, sp)) in certs.iter().enumerate() {
            let Some((k, _)) = keys.get(i) else {
                return Err(ConfError::emerg(
                    format!(
                        "no \"ssl_certificate_key\" is defined for certificate \"{}\"",
                        c.display()
                    ),
                    sp,
                ));
            };
            pairs.push((self.abs_conf(c), self.abs_conf(k)));
        }
        Ok(Some(Arc::new(ServerTls {
            certificates: pairs,
            protocols: m
                .ssl_protocols
                .clone()
                .unwrap_or_else(|| vec!["TLSv1.2".into(), "TLSv1.3".into()]),
            ciphers: m.ssl_ciphers.clone(),
            session_timeout: m.ssl_session_timeout.unwrap_or(Duration::from_secs(300)),
            prefer_server_ciphers: m.ssl_prefer_server_ciphers.unwrap_or(false),
            http2: m.http2.unwrap_or(false),
        })))
    }

    /// Certificate paths are relative to the conf prefix, as nginx's `ngx_conf_full_name`.
    fn abs_conf(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.w.opts.conf_prefix.join(p)
        }
    }
}

/// Server level = server settings merged over http's.
pub fn merge_server(server: &Lvl, http: &Lvl) -> Lvl {
    merge(server, http)
}

impl Finisher<'_, '_> {
    /// Server-level rewrite steps (run before location matching).
    pub fn server_ops(&mut self, ops: Vec<RawOp>, m: &Lvl, server: usize) -> Res<Vec<RewriteOp>> {
        self.ops(ops, m, server)
    }
}
