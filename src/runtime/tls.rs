//! TLS termination with rustls, built from the Plan's `ServerTls` (no OpenSSL).
//!
//! - [`TlsSet::load`] reads every `ssl_certificate` / `ssl_certificate_key` pair (PEM chains, RSA,
//!   ECDSA and Ed25519 keys, several pairs per server) and builds one rustls `ServerConfig` per
//!   server. It runs at `-t`, at start and at reload, so a bad file is nginx's
//!   `cannot load certificate "/path": ...` and a failed reload keeps the old set serving.
//! - SNI: the connection's server is chosen from the ClientHello's name with the same
//!   `server_name` tables as `Host` ([`super::router`]); a name that matches nothing, no SNI at all,
//!   or a matching server without certificates gets the default server's configuration.
//! - With several pairs in one server, the client's most preferred signature scheme decides (an
//!   ECDSA pair for clients that prefer ECDSA, the RSA one for RSA-only clients), as OpenSSL.
//! - `ssl_protocols`: rustls implements TLSv1.2 and TLSv1.3 only. Older versions listed beside
//!   them are never negotiated (stricter, never weaker); a list with neither is an `[emerg]`.
//! - `ssl_ciphers`: the OpenSSL cipher string is evaluated (names, aliases such as `HIGH`,
//!   `ECDHE+AESGCM`, and `!`/`-`/`+` operators) over the TLSv1.2 suites rustls offers; an empty
//!   result is nginx's `SSL_CTX_set_cipher_list(...) failed` `[emerg]`. As with OpenSSL, TLSv1.3
//!   suites are not controlled by `ssl_ciphers`.
//! - `ssl_prefer_server_ciphers` maps to rustls's `ignore_client_order`. `ssl_session_cache` and
//!   `ssl_session_timeout` are accepted; rustls's in-memory session cache (256 entries) is used.
//! - Upstream TLS (`proxy_pass https://`): [`upstream_config`] gives the client configuration,
//!   verification off by default as nginx (`proxy_ssl_verify off`).

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{CipherSuite, ServerConfig, SupportedCipherSuite};

use crate::conf::ConfError;
use crate::plan::{Plan, ServerTls};

/// nginx's default `ssl_ciphers`.
const DEFAULT_CIPHERS: &str = "HIGH:!aNULL:!MD5";

/// The TLS side of one loaded configuration: a server configuration per `Http::servers` index
/// (`None` for servers without certificates).
#[derive(Default)]
pub struct TlsSet {
    servers: Vec<Option<ServerTlsConfig>>,
    /// Upstream client configurations by `proxy_ssl_trusted_certificate` (verification on).
    upstream_verified: HashMap<PathBuf, Arc<rustls::ClientConfig>>,
}

impl fmt::Debug for TlsSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSet")
            .field(
                "servers",
                &self.servers.iter().filter(|s| s.is_some()).count(),
            )
            .finish_non_exhaustive()
    }
}

/// One server's rustls configuration, with and without ALPN `h2`.
struct ServerTlsConfig {
    h1: Arc<ServerConfig>,
    h2: Arc<ServerConfig>,
    /// `http2 on` in this server.
    http2: bool,
}

impl TlsSet {
    /// Load every server's certificates and build the rustls configurations (reads the files).
    pub fn load(plan: &Plan) -> Result<TlsSet, ConfError> {
        // Through `conf::include::read_file`: the serving process reads the supervisor's bytes.
        Self::load_with(plan, &|p: &Path| crate::conf::include::read_file(p))
    }

    /// As [`TlsSet::load`], reading files through `read` (the supervisor passes file bytes it read
    /// as root).
    pub fn load_with(
        plan: &Plan,
        read: &dyn Fn(&Path) -> io::Result<Vec<u8>>,
    ) -> Result<TlsSet, ConfError> {
        let mut servers = Vec::with_capacity(plan.http.servers.len());
        for s in &plan.http.servers {
            servers.push(match &s.tls {
                Some(t) if !t.certificates.is_empty() => Some(server_config(t, read)?),
                _ => None,
            });
        }
        let mut upstream_verified = HashMap::new();
        for path in trusted_certificates(plan) {
            if let std::collections::hash_map::Entry::Vacant(e) = upstream_verified.entry(path) {
                let cfg = verified_client_config(e.key(), read)?;
                e.insert(cfg);
            }
        }
        Ok(TlsSet {
            servers,
            upstream_verified,
        })
    }

