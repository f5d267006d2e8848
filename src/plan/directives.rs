//! Handlers of the non-block directives: each checks its values with nginx's messages and stores
//! them in the current level (or main/events/upstream settings). A value set twice at one level is
//! `"X" directive is duplicate`, as nginx's slot setters say.

use std::path::PathBuf;

use crate::conf::{Directive, Span};

use super::raw::*;
use super::table::Ctx;
use super::types::*;
use super::values;
use super::walk::{Ec, Res, Target, Walker};

/// The `proxy_next_upstream` status codes, in `NextUpstream::status_mask` bit order.
pub const NEXT_UPSTREAM_CODES: [u16; 7] = [500, 502, 503, 504, 403, 404, 429];

/// For every mask, the codes it selects, as `'static` slices (`NextUpstream::statuses`).
static STATUS_SETS: [([u16; 7], usize); 128] = {
    let mut out = [([0u16; 7], 0usize); 128];
    let mut m = 0;
    while m < 128 {
        let mut n = 0;
        let mut bit = 0;
        while bit < 7 {
            if m & (1 << bit) != 0 {
                out[m].0[n] = NEXT_UPSTREAM_CODES[bit];
                n += 1;
            }
            bit += 1;
        }
        out[m].1 = n;
        m += 1;
    }
    out
};

fn statuses_for(mask: u16) -> &'static [u16] {
    let (codes, n) = &STATUS_SETS[(mask & 127) as usize];
    &codes[..*n]
}

fn header_name(ec: Ec, s: &str, span: &Span) -> Res<http::HeaderName> {
    http::HeaderName::from_bytes(s.as_bytes())
        .map_err(|_| ec.e(format!("invalid header name \"{s}\""), span))
}

