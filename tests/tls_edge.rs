//! The modern edge over real sockets: TLS termination (SNI, default certificate, protocol limits,
//! certificate errors at `-t`, certificate swap on reload), HTTP/2 (multiplexing, large bodies, a
//! reset stream), upstream TLS, WebSocket through the proxy, the PROXY protocol, and a differential
//! run against real nginx over TLS. Certificates are generated here (rcgen, and `openssl` for RSA
//! keys when installed); no key is committed.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::BodyExt;
use nginx_rs::conf::parser::{load_file, LoadOptions};
use nginx_rs::plan::{self, CompileOptions, Plan};
use nginx_rs::runtime::{self, Live};
use rustls::pki_types::{CertificateDer, ServerName};
use support::{Backend, Behaviour};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

// ---------- certificates ----------

struct Cert {
    pem: String,
    key: String,
    der: Vec<u8>,
}

/// A self-signed ECDSA P-256 certificate for `names`.
fn ecdsa_cert(names: &[&str]) -> Cert {
    let key = rcgen::KeyPair::generate().expect("keygen");
    sign(names, key)
}

fn sign(names: &[&str], key: rcgen::KeyPair) -> Cert {
    let params =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("params");
    let cert = params.self_signed(&key).expect("self-signed");
    Cert {
        pem: cert.pem(),
        key: key.serialize_pem(),
        der: cert.der().to_vec(),
    }
}

/// An RSA certificate (the key from `openssl genpkey`: ring cannot generate RSA keys).
fn rsa_cert(names: &[&str], dir: &Path) -> Option<Cert> {
    let path = dir.join("rsa-gen.key");
    let ok = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&path)
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("SKIP (RSA part): openssl not available to generate an RSA key");
        return None;
    }
    let pem = std::fs::read_to_string(&path).ok()?;
    let key = rcgen::KeyPair::from_pem(&pem).ok()?;
    Some(sign(names, key))
}

fn write_cert(dir: &Path, name: &str, c: &Cert) -> (PathBuf, PathBuf) {
    let cp = dir.join(format!("{name}.crt"));
    let kp = dir.join(format!("{name}.key"));
    std::fs::write(&cp, &c.pem).expect("write cert");
    std::fs::write(&kp, &c.key).expect("write key");
    (cp, kp)
}

// ---------- nginx-rs in process ----------

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn compile(dir: &Path, http: &str) -> Result<Plan, nginx_rs::conf::ConfError> {
    let path = dir.join("nginx.conf");
    std::fs::write(
        &path,
        format!("events {{ worker_connections 256; }}\nhttp {{\n  access_log off;\n{http}\n}}\n"),
    )
    .expect("write conf");
    let parsed = load_file(
        &path,
        &LoadOptions {
            conf_prefix: dir.to_path_buf(),
        },
    );
    if let Some(e) = parsed.error.clone() {
        return Err(e);
    }
    let opts = CompileOptions {
        prefix: dir.to_path_buf(),
        conf_prefix: dir.to_path_buf(),
        ..Default::default()
    };
    plan::compile(&parsed, &opts).map(|(p, _)| p)
}

struct Rs {
    addrs: Vec<SocketAddr>,
    live: Arc<ArcSwap<Live>>,
    stop: watch::Sender<bool>,
}

