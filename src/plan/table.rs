//! The directive table: nginx's `ngx_command_t` arrays as data. For each directive nginx-rs
//! implements: its name, the contexts it may appear in, whether it opens a block, and how many
//! arguments it takes. The values themselves are checked by the handlers in `directives.rs`.
//!
//! Contexts and arities are nginx 1.22's (`src/core/nginx.c`, `src/event/ngx_event.c`,
//! `src/http/ngx_http_core_module.c`, `ngx_http_upstream.c`, `modules/ngx_http_proxy_module.c`, ...).

/// Contexts, as nginx's `NGX_*_CONF` bits.
pub type Ctx = u16;
pub const MAIN: Ctx = 1;
pub const EVENT: Ctx = 1 << 1;
/// `http { }` itself.
pub const HTTP: Ctx = 1 << 2;
pub const SRV: Ctx = 1 << 3;
pub const LOC: Ctx = 1 << 4;
pub const UPS: Ctx = 1 << 5;
/// `if` inside `server`.
pub const SIF: Ctx = 1 << 6;
/// `if` inside `location`.
pub const LIF: Ctx = 1 << 7;
/// `limit_except`.
pub const LMT: Ctx = 1 << 8;

const HSL: Ctx = HTTP | SRV | LOC;
const HS: Ctx = HTTP | SRV;
const REWRITE: Ctx = SRV | SIF | LOC | LIF;

/// Argument count rules (`NGX_CONF_NOARGS`, `TAKE1`..., `FLAG`, `1MORE`, `2MORE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arity {
    /// Exactly one of the listed counts (NOARGS = `&[0]`, TAKE12 = `&[1, 2]`...).
    Take(&'static [usize]),
    /// `on` or `off`: one argument.
    Flag,
    OneMore,
    TwoMore,
}

impl Arity {
    pub fn accepts(self, n: usize) -> bool {
        match self {
            Arity::Take(ns) => ns.contains(&n),
            Arity::Flag => n == 1,
            Arity::OneMore => n >= 1,
            Arity::TwoMore => n >= 2,
        }
    }
}

const N0: Arity = Arity::Take(&[0]);
const T1: Arity = Arity::Take(&[1]);
const T2: Arity = Arity::Take(&[2]);
const T12: Arity = Arity::Take(&[1, 2]);
const T23: Arity = Arity::Take(&[2, 3]);
const FLAG: Arity = Arity::Flag;
const MORE1: Arity = Arity::OneMore;
const MORE2: Arity = Arity::TwoMore;

#[derive(Clone, Copy, Debug)]
pub struct Cmd {
    pub name: &'static str,
    pub ctx: Ctx,
    pub block: bool,
    pub arity: Arity,
}

const fn c(name: &'static str, ctx: Ctx, arity: Arity) -> Cmd {
    Cmd {
        name,
        ctx,
        block: false,
        arity,
    }
}

const fn b(name: &'static str, ctx: Ctx, arity: Arity) -> Cmd {
    Cmd {
        name,
        ctx,
        block: true,
        arity,
    }
}