    /// The configuration for a handshake on a listen address: `server` is the server chosen by SNI,
    /// `default` the address's default server (used when `server` has no certificate). `h2` offers
    /// ALPN `h2` (`listen ... http2`); `http2 on` in the chosen server offers it too.
    pub fn config_for(&self, server: usize, default: usize, h2: bool) -> Option<Arc<ServerConfig>> {
        let c = self
            .servers
            .get(server)
            .and_then(Option::as_ref)
            .or_else(|| self.servers.get(default).and_then(Option::as_ref))?;
        Some(if h2 || c.http2 {
            c.h2.clone()
        } else {
            c.h1.clone()
        })
    }

    /// True if any server has a certificate (an `ssl` listener can serve).
    pub fn is_empty(&self) -> bool {
        self.servers.iter().all(Option::is_none)
    }

    /// Client configuration for `proxy_pass https://`: `verify` with `trusted` (loaded at load
    /// time), else nginx's default of no verification.
    pub fn upstream_config(
        &self,
        verify: bool,
        trusted: Option<&Path>,
    ) -> Option<Arc<rustls::ClientConfig>> {
        if !verify {
            return Some(upstream_config());
        }
        trusted.and_then(|p| self.upstream_verified.get(p).cloned())
    }
}

/// Every `proxy_ssl_trusted_certificate` of a location with `proxy_ssl_verify on`.
fn trusted_certificates(plan: &Plan) -> Vec<PathBuf> {
    fn walk(locs: &[Arc<crate::plan::Location>], out: &mut Vec<PathBuf>) {
        for l in locs {
            if let Some(p) = &l.conf.proxy {
                if let (true, Some(t)) = (p.ssl_verify, &p.ssl_trusted_certificate) {
                    out.push(t.clone());
                }
            }
            walk(&l.children, out);
        }
    }
    let mut out = Vec::new();
    for s in &plan.http.servers {
        walk(&s.locations, &mut out);
        walk(&s.named, &mut out);
    }
    out
}

fn provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// nginx's `cannot load certificate "/path": REASON`.
fn cert_error(path: &Path, reason: impl fmt::Display) -> ConfError {
    ConfError::nowhere(format!(
        "cannot load certificate \"{}\": {reason}",
        path.display()
    ))
}

/// nginx's `cannot load certificate key "/path": REASON`.
fn key_error(path: &Path, reason: impl fmt::Display) -> ConfError {
    ConfError::nowhere(format!(
        "cannot load certificate key \"{}\": {reason}",
        path.display()
    ))
}

/// `open() failed (2: No such file or directory)`-style text for a read error.
fn read_reason(e: &io::Error) -> String {
    format!("BIO_new_file() failed ({})", super::proxy::os_error(e))
}

/// Read a PEM certificate chain (leaf first).
pub fn load_certs(
    path: &Path,
    read: &dyn Fn(&Path) -> io::Result<Vec<u8>>,
) -> Result<Vec<CertificateDer<'static>>, ConfError> {
    let bytes = read(path).map_err(|e| cert_error(path, read_reason(&e)))?;
    let mut certs = Vec::new();
    for c in rustls_pemfile::certs(&mut bytes.as_slice()) {
        certs.push(c.map_err(|e| cert_error(path, format!("PEM read failed ({e})")))?);
    }
    if certs.is_empty() {
        return Err(cert_error(
            path,
            "PEM_read_bio_X509_AUX() failed (no \"CERTIFICATE\" PEM block found)",
        ));
    }
    Ok(certs)
}