impl Walker<'_> {
    pub(super) fn ec(&self) -> Ec {
        Ec {
            cmdline: self.cmdline,
        }
    }

    pub(super) fn tpl(&mut self, s: &str, span: &Span) -> Res<super::Template> {
        let ec = self.ec();
        self.vars.template(s).map_err(|m| ec.e(m, span))
    }

    pub(super) fn simple(&mut self, d: &Directive, ctx: Ctx, tgt: &mut Target) -> Res<()> {
        let ec = self.ec();
        let name = d.name.as_str();
        let sp = &d.span;
        let a = |i: usize| d.args.get(i).map(|a| a.value.as_str()).unwrap_or("");
        let dup = || ec.e(format!("\"{name}\" directive is duplicate"), sp);
        let invalid = || ec.e(format!("\"{name}\" directive invalid value"), sp);
        let flag = || values::parse_flag(a(0)).unwrap_or(false);
        let time = || values::parse_time(a(0)).ok_or_else(invalid);
        let size = || {
            values::parse_size(a(0))
                .map(|v| v as usize)
                .ok_or_else(invalid)
        };
        let num = || {
            values::parse_number(a(0))
                .ok_or_else(|| ec.e(format!("\"{name}\" directive invalid number"), sp))
        };

        // Settings outside http levels.
        macro_rules! once {
            ($slot:expr, $val:expr) => {{
                let v = $val;
                if $slot.is_some() {
                    return Err(dup());
                }
                $slot = Some(v);
                return Ok(());
            }};
        }
        match name {
            "daemon" => once!(self.main.daemon, flag()),
            "master_process" => once!(self.main.master_process, flag()),
            "pcre_jit" => once!(self.main.pcre_jit, flag()),
            "pid" => once!(self.main.pid, a(0).to_string()),
            "worker_processes" => {
                let v = if a(0) == "auto" {
                    None
                } else {
                    Some(values::parse_number(a(0)).ok_or_else(invalid)? as usize)
                };
                once!(self.main.worker_processes, v)
            }
            "user" => {
                if self.main.user.is_some() {
                    return Err(dup());
                }
                if !self.opts.superuser {
                    self.warn("the \"user\" directive makes sense only if the master process runs with super-user privileges, ignored", sp);
                } else {
                    // nginx: the group defaults to the user's name.
                    let group = d.args.get(1).map_or(a(0), |g| g.value.as_str());
                    if self.resolver.user_exists(a(0)) == Some(false) {
                        return Err(ec.e(format!("getpwnam(\"{}\") failed", a(0)), sp));
                    }
                    if self.resolver.group_exists(group) == Some(false) {
                        return Err(ec.e(format!("getgrnam(\"{group}\") failed"), sp));
                    }
                }
                once!(
                    self.main.user,
                    (a(0).to_string(), d.args.get(1).map(|x| x.value.to_string()))
                )
            }
            "worker_rlimit_nofile" => once!(self.main.worker_rlimit_nofile, num()?),
            "worker_shutdown_timeout" => once!(self.main.worker_shutdown_timeout, time()?),
            "worker_connections" => {
                let v = values::parse_number(a(0))
                    .ok_or_else(|| ec.e(format!("invalid number \"{}\"", a(0)), sp))?;
                once!(self.main.worker_connections, v as usize)
            }
            "multi_accept" => once!(self.main.multi_accept, flag()),
            "accept_mutex" => once!(self.main.accept_mutex, flag()),
            "accept_mutex_delay" => once!(self.main.accept_mutex_delay, time()?),
            "use" => {
                if !matches!(a(0), "epoll" | "poll" | "select" | "kqueue") {
                    return Err(ec.e(format!("invalid event type \"{}\"", a(0)), sp));
                }
                once!(self.main.use_method, a(0).to_string())
            }
            "error_log" => {
                let log = self.error_log(d)?;
                match tgt {
                    Target::Main => self.main.error_logs.push(log),
                    _ => {
                        if let Some(l) = self.lvl(tgt) {
                            l.error_logs.get_or_insert_with(Vec::new).push(log);
                        }
                    }
                }
                return Ok(());
            }
            "log_format" => return self.log_format(d),
            _ => {}
        }
        if let Target::Ups(u) = tgt {
            let key = if name == "hash" {
                Some(self.tpl(a(0), sp)?)
            } else {
                None
            };
            return super::upstream::upstream_directive(ec, d, u, key, &mut self.warnings);
        }
        match name {
            "listen" => {
                let Target::Server(srv) = tgt else {
                    return Ok(());
                };
                let (addr, opts, socket_opts) = self.listen(d)?;
                return self.add_listen(srv, addr, opts, socket_opts, sp);
            }
            "server_name" => {
                let Target::Server(srv) = tgt else {
                    return Ok(());
                };
                for (i, arg) in d.args.iter().enumerate() {
                    let n = arg.value.as_str();
                    let sn = if let Some(re) = n.strip_prefix('~') {
                        let re = self.vars.regex(re, true).map_err(|m| ec.e(m, sp))?;
                        ServerName::Regex(re)
                    } else {
                        let n = n.to_ascii_lowercase();
                        if let Some(rest) = n.strip_prefix('*') {
                            if !rest.starts_with('.') || rest.contains('*') {
                                return Err(self.err_arg(
                                    format!("invalid server name or wildcard \"{n}\""),
                                    d,
                                    i,
                                ));
                            }
                            ServerName::LeadingWildcard(rest.to_string())
                        } else if let Some(rest) = n.strip_suffix('*') {
                            if !rest.ends_with('.') || rest.contains('*') {
                                return Err(self.err_arg(
                                    format!("invalid server name or wildcard \"{n}\""),
                                    d,
                                    i,
                                ));
                            }
                            ServerName::TrailingWildcard(rest.to_string())
                        } else if n.starts_with('.') {
                            ServerName::LeadingWildcard(n)
                        } else if n.contains('*') {
                            return Err(self.err_arg(
                                format!("invalid server name or wildcard \"{n}\""),
                                d,
                                i,
                            ));
                        } else {
                            ServerName::Exact(n)
                        }
                    };
                    srv.names.push(sn);
                }
                return Ok(());
            }
            _ => {}
        }
        if matches!(name, "rewrite" | "return" | "set" | "break") {
            let op = self.rewrite_op(d, tgt)?;
            match tgt {
                Target::Server(s) => s.ops.push(RawOp::Op(op)),
                Target::Loc(l) => l.ops.push(RawOp::Op(op)),
                Target::If { ops, .. } => ops.push(RawOp::Op(op)),
                _ => {}
            }
            return Ok(());
        }

        // Values computed before borrowing the level (they may need `self.vars`).
        let in_regex_or_named = match &*tgt {
            Target::Loc(l) => matches!(l.matcher, LocMatch::Regex(_) | LocMatch::Named(_)),
            Target::If { .. } => true,
            _ => false,
        };
        let in_named = matches!(&*tgt, Target::Loc(l) if matches!(l.matcher, LocMatch::Named(_)));
        let pre: Pre = match name {
            "proxy_pass" => Pre::Pass(self.proxy_pass(d, in_regex_or_named)?),
            "proxy_set_header" => Pre::Header(header_name(ec, a(0), sp)?, self.tpl(a(1), sp)?),
            "add_header" => {
                if d.args.len() == 3 && a(2) != "always" {
                    return Err(self.err_arg(format!("invalid parameter \"{}\"", a(2)), d, 2));
                }
                Pre::Header(header_name(ec, a(0), sp)?, self.tpl(a(1), sp)?)
            }
            "root" | "alias" | "proxy_set_body" | "proxy_method" | "proxy_ssl_name" => {
                Pre::Tpl(self.tpl(a(0), sp)?)
            }
            "index" | "try_files" => {
                let mut v = Vec::new();
                for x in &d.args {
                    v.push(self.tpl(&x.value, sp)?);
                }
                Pre::Tpls(v)
            }
            "access_log" => Pre::Log(self.access_log(d)?),
            "error_page" => Pre::ErrorPage(self.error_page(d)?),
            "proxy_redirect" => Pre::Redirect(self.proxy_redirect(d)?),
            "allow" | "deny" | "set_real_ip_from" => {
                let (from, low_bits) = access_from(ec, a(0), sp).map_err(|e| {
                    if name == "set_real_ip_from" {
                        ec.e(
                            format!("host not found in set_real_ip_from \"{}\"", a(0)),
                            sp,
                        )
                    } else {
                        e
                    }
                })?;
                if low_bits {
                    self.warn(format!("low address bits of {} are meaningless", a(0)), sp);
                }
                Pre::Access(from)
            }
            _ => Pre::None,
        };
        let Some(lvl) = self.lvl(tgt) else {
            return Ok(());
        };
        if !matches!(name, "rewrite_log" | "uninitialized_variable_warn") {
            lvl.touched = true;
        }
        macro_rules! set {
            ($slot:ident, $val:expr) => {{
                if lvl.$slot.is_some() {
                    return Err(dup());
                }
                lvl.$slot = Some($val);
            }};
        }
        match (name, pre) {
            ("proxy_pass", Pre::Pass(p)) => {
                if lvl.proxy_pass.is_some() {
                    return Err(dup());
                }
                lvl.proxy_pass = Some((p, sp.clone()));
            }
            ("proxy_set_header", Pre::Header(n, v)) => {
                lvl.proxy_set_header
                    .get_or_insert_with(Vec::new)
                    .push((n, v));
                lvl.proxy_set_header_names
                    .get_or_insert_with(Vec::new)
                    .push(a(0).into());
            }
            ("add_header", Pre::Header(n, v)) => {
                lvl.add_headers
                    .get_or_insert_with(Vec::new)
                    .push(AddHeader {
                        name: n,
                        value: v,
                        always: d.args.len() == 3,
                    })
            }
            ("root" | "alias", Pre::Tpl(t)) => {
                let alias = name == "alias";
                let existing = if lvl.root.is_some() {
                    Some("root")
                } else if lvl.alias.is_some() {
                    Some("alias")
                } else {
                    None
                };
                if let Some(prev) = existing {
                    if prev == name {
                        return Err(dup());
                    }
                    return Err(ec.e(
                        format!("\"{name}\" directive is duplicate, \"{prev}\" directive was specified earlier"),
                        sp,
                    ));
                }
                if alias && in_named {
                    return Err(ec.e(
                        "the \"alias\" directive cannot be used inside the named location",
                        sp,
                    ));
                }
                if alias {
                    lvl.alias = Some((t, sp.clone()));
                } else {
                    lvl.root = Some((t, sp.clone()));
                }
            }
            ("proxy_set_body", Pre::Tpl(t)) => set!(proxy_set_body, t),
            ("proxy_method", Pre::Tpl(t)) => set!(proxy_method, t),
            ("proxy_ssl_name", Pre::Tpl(t)) => set!(proxy_ssl_name, t),
            ("index", Pre::Tpls(v)) => {
                // nginx appends to the list at one level.
                lvl.index.get_or_insert_with(Vec::new).extend(v)
            }
            ("try_files", Pre::Tpls(v)) => set!(try_files, v),
            ("access_log", Pre::Log(l)) => lvl.access_logs.get_or_insert_with(Vec::new).push(l),
            ("error_page", Pre::ErrorPage(p)) => {
                lvl.error_pages.get_or_insert_with(Vec::new).push(p)
            }
            ("proxy_redirect", Pre::Redirect(r)) => match (r, &mut lvl.proxy_redirect) {
                (RawRedirect::Rules(mut new), Some(RawRedirect::Rules(old))) => {
                    old.append(&mut new)
                }
                (_, Some(_)) => {
                    return Err(ec.e("invalid parameter \"".to_string() + a(0) + "\"", sp))
                }
                (r, slot @ None) => *slot = Some(r),
            },
            ("proxy_http_version", _) => {
                let v = match a(0) {
                    "1.0" => HttpVersion::Http10,
                    "1.1" => HttpVersion::Http11,
                    x => return Err(ec.e(format!("invalid value \"{x}\""), sp)),
                };
                set!(proxy_http_version, v)
            }
            ("proxy_connect_timeout", _) => set!(proxy_connect_timeout, time()?),
            ("proxy_read_timeout", _) => set!(proxy_read_timeout, time()?),
            ("proxy_send_timeout", _) => set!(proxy_send_timeout, time()?),
            ("proxy_next_upstream_timeout", _) => set!(proxy_next_upstream_timeout, time()?),
            ("proxy_next_upstream_tries", _) => set!(
                proxy_next_upstream_tries,
                num()?.min(u32::MAX as u64) as u32
            ),
            ("proxy_next_upstream", _) => {
                let mut nu = NextUpstream {
                    error: false,
                    timeout: false,
                    invalid_header: false,
                    non_idempotent: false,
                    statuses: &[],
                    status_mask: 0,
                };
                let mut off = false;
                for x in &d.args {
                    match x.value.as_str() {
                        "error" => nu.error = true,
                        "timeout" => nu.timeout = true,
                        "invalid_header" => nu.invalid_header = true,
                        "non_idempotent" => nu.non_idempotent = true,
                        "updating" => {}
                        "off" => off = true,
                        v => match v
                            .strip_prefix("http_")
                            .and_then(|c| c.parse::<u16>().ok())
                            .and_then(|c| NEXT_UPSTREAM_CODES.iter().position(|x| *x == c))
                        {
                            Some(bit) => nu.status_mask |= 1 << bit,
                            None => return Err(ec.e(format!("invalid value \"{v}\""), sp)),
                        },
                    }
                }
                if off {
                    nu = NextUpstream {
                        error: false,
                        timeout: false,
                        ..Default::default()
                    };
                }
                nu.statuses = statuses_for(nu.status_mask);
                set!(proxy_next_upstream, nu)
            }
            ("proxy_buffering", _) => set!(proxy_buffering, flag()),
            ("proxy_request_buffering", _) => set!(proxy_request_buffering, flag()),
            ("proxy_buffer_size", _) => set!(proxy_buffer_size, size()?),
            ("proxy_busy_buffers_size", _) => set!(proxy_busy_buffers_size, size()?),
            ("proxy_buffers", _) => {
                let n = values::parse_number(a(0)).filter(|n| *n > 0);
                let s = values::parse_size(a(1)).filter(|s| *s > 0);
                match (n, s) {
                    (Some(n), Some(s)) => set!(proxy_buffers, (n as usize, s as usize)),
                    _ => return Err(invalid()),
                }
            }
            ("proxy_hide_header", _) => {
                let h = header_name(ec, a(0), sp)?;
                lvl.proxy_hide_header.get_or_insert_with(Vec::new).push(h)
            }
            ("proxy_pass_header", _) => {
                let h = header_name(ec, a(0), sp)?;
                lvl.proxy_pass_header.get_or_insert_with(Vec::new).push(h)
            }
            ("proxy_ignore_headers", _) => {
                const OK: &[&str] = &[
                    "X-Accel-Redirect",
                    "X-Accel-Expires",
                    "X-Accel-Limit-Rate",
                    "X-Accel-Buffering",
                    "X-Accel-Charset",
                    "Expires",
                    "Cache-Control",
                    "Set-Cookie",
                    "Vary",
                ];
                let mut v = Vec::new();
                for x in &d.args {
                    match OK.iter().find(|o| o.eq_ignore_ascii_case(&x.value)) {
                        Some(o) => v.push(o.to_string()),
                        None => return Err(ec.e(format!("invalid value \"{}\"", x.value), sp)),
                    }
                }
                set!(proxy_ignore_headers, v)
            }
            ("proxy_intercept_errors", _) => set!(proxy_intercept_errors, flag()),
            ("proxy_pass_request_headers", _) => set!(proxy_pass_request_headers, flag()),
            ("proxy_pass_request_body", _) => set!(proxy_pass_request_body, flag()),
            ("proxy_ssl_server_name", _) => set!(proxy_ssl_server_name, flag()),
            ("proxy_ssl_verify", _) => set!(proxy_ssl_verify, flag()),
            ("proxy_ssl_verify_depth", _) => set!(proxy_ssl_verify_depth, num()?),
            ("proxy_ssl_trusted_certificate", _) => {
                set!(proxy_ssl_trusted_certificate, PathBuf::from(a(0)))
            }
            ("proxy_ssl_protocols", _) => set!(proxy_ssl_protocols, protocols(ec, d)?),
            ("proxy_ssl_ciphers", _) => set!(proxy_ssl_ciphers, a(0).to_string()),
            ("proxy_ssl_session_reuse", _) => set!(proxy_ssl_session_reuse, flag()),
            ("allow" | "deny", Pre::Access(from)) => {
                lvl.access.get_or_insert_with(Vec::new).push(AccessRule {
                    allow: name == "allow",
                    from,
                    span: sp.clone(),
                })
            }
            ("client_max_body_size", _) => {
                set!(
                    client_max_body_size,
                    values::parse_offset(a(0)).ok_or_else(invalid)?
                )
            }
            ("client_body_buffer_size", _) => set!(client_body_buffer_size, size()?),
            ("client_header_buffer_size", _) => set!(client_header_buffer_size, size()?),
            ("client_header_timeout", _) => set!(client_header_timeout, time()?),
            ("client_body_timeout", _) => set!(client_body_timeout, time()?),
            ("send_timeout", _) => set!(send_timeout, time()?),
            ("keepalive_timeout", _) => {
                let t = values::parse_time(a(0)).ok_or_else(invalid)?;
                if d.args.len() == 2 {
                    values::parse_time(a(1)).ok_or_else(invalid)?;
                }
                let v = if t.is_zero() { None } else { Some(t) };
                set!(keepalive_timeout, v)
            }
            ("keepalive_requests", _) => set!(keepalive_requests, num()?),
            ("keepalive_time", _) => set!(keepalive_time, time()?),
            ("large_client_header_buffers", _) => {
                let n = values::parse_number(a(0)).filter(|n| *n > 0);
                let s = values::parse_size(a(1)).filter(|s| *s > 0);
                match (n, s) {
                    (Some(n), Some(s)) => {
                        set!(large_client_header_buffers, (n as usize, s as usize))
                    }
                    _ => return Err(invalid()),
                }
            }
            ("server_tokens", _) => {
                let v = match a(0) {
                    "on" => ServerTokens::On,
                    "off" => ServerTokens::Off,
                    "build" => ServerTokens::Build,
                    x => return Err(ec.e(format!("invalid value \"{x}\""), sp)),
                };
                set!(server_tokens, v)
            }
            ("default_type", _) => set!(default_type, a(0).to_string()),
            (
                "types_hash_max_size"
                | "types_hash_bucket_size"
                | "server_names_hash_max_size"
                | "server_names_hash_bucket_size"
                | "variables_hash_max_size"
                | "variables_hash_bucket_size",
                _,
            ) => {
                if name.ends_with("max_size") {
                    num()?;
                } else {
                    size()?;
                }
            }
            ("sendfile", _) => set!(sendfile, flag()),
            ("tcp_nodelay", _) => set!(tcp_nodelay, flag()),
            ("tcp_nopush", _) => set!(tcp_nopush, flag()),
            ("merge_slashes", _) => set!(merge_slashes, flag()),
            ("underscores_in_headers", _) => set!(underscores_in_headers, flag()),
            ("ignore_invalid_headers", _) => set!(ignore_invalid_headers, flag()),
            ("absolute_redirect", _) => set!(absolute_redirect, flag()),
            ("port_in_redirect", _) => set!(port_in_redirect, flag()),
            ("server_name_in_redirect", _) => set!(server_name_in_redirect, flag()),
            ("rewrite_log", _) => set!(rewrite_log, flag()),
            ("uninitialized_variable_warn", _) => set!(uninitialized_variable_warn, flag()),
            ("resolver", _) => {
                let mut v = Vec::new();
                for x in &d.args {
                    let s = x.value.as_str();
                    if let Some(t) = s.strip_prefix("valid=") {
                        values::parse_time(t)
                            .ok_or_else(|| ec.e(format!("invalid parameter \"{s}\""), sp))?;
                    } else if let Some(f) =
                        s.strip_prefix("ipv6=").or_else(|| s.strip_prefix("ipv4="))
                    {
                        values::parse_flag(f)
                            .ok_or_else(|| ec.e(format!("invalid parameter \"{s}\""), sp))?;
                    } else if s.starts_with("status_zone=") {
                    } else {
                        values::parse_host_port(s, Some(53), false)
                            .map_err(|e| ec.e(format!("{e} in resolver \"{s}\""), sp))?;
                        v.push(s.to_string());
                    }
                }
                set!(resolver, v)
            }
            ("resolver_timeout", _) => set!(resolver_timeout, time()?),
            ("internal", _) => {
                if lvl.internal {
                    return Err(dup());
                }
                lvl.internal = true;
            }
            ("stub_status", _) => lvl.stub_status = true,
            ("metrics", _) => lvl.metrics = true,
            ("real_ip_header", _) => {
                let v = match a(0).to_ascii_lowercase().as_str() {
                    "x-real-ip" => RealIpHeader::XRealIp,
                    "x-forwarded-for" => RealIpHeader::XForwardedFor,
                    "proxy_protocol" => RealIpHeader::ProxyProtocol,
                    _ => RealIpHeader::Other(header_name(ec, a(0), sp)?),
                };
                set!(real_ip_header, v)
            }
            ("set_real_ip_from", Pre::Access(from)) => {
                if matches!(from, AccessFrom::All) {
                    return Err(ec.e(
                        format!("host not found in set_real_ip_from \"{}\"", a(0)),
                        sp,
                    ));
                }
                lvl.real_ip_from.get_or_insert_with(Vec::new).push(from)
            }
            ("real_ip_recursive", _) => set!(real_ip_recursive, flag()),
            ("ssl_certificate", _) => lvl
                .ssl_certificate
                .get_or_insert_with(Vec::new)
                .push((PathBuf::from(a(0)), sp.clone())),
            ("ssl_certificate_key", _) => lvl
                .ssl_certificate_key
                .get_or_insert_with(Vec::new)
                .push((PathBuf::from(a(0)), sp.clone())),
            ("ssl_protocols", _) => set!(ssl_protocols, protocols(ec, d)?),
            ("ssl_ciphers", _) => set!(ssl_ciphers, a(0).to_string()),
            ("ssl_prefer_server_ciphers", _) => set!(ssl_prefer_server_ciphers, flag()),
            ("ssl_session_tickets", _) => set!(ssl_session_tickets, flag()),
            ("ssl_session_timeout", _) => set!(ssl_session_timeout, time()?),
            ("ssl_session_cache", _) => {
                for x in &d.args {
                    let s = x.value.as_str();
                    let ok = matches!(s, "off" | "none" | "builtin")
                        || s.strip_prefix("builtin:")
                            .is_some_and(|n| values::parse_number(n).is_some())
                        || s.strip_prefix("shared:")
                            .and_then(|r| r.split_once(':'))
                            .is_some_and(|(n, sz)| {
                                !n.is_empty() && values::parse_size(sz).is_some()
                            });
                    if !ok {
                        return Err(ec.e(format!("invalid session cache \"{s}\""), sp));
                    }
                }
                set!(
                    ssl_session_cache,
                    d.args.iter().map(|x| x.value.to_string()).collect()
                )
            }
            ("http2", _) => set!(http2, flag()),
            _ => {
                // A table entry without a handler is a bug in nginx-rs, not in the config.
                let _ = ctx;
                return Err(ec.e(
                    format!("\"{name}\" directive is not supported by nginx-rs"),
                    sp,
                ));
            }
        }
        Ok(())
    }

    fn error_page(&mut self, d: &Directive) -> Res<ErrorPage> {
        let ec = self.ec();
        let sp = &d.span;
        let n = d.args.len();
        let mut codes = Vec::new();
        let mut overwrite = None;
        for (i, x) in d.args[..n - 1].iter().enumerate() {
            let v = x.value.as_str();
            if let Some(o) = v.strip_prefix('=') {
                if i == 0 || i != n - 2 {
                    return Err(ec.e(format!("invalid value \"{v}\""), sp));
                }
                overwrite = Some(if o.is_empty() {
                    None
                } else {
                    Some(
                        values::parse_number(o)
                            .filter(|c| *c <= 999)
                            .ok_or_else(|| ec.e(format!("invalid value \"{v}\""), sp))?
                            as u16,
                    )
                });
                continue;
            }
            let code = values::parse_number(v)
                .filter(|c| *c != 499)
                .ok_or_else(|| ec.e(format!("invalid value \"{v}\""), sp))?;
            if !(300..=599).contains(&code) {
                return Err(ec.e(format!("value \"{v}\" must be between 300 and 599"), sp));
            }
            codes.push(code as u16);
        }
        let target = self.tpl(&d.args[n - 1].value, sp)?;
        Ok(ErrorPage {
            codes,
            overwrite,
            target,
        })
    }

    fn proxy_redirect(&mut self, d: &Directive) -> Res<RawRedirect> {
        let ec = self.ec();
        let sp = &d.span;
        let a0 = d.args[0].value.as_str();
        if d.args.len() == 1 {
            return match a0 {
                "off" => Ok(RawRedirect::Off),
                "default" => Ok(RawRedirect::Default),
                _ => Err(ec.e(format!("invalid parameter \"{a0}\""), sp)),
            };
        }
        let to = self.tpl(&d.args[1].value, sp)?;
        let from = if let Some(re) = a0.strip_prefix('~') {
            let (caseless, re) = match re.strip_prefix('*') {
                Some(r) => (true, r),
                None => (false, re),
            };
            RawRedirectFrom::Regex(self.vars.regex(re, caseless).map_err(|m| ec.e(m, sp))?)
        } else {
            RawRedirectFrom::Prefix(self.tpl(a0, sp)?)
        };
        Ok(RawRedirect::Rules(vec![(from, to)]))
    }

    fn proxy_pass(&mut self, d: &Directive, regex_like: bool) -> Res<RawPass> {
        let ec = self.ec();
        let sp = &d.span;
        let url = d.args[0].value.as_str();
        if super::vars::has_vars(url) {
            return Ok(RawPass::Dynamic(self.tpl(url, sp)?));
        }
        let u = values::parse_proxy_url(url).map_err(|m| self.err_arg(m, d, 0))?;
        if regex_like && u.uri.is_some() {
            return Err(ec.e(
                "\"proxy_pass\" cannot have URI part in location given by regular expression, or inside named location, or inside \"if\" statement, or inside \"limit_except\" block",
                sp,
            ));
        }
        // An implicit group, unless an `upstream` block of that name exists or comes later.
        if u.unix.is_none() {
            let same_name = |x: &&RawUpstream| x.name.eq_ignore_ascii_case(&u.host);
            if let Some(up) = self.upstreams.iter().find(|x| same_name(x) && !x.implicit) {
                if u.port_written {
                    return Err(ec.e(
                        format!("upstream \"{}\" may not have port {}", up.name, u.port),
                        sp,
                    ));
                }
            } else if !self
                .upstreams
                .iter()
                .any(|x| same_name(&x) && x.port == u.port)
            {
                self.upstreams.push(RawUpstream {
                    name: u.host.clone(),
                    method: None,
                    servers: Vec::new(),
                    keepalive: None,
                    keepalive_requests: None,
                    keepalive_timeout: None,
                    keepalive_time: None,
                    zone: None,
                    implicit: true,
                    port: u.port,
                    port_written: u.port_written,
                    span: sp.clone(),
                });
            }
        }
        Ok(RawPass::Static(u))
    }
}