impl Drop for Rs {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl Rs {
    fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Reload: compile `http` again and swap it in; `Err` keeps the old configuration.
    fn reload(&self, dir: &Path, http: &str) -> Result<(), String> {
        let plan = compile(dir, http).map_err(|e| e.to_string())?;
        let old = self.live.load();
        let live =
            Live::try_new(Arc::new(plan), Some(&old.upstreams)).map_err(|e| e.to_string())?;
        self.live.store(Arc::new(live));
        Ok(())
    }
}

async fn start_rs(dir: &Path, http: &str) -> Rs {
    let plan = Arc::new(compile(dir, http).expect("config compiles"));
    let live = Live::try_new(plan.clone(), None).expect("certificates load");
    let listeners = runtime::bind(&plan).expect("bind");
    let addrs = listeners
        .sockets
        .iter()
        .map(|(_, l)| l.local_addr().expect("addr"))
        .collect();
    let live = Arc::new(ArcSwap::from_pointee(live));
    let (tx, rx) = watch::channel(false);
    tokio::spawn(runtime::serve(listeners, live.clone(), rx));
    Rs {
        addrs,
        live,
        stop: tx,
    }
}

// ---------- a TLS client ----------

#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[derive(Clone, Default)]
struct ClientOpts {
    /// `None`: no SNI.
    sni: Option<&'static str>,
    versions: Option<&'static rustls::SupportedProtocolVersion>,
    alpn: Vec<&'static [u8]>,
    /// Only these signature schemes (to ask for the RSA certificate of a dual-key server).
    rsa_only: bool,
}

fn client_config(o: &ClientOpts) -> Arc<rustls::ClientConfig> {
    let mut provider = rustls::crypto::ring::default_provider();
    if o.rsa_only {
        provider.cipher_suites.retain(|s| {
            !matches!(s, rustls::SupportedCipherSuite::Tls12(t) if format!("{:?}", t.common.suite).contains("ECDSA"))
        });
    }
    let provider = Arc::new(provider);
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = match o.versions {
        Some(v) => vec![v],
        None => vec![&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertRsa(AnyCert(provider), o.rsa_only)))
        .with_no_client_auth();
    cfg.alpn_protocols = o.alpn.iter().map(|a| a.to_vec()).collect();
    Arc::new(cfg)
}

/// [`AnyCert`], optionally offering only RSA signature schemes.
#[derive(Debug)]
struct AnyCertRsa(AnyCert, bool);

impl rustls::client::danger::ServerCertVerifier for AnyCertRsa {
    fn verify_server_cert(
        &self,
        a: &CertificateDer<'_>,
        b: &[CertificateDer<'_>],
        c: &ServerName<'_>,
        d: &[u8],
        e: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        self.0.verify_server_cert(a, b, c, d, e)
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(m, c, d)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(m, c, d)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        let all = self.0.supported_verify_schemes();
        if !self.1 {
            return all;
        }
        all.into_iter()
            .filter(|s| format!("{s:?}").starts_with("RSA"))
            .collect()
    }
}

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

async fn tls_connect(addr: SocketAddr, o: &ClientOpts) -> std::io::Result<Tls> {
    let tcp = TcpStream::connect(addr).await?;
    tls_over(tcp, o).await
}

async fn tls_over(tcp: TcpStream, o: &ClientOpts) -> std::io::Result<Tls> {
    let name = match o.sni {
        Some(n) => ServerName::try_from(n.to_string()).expect("dns name"),
        None => ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
    };
    tokio_rustls::TlsConnector::from(client_config(o))
        .connect(name, tcp)
        .await
}

fn served_cert(s: &Tls) -> Vec<u8> {
    s.get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .unwrap_or_default()
}

/// An HTTP/1.1 GET over an established stream; returns the whole response.
async fn get_over<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    s: &mut S,
    host: &str,
    path: &str,
) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of `name` in an echoed request head (the echo backend answers with what it got).
fn echoed(resp: &str, name: &str) -> Option<String> {
    let body = resp.split_once("\r\n\r\n")?.1;
    body.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

const VARS: &str = "proxy_set_header X-Scheme $scheme; proxy_set_header X-Https $https; \
    proxy_set_header X-Proto $ssl_protocol; proxy_set_header X-Cipher $ssl_cipher; \
    proxy_set_header X-Sni $ssl_server_name; proxy_set_header Host $host;";

// ---------- TLS termination ----------

#[tokio::test]
async fn sni_selects_the_server_certificate_and_default_is_the_fallback() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = ecdsa_cert(&["a.test"]);
    let b = ecdsa_cert(&["b.test", "*.b.test"]);
    write_cert(dir.path(), "a", &a);
    write_cert(dir.path(), "b", &b);
    let be = Backend::spawn("app", Behaviour::Echo).await;
    let port = free_port();
    let http = format!(
        "server {{ listen 127.0.0.1:{port} ssl; server_name a.test; ssl_certificate a.crt; ssl_certificate_key a.key;
            location / {{ {VARS} proxy_pass http://{}; }} }}
         server {{ listen 127.0.0.1:{port} ssl; server_name b.test *.b.test; ssl_certificate b.crt; ssl_certificate_key b.key;
            location / {{ {VARS} proxy_pass http://{}; }} }}
         server {{ listen 127.0.0.1:{port} ssl; server_name nocert.test; location / {{ proxy_pass http://{}; }} }}",
        be.addr, be.addr, be.addr
    );
    let rs = start_rs(dir.path(), &http).await;
    for (sni, want) in [
        (Some("a.test"), &a.der),
        (Some("b.test"), &b.der),
        (Some("x.b.test"), &b.der),
        (Some("unknown.test"), &a.der),
        (Some("nocert.test"), &a.der),
        (None, &a.der),
    ] {
        let o = ClientOpts {
            sni,
            ..Default::default()
        };
        let mut s = tls_connect(rs.addr(), &o).await.expect("handshake");
        assert_eq!(&served_cert(&s), want, "certificate for SNI {sni:?}");
        let host = sni.unwrap_or("a.test");
        let r = get_over(&mut s, host, "/v").await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        if sni == Some("b.test") {
            assert_eq!(echoed(&r, "x-scheme").as_deref(), Some("https"));
            assert_eq!(echoed(&r, "x-https").as_deref(), Some("on"));
            assert_eq!(echoed(&r, "x-proto").as_deref(), Some("TLSv1.3"));
            assert_eq!(echoed(&r, "x-sni").as_deref(), Some("b.test"));
            let cipher = echoed(&r, "x-cipher").unwrap_or_default();
            assert!(
                cipher.starts_with("TLS_") && cipher.contains("_"),
                "{cipher}"
            );
        }
    }
    // TLSv1.2 reports OpenSSL's names.
    let o = ClientOpts {
        sni: Some("a.test"),
        versions: Some(&rustls::version::TLS12),
        ..Default::default()
    };
    let mut s = tls_connect(rs.addr(), &o).await.expect("TLSv1.2 handshake");
    let r = get_over(&mut s, "a.test", "/").await;
    assert_eq!(echoed(&r, "x-proto").as_deref(), Some("TLSv1.2"));
    assert_eq!(
        echoed(&r, "x-cipher").as_deref(),
        Some("ECDHE-ECDSA-AES256-GCM-SHA384")
    );
}

#[tokio::test]
async fn rsa_and_ecdsa_pairs_in_one_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(rsa) = rsa_cert(&["dual.test"], dir.path()) else {
        return;
    };
    let ec = ecdsa_cert(&["dual.test"]);
    write_cert(dir.path(), "rsa", &rsa);
    write_cert(dir.path(), "ec", &ec);
    let be = Backend::spawn("app", Behaviour::Echo).await;
    let port = free_port();
    let http = format!(
        "server {{ listen 127.0.0.1:{port} ssl; server_name dual.test;
            ssl_certificate rsa.crt; ssl_certificate_key rsa.key;
            ssl_certificate ec.crt; ssl_certificate_key ec.key;
            location / {{ proxy_pass http://{}; }} }}",
        be.addr
    );
    let rs = start_rs(dir.path(), &http).await;
    let s = tls_connect(
        rs.addr(),
        &ClientOpts {
            sni: Some("dual.test"),
            rsa_only: true,
            ..Default::default()
        },
    )
    .await
    .expect("RSA-only client");
    assert_eq!(served_cert(&s), rsa.der);
    let s = tls_connect(
        rs.addr(),
        &ClientOpts {
            sni: Some("dual.test"),
            ..Default::default()
        },
    )
    .await
    .expect("client offering ECDSA");
    // The client's preferred scheme decides (rustls, like browsers, prefers ECDSA), as OpenSSL.
    assert_eq!(served_cert(&s), ec.der);
}

#[tokio::test]
async fn protocol_limits_are_enforced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = ecdsa_cert(&["p.test"]);
    write_cert(dir.path(), "p", &c);
    let be = Backend::spawn("app", Behaviour::Echo).await;
    let (p13, p12) = (free_port(), free_port());
    let http = format!(
        "server {{ listen 127.0.0.1:{p13} ssl; ssl_certificate p.crt; ssl_certificate_key p.key; ssl_protocols TLSv1.3;
            location / {{ proxy_pass http://{0}; }} }}
         server {{ listen 127.0.0.1:{p12} ssl; ssl_certificate p.crt; ssl_certificate_key p.key; ssl_protocols TLSv1 TLSv1.1 TLSv1.2;
            ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256; ssl_prefer_server_ciphers on;
            ssl_session_cache shared:SSL:1m; ssl_session_timeout 10m;
            location / {{ proxy_pass http://{0}; }} }}",
        be.addr
    );
    let rs = start_rs(dir.path(), &http).await;
    let at = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    let v12 = ClientOpts {
        versions: Some(&rustls::version::TLS12),
        ..Default::default()
    };
    let v13 = ClientOpts {
        versions: Some(&rustls::version::TLS13),
        ..Default::default()
    };
    assert!(tls_connect(at(p13), &v12).await.is_err(), "TLSv1.2 refused");
    assert!(tls_connect(at(p13), &v13).await.is_ok());
    assert!(tls_connect(at(p12), &v13).await.is_err(), "TLSv1.3 refused");
    let s = tls_connect(at(p12), &v12).await.expect("TLSv1.2");
    let suite = s.get_ref().1.negotiated_cipher_suite().expect("suite");
    assert_eq!(
        suite.suite(),
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
    );
    drop(rs);

    // What cannot be honoured is an error, never a silent downgrade.
    let only_old = format!(
        "server {{ listen 127.0.0.1:{p13} ssl; ssl_certificate p.crt; ssl_certificate_key p.key; ssl_protocols SSLv3 TLSv1; }}"
    );
    let plan = compile(dir.path(), &only_old).expect("compiles");
    let e = Live::try_new(Arc::new(plan), None).err().expect("refused");
    assert_eq!(
        e.message,
        "ssl_protocols \"SSLv3 TLSv1\" cannot be honoured: rustls implements only TLSv1.2 and TLSv1.3"
    );
    let no_cipher = format!(
        "server {{ listen 127.0.0.1:{p13} ssl; ssl_certificate p.crt; ssl_certificate_key p.key; ssl_ciphers DHE-RSA-AES128-SHA:3DES; }}"
    );
    let plan = compile(dir.path(), &no_cipher).expect("compiles");
    let e = Live::try_new(Arc::new(plan), None).err().expect("refused");
    assert!(
        e.message.starts_with(
            "SSL_CTX_set_cipher_list(\"DHE-RSA-AES128-SHA:3DES\") failed (no cipher match"
        ),
        "{}",
        e.message
    );
}

#[test]
fn bad_certificate_fails_dash_t_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = ecdsa_cert(&["t.test"]);
    write_cert(dir.path(), "good", &c);
    std::fs::write(dir.path().join("garbage.crt"), "not a certificate\n").expect("write");
    let port = free_port();
    let cases = [
        ("missing.crt", "good.key", format!(
            "nginx-rs: [emerg] cannot load certificate \"{}/missing.crt\": BIO_new_file() failed (2: No such file or directory)",
            dir.path().display()
        )),
        ("garbage.crt", "good.key", format!(
            "nginx-rs: [emerg] cannot load certificate \"{}/garbage.crt\": PEM_read_bio_X509_AUX() failed",
            dir.path().display()
        )),
        ("good.crt", "missing.key", format!(
            "nginx-rs: [emerg] cannot load certificate key \"{}/missing.key\": BIO_new_file() failed (2: No such file or directory)",
            dir.path().display()
        )),
        ("good.crt", "good.crt", format!(
            "nginx-rs: [emerg] cannot load certificate key \"{}/good.crt\": PEM_read_bio_PrivateKey() failed",
            dir.path().display()
        )),
    ];
    let other = ecdsa_cert(&["t.test"]);
    write_cert(dir.path(), "other", &other);
    let mismatch = (
        "good.crt",
        "other.key",
        format!(
            "nginx-rs: [emerg] SSL_CTX_use_PrivateKey(\"{d}/other.key\") failed (key values mismatch with \"{d}/good.crt\")",
            d = dir.path().display()
        ),
    );
    for (cert, key, want) in cases.into_iter().chain([mismatch]) {
        let conf = dir.path().join("t.conf");
        std::fs::write(
            &conf,
            format!(
                "events {{}}\nhttp {{ server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {cert}; ssl_certificate_key {key}; }} }}\n"
            ),
        )
        .expect("write conf");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_nginx-rs"))
            .arg("-t")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .output()
            .expect("run nginx-rs -t");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.lines().any(|l| l.starts_with(&want)),
            "want {want}\ngot {err}"
        );
        assert!(err.contains("test failed"), "{err}");
        assert!(!err.contains("syntax is ok"), "{err}");
    }
    // The good pair passes.
    let conf = dir.path().join("t.conf");
    std::fs::write(
        &conf,
        format!("events {{}}\nhttp {{ server {{ listen 127.0.0.1:{port} ssl; ssl_certificate good.crt; ssl_certificate_key good.key; }} }}\n"),
    )
    .expect("write conf");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nginx-rs"))
        .args(["-t", "-p"])
        .arg(dir.path())
        .arg("-c")
        .arg(&conf)
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_swap_on_reload_without_failed_handshakes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let old = ecdsa_cert(&["r.test"]);
    let new = ecdsa_cert(&["r.test"]);
    write_cert(dir.path(), "site", &old);
    let be = Backend::spawn("app", Behaviour::Echo).await;
    let port = free_port();
    let http = format!(
        "server {{ listen 127.0.0.1:{port} ssl; server_name r.test; ssl_certificate site.crt; ssl_certificate_key site.key;
            location / {{ proxy_pass http://{}; }} }}",
        be.addr
    );
    let rs = start_rs(dir.path(), &http).await;
    let addr = rs.addr();
    let o = ClientOpts {
        sni: Some("r.test"),
        ..Default::default()
    };
    // Four clients handshake in a loop while the certificate is renewed and reloaded.
    let (seen_new_tx, seen_new_rx) = watch::channel(false);
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (o, new_der, tx, mut rx) = (
            o.clone(),
            new.der.clone(),
            seen_new_tx.clone(),
            seen_new_rx.clone(),
        );
        clients.push(tokio::spawn(async move {
            let (mut ok, mut failed, mut new_seen) = (0u32, 0u32, 0u32);
            for _ in 0..3000 {
                match tls_connect(addr, &o).await {
                    Ok(mut s) => {
                        let r = get_over(&mut s, "r.test", "/").await;
                        if r.starts_with("HTTP/1.1 200") {
                            ok += 1;
                        } else {
                            failed += 1;
                        }
                        if served_cert(&s) == new_der {
                            new_seen += 1;
                            let _ = tx.send(true);
                        }
                    }
                    Err(_) => failed += 1,
                }
                if new_seen >= 20 || (*rx.borrow_and_update() && new_seen > 0 && ok > 40) {
                    break;
                }
            }
            (ok, failed, new_seen)
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    write_cert(dir.path(), "site", &new);
    rs.reload(dir.path(), &http).expect("reload");
    let mut total_ok = 0;
    for c in clients {
        let (ok, failed, new_seen) = c.await.expect("client");
        assert_eq!(failed, 0, "failed handshakes or requests during the swap");
        assert!(new_seen > 0, "renewed certificate served after reload");
        total_ok += ok;
    }
    assert!(total_ok > 0);

    // A reload with a broken certificate fails and keeps the renewed one serving.
    std::fs::write(dir.path().join("site.crt"), "broken").expect("write");
    let e = rs
        .reload(dir.path(), &http)
        .expect_err("bad certificate refused");
    assert!(e.contains("cannot load certificate"), "{e}");
    let s = tls_connect(addr, &o).await.expect("still serving");
    assert_eq!(served_cert(&s), new.der);
}

#[tokio::test]
async fn curl_over_tls_and_http2() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIP: curl not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let c = ecdsa_cert(&["c.test"]);
    write_cert(dir.path(), "c", &c);
    let be = Backend::spawn("app", Behaviour::Echo).await;
    let port = free_port();
    let http = format!(
        "server {{ listen 127.0.0.1:{port} ssl http2; server_name c.test; ssl_certificate c.crt; ssl_certificate_key c.key;
            location / {{ {VARS} proxy_pass http://{}; }} }}",
        be.addr
    );
    let _rs = start_rs(dir.path(), &http).await;
    for (flag, proto) in [("--http1.1", "1.1"), ("--http2", "2")] {
        let url = format!("https://c.test:{port}/curl?x=1");
        let resolve = format!("c.test:{port}:127.0.0.1");
        let out = tokio::process::Command::new("curl")
            .args([
                "-sk",
                flag,
                "--resolve",
                &resolve,
                "-w",
                "\\n%{http_version}",
                &url,
            ])
            .output()
            .await
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(text.ends_with(&format!("\n{proto}")), "{flag}: {text}");
        let lower = text.to_ascii_lowercase();
        assert!(lower.contains("get /curl?x=1 http/1."), "{text}");
        assert!(
            lower.contains("\nhost: c.test\r\n"),
            "$host from :authority: {text}"
        );
        assert!(lower.contains("\nx-scheme: https\r\n"), "{text}");
        assert!(lower.contains("\nx-sni: c.test\r\n"), "{text}");
    }
}

#[tokio::test]
async fn http_to_https_redirect_the_nginx_way() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let http = format!(
        "server {{ listen 127.0.0.1:{port}; server_name _; return 301 https://$host$request_uri; }}"
    );
    let _rs = start_rs(dir.path(), &http).await;
    let mut s = TcpStream::connect(rs_addr(port)).await.expect("connect");
    let r = get_over(&mut s, "shop.test", "/cart?id=7").await;
    assert!(r.starts_with("HTTP/1.1 301"), "{r}");
    // Header names compared without case (hyper writes them in lower case).
    assert!(
        r.to_ascii_lowercase()
            .contains("\r\nlocation: https://shop.test/cart?id=7\r\n"),
        "{r}"
    );
}

// ---------- HTTP/2 ----------

type H2 = hyper::client::conn::http2::SendRequest<H2Body>;

/// A request body fed from a channel; an `Err` item resets the stream. `true`: known to be empty
/// (END_STREAM on HEADERS, as browsers send a GET).
struct H2Body(
    tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    bool,
);

impl hyper::body::Body for H2Body {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|o| o.map(|r| r.map(hyper::body::Frame::data)))
    }
    fn is_end_stream(&self) -> bool {
        self.1
    }
}

fn body_of(chunks: Vec<Bytes>) -> H2Body {
    let (tx, rx) = tokio::sync::mpsc::channel(chunks.len().max(1));
    let empty = chunks.is_empty();
    for c in chunks {
        let _ = tx.try_send(Ok(c));
    }
    H2Body(rx, empty)
}

async fn h2_connect(addr: SocketAddr, sni: &'static str) -> H2 {
    let tls = tls_connect(
        addr,
        &ClientOpts {
            sni: Some(sni),
            alpn: vec![b"h2", b"http/1.1"],
            ..Default::default()
        },
    )
    .await
    .expect("handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]), "ALPN h2");
    let (send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    send
}

fn h2_req(method: &str, authority: &str, path: &str, body: H2Body) -> http::Request<H2Body> {
    http::Request::builder()
        .method(method)
        .uri(format!("https://{authority}{path}"))
        .header("x-test", "1")
        .body(body)
        .expect("request")
}

async fn h2_send(send: &mut H2, req: http::Request<H2Body>) -> (u16, Bytes) {
    send.ready().await.expect("ready");
    let resp = send.send_request(req).await.expect("response");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, body)
}

/// The body part of an echoed request.
fn payload(echo: &[u8]) -> &[u8] {
    match echo.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => &echo[i + 4..],
        None => &[],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_multiplexing_large_bodies_and_a_reset_stream() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = ecdsa_cert(&["h2.test"]);
    write_cert(dir.path(), "h2", &c);
    let echo = Backend::spawn("echo", Behaviour::Echo).await;
    let big = Backend::spawn("big", Behaviour::Big(3 * 1024 * 1024)).await;
    let port = free_port();
    let http = format!(
        "client_max_body_size 0;
         server {{ listen 127.0.0.1:{port} ssl; http2 on; server_name h2.test; ssl_certificate h2.crt; ssl_certificate_key h2.key;
            location / {{ proxy_set_header Host $host; proxy_pass http://{}; }}
            location /big {{ proxy_pass http://{}; }} }}",
        echo.addr, big.addr
    );
    let rs = start_rs(dir.path(), &http).await;
    let mut send = h2_connect(rs.addr(), "h2.test").await;

    // 20 concurrent streams on one connection.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let mut s = send.clone();
        tasks.push(tokio::spawn(async move {
            let (st, body) = h2_send(
                &mut s,
                h2_req("GET", "h2.test", &format!("/m/{i}"), body_of(vec![])),
            )
            .await;
            (i, st, body)
        }));
    }
    for t in tasks {
        let (i, st, body) = t.await.expect("stream");
        let text = String::from_utf8_lossy(&body);
        assert_eq!(st, 200);
        assert!(text.starts_with(&format!("GET /m/{i} HTTP/1.")), "{text}");
        let lower = text.to_ascii_lowercase();
        assert!(
            lower.contains("\r\nhost: h2.test\r\n"),
            "$host from :authority: {text}"
        );
    }

    // Large bodies both ways.
    let up: Vec<Bytes> = (0..40)
        .map(|_| Bytes::from(vec![b'u'; 64 * 1024]))
        .collect();
    let mut req = h2_req("POST", "h2.test", "/up", body_of(up));
    req.headers_mut()
        .insert("content-length", http::HeaderValue::from(40 * 64 * 1024));
    let (st, body) = h2_send(&mut send, req).await;
    assert_eq!(st, 200);
    assert!(body.len() > 40 * 64 * 1024, "upload echoed: {}", body.len());
    assert_eq!(
        payload(&body).iter().filter(|&&b| b == b'u').count(),
        40 * 64 * 1024
    );
    // Without Content-Length (DATA frames until END_STREAM): buffered, sent with a length.
    let up: Vec<Bytes> = (0..10)
        .map(|_| Bytes::from(vec![b'v'; 64 * 1024]))
        .collect();
    let (st, body) = h2_send(&mut send, h2_req("POST", "h2.test", "/up2", body_of(up))).await;
    assert_eq!(st, 200);
    let text = String::from_utf8_lossy(&body[..200.min(body.len())]).to_ascii_lowercase();
    assert!(text.contains("content-length: 655360\r\n"), "{text}");
    assert_eq!(
        payload(&body).iter().filter(|&&b| b == b'v').count(),
        10 * 64 * 1024
    );
    let (st, body) = h2_send(&mut send, h2_req("GET", "h2.test", "/big", body_of(vec![]))).await;
    assert_eq!((st, body.len()), (200, 3 * 1024 * 1024));

    // A stream reset mid-body leaves the others (and the connection) intact.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(Ok(Bytes::from(vec![b'r'; 32 * 1024])))
        .await
        .expect("chunk");
    let mut s2 = send.clone();
    let broken = tokio::spawn(async move {
        s2.ready().await.expect("ready");
        let mut req = h2_req("POST", "h2.test", "/reset", H2Body(rx, false));
        req.headers_mut()
            .insert("content-length", http::HeaderValue::from(1024 * 1024));
        s2.send_request(req).await
    });
    let mut others = Vec::new();
    for i in 0..5 {
        let mut s = send.clone();
        others.push(tokio::spawn(async move {
            h2_send(
                &mut s,
                h2_req("GET", "h2.test", &format!("/other/{i}"), body_of(vec![])),
            )
            .await
        }));
    }
    tx.send(Err(std::io::Error::other("client gives up")))
        .await
        .expect("reset");
    assert!(broken.await.expect("task").is_err(), "reset stream fails");
    for o in others {
        assert_eq!(o.await.expect("other").0, 200);
    }
    let (st, _) = h2_send(
        &mut send,
        h2_req("GET", "h2.test", "/after", body_of(vec![])),
    )
    .await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn http2_header_rules_match_http1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = ecdsa_cert(&["hr.test"]);
    write_cert(dir.path(), "hr", &c);
    let echo = Backend::spawn("echo", Behaviour::Echo).await;
    let port = free_port();
    let http = format!(
        "server {{ listen 127.0.0.1:{port} ssl http2; server_name hr.test; ssl_certificate hr.crt; ssl_certificate_key hr.key;
            location / {{ {VARS} proxy_set_header X-Fwd $proxy_add_x_forwarded_for; proxy_pass http://{}; }} }}",
        echo.addr
    );
    let rs = start_rs(dir.path(), &http).await;
    let mut h1 = tls_connect(
        rs.addr(),
        &ClientOpts {
            sni: Some("hr.test"),
            alpn: vec![b"http/1.1"],
            ..Default::default()
        },
    )
    .await
    .expect("h1");
    h1.write_all(
        b"GET /same?a=1 HTTP/1.1\r\nHost: hr.test\r\nx-test: 1\r\nConnection: close\r\n\r\n",
    )
    .await
    .expect("write");
    let mut raw = Vec::new();
    let _ = h1.read_to_end(&mut raw).await;
    let h1_text = String::from_utf8_lossy(&raw).into_owned();
    let h1_seen = h1_text
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_string();
    let mut h2 = h2_connect(rs.addr(), "hr.test").await;
    let (_, body) = h2_send(
        &mut h2,
        h2_req("GET", "hr.test", "/same?a=1", body_of(vec![])),
    )
    .await;
    let h2_seen = String::from_utf8_lossy(&body).into_owned();
    let norm = |s: &str| {
        let mut v: Vec<String> = s
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.to_ascii_lowercase())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        norm(&h1_seen),
        norm(&h2_seen),
        "h1:\n{h1_seen}\nh2:\n{h2_seen}"
    );
}

#[tokio::test]
async fn h2c_prior_knowledge_and_http1_on_one_plain_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let echo = Backend::spawn("echo", Behaviour::Echo).await;
    let port = free_port();
    let http = format!(
        "server {{ listen 127.0.0.1:{port} http2; server_name _;
            location / {{ proxy_set_header Host $host; proxy_set_header X-Scheme $scheme; proxy_pass http://{}; }} }}",
        echo.addr
    );
    let _rs = start_rs(dir.path(), &http).await;
    let tcp = TcpStream::connect(rs_addr(port)).await.expect("connect");
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .expect("h2c handshake");
    tokio::spawn(conn);
    let req = http::Request::builder()
        .uri("http://h2c.test/prior")
        .body(body_of(vec![]))
        .expect("request");
    let (st, body) = h2_send(&mut send, req).await;
    let text = String::from_utf8_lossy(&body).to_ascii_lowercase();
    assert_eq!(st, 200);
    assert!(text.contains("\r\nhost: h2c.test\r\n"), "{text}");
    assert!(text.contains("\r\nx-scheme: http\r\n"), "{text}");
    let mut s = TcpStream::connect(rs_addr(port)).await.expect("connect");
    let r = get_over(&mut s, "h1.test", "/h1").await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
}

// ---------- upstream TLS ----------

/// A TLS backend that answers with the SNI it received.
async fn tls_backend(cert: &Cert) -> SocketAddr {
    let chain = vec![CertificateDer::from(cert.der.clone())];
    let key = rustls_pemfile::private_key(&mut cert.key.as_bytes())
        .expect("pem")
        .expect("key");
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = l.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(tcp).await else {
                    return;
                };
                let sni = s.get_ref().1.server_name().unwrap_or("").to_string();
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let body = format!("sni={sni}");
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn proxy_pass_https_sni_and_verification() {
    let dir = tempfile::tempdir().expect("tempdir");
    let up = ecdsa_cert(&["up.test"]);
    let other = ecdsa_cert(&["other.test"]);
    write_cert(dir.path(), "up", &up);
    write_cert(dir.path(), "other", &other);
    let backend = tls_backend(&up).await;
    let port = free_port();
    let http = format!(
        "server {{ listen 127.0.0.1:{port}; server_name _;
            location /plain {{ proxy_pass https://{backend}; }}
            location /sni {{ proxy_ssl_server_name on; proxy_ssl_name up.test; proxy_pass https://{backend}; }}
            location /verified {{ proxy_ssl_verify on; proxy_ssl_trusted_certificate up.crt; proxy_ssl_name up.test;
                proxy_pass https://{backend}; }}
            location /untrusted {{ proxy_ssl_verify on; proxy_ssl_trusted_certificate other.crt; proxy_ssl_name up.test;
                proxy_pass https://{backend}; }} }}"
    );
    let rs = start_rs(dir.path(), &http).await;
    let get = |path: &'static str| async move {
        let mut s = TcpStream::connect(rs_addr(port)).await.expect("connect");
        get_over(&mut s, "x", path).await
    };
    let r = get("/plain").await;
    assert!(
        r.starts_with("HTTP/1.1 200") && r.ends_with("sni="),
        "no SNI by default: {r}"
    );
    let r = get("/sni").await;
    assert!(r.ends_with("sni=up.test"), "{r}");
    let r = get("/verified").await;
    assert!(r.starts_with("HTTP/1.1 200") && r.ends_with("sni="), "{r}");
    let r = get("/untrusted").await;
    assert!(
        r.starts_with("HTTP/1.1 502"),
        "verification failure is a 502: {r}"
    );
    drop(rs);
}

fn rs_addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

// ---------- WebSocket ----------

/// A WebSocket frame: (fin, opcode, payload).
type Frame = (bool, u8, Vec<u8>);

fn encode(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(m | n as u8),
        n if n <= 0xffff => {
            out.push(m | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(m | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(k) => {
            out.extend_from_slice(&k);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

async fn read_frame<R: tokio::io::AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Frame> {
    let mut h = [0u8; 2];
    r.read_exact(&mut h).await?;
    let mut len = u64::from(h[1] & 0x7f);
    if len == 126 {
        let mut b = [0u8; 2];
        r.read_exact(&mut b).await?;
        len = u64::from(u16::from_be_bytes(b));
    } else if len == 127 {
        let mut b = [0u8; 8];
        r.read_exact(&mut b).await?;
        len = u64::from_be_bytes(b);
    }
    let mask = if h[1] & 0x80 != 0 {
        let mut k = [0u8; 4];
        r.read_exact(&mut k).await?;
        Some(k)
    } else {
        None
    };
    let mut p = vec![0u8; len as usize];
    r.read_exact(&mut p).await?;
    if let Some(k) = mask {
        for (i, b) in p.iter_mut().enumerate() {
            *b ^= k[i % 4];
        }
    }
    Ok((h[0] & 0x80 != 0, h[0] & 0x0f, p))
}

/// A WebSocket echo backend: 101 only when `Upgrade: websocket` and `Connection: upgrade` arrive,
/// else a 200 saying so. Echoes text/binary, answers ping with pong, close with close.
async fn ws_backend() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if s.read_exact(&mut b).await.is_err() {
                        return;
                    }
                    head.push(b[0]);
                }
                let h = String::from_utf8_lossy(&head).to_ascii_lowercase();
                if !(h.contains("\r\nupgrade: websocket\r\n")
                    && h.contains("\r\nconnection: upgrade\r\n"))
                {
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\nno upgrade")
                        .await;
                    return;
                }
                let _ = s
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n")
                    .await;
                loop {
                    let Ok((_, op, p)) = read_frame(&mut s).await else {
                        return;
                    };
                    let reply = match op {
                        0x9 => encode(0xA, &p, None),
                        0x8 => {
                            let _ = s.write_all(&encode(0x8, &p, None)).await;
                            return;
                        }
                        op => encode(op, &p, None),
                    };
                    if s.write_all(&reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn websocket_echo_through_the_proxy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = ws_backend().await;
    let port = free_port();
    let http = format!(
        "map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
         server {{ listen 127.0.0.1:{port}; server_name _;
            location /ws {{ proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade;
                proxy_set_header Connection $connection_upgrade; proxy_read_timeout 1s; proxy_pass http://{ws}; }}
            location /plain {{ proxy_pass http://{ws}; }} }}"
    );
    let _rs = start_rs(dir.path(), &http).await;
    let handshake = |path: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    };
    // Without `proxy_set_header Upgrade/Connection` the upgrade is not performed.
    let mut s = TcpStream::connect(rs_addr(port)).await.expect("connect");
    let r = get_over(&mut s, "x", "/plain").await;
    assert!(
        r.starts_with("HTTP/1.1 200") && r.ends_with("no upgrade"),
        "{r}"
    );
    let mut s = TcpStream::connect(rs_addr(port)).await.expect("connect");
    s.write_all(handshake("/plain").as_bytes())
        .await
        .expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.starts_with("HTTP/1.1 200") && text.ends_with("no upgrade"),
        "{text}"
    );

    // With them: 101, then frames both ways.
    let mut s = TcpStream::connect(rs_addr(port)).await.expect("connect");
    s.write_all(handshake("/ws").as_bytes())
        .await
        .expect("write");
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).await.expect("101 head");
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let key = Some([1, 2, 3, 4]);
    s.write_all(&encode(0x1, b"hello", key))
        .await
        .expect("text");
    assert_eq!(
        read_frame(&mut s).await.expect("echo"),
        (true, 0x1, b"hello".to_vec())
    );
    s.write_all(&encode(0x2, &[0, 1, 2, 255], key))
        .await
        .expect("binary");
    assert_eq!(
        read_frame(&mut s).await.expect("echo"),
        (true, 0x2, vec![0, 1, 2, 255])
    );
    s.write_all(&encode(0x9, b"ping!", key))
        .await
        .expect("ping");
    assert_eq!(
        read_frame(&mut s).await.expect("pong"),
        (true, 0xA, b"ping!".to_vec())
    );
    let large: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    s.write_all(&encode(0x2, &large, key)).await.expect("large");
    assert_eq!(read_frame(&mut s).await.expect("large echo").2, large);
    s.write_all(&encode(0x8, &[0x03, 0xe8], key))
        .await
        .expect("close");
    assert_eq!(
        read_frame(&mut s).await.expect("close echo"),
        (true, 0x8, vec![0x03, 0xe8])
    );
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
        .await
        .expect("closed after close")
        .unwrap_or(0);
    assert_eq!(n, 0);

    // An idle tunnel is closed after proxy_read_timeout (1s here).
    let mut s = TcpStream::connect(rs_addr(port)).await.expect("connect");
    s.write_all(handshake("/ws").as_bytes())
        .await
        .expect("write");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).await.expect("101 head");
        head.push(b[0]);
    }
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(0))),
        "idle tunnel closed: {closed:?}"
    );
}

// ---------- PROXY protocol ----------

#[tokio::test]
async fn proxy_protocol_v1_v2_and_malformed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = ecdsa_cert(&["pp.test"]);
    write_cert(dir.path(), "pp", &c);
    let be = Backend::spawn("app", Behaviour::Echo).await;
    let (port, tls_port, rip_port) = (free_port(), free_port(), free_port());
    let http = format!(
        "server {{ listen 127.0.0.1:{port} proxy_protocol; server_name _;
            location / {{ proxy_set_header X-PP $proxy_protocol_addr:$proxy_protocol_port; proxy_set_header X-RA $remote_addr; proxy_pass http://{0}; }} }}
         server {{ listen 127.0.0.1:{tls_port} ssl proxy_protocol; server_name pp.test; ssl_certificate pp.crt; ssl_certificate_key pp.key;
            location / {{ proxy_set_header X-PP $proxy_protocol_addr; {VARS} proxy_pass http://{0}; }} }}
         server {{ listen 127.0.0.1:{rip_port} proxy_protocol; server_name _;
            set_real_ip_from 127.0.0.0/8; real_ip_header proxy_protocol;
            location / {{ proxy_set_header X-RA $remote_addr; proxy_set_header X-Real $realip_remote_addr;
                proxy_set_header X-Fwd $proxy_add_x_forwarded_for; proxy_pass http://{0}; }} }}",
        be.addr
    );
    let _rs = start_rs(dir.path(), &http).await;
    let send = |bytes: Vec<u8>| async move {
        let mut s = TcpStream::connect(rs_addr(port)).await.expect("connect");
        s.write_all(&bytes).await.expect("write");
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    };
    let r = send(
        b"PROXY TCP4 203.0.113.7 10.0.0.1 5555 80\r\nGET /v1 HTTP/1.0\r\nHost: x\r\n\r\n".to_vec(),
    )
    .await;
    assert_eq!(
        echoed(&r, "x-pp").as_deref(),
        Some("203.0.113.7:5555"),
        "{r}"
    );
    assert_eq!(
        echoed(&r, "x-ra").as_deref(),
        Some("127.0.0.1"),
        "$remote_addr unchanged"
    );
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x21\x00\x24".to_vec();
    let mut src = [0u8; 16];
    src[0] = 0x20;
    src[1] = 0x01;
    src[2] = 0x0d;
    src[3] = 0xb8;
    src[15] = 9;
    v2.extend_from_slice(&src);
    v2.extend_from_slice(&[0u8; 16]);
    v2.extend_from_slice(&[0x1f, 0x90, 0, 80]);
    v2.extend_from_slice(b"GET /v2 HTTP/1.0\r\nHost: x\r\n\r\n");
    let r = send(v2).await;
    assert_eq!(
        echoed(&r, "x-pp").as_deref(),
        Some("2001:db8::9:8080"),
        "{r}"
    );

    let before = be.requests().len();
    for bad in [
        b"GET / HTTP/1.0\r\nHost: x\r\n\r\n".to_vec(),
        b"PROXY TCP4 203.0.113.7 nonsense\r\nGET / HTTP/1.0\r\n\r\n".to_vec(),
        b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 80\r\nGET / HTTP/1.0\r\n\r\n".to_vec(),
        b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x03abcGET / HTTP/1.0\r\n\r\n".to_vec(),
    ] {
        let r = send(bad.clone()).await;
        assert_eq!(
            r,
            "",
            "closed with nothing sent for {:?}",
            String::from_utf8_lossy(&bad)
        );
    }
    assert_eq!(be.requests().len(), before, "nothing forwarded");

    // real_ip_header proxy_protocol from a trusted address: $remote_addr is the PROXY source.
    let mut s = TcpStream::connect(rs_addr(rip_port))
        .await
        .expect("connect");
    s.write_all(b"PROXY TCP4 203.0.113.9 10.0.0.1 7777 80\r\n")
        .await
        .expect("pp");
    let r = get_over(&mut s, "x", "/rip").await;
    assert_eq!(echoed(&r, "x-ra").as_deref(), Some("203.0.113.9"), "{r}");
    assert_eq!(echoed(&r, "x-real").as_deref(), Some("127.0.0.1"), "{r}");
    assert_eq!(echoed(&r, "x-fwd").as_deref(), Some("203.0.113.9"), "{r}");

    // PROXY header, then TLS on the same connection.
    let mut tcp = TcpStream::connect(rs_addr(tls_port))
        .await
        .expect("connect");
    tcp.write_all(b"PROXY TCP4 198.51.100.4 10.0.0.1 4000 443\r\n")
        .await
        .expect("pp");
    let mut s = tls_over(
        tcp,
        &ClientOpts {
            sni: Some("pp.test"),
            ..Default::default()
        },
    )
    .await
    .expect("TLS after PROXY");
    let r = get_over(&mut s, "pp.test", "/").await;
    assert_eq!(echoed(&r, "x-pp").as_deref(), Some("198.51.100.4"), "{r}");
    assert_eq!(echoed(&r, "x-scheme").as_deref(), Some("https"));
}

// ---------- differential against real nginx ----------

struct Nginx {
    child: std::process::Child,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM first: a killed master leaves its workers behind.
        support::nginx::stop_child(&mut self.child);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_answers_as_nginx_over_tls() {
    const NGINX: &str = "/usr/sbin/nginx";
    if !Path::new(NGINX).exists() {
        eprintln!("SKIP: {NGINX} not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let a = ecdsa_cert(&["a.test"]);
    let b = ecdsa_cert(&["b.test"]);
    write_cert(dir.path(), "a", &a);
    write_cert(dir.path(), "b", &b);
    let be = Backend::spawn("app", Behaviour::Echo).await;
    let body = |port: u16| {
        format!(
            "server {{ listen 127.0.0.1:{port} ssl; server_name a.test; ssl_certificate {d}/a.crt; ssl_certificate_key {d}/a.key;
                ssl_protocols TLSv1.2 TLSv1.3; ssl_ciphers HIGH:!aNULL:!MD5; proxy_http_version 1.0;
                location / {{ {VARS} proxy_set_header X-Fwd $proxy_add_x_forwarded_for; proxy_pass http://{be}; }} }}
             server {{ listen 127.0.0.1:{port} ssl; server_name b.test; ssl_certificate {d}/b.crt; ssl_certificate_key {d}/b.key;
                proxy_http_version 1.0;
                location / {{ {VARS} proxy_pass http://{be}/b/; }} }}",
            d = dir.path().display(),
            be = be.addr
        )
    };
    let ng_port = free_port();
    let ng_dir = dir.path().join("nginx");
    std::fs::create_dir_all(&ng_dir).expect("mkdir");
    let conf = ng_dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "worker_processes 1;\nevents {{ worker_connections 64; }}\nhttp {{\n access_log off;\n{}\n}}\n",
            body(ng_port)
        ),
    )
    .expect("conf");
    let child = std::process::Command::new(NGINX)
        .arg("-p")
        .arg(&ng_dir)
        .arg("-c")
        .arg(&conf)
        .arg("-g")
        .arg(format!(
            "daemon off; master_process on; pid {}/nginx.pid; error_log stderr;",
            ng_dir.display()
        ))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let Ok(child) = child else {
        eprintln!("SKIP: nginx did not start");
        return;
    };
    let _ng = Nginx { child };
    let mut up = false;
    for _ in 0..100 {
        if TcpStream::connect(rs_addr(ng_port)).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !up {
        eprintln!("SKIP: nginx did not accept");
        return;
    }
    let rs_port = free_port();
    let rs = start_rs(dir.path(), &body(rs_port)).await;
    let cases: Vec<(
        Option<&'static str>,
        Option<&'static rustls::SupportedProtocolVersion>,
        &str,
    )> = vec![
        (Some("a.test"), None, "/x?y=1"),
        (Some("b.test"), None, "/deep/path"),
        (Some("zzz.test"), None, "/fallback"),
        (None, None, "/nosni"),
        (Some("a.test"), Some(&rustls::version::TLS12), "/tls12"),
        (Some("b.test"), Some(&rustls::version::TLS13), "/tls13"),
    ];
    for (sni, versions, path) in cases {
        let o = ClientOpts {
            sni,
            versions,
            ..Default::default()
        };
        let mut answers = Vec::new();
        for addr in [rs_addr(ng_port), rs.addr()] {
            let mut s = tls_connect(addr, &o).await.expect("handshake");
            let cert = served_cert(&s);
            let host = sni.unwrap_or("a.test");
            let r = get_over(&mut s, host, path).await;
            let status = r.get(..12).unwrap_or("").to_string();
            let body = r
                .split_once("\r\n\r\n")
                .map(|x| x.1.to_string())
                .unwrap_or_default();
            // Header names compared without case: nginx-rs sends `proxy_set_header` names in
            // lower case (hyper keeps the case only of headers the client sent).
            let mut lines: Vec<String> = body
                .lines()
                .map(|l| match l.split_once(':') {
                    Some((k, v)) => format!("{}:{v}", k.to_ascii_lowercase()),
                    None => l.to_string(),
                })
                .collect();
            lines.sort();
            answers.push((cert, status, lines));
        }
        assert_eq!(
            answers[0], answers[1],
            "nginx vs nginx-rs for SNI {sni:?} {path}"
        );
    }
}