fn load_key(
    path: &Path,
    read: &dyn Fn(&Path) -> io::Result<Vec<u8>>,
) -> Result<PrivateKeyDer<'static>, ConfError> {
    let bytes = read(path).map_err(|e| key_error(path, read_reason(&e)))?;
    match rustls_pemfile::private_key(&mut bytes.as_slice()) {
        Ok(Some(k)) => Ok(k),
        Ok(None) => Err(key_error(
            path,
            "PEM_read_bio_PrivateKey() failed (no PRIVATE KEY PEM block found)",
        )),
        Err(e) => Err(key_error(
            path,
            format!("PEM_read_bio_PrivateKey() failed ({e})"),
        )),
    }
}

/// One certificate/key pair as rustls uses it; the key must match the leaf certificate.
fn certified_key(
    cert: &Path,
    key: &Path,
    read: &dyn Fn(&Path) -> io::Result<Vec<u8>>,
) -> Result<Arc<CertifiedKey>, ConfError> {
    let chain = load_certs(cert, read)?;
    let der = load_key(key, read)?;
    let signing = provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| key_error(key, format!("unsupported key ({e})")))?;
    let ck = CertifiedKey::new(chain, signing);
    // rustls compares the key's public half with the leaf's SubjectPublicKeyInfo.
    if let Err(e) = ck.keys_match() {
        if !matches!(
            e,
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)
        ) {
            return Err(ConfError::nowhere(format!(
                "SSL_CTX_use_PrivateKey(\"{}\") failed (key values mismatch with \"{}\")",
                key.display(),
                cert.display()
            )));
        }
    }
    Ok(Arc::new(ck))
}

fn server_config(
    t: &ServerTls,
    read: &dyn Fn(&Path) -> io::Result<Vec<u8>>,
) -> Result<ServerTlsConfig, ConfError> {
    let mut keys = Vec::with_capacity(t.certificates.len());
    for (c, k) in &t.certificates {
        keys.push(certified_key(c, k, read)?);
    }
    let versions = protocol_versions(&t.protocols)?;
    let tls12 = versions
        .iter()
        .any(|v| v.version == rustls::ProtocolVersion::TLSv1_2);
    let cipher_list = t.ciphers.as_deref().unwrap_or(DEFAULT_CIPHERS);
    let tls12_suites = select_ciphers(cipher_list);
    if tls12_suites.is_empty() && (tls12 || t.ciphers.is_some()) {
        return Err(ConfError::nowhere(format!(
            "SSL_CTX_set_cipher_list(\"{cipher_list}\") failed (no cipher match: rustls offers {})",
            TLS12_SUITES
                .iter()
                .map(|s| s.openssl)
                .collect::<Vec<_>>()
                .join(":")
        )));
    }
    let base = provider();
    let mut suites: Vec<SupportedCipherSuite> = base
        .cipher_suites
        .iter()
        .filter(|s| matches!(s, SupportedCipherSuite::Tls13(_)))
        .copied()
        .collect();
    // TLSv1.3 suites first (the client picks TLSv1.3 when both sides have it), then the TLSv1.2
    // ones in the cipher string's order.
    for want in &tls12_suites {
        if let Some(s) = base.cipher_suites.iter().find(|s| s.suite() == *want) {
            suites.push(*s);
        }
    }
    let provider = Arc::new(CryptoProvider {
        cipher_suites: suites,
        ..(*base).clone()
    });
    let resolver = Arc::new(PairResolver { keys });
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| ConfError::nowhere(format!("SSL_CTX_new() failed ({e})")))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    cfg.ignore_client_order = t.prefer_server_ciphers;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut h2 = cfg.clone();
    h2.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(ServerTlsConfig {
        h1: Arc::new(cfg),
        h2: Arc::new(h2),
        http2: t.http2,
    })
}