/// `ssl_protocols` values.
fn protocols(ec: Ec, d: &Directive) -> Res<Vec<String>> {
    const KNOWN: &[&str] = &["SSLv2", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"];
    let mut v = Vec::new();
    for x in &d.args {
        match KNOWN.iter().find(|k| **k == x.value) {
            Some(k) => v.push(k.to_string()),
            None => return Err(ec.e(format!("invalid value \"{}\"", x.value), &d.span)),
        }
    }
    Ok(v)
}

/// `allow`/`deny` value (`ngx_http_access_rule`).
fn access_from(ec: Ec, v: &str, sp: &Span) -> Res<(AccessFrom, bool)> {
    if v == "all" {
        return Ok((AccessFrom::All, false));
    }
    if v == "unix:" {
        return Ok((AccessFrom::Unix, false));
    }
    match values::parse_cidr(v) {
        Some((addr, prefix, low_bits)) => Ok((AccessFrom::Cidr { addr, prefix }, low_bits)),
        None => Err(ec.e(format!("invalid parameter \"{v}\""), sp)),
    }
}

/// Values handlers compute before borrowing the level.
enum Pre {
    None,
    Pass(RawPass),
    Header(http::HeaderName, super::Template),
    Tpl(super::Template),
    Tpls(Vec<super::Template>),
    Log(AccessLog),
    ErrorPage(ErrorPage),
    Redirect(RawRedirect),
    Access(AccessFrom),
}