/// Every directive nginx-rs implements. A name may appear twice with different contexts (`server`
/// in `http` vs in `upstream`), as in nginx where two modules define it.
pub static COMMANDS: &[Cmd] = &[
    // core (nginx.c, ngx_errlog.c)
    c("daemon", MAIN, FLAG),
    c("master_process", MAIN, FLAG),
    c("pid", MAIN, T1),
    c("worker_processes", MAIN, T1),
    c("user", MAIN, T12),
    c("worker_rlimit_nofile", MAIN, T1),
    c("worker_shutdown_timeout", MAIN, T1),
    c("pcre_jit", MAIN, FLAG),
    c("error_log", MAIN | HSL, MORE1),
    b("events", MAIN, N0),
    b("http", MAIN, N0),
    c("include", MAIN | EVENT | HSL | UPS | SIF | LIF | LMT, T1),
    // events
    c("worker_connections", EVENT, T1),
    c("multi_accept", EVENT, FLAG),
    c("accept_mutex", EVENT, FLAG),
    c("accept_mutex_delay", EVENT, T1),
    c("use", EVENT, T1),
    // http core
    b("server", HTTP, N0),
    c("listen", SRV, MORE1),
    c("server_name", SRV, MORE1),
    b("location", SRV | LOC, T12),
    c("root", HSL | LIF, T1),
    c("alias", LOC, T1),
    c("index", HSL, MORE1),
    c("try_files", SRV | LOC, MORE2),
    c("error_page", HSL | LIF, MORE2),
    c("client_max_body_size", HSL, T1),
    c("client_body_buffer_size", HSL, T1),
    c("client_header_buffer_size", HS, T1),
    c("client_header_timeout", HS, T1),
    c("client_body_timeout", HSL, T1),
    c("send_timeout", HSL, T1),
    c("keepalive_timeout", HSL, T12),
    c("keepalive_requests", HSL, T1),
    c("keepalive_time", HSL, T1),
    c("large_client_header_buffers", HS, T2),
    c("server_tokens", HSL, T1),
    c("default_type", HSL, T1),
    b("types", HSL, N0),
    c("types_hash_max_size", HSL, T1),
    c("types_hash_bucket_size", HSL, T1),
    c("server_names_hash_max_size", HTTP, T1),
    c("server_names_hash_bucket_size", HTTP, T1),
    c("variables_hash_max_size", HTTP, T1),
    c("variables_hash_bucket_size", HTTP, T1),
    c("sendfile", HSL | LIF, FLAG),
    c("tcp_nodelay", HSL, FLAG),
    c("tcp_nopush", HSL, FLAG),
    c("merge_slashes", HS, FLAG),
    c("underscores_in_headers", HS, FLAG),
    c("ignore_invalid_headers", HS, FLAG),
    c("absolute_redirect", HSL, FLAG),
    c("port_in_redirect", HSL, FLAG),
    c("server_name_in_redirect", HSL, FLAG),
    c("resolver", HSL, MORE1),
    c("resolver_timeout", HSL, T1),
    c("internal", LOC, N0),
    // http log
    c("access_log", HSL | LIF | LMT, MORE1),
    c("log_format", HTTP, MORE2),
    // upstream
    b("upstream", HTTP, T1),
    c("server", UPS, MORE1),
    c("least_conn", UPS, N0),
    c("ip_hash", UPS, N0),
    c("hash", UPS, T12),
    c("random", UPS, Arity::Take(&[0, 1, 2])),
    c("keepalive", UPS, T1),
    c("keepalive_requests", UPS, T1),
    c("keepalive_timeout", UPS, T1),
    c("keepalive_time", UPS, T1),
    c("zone", UPS, T12),
    // proxy
    c("proxy_pass", LOC | LIF | LMT, T1),
    c("proxy_set_header", HSL, T2),
    c("proxy_http_version", HSL, T1),
    c("proxy_connect_timeout", HSL, T1),
    c("proxy_read_timeout", HSL, T1),
    c("proxy_send_timeout", HSL, T1),
    c("proxy_next_upstream", HSL, MORE1),
    c("proxy_next_upstream_tries", HSL, T1),
    c("proxy_next_upstream_timeout", HSL, T1),
    c("proxy_buffering", HSL, FLAG),
    c("proxy_request_buffering", HSL, FLAG),
    c("proxy_buffer_size", HSL, T1),
    c("proxy_buffers", HSL, T2),
    c("proxy_busy_buffers_size", HSL, T1),
    c("proxy_redirect", HSL, T12),
    c("proxy_hide_header", HSL, T1),
    c("proxy_pass_header", HSL, T1),
    c("proxy_ignore_headers", HSL, MORE1),
    c("proxy_intercept_errors", HSL, FLAG),
    c("proxy_pass_request_headers", HSL, FLAG),
    c("proxy_pass_request_body", HSL, FLAG),
    c("proxy_set_body", HSL, T1),
    c("proxy_method", HSL, T1),
    c("proxy_ssl_server_name", HSL, FLAG),
    c("proxy_ssl_name", HSL, T1),
    c("proxy_ssl_verify", HSL, FLAG),
    c("proxy_ssl_verify_depth", HSL, T1),
    c("proxy_ssl_trusted_certificate", HSL, T1),
    c("proxy_ssl_protocols", HSL, MORE1),
    c("proxy_ssl_ciphers", HSL, T1),
    c("proxy_ssl_session_reuse", HSL, FLAG),
    // map, access, headers, rewrite, realip
    b("map", HTTP, T2),
    c("allow", HSL | LMT, T1),
    c("deny", HSL | LMT, T1),
    c("add_header", HSL | LIF, T23),
    c("rewrite", REWRITE, T23),
    c("return", REWRITE, T12),
    c("break", REWRITE, N0),
    b("if", SRV | LOC, MORE1),
    c("set", REWRITE, T2),
    c("rewrite_log", HTTP | REWRITE, FLAG),
    c("uninitialized_variable_warn", HTTP | REWRITE, FLAG),
    c("real_ip_header", HSL, T1),
    c("set_real_ip_from", HSL, T1),
    c("real_ip_recursive", HSL, FLAG),
    // TLS and HTTP/2
    c("ssl_certificate", HS, T1),
    c("ssl_certificate_key", HS, T1),
    c("ssl_protocols", HS, MORE1),
    c("ssl_ciphers", HS, T1),
    c("ssl_prefer_server_ciphers", HS, FLAG),
    c("ssl_session_cache", HS, T12),
    c("ssl_session_timeout", HS, T1),
    c("ssl_session_tickets", HS, FLAG),
    c("http2", HS, FLAG),
    // status
    c("stub_status", SRV | LOC, Arity::Take(&[0, 1])),
    // nginx-rs: Prometheus metrics of the same counters (runtime::status).
    c("metrics", LOC, N0),
];