/// `ssl_protocols` onto rustls's versions.
fn protocol_versions(
    list: &[String],
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, ConfError> {
    let mut v = Vec::new();
    if list.iter().any(|p| p == "TLSv1.3") {
        v.push(&rustls::version::TLS13);
    }
    if list.iter().any(|p| p == "TLSv1.2") {
        v.push(&rustls::version::TLS12);
    }
    if v.is_empty() {
        return Err(ConfError::nowhere(format!(
            "ssl_protocols \"{}\" cannot be honoured: rustls implements only TLSv1.2 and TLSv1.3",
            list.join(" ")
        )));
    }
    Ok(v)
}

/// Picks, among a server's certificate pairs, the first one the client can verify.
#[derive(Debug)]
struct PairResolver {
    keys: Vec<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for PairResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // In the client's order of preference, as OpenSSL: a client that prefers ECDSA gets the
        // ECDSA pair, an RSA-only one the RSA pair.
        for scheme in hello.signature_schemes() {
            if let Some(k) = self
                .keys
                .iter()
                .find(|k| k.key.choose_scheme(&[*scheme]).is_some())
            {
                return Some(k.clone());
            }
        }
        self.keys.first().cloned()
    }
}

/// A TLSv1.2 suite rustls offers, with its OpenSSL name and the OpenSSL aliases that select it.
struct Tls12Suite {
    suite: CipherSuite,
    openssl: &'static str,
    aliases: &'static [&'static str],
}

const COMMON: &[&str] = &[
    "ALL", "DEFAULT", "HIGH", "ECDHE", "EECDH", "kECDHE", "kEECDH", "ECDH", "kECDH", "AEAD",
    "TLSv1.2", "FIPS",
];

const TLS12_SUITES: &[Tls12Suite] = &[
    Tls12Suite {
        suite: CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        openssl: "ECDHE-ECDSA-AES128-GCM-SHA256",
        aliases: &["aECDSA", "ECDSA", "AESGCM", "AES", "AES128", "AESGCM128"],
    },
    Tls12Suite {
        suite: CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        openssl: "ECDHE-RSA-AES128-GCM-SHA256",
        aliases: &["aRSA", "RSA", "AESGCM", "AES", "AES128", "AESGCM128"],
    },
    Tls12Suite {
        suite: CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        openssl: "ECDHE-ECDSA-AES256-GCM-SHA384",
        aliases: &[
            "aECDSA",
            "ECDSA",
            "AESGCM",
            "AES",
            "AES256",
            "AESGCM256",
            "SHA384",
        ],
    },
    Tls12Suite {
        suite: CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        openssl: "ECDHE-RSA-AES256-GCM-SHA384",
        aliases: &[
            "aRSA",
            "RSA",
            "AESGCM",
            "AES",
            "AES256",
            "AESGCM256",
            "SHA384",
        ],
    },
    Tls12Suite {
        suite: CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        openssl: "ECDHE-ECDSA-CHACHA20-POLY1305",
        aliases: &["aECDSA", "ECDSA", "CHACHA20"],
    },
    Tls12Suite {
        suite: CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        openssl: "ECDHE-RSA-CHACHA20-POLY1305",
        aliases: &["aRSA", "RSA", "CHACHA20"],
    },
];

/// Does one `A+B+C` element of a cipher string select `s`?
fn element_matches(s: &Tls12Suite, element: &str) -> bool {
    element
        .split('+')
        .all(|part| part == s.openssl || COMMON.contains(&part) || s.aliases.contains(&part))
}

/// Evaluate an OpenSSL cipher string over rustls's TLSv1.2 suites, in OpenSSL's order semantics:
/// a plain element appends matching suites not yet listed, `-` removes them (they may come back),
/// `!` removes them for good, `+` moves them to the end. Names and aliases that select nothing
/// rustls implements (`DHE-RSA-...`, `3DES`, `aNULL`, ...) select nothing, as unknown names do in
/// OpenSSL.
pub fn select_ciphers(list: &str) -> Vec<CipherSuite> {
    let mut chosen: Vec<usize> = Vec::new();
    let mut killed = [false; TLS12_SUITES.len()];
    for element in list.split([':', ',', ' ', ';']).filter(|e| !e.is_empty()) {
        if element.starts_with('@') {
            continue; // @STRENGTH, @SECLEVEL=n: ordering/level hints
        }
        let (op, name) = match element.as_bytes()[0] {
            b'!' | b'-' | b'+' => (element.as_bytes()[0], &element[1..]),
            _ => (b' ', element),
        };
        let matching: Vec<usize> = (0..TLS12_SUITES.len())
            .filter(|&i| element_matches(&TLS12_SUITES[i], name))
            .collect();
        match op {
            b'!' => {
                for &i in &matching {
                    killed[i] = true;
                }
                chosen.retain(|i| !matching.contains(i));
            }
            b'-' => chosen.retain(|i| !matching.contains(i)),
            b'+' => {
                let moved: Vec<usize> = chosen
                    .iter()
                    .copied()
                    .filter(|i| matching.contains(i))
                    .collect();
                chosen.retain(|i| !matching.contains(i));
                chosen.extend(moved);
            }
            _ => {
                for i in matching {
                    if !killed[i] && !chosen.contains(&i) {
                        chosen.push(i);
                    }
                }
            }
        }
    }
    chosen.into_iter().map(|i| TLS12_SUITES[i].suite).collect()
}

/// `$ssl_cipher`: the OpenSSL name of a negotiated suite.
pub fn openssl_cipher_name(s: CipherSuite) -> &'static str {
    match s {
        CipherSuite::TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256",
        CipherSuite::TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384",
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256",
        other => TLS12_SUITES
            .iter()
            .find(|t| t.suite == other)
            .map_or("", |t| t.openssl),
    }
}

/// `$ssl_protocol`: `TLSv1.2` / `TLSv1.3`.
pub fn protocol_name(v: rustls::ProtocolVersion) -> &'static str {
    match v {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3",
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2",
        _ => "",
    }
}

/// What a finished handshake negotiated, for `$ssl_protocol`, `$ssl_cipher`, `$ssl_server_name`.
#[derive(Clone, Debug, Default)]
pub struct TlsInfo {
    pub protocol: &'static str,
    pub cipher: &'static str,
    /// The SNI name the client sent (`$ssl_server_name`), if any.
    pub server_name: Option<String>,
    /// ALPN chose `h2`.
    pub h2: bool,
}

impl TlsInfo {
    pub fn from_connection(c: &rustls::ServerConnection) -> TlsInfo {
        TlsInfo {
            protocol: c.protocol_version().map_or("", protocol_name),
            cipher: c
                .negotiated_cipher_suite()
                .map_or("", |s| openssl_cipher_name(s.suite())),
            server_name: c.server_name().map(str::to_owned),
            h2: c.alpn_protocol() == Some(b"h2"),
        }
    }
}

/// TLS parameters for one proxied request: `Ok(None)` for `proxy_pass http://`. The name is
/// `proxy_ssl_name` (default: the `proxy_pass` host without port); it is sent as SNI only with
/// `proxy_ssl_server_name on`, as nginx, and verified only with `proxy_ssl_verify on`.
pub fn upstream_tls(
    ctx: &super::ctx::RequestCtx,
    live: &super::Live,
    conf: &crate::plan::ProxyConf,
) -> Result<Option<super::upstream::UpstreamTls>, String> {
    use rustls::pki_types::ServerName;
    let crate::plan::ProxyPass::Static {
        scheme: crate::plan::Scheme::Https,
        proxy_host,
        ..
    } = &conf.pass
    else {
        return Ok(None);
    };
    let name = match &conf.ssl_name {
        Some(t) => String::from_utf8_lossy(&ctx.render(t)).into_owned(),
        None => host_without_port(proxy_host).to_string(),
    };
    let mut config = live
        .tls
        .upstream_config(conf.ssl_verify, conf.ssl_trusted_certificate.as_deref())
        .ok_or_else(|| {
            "no \"proxy_ssl_trusted_certificate\" for \"proxy_ssl_verify\"".to_string()
        })?;
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    let server_name = ServerName::try_from(bare.to_string())
        .map_err(|_| format!("invalid proxy_ssl_name \"{name}\""))?;
    if !conf.ssl_server_name && matches!(server_name, ServerName::DnsName(_)) {
        config = if conf.ssl_verify {
            let mut c = (*config).clone();
            c.enable_sni = false;
            Arc::new(c)
        } else {
            upstream_config_no_sni()
        };
    }
    Ok(Some(super::upstream::UpstreamTls {
        config,
        server_name,
    }))
}