/// Every entry for `name` (usually one).
pub fn lookup(name: &str) -> impl Iterator<Item = &'static Cmd> + '_ {
    COMMANDS.iter().filter(move |c| c.name == name)
}

/// Directives of nginx's standard modules that nginx-rs does not implement: they get
/// `"X" directive is not supported by nginx-rs` rather than `unknown directive`.
pub static UNSUPPORTED: &[&str] = &[
    // core / events
    "env",
    "load_module",
    "lock_file",
    "ssl_engine",
    "thread_pool",
    "timer_resolution",
    "worker_cpu_affinity",
    "worker_priority",
    "worker_rlimit_core",
    "working_directory",
    "debug_points",
    "debug_connection",
    "worker_aio_requests",
    "google_perftools_profiles",
    // other top-level protocols
    "stream",
    "mail",
    // http core and friends
    "aio",
    "aio_write",
    "auth_basic",
    "auth_basic_user_file",
    "auth_delay",
    "auth_request",
    "auth_request_set",
    "autoindex",
    "autoindex_exact_size",
    "autoindex_format",
    "autoindex_localtime",
    "charset",
    "charset_map",
    "charset_types",
    "chunked_transfer_encoding",
    "client_body_in_file_only",
    "client_body_in_single_buffer",
    "client_body_temp_path",
    "connection_pool_size",
    "dav_access",
    "dav_methods",
    "create_full_put_path",
    "directio",
    "directio_alignment",
    "disable_symlinks",
    "empty_gif",
    "etag",
    "expires",
    "fastcgi_pass",
    "fastcgi_param",
    "fastcgi_index",
    "fastcgi_split_path_info",
    "fastcgi_buffers",
    "fastcgi_buffer_size",
    "fastcgi_read_timeout",
    "fastcgi_cache",
    "fastcgi_cache_path",
    "fastcgi_intercept_errors",
    "flv",
    "geo",
    "geoip_country",
    "geoip_city",
    "grpc_pass",
    "grpc_set_header",
    "gunzip",
    "gzip",
    "gzip_buffers",
    "gzip_comp_level",
    "gzip_disable",
    "gzip_http_version",
    "gzip_min_length",
    "gzip_proxied",
    "gzip_static",
    "gzip_types",
    "gzip_vary",
    "if_modified_since",
    "image_filter",
    "keepalive_disable",
    "limit_conn",
    "limit_conn_zone",
    "limit_conn_status",
    "limit_conn_log_level",
    "limit_rate",
    "limit_rate_after",
    "limit_req",
    "limit_req_zone",
    "limit_req_status",
    "limit_req_log_level",
    "lingering_close",
    "lingering_time",
    "lingering_timeout",
    "log_not_found",
    "log_subrequest",
    "max_ranges",
    "memcached_pass",
    "mirror",
    "mirror_request_body",
    "modern_browser",
    "mp4",
    "msie_padding",
    "msie_refresh",
    "open_file_cache",
    "open_file_cache_errors",
    "open_file_cache_min_uses",
    "open_file_cache_valid",
    "open_log_file_cache",
    "output_buffers",
    "postpone_output",
    "proxy_bind",
    "proxy_cache",
    "proxy_cache_bypass",
    "proxy_cache_key",
    "proxy_cache_lock",
    "proxy_cache_methods",
    "proxy_cache_min_uses",
    "proxy_cache_path",
    "proxy_cache_revalidate",
    "proxy_cache_use_stale",
    "proxy_cache_valid",
    "proxy_cookie_domain",
    "proxy_cookie_path",
    "proxy_cookie_flags",
    "proxy_headers_hash_bucket_size",
    "proxy_headers_hash_max_size",
    "proxy_max_temp_file_size",
    "proxy_no_cache",
    "proxy_socket_keepalive",
    "proxy_store",
    "proxy_temp_file_write_size",
    "proxy_temp_path",
    "proxy_ssl_certificate",
    "proxy_ssl_certificate_key",
    "proxy_limit_rate",
    "random_index",
    "read_ahead",
    "recursive_error_pages",
    "referer_hash_bucket_size",
    "request_pool_size",
    "reset_timedout_connection",
    "satisfy",
    "scgi_pass",
    "secure_link",
    "secure_link_md5",
    "secure_link_secret",
    "send_lowat",
    "sendfile_max_chunk",
    "slice",
    "split_clients",
    "ssi",
    "ssi_types",
    "ssl_buffer_size",
    "ssl_client_certificate",
    "ssl_crl",
    "ssl_dhparam",
    "ssl_early_data",
    "ssl_ecdh_curve",
    "ssl_password_file",
    "ssl_stapling",
    "ssl_stapling_verify",
    "ssl_trusted_certificate",
    "ssl_verify_client",
    "ssl_verify_depth",
    "ssl_session_ticket_key",
    "ssl",
    "sub_filter",
    "sub_filter_once",
    "sub_filter_types",
    "subrequest_output_buffer_size",
    "uwsgi_pass",
    "uwsgi_param",
    "valid_referers",
    "userid",
    "xml_entities",
    "xslt_stylesheet",
    "http2_push",
    "http2_push_preload",
    "http2_max_concurrent_streams",
    "http2_recv_buffer_size",
    "http2_chunk_size",
    "http2_body_preread_size",
    "http2_idle_timeout",
    "http3",
    "quic_retry",
    "addition_types",
    "add_before_body",
    "add_after_body",
    "add_trailer",
    "ancient_browser",
    "limit_except",
    "internal_redirect",
    "mp4_buffer_size",
    "hls",
];

/// Names for `did you mean` hints: everything nginx-rs implements.
pub fn names() -> impl Iterator<Item = &'static str> {
    COMMANDS.iter().map(|c| c.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_directive_is_both_supported_and_unsupported() {
        for n in UNSUPPORTED {
            assert!(lookup(n).next().is_none(), "{n} is in both lists");
        }
    }

    #[test]
    fn arity() {
        assert!(T12.accepts(2) && !T12.accepts(3) && !T12.accepts(0));
        assert!(MORE2.accepts(5) && !MORE2.accepts(1));
        assert!(FLAG.accepts(1) && !FLAG.accepts(0));
    }
}