/// `backend:8443` -> `backend`, `[::1]:8443` -> `[::1]`.
fn host_without_port(h: &str) -> &str {
    match h.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !host.is_empty() => {
            if h.starts_with('[') && !host.ends_with(']') {
                h
            } else {
                host
            }
        }
        _ => h,
    }
}

fn upstream_config_no_sni() -> Arc<rustls::ClientConfig> {
    static C: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    C.get_or_init(|| {
        let mut c = (*upstream_config()).clone();
        c.enable_sni = false;
        Arc::new(c)
    })
    .clone()
}

/// nginx's default for `proxy_ssl_verify off`: accept any upstream certificate.
pub fn upstream_config() -> Arc<rustls::ClientConfig> {
    static C: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    C.get_or_init(|| {
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            // The ring provider supports both default versions; this cannot fail.
            .expect("ring supports TLSv1.2 and TLSv1.3")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider())))
            .with_no_client_auth();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(cfg)
    })
    .clone()
}

fn verified_client_config(
    trusted: &Path,
    read: &dyn Fn(&Path) -> io::Result<Vec<u8>>,
) -> Result<Arc<rustls::ClientConfig>, ConfError> {
    let certs = load_certs(trusted, read)?;
    let mut roots = rustls::RootCertStore::empty();
    for c in certs {
        roots
            .add(c)
            .map_err(|e| cert_error(trusted, format!("X509_STORE_add_cert() failed ({e})")))?;
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfError::nowhere(format!("SSL_CTX_new() failed ({e})")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// `proxy_ssl_verify off`: the handshake signatures are still checked, the chain is not.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

// Unit tests only: their unwraps run on fixed inputs, never on config or request input,
// and a panic there is a failed test.
#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &str) -> Vec<&'static str> {
        select_ciphers(list)
            .into_iter()
            .map(openssl_cipher_name)
            .collect()
    }

    #[test]
    fn nginx_default_cipher_string_selects_every_suite() {
        assert_eq!(names(DEFAULT_CIPHERS).len(), TLS12_SUITES.len());
    }

    #[test]
    fn cipher_string_operators() {
        assert_eq!(
            names("ECDHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES128-GCM-SHA256"),
            ["ECDHE-RSA-AES128-GCM-SHA256"]
        );
        assert_eq!(
            names("EECDH+AESGCM:!aRSA"),
            [
                "ECDHE-ECDSA-AES128-GCM-SHA256",
                "ECDHE-ECDSA-AES256-GCM-SHA384"
            ]
        );
        // `!` is final, `-` is not.
        assert!(names("!CHACHA20:ALL").iter().all(|n| !n.contains("CHACHA")));
        assert!(names("-CHACHA20:ALL").iter().any(|n| n.contains("CHACHA")));
        // `+` moves to the end.
        assert_eq!(
            names("ALL:+AES").first(),
            Some(&"ECDHE-ECDSA-CHACHA20-POLY1305")
        );
        assert!(names("FOO").is_empty());
        assert!(names("3DES:RC4:aNULL").is_empty());
    }

    #[test]
    fn only_old_protocols_cannot_be_honoured() {
        let e = protocol_versions(&["SSLv3".into(), "TLSv1".into()]).unwrap_err();
        assert_eq!(
            e.message,
            "ssl_protocols \"SSLv3 TLSv1\" cannot be honoured: rustls implements only TLSv1.2 and TLSv1.3"
        );
        assert_eq!(
            protocol_versions(&["TLSv1.1".into(), "TLSv1.2".into()])
                .unwrap()
                .len(),
            1
        );
    }
}
